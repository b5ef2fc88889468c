#pragma once
// Who may call the admin API (DESIGN.md §5): `Authorization: Bearer <token>`
// where the token is an HS256 JWT (signature, exp, nbf, and a `role` claim of
// "admin" or "read") or a static token from admin.tokens_file. Comparisons
// of secrets are constant-time; no secret is ever logged or echoed.

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace turnout::control {

enum class Role { kRead, kAdmin };
const char* RoleName(Role r);

struct Principal {
  std::string subject;  // JWT `sub`, the static token's name, or "anonymous"
  Role role = Role::kRead;
};

class Authenticator {
 public:
  // `tokens_text` holds static tokens, one "<token> <role> [name]" per line.
  static absl::StatusOr<Authenticator> Create(std::string jwt_secret, const std::string& tokens_text);
  static absl::StatusOr<Authenticator> FromFiles(std::string jwt_secret, const std::string& tokens_file);

  // UNAUTHENTICATED (HTTP 401) with a reason on any failure.
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization_header, absl::Time now) const;

  bool configured() const { return !jwt_secret_.empty() || !static_tokens_.empty(); }

 private:
  struct StaticToken {
    std::string digest;  // SHA-256 of the token: compared in constant time
    Role role;
    std::string name;
  };
  absl::StatusOr<Principal> VerifyJwt(absl::string_view token, absl::Time now) const;

  std::string jwt_secret_;
  std::vector<StaticToken> static_tokens_;
};

// Signs an HS256 JWT (for the CLI, tests and the demo).
std::string SignJwt(const std::string& secret, const std::string& payload_json);

}  // namespace turnout::control
