#pragma once
// Client credentials for authentication terminated at turnout: a PgBouncer
// style file of `"user" "secret"` lines (quotes optional when a value has no
// space; `""` inside quotes is a literal quote; `#` starts a comment). A
// secret is a plain password, an md5 hash ("md5" + md5(password + user)) or a
// SCRAM secret ("SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"). How a
// password is checked against each form, for both protocols, is
// proxy/credential_check.h's business.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace turnout::proxy {

class UserList {
 public:
  static absl::StatusOr<UserList> Parse(const std::string& text, const std::string& source);
  static absl::StatusOr<UserList> Load(const std::string& path);

  // nullptr when the user is unknown.
  const std::string* Secret(const std::string& user) const;
  std::size_t size() const { return users_.size(); }

 private:
  std::map<std::string, std::string> users_;
};

// Route name -> its user list (only routes with auth other than trust).
using UserLists = std::map<std::string, std::shared_ptr<const UserList>>;

}  // namespace turnout::proxy
