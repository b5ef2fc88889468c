#pragma once
// Bounds of one session's secondary queue towards one backend, the same for
// both protocols and read from the configuration (`limits:`
// secondary_queue_ops, secondary_queue_size, shadow_queue_ops; defaults and
// what happens past them in docs/secondary-work.md "Limits").
//
// What each protocol does when an op finds no room is the same:
//   sync dual-write   waits for room (back-pressure, DESIGN.md §2: a sync
//                     client that outpaces its secondary is slowed down,
//                     never shed to the journal)
//   async dual-write  waits up to kAsyncRoomWait for room, then journaled
//                     `dropped`
//   shadow            counted in turnout_shadow_dropped_total and dropped
// (Postgres holds a sync client's next request until its op finished, so a
// sync session never has more than its one request queued.)

#include <chrono>
#include <cstddef>

#include "routing/config.h"

namespace turnout::proxy::secondary {

// How long an async dual-write waits for room before it is journaled
// `dropped`: a burst that outpaces the secondary for less than this loses
// nothing to the journal.
inline constexpr auto kAsyncRoomWait = std::chrono::seconds(1);

struct QueueLimits {
  std::size_t max_ops = 4096;
  std::size_t max_bytes = 16u << 20;
  std::size_t max_shadow_ops = 512;
  // Request bytes of the shadow ops among them (not configured).
  std::size_t max_shadow_bytes = 4u << 20;

  static QueueLimits Of(const routing::Limits& l) noexcept {
    return {.max_ops = l.secondary_queue_ops, .max_bytes = l.secondary_queue_bytes, .max_shadow_ops = l.shadow_queue_ops};
  }
  // Room for one more op of `bytes` request bytes, with `ops` ops holding
  // `queued_bytes` queued, `shadow_ops` of them shadow requests holding
  // `shadow_bytes`. An empty queue admits any one op that is not shadow
  // work past its own bounds, so a request larger than the bound (kept
  // whole up to the protocol's own cap) is applied, not waited on forever.
  // (OpQueue::Admit decides on this, and samples shadow work.)
  bool Admits(bool shadow, std::size_t ops, std::size_t queued_bytes, std::size_t shadow_ops, std::size_t bytes,
              std::size_t shadow_bytes = 0) const noexcept {
    if (ops >= max_ops || (ops > 0 && queued_bytes + bytes > max_bytes)) return false;
    return !shadow || (shadow_ops < max_shadow_ops && shadow_bytes + bytes <= max_shadow_bytes);
  }
};

}  // namespace turnout::proxy::secondary
