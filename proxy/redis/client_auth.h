#pragma once
// Checking a Redis client's AUTH / HELLO AUTH against turnout's user list for
// the route. A secret (proxy/user_list.h) may be a plain password, an md5
// hash ("md5" + md5(password + user)) or a SCRAM-SHA-256 secret: Redis
// clients always send the password itself, so each form can be checked.

#include <string>
#include <string_view>

namespace turnout::proxy::redis {

// True when `password` matches `secret` for `user`. Constant time in the
// compared bytes.
bool PasswordMatches(const std::string& secret, std::string_view user, std::string_view password);

}  // namespace turnout::proxy::redis
