#pragma once
// Server connections kept for the next client (routing::BackendPool), as
// PgBouncer's session pooling: a session that ends between transactions
// gives its primary connection back; it is reset (`reset_query`, DISCARD
// ALL: settings, prepared statements, temporary tables, LISTEN, advisory
// locks) and parked; a later session with the same login takes it instead
// of connecting and authenticating again. The server then forks no backend
// and checks no password per client connection.
//
// One pool per worker thread, used from that thread only (no lock): a
// connection's socket belongs to its worker's io_context. Parked
// connections are taken last in, first out (the warmest), after a look at
// the socket: one the server closed or spoke on meanwhile (terminated,
// shut down, a reload's ParameterStatus) is dropped, not handed out.
// A sweep once a second closes those past idle_timeout or lifetime.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proxy/asio.h"
#include "proxy/pg/backend_connection.h"
#include "routing/config.h"

namespace turnout::proxy::pg {

class ServerPool {
 public:
  // `parked` (outliving the pool): how many are parked, across the workers.
  ServerPool(asio::any_io_executor ex, std::atomic<std::int64_t>* parked);
  ~ServerPool();
  ServerPool(const ServerPool&) = delete;
  ServerPool& operator=(const ServerPool&) = delete;

  // What two sessions must share to share a connection: the backend (name,
  // address, TLS), and the login the server saw (user, password, database,
  // every startup parameter in order).
  static std::string Key(const routing::Backend& backend, const LoginParams& login);

  // A parked connection of `key`, serving `backend` as `side` from now on;
  // null when none is parked (or none still usable).
  std::unique_ptr<BackendConnection> Take(const std::string& key, const routing::Backend& backend,
                                          routing::Side side);
  // Resets `conn` in a coroutine of its own and parks it under its
  // pool_key(); closes it instead when its backend has no pool, it is not
  // Reusable(), the pool is full for its key or closed, or the reset fails.
  // `config` keeps the Backend `conn` points to alive while it is parked.
  void Give(std::unique_ptr<BackendConnection> conn, std::shared_ptr<const routing::Config> config);
  // Closes every parked connection; those given later are closed (drain).
  void CloseAll();

 private:
  using Clock = std::chrono::steady_clock;
  struct Parked {
    std::unique_ptr<BackendConnection> conn;
    std::shared_ptr<const routing::Config> config;
    Clock::time_point since;
  };
  bool Full(const BackendConnection& conn) const;
  // Past idle_timeout or lifetime, or the server closed it or spoke on it.
  static bool Stale(Parked& p, Clock::time_point now);
  awaitable<void> ResetAndPark(std::unique_ptr<BackendConnection> conn, std::shared_ptr<const routing::Config> config);
  awaitable<void> Sweep();

  asio::any_io_executor ex_;
  std::atomic<std::int64_t>* parked_count_;
  absl::flat_hash_map<std::string, std::vector<Parked>> parked_;
  Timer sweep_timer_;
  bool sweeping_ = false;
  bool closed_ = false;
};

}  // namespace turnout::proxy::pg
