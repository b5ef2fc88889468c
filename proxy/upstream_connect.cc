#include "proxy/upstream_connect.h"

namespace turnout::proxy {

using namespace asio::experimental::awaitable_operators;

namespace {
awaitable<std::pair<std::error_code, Socket>> ResolveAndConnect(const routing::HostPort& address) {
  auto executor = co_await asio::this_coro::executor;
  Resolver resolver(executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(address.host, std::to_string(address.port));
  Socket socket(executor);
  if (rec) co_return std::pair{std::error_code(rec), std::move(socket)};
  boost::system::error_code last = asio::error::host_not_found;
  for (const auto& entry : endpoints) {
    boost::system::error_code ignored;
    socket.close(ignored);
    auto [cec] = co_await socket.async_connect(entry.endpoint());
    last = cec;
    if (!cec) {
      socket.set_option(tcp::no_delay(true), ignored);
      break;
    }
  }
  co_return std::pair{std::error_code(last), std::move(socket)};
}
}  // namespace

awaitable<std::pair<std::error_code, Socket>> ConnectUpstream(const routing::HostPort& address,
                                                              absl::Duration timeout) {
  auto executor = co_await asio::this_coro::executor;
  Timer timer(executor, std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  auto result = co_await (ResolveAndConnect(address) || timer.async_wait());
  if (result.index() == 1) {
    co_return std::pair{std::error_code(boost::system::error_code(asio::error::timed_out)), Socket(executor)};
  }
  co_return std::move(std::get<0>(result));
}

}  // namespace turnout::proxy
