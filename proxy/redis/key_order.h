#pragma once
// Per-key ordering of dual-writes across the sessions of this process.
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
//    word (owner, depth), taken and released with compare-and-swap.
// Writes through other sidecars are not ordered against these (verify and
// repair cover that).

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/container/inlined_vector.h"

namespace turnout::proxy::redis {

class KeyOrder {
 public:
  static constexpr std::size_t kStripes = 65536;
  using Stripes = absl::InlinedVector<std::uint32_t, 2>;

  static KeyOrder& Global();

  // Appends the stripe of `key` to `out`, keeping `out` sorted and unique.
  static void AddStripe(std::string_view key, Stripes& out);

  // Takes every stripe for `owner` (below 2^39), or none (false) when one
  // is held by another owner (or by this one while others wait for it).
  // `reentrant_always`: re-enter a stripe this owner holds even while others
  // wait (for work that later writes of the same owner queue behind).
  bool TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner, bool reentrant_always = false);
  void Release(std::span<const std::uint32_t> stripes, std::uint64_t owner);

 private:
  // contended << 63 | owner << 24 | depth; depth 0 when free.
  static constexpr int kDepthBits = 24;
  static constexpr std::uint64_t kContended = std::uint64_t{1} << 63;
  std::array<std::atomic<std::uint64_t>, kStripes> stripes_{};
};

}  // namespace turnout::proxy::redis
