#pragma once
// What every client session is handed when it starts: its route, the
// configuration snapshot taken at accept, its worker's session set, and the
// process-wide services (TLS contexts, the published route table, user lists).

#include <atomic>
#include <memory>

#include "proxy/asio.h"
#include "proxy/credential_check.h"
#include "proxy/secondary/backend_health.h"
#include "proxy/secondary/key_order.h"
#include "proxy/session.h"
#include "proxy/tls_contexts.h"
#include "proxy/user_list.h"
#include "routing/config.h"
#include "routing/journal.h"
#include "routing/shadow_samples.h"
#include "routing/stream_positions.h"
#include "routing/policy_table.h"

namespace turnout::proxy {

namespace pg {
class CancelRegistry;
class ServerPool;
}  // namespace pg
class IntentRing;

// Shared by all workers; built once at startup (user lists again on reload).
struct ProxyServices {
  std::shared_ptr<TlsContexts> tls;
  routing::RouteTablePublisher* route_table = nullptr;  // owned by main; never null
  UserLists users;                                       // per route, for auth at turnout
  routing::Journal* journal = nullptr;                   // owned by main; never null
  routing::ShadowSamples* shadow_samples = nullptr;      // owned by main; never null
  routing::StreamPositions* stream_positions = nullptr;  // owned by main; never null
  std::shared_ptr<pg::CancelRegistry> cancel_keys;       // Postgres cancel keys turnout hands out
  IntentRing* intents = nullptr;                         // owned by main; null: no intent record
  // Hi() results for client and upstream SCRAM; a reload copies the pointer,
  // so the cache outlives user lists (its keys cannot go stale, see there).
  std::shared_ptr<ScramKeyCache> scram_keys = std::make_shared<ScramKeyCache>();
  // Secondary work of both protocols (proxy/secondary/): which backends are
  // in their back-off window, and per-key order of dual-writes across
  // sessions (over the stripes the Redis backfill takes too). One each per
  // process; a reload copies the pointers.
  std::shared_ptr<secondary::BackendHealth> backend_health = std::make_shared<secondary::BackendHealth>();
  std::shared_ptr<secondary::KeyOrder> key_order =
      std::make_shared<secondary::KeyOrder>(routing::KeyStripes::Global());
};

struct SessionContext {
  RouteRuntime& route;
  std::shared_ptr<const routing::Config> config;  // snapshot taken at accept
  SessionSet& sessions;
  std::atomic<int>& process_active;
  std::shared_ptr<const ProxyServices> services;
  std::uint64_t connection_id = 0;  // unique in this process
  pg::ServerPool* pg_pool = nullptr;  // the worker's parked Postgres server connections
};

// Picks the session for the route: relay, or the protocol-aware session.
awaitable<void> RunSession(Socket client, SessionContext ctx);

}  // namespace turnout::proxy
