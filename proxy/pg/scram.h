#pragma once
// Password checks for authentication at turnout and at the backends:
// PostgreSQL's md5 scheme and SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash,
// as PostgreSQL speaks it: no channel binding, the user name in the SASL
// messages is ignored because the startup packet already named the role).
//
// Sans-I/O: each exchange takes the peer's message and returns the next one,
// so the session does the reads and writes and tests feed RFC vectors.
// Crypto is OpenSSL's (EVP, HMAC, PKCS5_PBKDF2_HMAC, RAND_bytes); base64 is
// Abseil's. Nothing here logs or returns a secret.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace turnout::proxy::pg {

inline constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";
inline constexpr int kScramDefaultIterations = 4096;  // PostgreSQL's scram_iterations default
using ScramKey = std::array<std::uint8_t, 32>;

// "md5" + hex(md5(password + user)): what pg_authid stores for md5 roles.
std::string Md5Secret(std::string_view password, std::string_view user);
// The PasswordMessage a client sends for AuthenticationMD5Password:
// "md5" + hex(md5(hex(md5(password + user)) + salt)), from the stored md5
// secret's hex part (the secret without its "md5" prefix).
std::string Md5Response(std::string_view md5_secret, std::span<const std::uint8_t, 4> salt);

// A parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" secret.
struct ScramSecret {
  int iterations = 0;
  std::string salt;  // raw bytes
  ScramKey stored_key{};
  ScramKey server_key{};

  static std::optional<ScramSecret> Parse(std::string_view text);
  // Derives the secret of a plain password (RFC 5802 §3).
  static ScramSecret FromPassword(std::string_view password, std::string_view salt, int iterations);
  // The secret turnout uses for a user whose stored password is plain: a
  // random salt chosen once per process, the default iteration count.
  static ScramSecret ForPlainPassword(std::string_view password);
  std::string ToString() const;
  // True when `password` produces this secret's StoredKey.
  bool Matches(std::string_view password) const;
};

// The secrets a user-list entry stands for, by what each method can use.
struct StoredSecret {
  enum class Kind { kPlain, kMd5, kScram } kind = Kind::kPlain;
  std::string text;  // the line's secret as written
  std::optional<ScramSecret> scram;

  static StoredSecret From(std::string_view secret);
  // Cleartext password check (auth method `password`).
  bool CheckCleartext(std::string_view password, std::string_view user) const;
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

// Client side, for logging in to a backend.
class ScramClient {
 public:
  explicit ScramClient(std::string password, std::string client_nonce = {});

  // The SASLInitialResponse data: "n,,n=,r=<nonce>".
  std::string ClientFirst();
  // server-first -> client-final; nullopt when the server's message is
  // malformed or its nonce does not extend ours.
  std::optional<std::string> HandleServerFirst(std::string_view server_first);
  // Checks the server's signature (mutual authentication, RFC 5802 §3).
  bool VerifyServerFinal(std::string_view server_final) const;

 private:
  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;
  ScramKey server_signature_{};
};

// Random bytes as printable base64 (nonces).
std::string RandomNonce(std::size_t raw_bytes = 18);
// Fills `out` from the OpenSSL CSPRNG.
void RandomBytes(std::uint8_t* out, std::size_t n);

}  // namespace turnout::proxy::pg
