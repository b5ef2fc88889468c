#pragma once
// Per-key ordering of dual-writes across the sessions of this process. One
// object for the process, handed to sessions in ProxyServices::key_order
// (no global of its own); it works on the stripes the Redis backfill takes
// too (routing::KeyStripes). Protocol-neutral: a key is bytes, and so is a
// Postgres row's identity should its statement dual-write order rows too.
//
// Dual-write keeps each session's writes in order on both sides (DESIGN.md
// §2), but two sessions writing the same key at once could otherwise be
// applied in one order on the primary and in the other on the secondary
// (two LPUSHes, two SETs), and the sides would differ for good although
// every reply matched. So a session takes the key's stripe before it sends
// a dual-written write to the primary and lets go once the secondary
// applied it (or it was journaled): a second session's write to that key
// waits for the first to be on both sides, so both sides see one order.
//
//  * Re-entrant per owner (the session): a session's own pipelined writes
//    to a key never wait for each other; they are ordered per connection.
//    Fair: once another session waits for the stripe, the owner's next
//    write waits too until the stripe was free, so a session that keeps a
//    key busy (a deep async queue) cannot starve the others.
//  * All or nothing over the stripes of a multi-key write.
//  * Never wait while holding (the session lets its own writes finish
//    before it waits), so sessions cannot deadlock on each other.
//  * Stripes (65536, by a hash of the key) are shared by unrelated keys;
//    a collision only serialises two writes needlessly. Each is one atomic
//    word (owner, depth), taken and released with compare-and-swap. They
//    live in routing::KeyStripes, which the Redis backfill takes too, so a
//    key's copy is ordered with its live writes (issue 13 item 18).
//  * Waiting is an event, not a poll (issue 13 item 19: a hot key polled at
//    1 ms dropped redis-benchmark to 0 requests/s): a writer that finds a
//    stripe taken registers a KeyWaiter on it and sleeps on the waiter's
//    timer; the release that frees a wanted stripe (its contended bit set)
//    wakes every waiter registered on it, on the waiter's own thread. The
//    uncontended path stays one CAS per stripe: the registry (a mutex per
//    shard of stripes) is touched only by writers that had to wait and by
//    releases of stripes that someone wanted.
// Writes through other sidecars are not ordered against these (verify and
// repair cover that).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "proxy/asio.h"
#include "routing/key_stripes.h"

namespace turnout::proxy::secondary {

// One writer that may wait for stripes: made once per session (or channel)
// on its first wait and reused. Notify() is safe from any thread: the wake-up
// runs on the waiter's executor, where its coroutine lives.
class KeyWaiter final : public routing::KeyStripes::Waiter, public std::enable_shared_from_this<KeyWaiter> {
 public:
  explicit KeyWaiter(asio::any_io_executor executor) : timer_(std::move(executor)) {}
  void Notify() override;

 private:
  friend class KeyOrder;
  Timer timer_;
  std::atomic<bool> notified_{false};
  std::uint32_t registered_ = 0;  // the stripe it waits on, while registered_on_
  bool registered_on_ = false;
};

class KeyOrder {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kStripes = routing::KeyStripes::kStripes;
  using Stripes = routing::KeyStripes::Stripes;

  // Over `stripes`, shared with whoever else orders writes of these keys.
  explicit KeyOrder(routing::KeyStripes& stripes) : stripes_(stripes) {}

  // Appends the stripe of `key` to `out`, keeping `out` sorted and unique.
  static void AddStripe(std::string_view key, Stripes& out) { routing::KeyStripes::AddStripe(key, out); }

  // Takes every stripe for `owner` (below 2^39), or none (false) when one
  // is held by another owner (or by this one while others wait for it).
  // `reentrant_always`: re-enter a stripe this owner holds even while others
  // wait (for work that later writes of the same owner queue behind).
  bool TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner, bool reentrant_always = false) {
    return stripes_.TryAcquire(stripes, owner, reentrant_always);
  }
  void Release(std::span<const std::uint32_t> stripes, std::uint64_t owner) { stripes_.Release(stripes, owner); }

  // TryAcquire, waiting as long as needed: false only when `deadline` passed
  // or `*stop` became true (the caller then Notify()s `waiter` to end the
  // wait at once). The caller must not wait while one of its own writes
  // still has to be sent to make progress (it flushes them first).
  awaitable<bool> Acquire(std::span<const std::uint32_t> stripes, std::uint64_t owner, bool reentrant_always,
                          KeyWaiter& waiter, Clock::time_point deadline, const bool* stop);

 private:
  void Unregister(KeyWaiter& waiter);

  routing::KeyStripes& stripes_;
};

}  // namespace turnout::proxy::secondary
