#include "proxy/pg/pg_session.h"
#include "proxy/redis/redis_session.h"
#include "proxy/relay.h"
#include "proxy/session_context.h"

namespace turnout::proxy {

// Not a coroutine: it hands back the chosen session's own, so a session
// keeps no frame of this function while it lives (memory per connection).
awaitable<void> RunSession(Socket client, SessionContext ctx) {
  if (ctx.route.route.mode == routing::RouteMode::kRelay) return RunRelaySession(std::move(client), std::move(ctx));
  if (ctx.route.route.protocol == routing::Protocol::kPostgres)
    return pg::RunPgSession(std::move(client), std::move(ctx));
  return redis::RunRedisSession(std::move(client), std::move(ctx));
}

}  // namespace turnout::proxy
