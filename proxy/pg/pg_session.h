#pragma once
// The protocol-aware PostgreSQL session (DESIGN.md §3).

#include "proxy/asio.h"
#include "proxy/session_context.h"

namespace turnout::proxy::pg {

// Runs one client session to completion; never throws.
awaitable<void> RunPgSession(Socket client, SessionContext ctx);

}  // namespace turnout::proxy::pg
