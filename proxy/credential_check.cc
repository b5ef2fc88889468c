#include "proxy/credential_check.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace turnout::proxy {
namespace {

absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

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

std::string B64(const std::uint8_t* p, std::size_t n) {
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(p), n));
}

std::string_view AsText(const ScramKey& k) { return {reinterpret_cast<const char*>(k.data()), k.size()}; }

}  // namespace

void RandomBytes(std::uint8_t* out, std::size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) throw std::runtime_error("RAND_bytes failed");
}

std::string RandomNonce(std::size_t raw_bytes) {
  std::vector<std::uint8_t> raw(raw_bytes);
  RandomBytes(raw.data(), raw.size());
  return B64(raw.data(), raw.size());
}

// ------------------------------------------------------------------ md5

std::string Md5Secret(std::string_view password, std::string_view user) {
  return "md5" + Md5Hex(password, user);
}

std::string Md5Response(std::string_view md5_secret, std::span<const std::uint8_t, 4> salt) {
  std::string_view hex = md5_secret;
  if (hex.substr(0, 3) == "md5") hex.remove_prefix(3);
  return "md5" + Md5Hex(hex, std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()));
}

// ------------------------------------------------------------------ SCRAM keys

ScramKey ScramHmac(const ScramKey& key, std::string_view data) { return Hmac(key.data(), key.size(), data); }

std::string EncodeScramKey(const ScramKey& key) { return B64(key.data(), key.size()); }

bool DecodeScramKey(std::string_view text, ScramKey* out) {
  std::string raw;
  if (!absl::Base64Unescape(Av(text), &raw) || raw.size() != out->size()) return false;
  std::copy(raw.begin(), raw.end(), out->begin());
  return true;
}

bool TakeScramAttribute(std::string_view* s, char key, std::string_view* value) {
  if (s->size() < 2 || (*s)[0] != key || (*s)[1] != '=') return false;
  const std::size_t comma = s->find(',');
  *value = s->substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
  s->remove_prefix(comma == std::string_view::npos ? s->size() : comma + 1);
  return true;
}

bool IsScramNonce(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

ScramKeys DeriveScramKeys(std::string_view password, std::string_view salt, int iterations) {
  ScramKey salted{};
  // RFC 5802 §2.2 Hi() is PBKDF2 with HMAC as the PRF. PostgreSQL applies
  // SASLprep first; for ASCII passwords that is the identity, and the server
  // itself falls back to the raw bytes when SASLprep fails, as we always do.
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                    iterations, EVP_sha256(), static_cast<int>(salted.size()), salted.data());
  ScramKeys k;
  k.client_key = ScramHmac(salted, "Client Key");
  k.stored_key = Sha256(k.client_key);
  k.server_key = ScramHmac(salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  return k;
}

// ------------------------------------------------------------------ secrets

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
  if (!DecodeScramKey(keys.substr(0, c2), &s.stored_key) || !DecodeScramKey(keys.substr(c2 + 1), &s.server_key))
    return std::nullopt;
  return s;
}

ScramSecret ScramSecret::FromPassword(std::string_view password, std::string_view salt, int iterations) {
  const ScramKeys k = DeriveScramKeys(password, salt, iterations);
  ScramSecret s;
  s.iterations = iterations;
  s.salt = std::string(salt);
  s.stored_key = k.stored_key;
  s.server_key = k.server_key;
  return s;
}

std::string ScramSecret::ToString() const {
  return "SCRAM-SHA-256$" + std::to_string(iterations) + ":" +
         B64(reinterpret_cast<const std::uint8_t*>(salt.data()), salt.size()) + "$" + EncodeScramKey(stored_key) +
         ":" + EncodeScramKey(server_key);
}

bool ScramSecret::Matches(std::string_view password) const {
  return ConstantTimeEqual(AsText(DeriveScramKeys(password, salt, iterations).stored_key), AsText(stored_key));
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

bool StoredSecret::CheckCleartext(std::string_view password, std::string_view user, ScramKeyCache* keys) const {
  switch (kind) {
    case Kind::kPlain:
      return ConstantTimeEqual(text, password);
    case Kind::kMd5:
      return ConstantTimeEqual(Md5Secret(password, user), text);
    case Kind::kScram:
      return keys != nullptr ? keys->Verify(*scram, password) : scram->Matches(password);
  }
  return false;
}

bool StoredSecret::CheckMd5Response(std::string_view response, std::string_view user,
                                    std::span<const std::uint8_t, 4> salt) const {
  if (kind == Kind::kScram) return false;
  const std::string md5 = kind == Kind::kMd5 ? text : Md5Secret(text, user);
  return ConstantTimeEqual(Md5Response(md5, salt), response);
}

std::optional<ScramSecret> StoredSecret::ScramVerifier(ScramKeyCache& keys) const {
  switch (kind) {
    case Kind::kScram:
      return scram;
    case Kind::kPlain:
      return keys.VerifierFor(text);
    case Kind::kMd5:
      return std::nullopt;
  }
  return std::nullopt;
}

// ------------------------------------------------------------------ cache

ScramKeyCache::ScramKeyCache(std::size_t capacity) : capacity_(capacity > 0 ? capacity : 1) {
  RandomBytes(salt_key_.data(), salt_key_.size());
}

std::size_t ScramKeyCache::DigestHash::operator()(const Digest& d) const noexcept {
  std::size_t h;
  std::memcpy(&h, d.data(), sizeof h);  // already uniform: a SHA-256 output
  return h;
}

ScramKeyCache::Digest ScramKeyCache::KeyOf(std::string_view password, std::string_view salt, int iterations) {
  // Lengths first, so no two input triples share an encoding.
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  const std::uint64_t header[3] = {static_cast<std::uint64_t>(iterations), salt.size(), password.size()};
  EVP_DigestUpdate(ctx, header, sizeof header);
  EVP_DigestUpdate(ctx, salt.data(), salt.size());
  EVP_DigestUpdate(ctx, password.data(), password.size());
  Digest out{};
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, out.data(), &len);
  EVP_MD_CTX_free(ctx);
  return out;
}

std::optional<ScramKeys> ScramKeyCache::Find(const Digest& key) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->keys;
}

void ScramKeyCache::Insert(const Digest& key, const ScramKeys& keys) {
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {  // another thread derived it meanwhile
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, keys});
  index_.emplace(key, lru_.begin());
}

ScramKeys ScramKeyCache::Derive(std::string_view password, std::string_view salt, int iterations) {
  const Digest key = KeyOf(password, salt, iterations);
  if (auto hit = Find(key)) return *hit;
  const ScramKeys keys = DeriveScramKeys(password, salt, iterations);
  Insert(key, keys);
  return keys;
}

bool ScramKeyCache::Verify(const ScramSecret& secret, std::string_view password) {
  const Digest key = KeyOf(password, secret.salt, secret.iterations);
  const std::optional<ScramKeys> hit = Find(key);
  const ScramKeys keys = hit ? *hit : DeriveScramKeys(password, secret.salt, secret.iterations);
  // Compared with this secret's StoredKey every time: the cache holds keys,
  // not verdicts.
  const bool match = ConstantTimeEqual(AsText(keys.stored_key), AsText(secret.stored_key));
  if (match && !hit) Insert(key, keys);
  return match;
}

ScramSecret ScramKeyCache::VerifierFor(std::string_view plain_password) {
  const ScramKey mac = Hmac(salt_key_.data(), salt_key_.size(), plain_password);
  const std::string salt(reinterpret_cast<const char*>(mac.data()), 16);
  const ScramKeys k = Derive(plain_password, salt, kScramDefaultIterations);
  ScramSecret s;
  s.iterations = kScramDefaultIterations;
  s.salt = salt;
  s.stored_key = k.stored_key;
  s.server_key = k.server_key;
  return s;
}

ScramKeyCache::Stats ScramKeyCache::stats() const {
  std::lock_guard lock(mu_);
  return Stats{hits_, misses_, lru_.size()};
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
  if (!TakeScramAttribute(&rest, 'n', &user)) return std::nullopt;  // ignored: the startup packet names the role
  if (!TakeScramAttribute(&rest, 'r', &cnonce) || !IsScramNonce(cnonce)) return std::nullopt;
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
  if (!TakeScramAttribute(&rest, 'c', &cbind) || !TakeScramAttribute(&rest, 'r', &nonce)) return std::nullopt;
  // The gs2 header echoed back: "n,," or "y,," (no channel binding data).
  if (cbind != "biws" && cbind != "eSws") return std::nullopt;
  if (nonce != nonce_) return std::nullopt;
  ScramKey proof{};
  if (!DecodeScramKey(msg.substr(p + 3), &proof)) return std::nullopt;

  const ScramSecret& s = secret_ ? *secret_ : mock_;
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message.append(without_proof);
  // RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage);
  // the client knew the password iff H(ClientKey) == StoredKey.
  const ScramKey client_signature = ScramHmac(s.stored_key, auth_message);
  ScramKey client_key{};
  for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] = proof[i] ^ client_signature[i];
  const ScramKey check = Sha256(client_key);
  *proof_ok = secret_.has_value() && ConstantTimeEqual(AsText(check), AsText(s.stored_key));
  return "v=" + EncodeScramKey(ScramHmac(s.server_key, auth_message));
}

}  // namespace turnout::proxy
