#pragma once
// The data plane of one turnout process: worker threads (one io_context
// each; a client session stays on the thread that accepted it), one listener
// per route, and the lifecycle: Start, Reload, Drain.

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proxy/session_context.h"
#include "proxy/shared_slot.h"
#include "routing/config.h"
#include "routing/policy_table.h"

namespace turnout::proxy {

class Server {
 public:
  // `route_table` (owned by the caller, outliving the server) is where the
  // control plane publishes routing policies; sessions read it.
  // `journal` (owned by the caller) receives failed secondary writes.
  Server(std::shared_ptr<const routing::Config> config, routing::RouteTablePublisher* route_table,
         routing::Journal* journal, routing::ShadowSamples* shadow_samples,
         routing::StreamPositions* stream_positions, IntentRing* intents = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every route's listener (failing if any address is taken) and
  // starts the workers.
  absl::Status Start();

  // Applies what can change without a restart: limits, timeouts, log level,
  // backend addresses and credentials (for sessions opened from now on).
  // Listener and route changes are reported and left for a restart.
  void Reload(std::shared_ptr<const routing::Config> next);

  // Stops accepting, lets open sessions finish until `deadline`, closes the
  // rest, stops the workers. Blocks; safe to call once.
  void Drain(absl::Duration deadline);

  int ActiveSessions() const { return active_.load(std::memory_order_relaxed); }
  // Every route's counters, for the metrics collector; valid while the server lives.
  std::vector<const RouteRuntime*> Routes() const;
  // Postgres server connections parked in the workers' pools (pg/server_pool.h).
  const std::atomic<std::int64_t>* PgParked() const { return &pg_parked_; }
  // True once Start() bound every listener, false again after Drain().
  bool Listening() const { return listening_.load(std::memory_order_acquire); }
  std::shared_ptr<const routing::Config> config() const { return config_.load(); }

 private:
  struct Worker;
  struct Listener;

  SharedSlot<routing::Config> config_;
  routing::RouteTablePublisher* route_table_;
  routing::Journal* journal_;
  routing::ShadowSamples* shadow_samples_;
  routing::StreamPositions* stream_positions_;
  IntentRing* intents_;  // dual-writes in flight (intent_ring.h), owned by main
  SharedSlot<ProxyServices> services_;
  std::atomic<std::uint64_t> next_connection_id_{1};
  // Before the workers: their pools count into it until they are gone.
  std::atomic<std::int64_t> pg_parked_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::atomic<int> active_{0};
  bool stopped_ = false;
  std::atomic<bool> listening_{false};
};

}  // namespace turnout::proxy
