#pragma once
// The byte relay: the fallback transport of a route in `mode: relay`.
// Bytes go both ways between the client and the route's old backend through
// one fixed buffer per direction, so a slow reader slows its writer (TCP
// backpressure) and memory per session is bounded by 2 x buffer_size.

#include <memory>

#include "proxy/asio.h"
#include "proxy/session_context.h"

namespace turnout::proxy {

// Runs one relay session to completion; never throws.
awaitable<void> RunRelaySession(Socket client, SessionContext ctx);

}  // namespace turnout::proxy
