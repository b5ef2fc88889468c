#pragma once
// The protocol-aware Redis session (DESIGN.md §4).

#include "proxy/asio.h"
#include "proxy/session_context.h"

namespace turnout::proxy::redis {

// Runs one client session to completion; never throws.
awaitable<void> RunRedisSession(Socket client, SessionContext ctx);

}  // namespace turnout::proxy::redis
