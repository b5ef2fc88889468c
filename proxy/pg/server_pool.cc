#include "proxy/pg/server_pool.h"

#include <algorithm>

#include "proxy/idle_pages.h"
#include "proxy/logging.h"

namespace turnout::proxy::pg {

using namespace asio::experimental::awaitable_operators;

namespace {
// A reset is one statement on an idle server: one that takes longer is not
// worth keeping.
constexpr auto kResetTimeout = std::chrono::seconds(5);
constexpr auto kSweepEvery = std::chrono::seconds(1);

void AppendField(std::string* key, std::string_view field) {
  // Length-prefixed: no two different logins make the same key.
  key->append(std::to_string(field.size())).append(1, ':').append(field).append(1, ';');
}
}  // namespace

ServerPool::ServerPool(asio::any_io_executor ex, std::atomic<std::int64_t>* parked)
    : ex_(std::move(ex)), parked_count_(parked), sweep_timer_(ex_) {}

ServerPool::~ServerPool() { CloseAll(); }

std::string ServerPool::Key(const routing::Backend& backend, const LoginParams& login) {
  std::string key;
  AppendField(&key, backend.name);
  AppendField(&key, backend.address.ToString());
  AppendField(&key, std::to_string(static_cast<int>(backend.tls_mode)));
  AppendField(&key, login.user);
  AppendField(&key, login.password);
  AppendField(&key, login.database);
  for (const auto& [name, value] : login.options) {
    AppendField(&key, name);
    AppendField(&key, value);
  }
  return key;
}

bool ServerPool::Stale(Parked& p, Clock::time_point now) {
  const routing::BackendPool& limits = p.conn->backend().pool;
  return now - p.since >= absl::ToChronoNanoseconds(limits.idle_timeout) ||
         now - p.conn->opened_at() >= absl::ToChronoNanoseconds(limits.lifetime) || !p.conn->Quiet();
}

std::unique_ptr<BackendConnection> ServerPool::Take(const std::string& key, const routing::Backend& backend,
                                                    routing::Side side) {
  auto it = parked_.find(key);
  if (it == parked_.end()) return nullptr;
  auto& list = it->second;
  const auto now = Clock::now();
  std::unique_ptr<BackendConnection> taken;
  while (!list.empty() && taken == nullptr) {
    Parked p = std::move(list.back());
    list.pop_back();
    parked_count_->fetch_sub(1, std::memory_order_relaxed);
    if (Stale(p, now)) continue;  // closed as `p` goes
    p.conn->Rebind(backend, side);
    taken = std::move(p.conn);
  }
  if (list.empty()) parked_.erase(it);
  return taken;
}

bool ServerPool::Full(const BackendConnection& conn) const {
  auto it = parked_.find(conn.pool_key());
  return it != parked_.end() && it->second.size() >= static_cast<std::size_t>(conn.backend().pool.idle);
}

void ServerPool::Give(std::unique_ptr<BackendConnection> conn, std::shared_ptr<const routing::Config> config) {
  if (closed_ || conn->backend().pool.idle <= 0 || conn->pool_key().empty() || !conn->Reusable() || Full(*conn)) {
    asio::co_spawn(ex_, [c = std::move(conn)]() -> awaitable<void> { co_await c->Terminate(); }, asio::detached);
    return;
  }
  asio::co_spawn(ex_, ResetAndPark(std::move(conn), std::move(config)), asio::detached);
}

awaitable<void> ServerPool::ResetAndPark(std::unique_ptr<BackendConnection> conn,
                                         std::shared_ptr<const routing::Config> config) {
  Timer timer(ex_, kResetTimeout);
  const std::string& query = conn->backend().pool.reset_query;
  auto r = co_await (conn->Reset(query) || timer.async_wait());
  if (r.index() != 0 || !std::get<0>(r)) {
    LogDebug("pg server connection not reusable after its reset; closed", {{"backend", conn->backend().name}});
    conn->Close();
    co_return;
  }
  if (closed_ || Full(*conn)) {
    co_await conn->Terminate();
    co_return;
  }
  ReleaseIdlePages(conn->in());  // parked: its buffer holds nothing
  const std::string key = conn->pool_key();
  parked_[key].push_back(Parked{std::move(conn), std::move(config), Clock::now()});
  parked_count_->fetch_add(1, std::memory_order_relaxed);
  if (!sweeping_) {
    sweeping_ = true;
    asio::co_spawn(ex_, Sweep(), asio::detached);
  }
}

awaitable<void> ServerPool::Sweep() {
  while (!parked_.empty() && !closed_) {
    sweep_timer_.expires_after(kSweepEvery);
    co_await sweep_timer_.async_wait();
    const auto now = Clock::now();
    for (auto it = parked_.begin(); it != parked_.end();) {
      auto& list = it->second;
      const auto dropped = std::erase_if(list, [&](Parked& p) { return Stale(p, now); });
      parked_count_->fetch_sub(static_cast<std::int64_t>(dropped), std::memory_order_relaxed);
      if (list.empty()) parked_.erase(it++);
      else ++it;
    }
  }
  sweeping_ = false;
}

void ServerPool::CloseAll() {
  closed_ = true;
  sweep_timer_.cancel();
  for (const auto& [key, list] : parked_)
    parked_count_->fetch_sub(static_cast<std::int64_t>(list.size()), std::memory_order_relaxed);
  parked_.clear();  // each connection closes its socket
}

}  // namespace turnout::proxy::pg
