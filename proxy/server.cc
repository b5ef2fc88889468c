#include "proxy/server.h"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>

#include "absl/strings/str_cat.h"
#include "proxy/asio.h"
#include "proxy/logging.h"
#include "proxy/pg/cancel_registry.h"
#include "proxy/pg/server_pool.h"
#include "proxy/refusal.h"
#include "proxy/session_context.h"
#include "proxy/session.h"

namespace turnout::proxy {

struct Server::Worker {
  explicit Worker(std::atomic<std::int64_t>* pg_parked) : pg_pool(context.get_executor(), pg_parked) {}

  asio::io_context context{1};  // one thread: the scheduler needs no locking
  asio::executor_work_guard<asio::io_context::executor_type> guard{context.get_executor()};
  SessionSet sessions;
  // Destroyed before the context its sockets belong to.
  pg::ServerPool pg_pool;
  std::thread thread;
};

struct Server::Listener {
  Listener(asio::io_context& ctx, routing::Route route) : acceptor(ctx), runtime(std::move(route)) {}
  Acceptor acceptor;
  RouteRuntime runtime;
  std::size_t next_worker = 0;
};

namespace {

// Hands out the refusal and closes; runs detached on the accepting thread.
awaitable<void> Refuse(Socket socket, std::string bytes) {
  co_await asio::async_write(socket, asio::buffer(bytes), kUseTuple);
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

Server::Server(std::shared_ptr<const routing::Config> config, routing::RouteTablePublisher* route_table,
               routing::Journal* journal, routing::ShadowSamples* shadow_samples,
               routing::StreamPositions* stream_positions, IntentRing* intents)
    : config_(std::move(config)),
      route_table_(route_table),
      journal_(journal),
      shadow_samples_(shadow_samples),
      stream_positions_(stream_positions),
      intents_(intents) {}

absl::StatusOr<UserLists> LoadUserLists(const routing::Config& config) {
  UserLists lists;
  for (const auto& r : config.routes) {
    if (r.users_file.empty()) continue;
    auto list = UserList::Load(r.users_file);
    if (!list.ok())
      return absl::Status(list.status().code(), absl::StrCat("route ", r.name, ": ", list.status().message()));
    lists[r.name] = std::make_shared<const UserList>(*std::move(list));
  }
  return lists;
}

Server::~Server() {
  if (!stopped_ && !workers_.empty()) Drain(absl::ZeroDuration());
}

absl::Status Server::Start() {
  const auto cfg = config_.load();
  auto services = std::make_shared<ProxyServices>();
  auto tls = TlsContexts::Build(*cfg);
  if (!tls.ok()) return tls.status();
  services->tls = *std::move(tls);
  services->route_table = route_table_;
  services->journal = journal_;
  services->shadow_samples = shadow_samples_;
  services->stream_positions = stream_positions_;
  services->intents = intents_;
  services->cancel_keys = std::make_shared<pg::CancelRegistry>();
  auto users = LoadUserLists(*cfg);
  if (!users.ok()) return users.status();
  services->users = *std::move(users);
  services_.store(std::move(services));

  int n = cfg->workers > 0 ? cfg->workers : static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(&pg_parked_));

  // Listeners are bound before any thread starts so a taken port fails startup.
  for (std::size_t i = 0; i < cfg->routes.size(); ++i) {
    const auto& route = cfg->routes[i];
    auto& home = *workers_[i % workers_.size()];
    auto l = std::make_unique<Listener>(home.context, route);
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(route.listen.host, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("route ", route.name, ": listen host ", route.listen.host, " is not an IP address"));
    const tcp::endpoint ep(addr, route.listen.port);
    l->acceptor.open(ep.protocol(), ec);
    if (!ec) l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) l->acceptor.bind(ep, ec);
    if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return absl::UnavailableError(absl::StrCat("route ", route.name, ": cannot listen on ",
                                                 route.listen.ToString(), ": ", ec.message()));
    listeners_.push_back(std::move(l));
  }

  for (auto& l : listeners_) {
    Listener* listener = l.get();
    auto accept_loop = [this, listener]() -> awaitable<void> {
      for (;;) {
        // Round-robin: the accepted socket belongs to the chosen worker's
        // io_context, and its session runs there for its whole life.
        Worker& target = *workers_[listener->next_worker++ % workers_.size()];
        auto [ec, raw] = co_await listener->acceptor.async_accept(target.context);
        if (ec == asio::error::operation_aborted || !listener->acceptor.is_open()) co_return;
        if (ec) {
          // Out of descriptors and similar: back off instead of spinning.
          LogWarn("accept failed", {{"route", listener->runtime.route.name}, {"error", ec.message()}});
          Timer pause(listener->acceptor.get_executor(), std::chrono::milliseconds(50));
          co_await pause.async_wait();
          continue;
        }
        Socket client(std::move(raw));
        boost::system::error_code ignored;
        client.set_option(tcp::no_delay(true), ignored);
        auto cfg_now = config_.load();
        auto& rt = listener->runtime;
        if (rt.active.fetch_add(1, std::memory_order_relaxed) >= cfg_now->limits.max_connections) {
          rt.active.fetch_sub(1, std::memory_order_relaxed);
          rt.refused.fetch_add(1, std::memory_order_relaxed);
          LogWarn("connection refused: limit reached",
                  {{"route", rt.route.name}, {"max_connections", cfg_now->limits.max_connections}});
          // Postgres' own text and SQLSTATE for this case; Redis' likewise.
          const char* text = rt.route.protocol == routing::Protocol::kRedis
                                 ? "max number of clients reached"
                                 : "sorry, too many clients already";
          asio::co_spawn(target.context, Refuse(std::move(client), RefusalBytes(rt.route.protocol, "53300", text)),
                         asio::detached);
          continue;
        }
        active_.fetch_add(1, std::memory_order_relaxed);
        rt.accepted.fetch_add(1, std::memory_order_relaxed);
        SessionContext ctx{rt,
                           std::move(cfg_now),
                           target.sessions,
                           active_,
                           services_.load(),
                           next_connection_id_.fetch_add(1, std::memory_order_relaxed),
                           &target.pg_pool};
        asio::co_spawn(target.context, RunSession(std::move(client), std::move(ctx)), asio::detached);
      }
    };
    asio::co_spawn(listener->acceptor.get_executor(), accept_loop, asio::detached);
    LogInfo("listening", {{"route", listener->runtime.route.name},
                          {"address", listener->runtime.route.listen.ToString()},
                          {"protocol", std::string(routing::ProtocolName(listener->runtime.route.protocol))}});
  }

  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->thread = std::thread([worker] {
      // Named for top -H and the benches' CPU split (bench/lib/cpu_split.sh).
      pthread_setname_np(pthread_self(), "turnout-io");
      for (;;) {
        try {
          worker->context.run();
          return;
        } catch (const std::exception& e) {
          // A bug escaped a session; log it and keep serving the others.
          LogError("worker caught exception", {{"error", e.what()}});
        }
      }
    });
  }
  listening_.store(true, std::memory_order_release);
  LogInfo("started", {{"workers", static_cast<int>(workers_.size())},
                      {"routes", static_cast<int>(listeners_.size())}});
  return absl::OkStatus();
}

std::vector<const RouteRuntime*> Server::Routes() const {
  std::vector<const RouteRuntime*> out;
  for (const auto& l : listeners_) out.push_back(&l->runtime);
  return out;
}

void Server::Reload(std::shared_ptr<const routing::Config> next) {
  const auto current = config_.load();
  for (const auto& r : next->routes) {
    const auto* old = current->FindRoute(r.name);
    if (old == nullptr || old->listen.ToString() != r.listen.ToString() || old->protocol != r.protocol ||
        old->mode != r.mode || old->old_backend != r.old_backend) {
      LogWarn("reload: route change needs a restart; keeping the running route",
              {{"route", r.name}});
    }
  }
  if (next->routes.size() != current->routes.size())
    LogWarn("reload: added or removed routes need a restart");
  if (next->workers != current->workers) LogWarn("reload: workers change needs a restart");
  // User lists are re-read; TLS contexts stay (certificate rotation needs a restart).
  auto users = LoadUserLists(*next);
  if (!users.ok()) {
    LogError("reload refused: users file", {{"error", std::string(users.status().message())}});
    return;
  }
  auto services = std::make_shared<ProxyServices>(*services_.load());
  services->users = *std::move(users);
  services_.store(std::move(services));
  SetLogLevel(next->log_level);
  config_.store(std::move(next));
  LogInfo("configuration reloaded");
}

void Server::Drain(absl::Duration deadline) {
  if (stopped_) return;
  stopped_ = true;
  listening_.store(false, std::memory_order_release);
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::microseconds(absl::ToInt64Microseconds(deadline));
  // 1. Stop accepting: new connections are refused by the kernel from here.
  for (auto& l : listeners_) {
    std::promise<void> closed;
    asio::post(l->acceptor.get_executor(), [&] {
      boost::system::error_code ignored;
      l->acceptor.close(ignored);
      closed.set_value();
    });
    closed.get_future().wait();
  }
  LogInfo("draining", {{"sessions", ActiveSessions()}, {"deadline_ms", absl::ToInt64Milliseconds(deadline)}});
  // Parked server connections close now; sessions that end from here on
  // close theirs.
  for (auto& w : workers_) asio::post(w->context, [wk = w.get()] { wk->pg_pool.CloseAll(); });
  // 2. Ask sessions to end at their next boundary, then wait for them.
  for (auto& w : workers_) asio::post(w->context, [wk = w.get()] { wk->sessions.RequestDrainAll(); });
  while (ActiveSessions() > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // 3. Past the deadline: close what is left.
  if (ActiveSessions() > 0) {
    LogWarn("drain deadline passed; closing sessions", {{"sessions", ActiveSessions()}});
    for (auto& w : workers_) asio::post(w->context, [wk = w.get()] { wk->sessions.CloseAll(); });
    const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (ActiveSessions() > 0 && std::chrono::steady_clock::now() < grace)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // 4. Stop the workers.
  for (auto& w : workers_) {
    w->guard.reset();
    w->context.stop();
  }
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  LogInfo("stopped");
}

}  // namespace turnout::proxy
