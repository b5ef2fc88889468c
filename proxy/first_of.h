#pragma once
// FirstOf(a, b, c, …): the coroutines side by side until the first of them
// ends; the others are then cancelled, and FirstOf returns once all have
// ended. What `a || b || c` of Asio's awaitable operators does for
// awaitable<void>, without their nesting: each `||` runs both of its sides
// as coroutines of their own, so a chain of n loops keeps 2(n - 1) of them,
// with their frames, for as long as the loops run. A session runs its loops
// for its whole life, idle or not; FirstOf keeps n.
//
// An exception from the coroutine that ended first is rethrown, as by `||`;
// those of the cancelled ones are dropped (a cancelled co_await throws).

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include <array>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>

#include "proxy/asio.h"

namespace turnout::proxy {

template <typename... Loops>
awaitable<void> FirstOf(awaitable<Loops>... loops) {
  static_assert((std::is_void_v<Loops> && ...), "FirstOf runs awaitable<void> only");
  auto ex = co_await asio::this_coro::executor;
  auto result = co_await asio::experimental::make_parallel_group(
                    asio::co_spawn(ex, std::move(loops), asio::deferred)...)
                    .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  // (the order they ended in, then each one's exception_ptr in argument order)
  const std::array<std::exception_ptr, sizeof...(Loops)> errors =
      std::apply([](const auto&, const auto&... e) { return std::array{e...}; }, result);
  if (const auto& first = errors[std::get<0>(result)[0]]) std::rethrow_exception(first);
}

}  // namespace turnout::proxy
