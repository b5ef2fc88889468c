#include "control/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

std::string Sha256(absl::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

bool ConstantTimeEqual(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::Status Unauthenticated(absl::string_view why) { return absl::UnauthenticatedError(why); }

absl::StatusOr<Role> ParseRole(absl::string_view r) {
  if (r == "admin") return Role::kAdmin;
  if (r == "read") return Role::kRead;
  return absl::InvalidArgumentError(absl::StrCat("unknown role \"", r, "\" (admin or read)"));
}

}  // namespace

const char* RoleName(Role r) { return r == Role::kAdmin ? "admin" : "read"; }

absl::StatusOr<Authenticator> Authenticator::Create(std::string jwt_secret, const std::string& tokens_text) {
  Authenticator a;
  a.jwt_secret_ = std::move(jwt_secret);
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(tokens_text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() < 2 || parts.size() > 3)
      return absl::InvalidArgumentError(absl::StrCat("tokens file line ", line_no, ": expected \"<token> <role> [name]\""));
    auto role = ParseRole(parts[1]);
    if (!role.ok()) return absl::InvalidArgumentError(absl::StrCat("tokens file line ", line_no, ": ", role.status().message()));
    if (parts[0].size() < 16)
      return absl::InvalidArgumentError(absl::StrCat("tokens file line ", line_no, ": token shorter than 16 characters"));
    a.static_tokens_.push_back({Sha256(parts[0]), *role,
                                parts.size() == 3 ? std::string(parts[2]) : absl::StrCat("token-", line_no)});
  }
  return a;
}

absl::StatusOr<Authenticator> Authenticator::FromFiles(std::string jwt_secret, const std::string& tokens_file) {
  std::string text;
  if (!tokens_file.empty()) {
    std::ifstream in(tokens_file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read tokens file ", tokens_file));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  return Create(std::move(jwt_secret), text);
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view header, absl::Time now) const {
  if (!configured())
    return Unauthenticated("admin API credentials are not configured (admin.jwt_secret or admin.tokens_file)");
  if (header.empty()) return Unauthenticated("missing Authorization header (Bearer token)");
  if (!absl::StartsWithIgnoreCase(header, "Bearer ")) return Unauthenticated("Authorization must be a Bearer token");
  const absl::string_view token = absl::StripAsciiWhitespace(header.substr(7));
  if (token.empty()) return Unauthenticated("empty Bearer token");
  // Every static token is compared, so timing does not reveal which matched.
  const std::string digest = Sha256(token);
  const StaticToken* match = nullptr;
  for (const auto& t : static_tokens_)
    if (ConstantTimeEqual(digest, t.digest)) match = &t;
  if (match != nullptr) return Principal{match->name, match->role};
  if (absl::StrContains(token, '.') && !jwt_secret_.empty()) return VerifyJwt(token, now);
  return Unauthenticated("invalid token");
}

absl::StatusOr<Principal> Authenticator::VerifyJwt(absl::string_view token, absl::Time now) const {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Unauthenticated("malformed JWT");
  std::string header_json, payload_json, signature;
  if (!absl::WebSafeBase64Unescape(parts[0], &header_json) || !absl::WebSafeBase64Unescape(parts[1], &payload_json) ||
      !absl::WebSafeBase64Unescape(parts[2], &signature))
    return Unauthenticated("malformed JWT (base64url)");
  boost::system::error_code ec;
  json::value header = json::parse(header_json, ec);
  // Only HS256: "none" and asymmetric algorithms are refused (RFC 8725 §3.1).
  if (ec || !header.is_object() || !header.as_object().contains("alg") ||
      header.as_object().at("alg") != "HS256")
    return Unauthenticated("JWT alg must be HS256");
  const std::string expected = HmacSha256(jwt_secret_, absl::StrCat(parts[0], ".", parts[1]));
  if (!ConstantTimeEqual(expected, signature)) return Unauthenticated("JWT signature does not verify");
  json::value payload = json::parse(payload_json, ec);
  if (ec || !payload.is_object()) return Unauthenticated("malformed JWT payload");
  const auto& p = payload.as_object();
  const double now_s = absl::ToDoubleSeconds(now - absl::UnixEpoch());
  if (auto* exp = p.if_contains("exp")) {
    if (!exp->is_number() || exp->to_number<double>() <= now_s) return Unauthenticated("JWT expired");
  }
  if (auto* nbf = p.if_contains("nbf")) {
    if (!nbf->is_number() || nbf->to_number<double>() > now_s) return Unauthenticated("JWT not yet valid (nbf)");
  }
  const auto* role = p.if_contains("role");
  if (role == nullptr || !role->is_string()) return Unauthenticated("JWT has no role claim");
  auto r = ParseRole(std::string(role->as_string()));
  if (!r.ok()) return Unauthenticated(absl::StrCat("JWT ", r.status().message()));
  Principal who{"jwt", *r};
  if (auto* sub = p.if_contains("sub"); sub && sub->is_string()) who.subject = std::string(sub->as_string());
  // The subject is the actor of the audit history (the state file): bounded
  // and printable, like every other name that is stored.
  if (who.subject.size() > 256 ||
      std::any_of(who.subject.begin(), who.subject.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return Unauthenticated("JWT sub must be at most 256 printable bytes");
  return who;
}

std::string SignJwt(const std::string& secret, const std::string& payload_json) {
  const std::string head = absl::WebSafeBase64Escape(R"({"alg":"HS256","typ":"JWT"})");
  const std::string body = absl::WebSafeBase64Escape(payload_json);
  const std::string signing_input = absl::StrCat(head, ".", body);
  return absl::StrCat(signing_input, ".", absl::WebSafeBase64Escape(HmacSha256(secret, signing_input)));
}

}  // namespace turnout::control
