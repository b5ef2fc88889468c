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
//  * All or nothing over the stripes of a multi-key write.
//  * Never wait while holding (the session lets its own writes finish
//    before it waits), so sessions cannot deadlock on each other.
//  * Stripes (4096, by a hash of the key) are shared by unrelated keys;
//    a collision only serialises two writes needlessly.
// Writes through other sidecars are not ordered against these (verify and
// repair cover that).

#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>

#include "absl/container/inlined_vector.h"

namespace turnout::proxy::redis {

class KeyOrder {
 public:
  static constexpr std::size_t kStripes = 4096;
  using Stripes = absl::InlinedVector<std::uint32_t, 2>;

  static KeyOrder& Global();

  // Appends the stripe of `key` to `out`, keeping `out` sorted and unique.
  static void AddStripe(std::string_view key, Stripes& out);

  // Takes every stripe for `owner` (non-zero), or none (false) when one is
  // held by another owner.
  bool TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner);
  void Release(std::span<const std::uint32_t> stripes, std::uint64_t owner);

 private:
  struct Stripe {
    std::mutex mu;
    std::uint64_t owner = 0;
    std::uint32_t depth = 0;
  };
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace turnout::proxy::redis
