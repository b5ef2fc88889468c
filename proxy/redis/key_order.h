#pragma once
// KeyOrder lives in proxy/secondary/ (shared by both protocols); the Redis
// session keeps using it by these names.
#include "proxy/secondary/key_order.h"

namespace turnout::proxy::redis {
using secondary::KeyOrder;
using secondary::KeyWaiter;
}  // namespace turnout::proxy::redis
