#include "proxy/pg/pg_session.h"

#include "proxy/relay.h"

namespace turnout::proxy::pg {

// Until the protocol-aware session lands (issue 3), protocol-mode Postgres
// routes are served by the byte relay to the old backend.
awaitable<void> RunPgSession(Socket client, SessionContext ctx) {
  co_await RunRelaySession(std::move(client), std::move(ctx));
}

}  // namespace turnout::proxy::pg
