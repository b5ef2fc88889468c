#pragma once
// Coroutines side by side, as Asio's awaitable operators run them, without
// their nesting: each `||` or `&&` runs both of its sides as coroutines of
// their own, so a chain of n loops keeps 2(n - 1) of them, with their
// frames, for as long as the loops run. A session runs its loops for its
// whole life, idle or not; these keep n. For awaitable<void> only.
//
//   FirstOf(a, b, c)  `a || b || c`: until the first of them ends; the
//                     others are then cancelled, and it returns once all
//                     have ended. An exception from the one that ended
//                     first is rethrown; those of the cancelled ones (a
//                     cancelled co_await throws) are dropped.
//   AllOf(a, b, c)    `a && b && c`: until all have ended; the first
//                     exception cancels the others and is rethrown.

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>

#include <array>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>

#include "proxy/asio.h"

namespace turnout::proxy {

namespace side_by_side_detail {

// `loops` spawned on `ex` as one group that ends as `condition` says; its
// result is the order they ended in, then each one's exception_ptr.
template <typename Condition, typename... Loops>
auto Group(const asio::any_io_executor& ex, Condition condition, awaitable<Loops>... loops) {
  static_assert((std::is_void_v<Loops> && ...), "FirstOf and AllOf run awaitable<void> only");
  return asio::experimental::make_parallel_group(asio::co_spawn(ex, std::move(loops), asio::deferred)...)
      .async_wait(condition, asio::use_awaitable);
}

// A Group's exception_ptrs, in argument order.
template <typename Result>
auto Errors(const Result& result) {
  return std::apply([](const auto&, const auto&... e) { return std::array{e...}; }, result);
}

}  // namespace side_by_side_detail

template <typename... Loops>
awaitable<void> FirstOf(awaitable<Loops>... loops) {
  namespace d = side_by_side_detail;
  const auto result = co_await d::Group(co_await asio::this_coro::executor, asio::experimental::wait_for_one(),
                                        std::move(loops)...);
  if (const auto& first = d::Errors(result)[std::get<0>(result)[0]]) std::rethrow_exception(first);
}

template <typename... Loops>
awaitable<void> AllOf(awaitable<Loops>... loops) {
  namespace d = side_by_side_detail;
  const auto result = co_await d::Group(co_await asio::this_coro::executor, asio::experimental::wait_for_one_error(),
                                        std::move(loops)...);
  const auto errors = d::Errors(result);
  for (std::size_t i : std::get<0>(result))
    if (errors[i]) std::rethrow_exception(errors[i]);
}

}  // namespace turnout::proxy
