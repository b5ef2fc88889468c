// KeyOrder's wait (issue 13 item 19): a writer waiting for a key is woken by
// the release that frees it, from another thread, at once (no polling), and
// gives up at its deadline or when told to stop.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "proxy/secondary/key_order.h"

namespace turnout::proxy::secondary {
namespace {

using Clock = std::chrono::steady_clock;

// The process' KeyOrder, as ProxyServices hands it to sessions.
KeyOrder& Order() {
  static KeyOrder order(routing::KeyStripes::Global());
  return order;
}

struct Outcome {
  bool done = false;
  bool acquired = false;
  Clock::duration waited{};
};

awaitable<void> Wait(KeyOrder::Stripes stripes, std::uint64_t owner, std::shared_ptr<KeyWaiter> waiter,
                     Clock::duration limit, const bool* stop, Outcome* out) {
  const auto start = Clock::now();
  out->acquired = co_await Order().Acquire(stripes, owner, false, *waiter, start + limit, stop);
  out->waited = Clock::now() - start;
  out->done = true;
}

TEST(KeyOrderWait, ReleaseOnAnotherThreadWakesTheWaiterAtOnce) {
  KeyOrder& order = Order();
  KeyOrder::Stripes s;
  KeyOrder::AddStripe("key-order-wait:hot", s);
  ASSERT_TRUE(order.TryAcquire(s, 7001));
  asio::io_context io;
  auto waiter = std::make_shared<KeyWaiter>(io.get_executor());
  Outcome out;
  asio::co_spawn(io, Wait(s, 7002, waiter, std::chrono::seconds(10), nullptr, &out), asio::detached);
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    order.Release(s, 7001);
  });
  io.run();
  releaser.join();
  ASSERT_TRUE(out.done);
  EXPECT_TRUE(out.acquired);
  EXPECT_GE(out.waited, std::chrono::milliseconds(90));
  EXPECT_LT(out.waited, std::chrono::milliseconds(600));  // woken, not timed out
  order.Release(s, 7002);
}

TEST(KeyOrderWait, ManyWaitersOfOneKeyAllGetItInTurn) {
  KeyOrder& order = Order();
  KeyOrder::Stripes s;
  KeyOrder::AddStripe("key-order-wait:many", s);
  asio::io_context io;
  constexpr int kWaiters = 16;
  std::vector<Outcome> outs(kWaiters);
  ASSERT_TRUE(order.TryAcquire(s, 8000));
  for (int i = 0; i < kWaiters; ++i) {
    auto waiter = std::make_shared<KeyWaiter>(io.get_executor());
    asio::co_spawn(
        io,
        [&, i, waiter]() -> awaitable<void> {
          co_await Wait(s, 8001 + i, waiter, std::chrono::seconds(10), nullptr, &outs[i]);
          // Hold it briefly, then hand it on.
          Timer t(io.get_executor(), std::chrono::milliseconds(2));
          co_await t.async_wait();
          Order().Release(s, 8001 + i);
        },
        asio::detached);
  }
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    order.Release(s, 8000);
  });
  const auto start = Clock::now();
  io.run();
  releaser.join();
  for (const auto& o : outs) EXPECT_TRUE(o.done && o.acquired);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST(KeyOrderWait, GivesUpAtTheDeadlineOrWhenStopped) {
  KeyOrder& order = Order();
  KeyOrder::Stripes s;
  KeyOrder::AddStripe("key-order-wait:held", s);
  ASSERT_TRUE(order.TryAcquire(s, 9001));
  asio::io_context io;
  Outcome timed, stopped;
  bool stop = false;
  auto w1 = std::make_shared<KeyWaiter>(io.get_executor());
  auto w2 = std::make_shared<KeyWaiter>(io.get_executor());
  asio::co_spawn(io, Wait(s, 9002, w1, std::chrono::milliseconds(200), nullptr, &timed), asio::detached);
  asio::co_spawn(io, Wait(s, 9003, w2, std::chrono::seconds(10), &stop, &stopped), asio::detached);
  Timer t(io.get_executor(), std::chrono::milliseconds(100));
  t.async_wait([&](auto) {
    stop = true;
    w2->Notify();
  });
  io.run();
  EXPECT_TRUE(timed.done);
  EXPECT_FALSE(timed.acquired);
  EXPECT_TRUE(stopped.done);
  EXPECT_FALSE(stopped.acquired);
  EXPECT_LT(stopped.waited, std::chrono::seconds(1));
  order.Release(s, 9001);
}

}  // namespace
}  // namespace turnout::proxy::secondary
