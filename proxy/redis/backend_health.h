#pragma once
// BackendHealth lives in proxy/secondary/ (shared by both protocols); the
// Redis session keeps using it by this name.
#include "proxy/secondary/backend_health.h"

namespace turnout::proxy::redis {
using secondary::BackendHealth;
}  // namespace turnout::proxy::redis
