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
// Each decision is RedisTracker's (redis_tracker.h, sans-I/O); the session
// does the I/O. Where the code lives: redis_session_impl.h.
//
// Backpressure: the FIFO has a fixed capacity. A client that never reads its
// replies stalls the writer, the FIFO fills, and the request loop stops
// reading that client: memory per session stays bounded by the buffers.
//
// Decisions where DESIGN.md is silent:
//  * AUTH / HELLO AUTH are checked against the route's users file (plain,
//    md5 or SCRAM secrets); `auth: trust` behaves like a Redis whose default
//    user is nopass (AUTH <user> <pass> accepted, AUTH <pass> alone refused
//    with Redis' text). Upstream, turnout logs in as the backend's user.
//  * SELECT numbers are the backend's: `backends[].redis_db` is the database
//    a session starts in (and returns to on RESET).
//  * CLIENT SETNAME is kept as the client identity for routing and forwarded
//    so CLIENT LIST shows it; CLIENT GETNAME is answered here; CLIENT ID is
//    forwarded (the upstream id is what CLIENT KILL/UNBLOCK/TRACKING need).
//  * CLIENT REPLY OFF/SKIP are applied here (upstream always replies, so the
//    reply FIFO stays in step).
//  * AUTH, HELLO, CLIENT REPLY/TRACKING and (P|S)SUBSCRIBE inside MULTI are
//    refused (the transaction then aborts at EXEC, as for any rejected
//    command): their state cannot be queued upstream.
//  * SYNC, PSYNC, REPLCONF, REPLICAOF and SLAVEOF are refused: their
//    replies are not request/response traffic a proxy can frame. MONITOR
//    relays the authoritative side's feed until the client leaves.
//  * Unknown commands and subcommands are refused with Redis' own text,
//    unless the route says `unknown_commands: passthrough`.
//  * Inline commands are re-encoded as RESP arrays upstream; commands larger
//    than the receive buffer are streamed through (LargeRequestWalker).

#include "proxy/asio.h"
#include "proxy/session_context.h"

namespace turnout::proxy::redis {

// Runs one client session to completion; never throws.
awaitable<void> RunRedisSession(Socket client, SessionContext ctx);

}  // namespace turnout::proxy::redis
