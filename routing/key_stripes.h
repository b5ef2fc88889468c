#pragma once
// Per-key order of the writes one process sends to two sides (DESIGN.md §2,
// §4): the stripes both a Redis session's dual-writes (proxy/secondary/
// key_order.h, which explains the protocol) and the Redis backfill's key
// copies (control/redis_backfill.cc) take, so a copy of a key is ordered
// with that key's live writes (issue 13 item 18). Here in routing/ because
// proxy/ and control/ meet only through routing/; pure: atomics and a mutex,
// no I/O, no clock. How a waiter sleeps is the caller's (an Asio timer in a
// session, a condition variable in a backfill thread): it only has to be
// woken, from any thread, by Notify().

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"

namespace turnout::routing {

class KeyStripes {
 public:
  static constexpr std::size_t kStripes = 65536;
  using Stripes = absl::InlinedVector<std::uint32_t, 2>;

  // Something waiting for a stripe; Notify() may be called on any thread,
  // more than once, and after the waiter stopped waiting.
  class Waiter {
   public:
    virtual ~Waiter() = default;
    virtual void Notify() = 0;
  };

  // The process' stripes: sessions and backfills of every route share them.
  static KeyStripes& Global();

  // Appends the stripe of `key` to `out`, keeping `out` sorted and unique.
  static void AddStripe(std::string_view key, Stripes& out);

  // Takes every stripe for `owner` (below 2^39), or none (false) when one
  // is held by another owner (or by this one while others wait for it);
  // `blocked` then names that stripe. `reentrant_always`: re-enter a stripe
  // this owner holds even while others wait.
  bool TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner, bool reentrant_always = false,
                  std::uint32_t* blocked = nullptr);
  void Release(std::span<const std::uint32_t> stripes, std::uint64_t owner);

  // The release that frees `stripe` while it is wanted notifies every
  // waiter registered on it (and forgets them). Register, then try again,
  // then sleep: a release in between either finds the waiter or leaves the
  // stripe free for the second try.
  void Register(std::uint32_t stripe, std::shared_ptr<Waiter> waiter);
  void Unregister(std::uint32_t stripe, const Waiter* waiter);

 private:
  // contended << 63 | owner << 24 | depth; depth 0 when free.
  static constexpr int kDepthBits = 24;
  static constexpr std::uint64_t kContended = std::uint64_t{1} << 63;
  static constexpr std::size_t kWaiterShards = 64;
  struct WaiterShard {
    std::mutex mu;
    std::vector<std::pair<std::uint32_t, std::shared_ptr<Waiter>>> waiters;
  };
  void WakeStripe(std::uint32_t stripe);

  std::array<std::atomic<std::uint64_t>, kStripes> stripes_{};
  std::array<WaiterShard, kWaiterShards> shards_;
};

}  // namespace turnout::routing
