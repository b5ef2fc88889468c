#pragma once
// Checking a Redis client's AUTH / HELLO AUTH against turnout's user list for
// the route. Redis clients always send the password itself, so any secret
// form (plain, md5, SCRAM-SHA-256; proxy/user_list.h) can be checked; the
// check is proxy/credential_check.h's, the one the Postgres session uses.

#include <string>
#include <string_view>

#include "proxy/credential_check.h"
#include "proxy/user_list.h"

namespace turnout::proxy::redis {

// True when `users` has `user` and `password` matches its secret. Constant
// time in the compared bytes; a SCRAM secret's Hi() comes from `keys`.
bool CheckClientPassword(const UserList& users, std::string_view user, std::string_view password,
                         ScramKeyCache& keys);

// The same check for one secret, without a cache.
bool PasswordMatches(const std::string& secret, std::string_view user, std::string_view password);

}  // namespace turnout::proxy::redis
