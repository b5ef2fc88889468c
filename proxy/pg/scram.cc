#include "proxy/pg/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace turnout::proxy::pg {
namespace {

absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

std::string Hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

std::string Md5Hex(std::string_view a, std::string_view b) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  EVP_DigestUpdate(ctx, b.data(), b.size());
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  return Hex(digest, len);
}

ScramKey Sha256(const ScramKey& in) {
  ScramKey out{};
  unsigned len = 0;
  EVP_Digest(in.data(), in.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

ScramKey Hmac(const std::uint8_t* key, std::size_t key_len, std::string_view data) {
  ScramKey out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out.data(), &len);
  return out;
}

ScramKey ComputeSaltedPassword(std::string_view password, std::string_view salt, int iterations) {
  ScramKey out{};
  // RFC 5802 §2.2 Hi() is PBKDF2 with HMAC as the PRF. PostgreSQL applies
  // SASLprep first; for ASCII passwords that is the identity, and the server
  // itself falls back to the raw bytes when SASLprep fails, as we always do.
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                    iterations, EVP_sha256(), static_cast<int>(out.size()), out.data());
  return out;
}

// Hi() costs milliseconds at 4096 iterations, on the worker thread of the
// session that logs in. Its inputs repeat: a backend's salt for our role is
// fixed, and so is a user's. So results are kept per (password, salt,
// iterations), process-wide and bounded; nothing here is ever logged.
ScramKey SaltedPassword(std::string_view password, std::string_view salt, int iterations) {
  static std::mutex mu;
  static std::map<std::string, ScramKey>* cache = new std::map<std::string, ScramKey>();
  std::string key;
  key.reserve(password.size() + salt.size() + 16);
  key.append(std::to_string(iterations)).append(1, '\0').append(salt).append(1, '\0').append(password);
  {
    std::lock_guard lock(mu);
    if (auto it = cache->find(key); it != cache->end()) return it->second;
  }
  const ScramKey out = ComputeSaltedPassword(password, salt, iterations);
  std::lock_guard lock(mu);
  if (cache->size() >= 256) cache->clear();
  cache->emplace(std::move(key), out);
  return out;
}

std::string B64(const std::uint8_t* p, std::size_t n) {
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(p), n));
}
std::string B64(const ScramKey& k) { return B64(k.data(), k.size()); }

bool UnB64Key(std::string_view text, ScramKey* out) {
  std::string raw;
  if (!absl::Base64Unescape(Av(text), &raw) || raw.size() != out->size()) return false;
  std::copy(raw.begin(), raw.end(), out->begin());
  return true;
}

// "k=value" attribute at the front of `s`; advances past the following ','.
bool TakeAttr(std::string_view* s, char key, std::string_view* value) {
  if (s->size() < 2 || (*s)[0] != key || (*s)[1] != '=') return false;
  const std::size_t comma = s->find(',');
  *value = s->substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
  s->remove_prefix(comma == std::string_view::npos ? s->size() : comma + 1);
  return true;
}

bool PrintableNonce(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

}  // namespace

void RandomBytes(std::uint8_t* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}

std::string RandomNonce(std::size_t raw_bytes) {
  std::vector<std::uint8_t> raw(raw_bytes);
  RandomBytes(raw.data(), raw.size());
  return B64(raw.data(), raw.size());
}

std::string Md5Secret(std::string_view password, std::string_view user) {
  return "md5" + Md5Hex(password, user);
}

std::string Md5Response(std::string_view md5_secret, std::span<const std::uint8_t, 4> salt) {
  std::string_view hex = md5_secret;
  if (hex.substr(0, 3) == "md5") hex.remove_prefix(3);
  return "md5" + Md5Hex(hex, std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
}

std::optional<ScramSecret> ScramSecret::Parse(std::string_view text) {
  // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (all base64)
  constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
  if (text.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  text.remove_prefix(kPrefix.size());
  const std::size_t dollar = text.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  const std::string_view head = text.substr(0, dollar), keys = text.substr(dollar + 1);
  const std::size_t c1 = head.find(':'), c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return std::nullopt;
  ScramSecret s;
  if (!absl::SimpleAtoi(Av(head.substr(0, c1)), &s.iterations) || s.iterations <= 0) return std::nullopt;
  if (!absl::Base64Unescape(Av(head.substr(c1 + 1)), &s.salt) || s.salt.empty()) return std::nullopt;
  if (!UnB64Key(keys.substr(0, c2), &s.stored_key) || !UnB64Key(keys.substr(c2 + 1), &s.server_key))
    return std::nullopt;
  return s;
}

ScramSecret ScramSecret::ForPlainPassword(std::string_view password) {
  // One random salt per password for the process' life, as a stored
  // secret would have: the PBKDF2 result is then cached like any other.
  static std::mutex mu;
  static std::map<std::string, std::string>* salts = new std::map<std::string, std::string>();
  std::string salt;
  {
    std::lock_guard lock(mu);
    auto it = salts->find(std::string(password));
    if (it == salts->end()) {
      if (salts->size() >= 256) salts->clear();
      std::string fresh(16, '\0');
      RandomBytes(reinterpret_cast<std::uint8_t*>(fresh.data()), fresh.size());
      it = salts->emplace(std::string(password), std::move(fresh)).first;
    }
    salt = it->second;
  }
  return FromPassword(password, salt, kScramDefaultIterations);
}

ScramSecret ScramSecret::FromPassword(std::string_view password, std::string_view salt, int iterations) {
  ScramSecret s;
  s.iterations = iterations;
  s.salt = std::string(salt);
  const ScramKey salted = SaltedPassword(password, salt, iterations);
  s.stored_key = Sha256(Hmac(salted.data(), salted.size(), "Client Key"));
  s.server_key = Hmac(salted.data(), salted.size(), "Server Key");
  return s;
}

std::string ScramSecret::ToString() const {
  return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" +
         B64(reinterpret_cast<const std::uint8_t*>(salt.data()), salt.size()) + "$" + B64(stored_key) + ":" +
         B64(server_key);
}

bool ScramSecret::Matches(std::string_view password) const {
  const ScramSecret other = FromPassword(password, salt, iterations);
  return CRYPTO_memcmp(other.stored_key.data(), stored_key.data(), stored_key.size()) == 0;
}

StoredSecret StoredSecret::From(std::string_view secret) {
  StoredSecret s;
  s.text = std::string(secret);
  if (auto scram = ScramSecret::Parse(secret)) {
    s.kind = Kind::kScram;
    s.scram = std::move(scram);
  } else if (secret.size() == 35 && secret.substr(0, 3) == "md5" &&
             secret.find_first_not_of("0123456789abcdef", 3) == std::string_view::npos) {
    s.kind = Kind::kMd5;
  }
  return s;
}

bool StoredSecret::CheckCleartext(std::string_view password, std::string_view user) const {
  switch (kind) {
    case Kind::kPlain:
      return text.size() == password.size() && CRYPTO_memcmp(text.data(), password.data(), text.size()) == 0;
    case Kind::kMd5: {
      const std::string h = Md5Secret(password, user);
      return h.size() == text.size() && CRYPTO_memcmp(h.data(), text.data(), h.size()) == 0;
    }
    case Kind::kScram:
      return scram->Matches(password);
  }
  return false;
}

// ------------------------------------------------------------------ server

ScramServer::ScramServer(std::optional<ScramSecret> secret, std::string server_nonce)
    : secret_(std::move(secret)), server_nonce_(std::move(server_nonce)) {
  if (server_nonce_.empty()) server_nonce_ = RandomNonce();
  if (!secret_) {
    // A random salt and keys nobody knows: the proof check fails like a
    // wrong password would, after a normal-looking exchange.
    mock_.iterations = kScramDefaultIterations;
    mock_.salt.resize(16);
    RandomBytes(reinterpret_cast<std::uint8_t*>(mock_.salt.data()), mock_.salt.size());
    RandomBytes(mock_.stored_key.data(), mock_.stored_key.size());
    RandomBytes(mock_.server_key.data(), mock_.server_key.size());
  }
}

std::optional<std::string> ScramServer::HandleClientFirst(std::string_view msg) {
  // gs2-header: cbind-flag "," [authzid] ","  (RFC 5802 §7)
  if (msg.empty()) return std::nullopt;
  if (msg[0] == 'p') return std::nullopt;  // channel binding: not offered
  if (msg[0] != 'n' && msg[0] != 'y') return std::nullopt;
  if (msg.size() < 2 || msg[1] != ',') return std::nullopt;
  const std::size_t second = msg.find(',', 2);
  if (second == std::string_view::npos) return std::nullopt;
  if (second != 2) return std::nullopt;  // authzid: PostgreSQL does not support it either
  std::string_view bare = msg.substr(second + 1);
  client_first_bare_ = std::string(bare);
  std::string_view rest = bare, user, cnonce;
  if (!TakeAttr(&rest, 'n', &user)) return std::nullopt;  // ignored: the startup packet names the role
  if (!TakeAttr(&rest, 'r', &cnonce) || !PrintableNonce(cnonce)) return std::nullopt;
  const ScramSecret& s = secret_ ? *secret_ : mock_;
  nonce_ = std::string(cnonce) + server_nonce_;
  server_first_ = "r=" + nonce_ + ",s=" +
                  B64(reinterpret_cast<const std::uint8_t*>(s.salt.data()), s.salt.size()) +
                  ",i=" + std::to_string(s.iterations);
  return server_first_;
}

std::optional<std::string> ScramServer::HandleClientFinal(std::string_view msg, bool* proof_ok) {
  *proof_ok = false;
  const std::size_t p = msg.rfind(",p=");
  if (p == std::string_view::npos) return std::nullopt;
  const std::string_view without_proof = msg.substr(0, p);
  std::string_view rest = without_proof, cbind, nonce;
  if (!TakeAttr(&rest, 'c', &cbind) || !TakeAttr(&rest, 'r', &nonce)) return std::nullopt;
  // The gs2 header echoed back: "n,," or "y,," (no channel binding data).
  if (cbind != "biws" && cbind != "eSws") return std::nullopt;
  if (nonce != nonce_) return std::nullopt;
  ScramKey proof{};
  if (!UnB64Key(msg.substr(p + 3), &proof)) return std::nullopt;

  const ScramSecret& s = secret_ ? *secret_ : mock_;
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message.append(without_proof);
  // RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage);
  // the client knew the password iff H(ClientKey) == StoredKey.
  const ScramKey client_signature = Hmac(s.stored_key.data(), s.stored_key.size(), auth_message);
  ScramKey client_key{};
  for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] = proof[i] ^ client_signature[i];
  const ScramKey check = Sha256(client_key);
  *proof_ok = secret_.has_value() && CRYPTO_memcmp(check.data(), s.stored_key.data(), check.size()) == 0;
  const ScramKey server_signature = Hmac(s.server_key.data(), s.server_key.size(), auth_message);
  return "v=" + B64(server_signature);
}

// ------------------------------------------------------------------ client

ScramClient::ScramClient(std::string password, std::string client_nonce)
    : password_(std::move(password)), client_nonce_(std::move(client_nonce)) {
  if (client_nonce_.empty()) client_nonce_ = RandomNonce();
}

std::string ScramClient::ClientFirst() {
  // PostgreSQL ignores the SCRAM user name (the startup packet has it), and
  // libpq sends it empty; "n,," means the client does not do channel binding.
  client_first_bare_ = "n=,r=" + client_nonce_;
  return "n,," + client_first_bare_;
}

std::optional<std::string> ScramClient::HandleServerFirst(std::string_view server_first) {
  std::string_view rest = server_first, nonce, salt_b64, iter_text;
  if (!TakeAttr(&rest, 'r', &nonce) || !TakeAttr(&rest, 's', &salt_b64) || !TakeAttr(&rest, 'i', &iter_text))
    return std::nullopt;
  if (nonce.size() <= client_nonce_.size() || nonce.substr(0, client_nonce_.size()) != client_nonce_ ||
      !PrintableNonce(nonce))
    return std::nullopt;
  std::string salt;
  int iterations = 0;
  if (!absl::Base64Unescape(Av(salt_b64), &salt) || salt.empty()) return std::nullopt;
  if (!absl::SimpleAtoi(Av(iter_text), &iterations) || iterations <= 0 || iterations > 10'000'000)
    return std::nullopt;

  const ScramKey salted = SaltedPassword(password_, salt, iterations);
  const ScramKey client_key = Hmac(salted.data(), salted.size(), "Client Key");
  const ScramKey stored_key = Sha256(client_key);
  const ScramKey server_key = Hmac(salted.data(), salted.size(), "Server Key");
  std::string without_proof = "c=biws,r=" + std::string(nonce);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message.append(server_first);
  auth_message += ',';
  auth_message += without_proof;
  const ScramKey client_signature = Hmac(stored_key.data(), stored_key.size(), auth_message);
  ScramKey proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ client_signature[i];
  server_signature_ = Hmac(server_key.data(), server_key.size(), auth_message);
  return without_proof + ",p=" + B64(proof);
}

bool ScramClient::VerifyServerFinal(std::string_view server_final) const {
  std::string_view rest = server_final, v;
  if (!TakeAttr(&rest, 'v', &v)) return false;
  ScramKey sig{};
  if (!UnB64Key(v, &sig)) return false;
  return CRYPTO_memcmp(sig.data(), server_signature_.data(), sig.size()) == 0;
}

}  // namespace turnout::proxy::pg
