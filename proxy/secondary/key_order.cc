#include "proxy/secondary/key_order.h"

namespace turnout::proxy::secondary {

void KeyWaiter::Notify() {
  if (notified_.exchange(true, std::memory_order_acq_rel)) return;
  asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
}

void KeyOrder::Unregister(KeyWaiter& waiter) {
  if (!waiter.registered_on_) return;
  waiter.registered_on_ = false;
  stripes_.Unregister(waiter.registered_, &waiter);
}

awaitable<bool> KeyOrder::Acquire(std::span<const std::uint32_t> stripes, std::uint64_t owner,
                                  bool reentrant_always, KeyWaiter& waiter, Clock::time_point deadline,
                                  const bool* stop) {
  std::uint32_t blocked = 0;
  for (;;) {
    if (stripes_.TryAcquire(stripes, owner, reentrant_always, &blocked)) break;
    if ((stop != nullptr && *stop) || Clock::now() >= deadline) {
      Unregister(waiter);
      co_return false;
    }
    // Registered before the second try: a release between the two either
    // finds us in the registry or leaves the stripe free for the retry.
    Unregister(waiter);
    waiter.notified_.store(false, std::memory_order_release);
    stripes_.Register(blocked, waiter.shared_from_this());
    waiter.registered_ = blocked;
    waiter.registered_on_ = true;
    if (stripes_.TryAcquire(stripes, owner, reentrant_always, &blocked)) break;
    if (!waiter.notified_.load(std::memory_order_acquire)) {
      waiter.timer_.expires_at(deadline);
      co_await waiter.timer_.async_wait();  // cancelled by Notify(), or the deadline
    }
  }
  Unregister(waiter);
  co_return true;
}

}  // namespace turnout::proxy::secondary
