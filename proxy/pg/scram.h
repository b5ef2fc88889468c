#pragma once
// The client side of SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash, as
// PostgreSQL speaks it: no channel binding, an empty SASL user name because
// the startup packet already named the role), for turnout logging in to a
// backend. Checking clients' passwords, the server side of the exchange and
// the cache of Hi() results both sides use live in proxy/credential_check.h;
// the names below keep the Postgres code's spelling of them.
//
// Sans-I/O: each step takes the server's message and returns the next one.
// Nothing here logs or returns a secret.

#include <optional>
#include <string>
#include <string_view>

#include "proxy/credential_check.h"

namespace turnout::proxy::pg {

using proxy::kScramDefaultIterations;
using proxy::kScramMechanism;
using proxy::Md5Response;
using proxy::Md5Secret;
using proxy::RandomBytes;
using proxy::RandomNonce;
using proxy::ScramKey;
using proxy::ScramKeyCache;
using proxy::ScramSecret;
using proxy::ScramServer;
using proxy::StoredSecret;

// Client side, for logging in to a backend.
class ScramClient {
 public:
  // With `keys`, Hi() of our password under the backend's salt is computed
  // once per process instead of at every login.
  explicit ScramClient(std::string password, std::string client_nonce = {}, ScramKeyCache* keys = nullptr);

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
  ScramKeyCache* keys_;
  std::string client_first_bare_;
  ScramKey server_signature_{};
};

}  // namespace turnout::proxy::pg
