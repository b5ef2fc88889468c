#include "proxy/redis/redis_session.h"

#include "proxy/relay.h"

namespace turnout::proxy::redis {

// Until the protocol-aware session lands (issue 4), protocol-mode Redis
// routes are served by the byte relay to the old backend.
awaitable<void> RunRedisSession(Socket client, SessionContext ctx) {
  co_await RunRelaySession(std::move(client), std::move(ctx));
}

}  // namespace turnout::proxy::redis
