#include "proxy/pg/pg_session.h"
#include "proxy/redis/redis_session.h"
#include "proxy/relay.h"
#include "proxy/session_context.h"

namespace turnout::proxy {

awaitable<void> RunSession(Socket client, SessionContext ctx) {
  if (ctx.route.route.mode == routing::RouteMode::kRelay) {
    co_await RunRelaySession(std::move(client), std::move(ctx));
  } else if (ctx.route.route.protocol == routing::Protocol::kPostgres) {
    co_await pg::RunPgSession(std::move(client), std::move(ctx));
  } else {
    co_await redis::RunRedisSession(std::move(client), std::move(ctx));
  }
}

}  // namespace turnout::proxy
