#include "proxy/relay.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "proxy/disconnect.h"
#include "proxy/logging.h"
#include "proxy/refusal.h"
#include "proxy/upstream_connect.h"

namespace turnout::proxy {
namespace {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

class RelaySession final : public Session {
 public:
  RelaySession(Socket client, SessionContext ctx)
      : client_(std::move(client)),
        upstream_(client_.get_executor()),
        ctx_(std::move(ctx)),
        registration_(ctx_.sessions, this, ctx_.route, ctx_.process_active),
        buffer_size_(ctx_.config->limits.buffer_bytes) {}

  void Close() override {
    boost::system::error_code ignored;
    client_.close(ignored);
    upstream_.close(ignored);
  }

  awaitable<void> Run() {
    const auto& limits = ctx_.config->limits;
    const routing::Backend* backend = ctx_.config->FindBackend(ctx_.route.route.old_backend);
    auto [ec, upstream] = co_await ConnectUpstream(backend->address, limits.connect_timeout);
    if (ec) {
      LogWarn("backend unreachable", {{"route", ctx_.route.route.name},
                                      {"backend", backend->name},
                                      {"error", ec.message()}});
      const std::string refusal = RefusalBytes(
          ctx_.route.route.protocol, "08006",
          absl::StrCat("turnout: backend ", backend->name, " unreachable: ", ec.message()));
      co_await asio::async_write(client_, asio::buffer(refusal), kUseTuple);
      co_return;
    }
    upstream_ = std::move(upstream);
    last_activity_ = Clock::now();

    // Both directions as one awaitable: when either side ends, the other is
    // cancelled and both sockets close (clean teardown on either close).
    auto pumps = Pump(client_, upstream_, ctx_.route.bytes_from_clients) ||
                 Pump(upstream_, client_, ctx_.route.bytes_to_clients);
    if (limits.idle_timeout > absl::ZeroDuration()) {
      co_await (std::move(pumps) || IdleWatch(limits.idle_timeout));
    } else {
      co_await std::move(pumps);
    }
    Close();
  }

 private:
  awaitable<void> Pump(Socket& from, Socket& to, std::atomic<std::uint64_t>& counter) {
    // One buffer per direction, allocated once for the session's life.
    std::unique_ptr<char[]> buffer(new char[buffer_size_]);
    std::uint64_t moved = 0;
    for (;;) {
      auto [rec, n] = co_await from.async_read_some(asio::buffer(buffer.get(), buffer_size_));
      if (rec) {
        if (!IsExpectedDisconnect(rec))
          LogWarn("relay read failed", {{"route", ctx_.route.route.name}, {"error", rec.message()}});
        break;
      }
      last_activity_ = Clock::now();
      // The next read waits until this write is done: that is the backpressure.
      auto [wec, written] = co_await asio::async_write(to, asio::buffer(buffer.get(), n));
      if (wec) {
        if (!IsExpectedDisconnect(wec))
          LogWarn("relay write failed", {{"route", ctx_.route.route.name}, {"error", wec.message()}});
        break;
      }
      moved += written;
      last_activity_ = Clock::now();
    }
    counter.fetch_add(moved, std::memory_order_relaxed);
  }

  awaitable<void> IdleWatch(absl::Duration idle) {
    const auto limit = std::chrono::microseconds(absl::ToInt64Microseconds(idle));
    Timer timer(co_await asio::this_coro::executor);
    for (;;) {
      timer.expires_at(last_activity_ + limit);
      auto [ec] = co_await timer.async_wait();
      if (ec) co_return;  // cancelled: the relay ended first
      if (Clock::now() - last_activity_ >= limit) {
        LogInfo("idle timeout", {{"route", ctx_.route.route.name}});
        co_return;
      }
    }
  }

  Socket client_;
  Socket upstream_;
  SessionContext ctx_;
  SessionRegistration registration_;
  const std::size_t buffer_size_;
  Clock::time_point last_activity_ = Clock::now();
};

}  // namespace

awaitable<void> RunRelaySession(Socket client, SessionContext ctx) {
  RelaySession session(std::move(client), std::move(ctx));
  co_await session.Run();
}

}  // namespace turnout::proxy
