#pragma once
// Per-session bookkeeping for the read-your-writes fence (DESIGN.md §2).
// The session numbers each async dual-write it queues; the applier reports
// each one resolved (applied on the other side, or journaled after a
// failure) in order. While any is unresolved, reads are fenced:
//
//   Plan p = ApplyReadYourWritesFence(policy.Decide(req, now), fence.pending());
//
// Async dual-writes are applied in per-session order, so "everything up to
// sequence n resolved" is one number. The two counters are atomics so that
// the applier may run on another strand or thread than the session.

#include <atomic>
#include <cstdint>

namespace turnout::routing {

class ReadYourWritesFence {
 public:
  // Called when an async dual-write is queued; returns its sequence number.
  std::uint64_t OnQueued() noexcept {
    return queued_.fetch_add(1, std::memory_order_acq_rel) + 1;
  }
  // Called when the write `seq` (and so every earlier one) is applied on the
  // secondary side or journaled. Out-of-date reports are ignored.
  void OnResolved(std::uint64_t seq) noexcept {
    std::uint64_t cur = resolved_.load(std::memory_order_relaxed);
    while (cur < seq &&
           !resolved_.compare_exchange_weak(cur, seq, std::memory_order_acq_rel,
                                            std::memory_order_relaxed)) {
    }
  }
  // True while some queued write is not yet resolved.
  bool pending() const noexcept {
    return resolved_.load(std::memory_order_acquire) <
           queued_.load(std::memory_order_acquire);
  }
  std::uint64_t queued() const noexcept { return queued_.load(std::memory_order_acquire); }
  std::uint64_t resolved() const noexcept { return resolved_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::uint64_t> queued_{0};
  std::atomic<std::uint64_t> resolved_{0};
};

}  // namespace turnout::routing
