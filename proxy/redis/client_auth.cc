#include "proxy/redis/client_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace turnout::proxy::redis {
namespace {

bool Equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  std::string hex;
  hex.reserve(len * 2);
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    hex += buf;
  }
  return hex;
}

// RFC 7677 / Postgres' stored form: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>.
bool ScramMatches(std::string_view secret, std::string_view password) {
  secret.remove_prefix(std::string_view("SCRAM-SHA-256$").size());
  const auto colon = secret.find(':');
  const auto dollar = secret.find('$');
  if (colon == std::string_view::npos || dollar == std::string_view::npos || colon > dollar) return false;
  const auto colon2 = secret.find(':', dollar);
  if (colon2 == std::string_view::npos) return false;
  int iterations = 0;
  if (!absl::SimpleAtoi(absl::string_view(secret.data(), colon), &iterations) || iterations <= 0) return false;
  std::string salt, stored_key;
  if (!absl::Base64Unescape(absl::string_view(secret.data() + colon + 1, dollar - colon - 1), &salt) ||
      !absl::Base64Unescape(absl::string_view(secret.data() + dollar + 1, colon2 - dollar - 1), &stored_key))
    return false;
  unsigned char salted[SHA256_DIGEST_LENGTH];
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        iterations, EVP_sha256(), sizeof salted, salted) != 1)
    return false;
  unsigned char client_key[EVP_MAX_MD_SIZE];
  unsigned int client_key_len = 0;
  static constexpr char kClientKey[] = "Client Key";
  HMAC(EVP_sha256(), salted, sizeof salted, reinterpret_cast<const unsigned char*>(kClientKey),
       sizeof kClientKey - 1, client_key, &client_key_len);
  unsigned char computed[SHA256_DIGEST_LENGTH];
  SHA256(client_key, client_key_len, computed);
  return Equal(std::string_view(reinterpret_cast<const char*>(computed), sizeof computed), stored_key);
}

}  // namespace

bool PasswordMatches(const std::string& secret, std::string_view user, std::string_view password) {
  const std::string_view s(secret);
  if (s.size() == 35 && s.substr(0, 3) == "md5") {
    std::string material(password);
    material.append(user);
    return Equal(s.substr(3), Md5Hex(material));
  }
  if (s.substr(0, 14) == "SCRAM-SHA-256$") return ScramMatches(s, password);
  return Equal(s, password);
}

}  // namespace turnout::proxy::redis
