#pragma once
// The bytes turnout writes to a client it turns away before any protocol
// session exists (too many connections, backend unreachable, shutting down),
// in the client's own protocol so its driver shows a readable error.

#include <string>
#include <string_view>

#include "routing/config.h"

namespace turnout::proxy {

// Postgres: a FATAL ErrorResponse with `sqlstate`; Redis: "-ERR message\r\n".
std::string RefusalBytes(routing::Protocol protocol, std::string_view sqlstate,
                         std::string_view message);

}  // namespace turnout::proxy
