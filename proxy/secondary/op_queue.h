#pragma once
// One session's queue of secondary work towards one backend, the same for
// both protocols (docs/secondary-work.md "Limits"): the ops in the order the
// session made them, each numbered, bounded by QueueLimits, and the one
// place that decides whether a new op may join.
//
//   Admit ─► Push / Emplace (seq = end_seq()) ─► ... ─► finished, released
//   base_seq()                                   end_seq()
//     │ op op op ... op │   Trim pops finished-and-released heads only,
//                           so Find(seq) of a later op stays valid and an
//                           op's number never changes.
//
// The protocol's op type derives from QueuedOp (its number, the bytes it
// was counted for, whether it is shadow work, where each side of it is,
// finished, released) and adds
// what only that protocol knows: encoding, reply digests, the journal's
// words. What it means to be `released` is the protocol's: Redis releases
// an op when its reply-FIFO entry lets go of it, Postgres when the request
// it captures is complete.
//
// Accounting: an op counts the bytes it was pushed with plus every Grow;
// those are what Trim takes back, whatever its buffers hold by then (a
// Postgres op's `main` is replaced by ROLLBACK, a Redis block gains EXEC).
//
// Admission (Admit), for an op of `bytes` request bytes:
//   room (QueueLimits::Admits)  kAdmit
//   no room, sync dual-write    kWait   the session waits for room (back-pressure)
//   no room, async dual-write   kDrop   journaled `dropped`
//   shadow past its bounds      kShed   counted in turnout_shadow_dropped_total
// Shadow work is also shed by sampling as the shadow ops fill their bound:
// below half of it every shadow op is admitted; from half up, one with
// probability falling linearly from 1 to 0 at the bound. A queue that sheds
// every shadow op once full lets its client run faster, which keeps it full,
// and comparisons stop (pgbench -S -c 8 compared ~7% of reads); sampling
// keeps them flowing at the rate the secondary answers.
//
// One session's coroutines use it, on one thread: no lock. Nothing is
// allocated per op beyond the deque's own blocks.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <type_traits>
#include <utility>

#include "proxy/secondary/queue_limits.h"

namespace turnout::proxy::secondary {

// What a new op is, for admission.
enum class Work : std::uint8_t { kSyncWrite, kAsyncWrite, kShadow };

enum class Admission : std::uint8_t {
  kAdmit,
  kWait,  // sync dual-write, no room: wait for room, never shed
  kDrop,  // async dual-write, no room: journaled `dropped`
  kShed,  // shadow: counted as dropped, not sent
};

// The queue's part of an op; each protocol's op derives from it.
struct QueuedOp {
  std::uint64_t seq = 0;            // set by the queue: 1, 2, ... in session order
  std::size_t accounted_bytes = 0;  // counted against the byte bound (Push, Grow)
  bool shadow = false;              // counted against the shadow bounds
  // The sender's part (proxy/secondary/sender.h).
  bool sent = false;                // went out to the secondary
  bool primary_done = false;        // the primary's side is known (or not needed)
  bool secondary_done = false;      // the secondary's side: answered, failed or dropped
  bool finished = false;            // its outcome is taken ...
  bool released = false;            // ... and nothing refers to it: Trim may drop it
  // An async dual-write's number in the session's read-your-writes fence
  // (routing/read_your_writes.h), 0 for none: reads of the secondary are
  // held back until its secondary side is done (the sender resolves it).
  std::uint64_t fence_seq = 0;
};

// Shadow sampling (see the file comment): xorshift64, one per queue.
class ShadowSampler {
 public:
  explicit ShadowSampler(std::uint64_t seed) noexcept : state_(Mix(seed)) {}
  // Admit a shadow op with `queued` of `bound` shadow ops queued?
  bool Admits(std::size_t queued, std::size_t bound) noexcept {
    if (queued >= bound) return false;
    const std::size_t half = bound / 2;
    if (queued < half) return true;
    // P(admit) = (bound - queued) / (bound - half): 1 at half, 0 at bound.
    return Next() % (bound - half) < bound - queued;
  }

 private:
  static std::uint64_t Mix(std::uint64_t x) noexcept {  // splitmix64 finalizer: never 0 for x != 0 ...
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x == 0 ? 1 : x;  // ... and xorshift must not start at 0
  }
  std::uint64_t Next() noexcept {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  std::uint64_t state_;
};

template <class Op>
class OpQueue {
  static_assert(std::is_base_of_v<QueuedOp, Op>, "an op derives from secondary::QueuedOp");

 public:
  using iterator = typename std::deque<Op>::iterator;
  using const_iterator = typename std::deque<Op>::const_iterator;

  // `seed` varies the shadow sampling between sessions (a session id).
  explicit OpQueue(QueueLimits limits = {}, std::uint64_t seed = 0) noexcept : limits_(limits), sampler_(seed) {}
  OpQueue(const OpQueue&) = delete;
  OpQueue& operator=(const OpQueue&) = delete;

  const QueueLimits& limits() const noexcept { return limits_; }

  // The decision for a new op of `bytes` request bytes (the file comment).
  // A shadow op admitted here is to be pushed: the sampling counts on it.
  Admission Admit(Work work, std::size_t bytes) noexcept {
    if (work == Work::kShadow) {
      if (!limits_.Admits(true, size(), bytes_, shadow_ops_, bytes, shadow_bytes_)) return Admission::kShed;
      return sampler_.Admits(shadow_ops_, limits_.max_shadow_ops) ? Admission::kAdmit : Admission::kShed;
    }
    if (HasRoom(bytes)) return Admission::kAdmit;
    return work == Work::kSyncWrite ? Admission::kWait : Admission::kDrop;
  }
  // Room for a dual-write of `bytes` (what Admit answers kAdmit to, without
  // deciding): what a session waiting for room checks.
  bool HasRoom(std::size_t bytes) const noexcept {
    return limits_.Admits(false, size(), bytes_, shadow_ops_, bytes);
  }

  // Appends `op` (its seq assigned), counted for `bytes` and, when
  // op.shadow, as shadow work.
  Op& Push(Op op, std::size_t bytes) {
    op.seq = end_seq();
    op.accounted_bytes = 0;
    Ops().push_back(std::move(op));
    Op& added = ops_->back();
    if (added.shadow) ++shadow_ops_;
    Grow(added, bytes);
    return added;
  }
  // Appends a default op built in place (its seq assigned), shadow work or
  // not; its bytes come with Grow as they are known.
  Op& Emplace(bool shadow) {
    Op& added = Ops().emplace_back();
    added.seq = end_seq() - 1;
    added.shadow = shadow;
    if (shadow) ++shadow_ops_;
    return added;
  }
  // `op` holds `bytes` more request bytes.
  void Grow(Op& op, std::size_t bytes) noexcept {
    op.accounted_bytes += bytes;
    bytes_ += bytes;
    if (op.shadow) shadow_bytes_ += bytes;
  }

  // Drops the finished-and-released ops at the head; returns how many.
  std::size_t Trim() noexcept {
    std::size_t n = 0;
    while (!empty() && ops_->front().finished && ops_->front().released) {
      const Op& op = ops_->front();
      bytes_ -= op.accounted_bytes;
      if (op.shadow) {
        --shadow_ops_;
        shadow_bytes_ -= op.accounted_bytes;
      }
      ops_->pop_front();
      ++base_seq_;
      ++n;
    }
    return n;
  }

  // The op numbered `seq`; nullptr once trimmed (or never pushed).
  Op* Find(std::uint64_t seq) noexcept {
    return seq >= base_seq_ && seq < end_seq() ? &(*ops_)[seq - base_seq_] : nullptr;
  }
  const Op* Find(std::uint64_t seq) const noexcept {
    return seq >= base_seq_ && seq < end_seq() ? &(*ops_)[seq - base_seq_] : nullptr;
  }
  // The op numbered `seq`, which is queued: base_seq() <= seq < end_seq().
  Op& At(std::uint64_t seq) noexcept { return (*ops_)[seq - base_seq_]; }
  const Op& At(std::uint64_t seq) const noexcept { return (*ops_)[seq - base_seq_]; }

  // The first op queued, and one past the last: the next op's number.
  std::uint64_t base_seq() const noexcept { return base_seq_; }
  std::uint64_t end_seq() const noexcept { return base_seq_ + size(); }

  std::size_t size() const noexcept { return ops_ ? ops_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t shadow_ops() const noexcept { return shadow_ops_; }
  std::size_t shadow_bytes() const noexcept { return shadow_bytes_; }

  Op& front() noexcept { return ops_->front(); }
  Op& back() noexcept { return ops_->back(); }
  // Without a deque yet: value-initialized iterators, an empty range.
  iterator begin() noexcept { return ops_ ? ops_->begin() : iterator(); }
  iterator end() noexcept { return ops_ ? ops_->end() : iterator(); }
  const_iterator begin() const noexcept { return ops_ ? ops_->cbegin() : const_iterator(); }
  const_iterator end() const noexcept { return ops_ ? ops_->cend() : const_iterator(); }

 private:
  // Made with the first op: an empty std::deque holds a block of its own
  // (0.7 kB of every session, most of which never queue secondary work).
  std::deque<Op>& Ops() {
    if (!ops_) ops_ = std::make_unique<std::deque<Op>>();
    return *ops_;
  }

  std::unique_ptr<std::deque<Op>> ops_;  // seq base_seq_ .. end_seq()-1
  std::uint64_t base_seq_ = 1;
  std::size_t bytes_ = 0;
  std::size_t shadow_ops_ = 0;
  std::size_t shadow_bytes_ = 0;
  QueueLimits limits_;
  ShadowSampler sampler_;
};

}  // namespace turnout::proxy::secondary
