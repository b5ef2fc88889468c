#pragma once
// Checking a client's password against a user-list secret (proxy/user_list.h),
// for both protocols: a plain password, PostgreSQL's md5 form or a
// SCRAM-SHA-256 stored verifier (RFC 5802 with RFC 7677's hash, as
// PostgreSQL stores and speaks it), and the server side of a SCRAM exchange.
//
// Hi() (PBKDF2, 4096 iterations by default) costs milliseconds on the
// worker thread of the session that logs in, and its inputs repeat: a user's
// salt is fixed, and so is a backend's salt for our role. ScramKeyCache keeps
// its results. There is one per process, owned by ProxyServices
// (proxy/session_context.h) and handed to whoever derives keys: the Postgres
// and Redis client checks here and the upstream login (proxy/pg/scram.h).
//
// Sans-I/O: the exchange takes the peer's message and returns the next one.
// Crypto is OpenSSL's; base64 is Abseil's. Nothing here logs or returns a
// secret.

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

namespace turnout::proxy {

inline constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";
inline constexpr int kScramDefaultIterations = 4096;  // PostgreSQL's scram_iterations default
using ScramKey = std::array<std::uint8_t, 32>;

// Fills `out` from the OpenSSL CSPRNG.
void RandomBytes(std::uint8_t* out, std::size_t n);
// Random bytes as printable base64 (nonces).
std::string RandomNonce(std::size_t raw_bytes = 18);

// "md5" + hex(md5(password + user)): what pg_authid stores for md5 roles.
std::string Md5Secret(std::string_view password, std::string_view user);
// The PasswordMessage a client sends for AuthenticationMD5Password:
// "md5" + hex(md5(hex(md5(password + user)) + salt)), from the stored md5
// secret (with or without its "md5" prefix).
std::string Md5Response(std::string_view md5_secret, std::span<const std::uint8_t, 4> salt);

// The keys of RFC 5802 §3 that follow from SaltedPassword := Hi(password,
// salt, i). StoredKey is H(ClientKey); all three are kept so neither side
// recomputes anything from the password.
struct ScramKeys {
  ScramKey client_key{};
  ScramKey stored_key{};
  ScramKey server_key{};
};
// Computes them; no cache.
ScramKeys DeriveScramKeys(std::string_view password, std::string_view salt, int iterations);

// A parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" secret.
struct ScramSecret {
  int iterations = 0;
  std::string salt;  // raw bytes
  ScramKey stored_key{};
  ScramKey server_key{};

  static std::optional<ScramSecret> Parse(std::string_view text);
  // Derives the secret of a plain password (RFC 5802 §3); no cache.
  static ScramSecret FromPassword(std::string_view password, std::string_view salt, int iterations);
  std::string ToString() const;
  // True when `password` produces this secret's StoredKey; no cache.
  bool Matches(std::string_view password) const;
};

class ScramKeyCache;

// A user-list secret, classified as PostgreSQL's get_password_type does: a
// SCRAM secret that parses, "md5" + 32 lowercase hex digits, else a plain
// password.
struct StoredSecret {
  enum class Kind { kPlain, kMd5, kScram } kind = Kind::kPlain;
  std::string text;  // the line's secret as written
  std::optional<ScramSecret> scram;

  static StoredSecret From(std::string_view secret);
  // A cleartext password (Postgres auth `password`, Redis AUTH / HELLO
  // AUTH). Constant time in the compared bytes. With `keys`, a SCRAM
  // secret's Hi() comes from and goes to that cache.
  bool CheckCleartext(std::string_view password, std::string_view user, ScramKeyCache* keys = nullptr) const;
  // The answer to an AuthenticationMD5Password with `salt`; a plain secret
  // is hashed first, a SCRAM secret cannot answer (nothing to hash).
  bool CheckMd5Response(std::string_view response, std::string_view user,
                        std::span<const std::uint8_t, 4> salt) const;
  // The verifier a SCRAM exchange checks the client's proof against: the
  // stored one, or one derived from a plain password (ScramKeyCache::
  // VerifierFor); nullopt for an md5 secret, which SCRAM cannot use.
  std::optional<ScramSecret> ScramVerifier(ScramKeyCache& keys) const;
};

// Results of Hi() by (password, salt, iterations), bounded, least recently
// used out first; safe to share between worker threads (Hi() itself runs
// outside the lock).
//
// Entries are keyed by SHA-256 of all of Hi()'s inputs, so no cleartext
// password sits in the map, and a secret that changes (a reload with a new
// salt, iteration count or password) can only miss: what is cached is a
// function of the password, never a verdict, and each check compares with
// the secret it is given.
class ScramKeyCache {
 public:
  static constexpr std::size_t kDefaultCapacity = 1024;

  explicit ScramKeyCache(std::size_t capacity = kDefaultCapacity);
  ScramKeyCache(const ScramKeyCache&) = delete;
  ScramKeyCache& operator=(const ScramKeyCache&) = delete;

  // The keys for inputs the caller trusts (a backend password from the
  // configuration, a plain secret from the user list): from the cache, or
  // computed and kept.
  ScramKeys Derive(std::string_view password, std::string_view salt, int iterations);
  // True when `password` produces `secret`'s StoredKey. Only a match is
  // kept, so a client guessing passwords cannot push out the entries of
  // the right ones.
  bool Verify(const ScramSecret& secret, std::string_view password);
  // The verifier for a user whose stored password is plain: a salt fixed for
  // this cache's life (HMAC of the password under a random key, so nothing
  // has to remember it) and the default iteration count, as a stored secret
  // would have.
  ScramSecret VerifierFor(std::string_view plain_password);

  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::size_t size = 0;
  };
  Stats stats() const;
  std::size_t capacity() const { return capacity_; }

 private:
  using Digest = std::array<std::uint8_t, 32>;
  struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept;
  };
  struct Entry {
    Digest key;
    ScramKeys keys;
  };

  static Digest KeyOf(std::string_view password, std::string_view salt, int iterations);
  std::optional<ScramKeys> Find(const Digest& key);
  void Insert(const Digest& key, const ScramKeys& keys);

  const std::size_t capacity_;
  std::array<std::uint8_t, 32> salt_key_{};  // for VerifierFor
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<Digest, std::list<Entry>::iterator, DigestHash> index_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

// Server side of one SCRAM-SHA-256 exchange.
class ScramServer {
 public:
  // `secret` nullopt runs a mock exchange that always fails at the end, so an
  // unknown user looks like a wrong password (as the server does).
  explicit ScramServer(std::optional<ScramSecret> secret, std::string server_nonce = {});

  // client-first-message -> server-first-message; nullopt on a malformed
  // message or a channel-binding request (we advertise no -PLUS mechanism).
  std::optional<std::string> HandleClientFirst(std::string_view client_first);
  // client-final-message -> server-final-message ("v=..."); nullopt when the
  // message is malformed; `*proof_ok` tells whether the password was right.
  std::optional<std::string> HandleClientFinal(std::string_view client_final, bool* proof_ok);

 private:
  std::optional<ScramSecret> secret_;
  ScramSecret mock_;
  std::string server_nonce_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client + server
};

// The pieces of RFC 5802 the client side (proxy/pg/scram.cc) shares.
ScramKey ScramHmac(const ScramKey& key, std::string_view data);  // HMAC-SHA-256
std::string EncodeScramKey(const ScramKey& key);                 // base64
bool DecodeScramKey(std::string_view base64, ScramKey* out);
// "k=value" attribute at the front of `*msg`; advances past the following ','.
bool TakeScramAttribute(std::string_view* msg, char key, std::string_view* value);
// A nonce is printable ASCII without ',' (RFC 5802 §7).
bool IsScramNonce(std::string_view nonce);

}  // namespace turnout::proxy
