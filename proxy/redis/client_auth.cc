#include "proxy/redis/client_auth.h"

namespace turnout::proxy::redis {

bool CheckClientPassword(const UserList& users, std::string_view user, std::string_view password,
                         ScramKeyCache& keys) {
  const std::string* secret = users.Secret(std::string(user));
  return secret != nullptr && StoredSecret::From(*secret).CheckCleartext(password, user, &keys);
}

bool PasswordMatches(const std::string& secret, std::string_view user, std::string_view password) {
  return StoredSecret::From(secret).CheckCleartext(password, user);
}

}  // namespace turnout::proxy::redis
