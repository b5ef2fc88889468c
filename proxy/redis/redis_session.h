#pragma once
// The protocol-aware Redis session (DESIGN.md §4).
//
// One client connection, RESP2 or RESP3, plain or TLS (from the first byte),
// and at most one upstream connection per backend (BackendConnection),
// opened lazily. Two coroutines share the session:
//
//   request loop   client bytes -> RequestParser -> per command: answer here
//                  (AUTH, HELLO, QUIT, CLIENT GETNAME/REPLY, refusals) or pick
//                  a backend and forward the frame from the receive buffer
//                  (gathered, one write per batch); push an entry per command
//                  on the in-flight FIFO.
//   reply writer   FIFO head -> the next frame of that backend's replies
//                  (ReplyParser), forwarded from the backend's receive buffer
//                  in order, or the head's local reply; pub/sub messages and
//                  RESP3 pushes pass through out of band.
//
// Backpressure: the FIFO has a fixed capacity. A client that never reads its
// replies stalls the writer, the FIFO fills, and the request loop stops
// reading that client: memory per session stays bounded by the buffers.

#include "proxy/asio.h"
#include "proxy/session_context.h"

namespace turnout::proxy::redis {

// Runs one client session to completion; never throws.
awaitable<void> RunRedisSession(Socket client, SessionContext ctx);

}  // namespace turnout::proxy::redis
