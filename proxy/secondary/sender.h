#pragma once
// Sending secondary work and matching its replies, the same for both
// protocols (docs/secondary-work.md "Sending and reply matching"): which op
// goes out next, which op a reply belongs to, and when an op is over on
// both sides. Sans-I/O: the protocol does the writing and the reading and
// tells this what happened.
//
//   OpQueue (seq order)
//   base_seq   next_reply            next_send              end_seq
//     │ ...      │ sent, awaiting      │ not sent yet ...     │
//                │ replies (FIFO)      │ Next(): the op here, once
//                └─ Head(): the op a   │ Sendable(op) says so
//                   reply frame is for
//
// Order: ops go out strictly in sequence (an op not sendable yet holds back
// the ones after it), so replies come back in sequence too: a reply frame
// belongs to the oldest op sent and not done (Head). An op done before it
// was sent (journaled, nothing to send) is passed over by both cursors.
//
// The protocol (`Protocol`) supplies:
//   bool Sendable(const Op&)   its request may go out now (Redis: the wire is
//                              complete; Postgres: the request is captured and
//                              the primary answered it)
//   void SecondaryDone(Op&)    the secondary side of the op is over (replied,
//                              failed or dropped); `secondary_done` is set.
//                              It may call MaybeFinish.
//   void Finish(Op&)           both sides are done; `finished` is set: the
//                              outcome step (proxy/secondary/outcome.h)
// and digests each reply frame of the op at the head (OnReply): more frames
// of this op to come, the op is done, or the connection cannot go on.
//
// The op's part is QueuedOp (`sent`, `primary_done`, `secondary_done`,
// `finished`). One session's coroutines use it on one thread: no lock, and
// nothing is allocated (the FIFO is the run of ops between two numbers).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>

#include "proxy/secondary/op_queue.h"
#include "routing/read_your_writes.h"

namespace turnout::proxy::secondary {

// What the protocol made of one reply frame of the op at the head.
enum class Digest : std::uint8_t {
  kMore,  // more frames of this op are to come
  kDone,  // the op is answered
  kLost,  // the reply cannot be matched: the connection cannot go on
};

template <class Op, class Protocol>
class Sender {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  // `max_in_flight`: how many ops may await their replies at once (both
  // protocols pipeline today: kUnbounded). `fence`: the session's
  // read-your-writes fence, which an op's `fence_seq` counts in (may be
  // null: nothing is fenced).
  Sender(OpQueue<Op>& ops, Protocol& protocol, std::size_t max_in_flight = kUnbounded,
         routing::ReadYourWritesFence* fence = nullptr) noexcept
      : ops_(ops), protocol_(protocol), max_in_flight_(max_in_flight), fence_(fence) {}
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // ---- sending
  // The next op to go out, done ops passed over: nullptr when every op was
  // sent or passed. Whether it may go now is the protocol's (Sendable) and
  // the in-flight bound's (NextSendable).
  Op* Next() noexcept {
    while (next_send_ < ops_.end_seq()) {
      Op& op = ops_.At(next_send_);
      if (!op.secondary_done) return &op;
      ++next_send_;
    }
    return nullptr;
  }
  // Next(), when it may go out now.
  Op* NextSendable() noexcept {
    Op* op = Next();
    return op != nullptr && in_flight_ < max_in_flight_ && protocol_.Sendable(*op) ? op : nullptr;
  }
  // Is an op sendable now (the in-flight bound aside)?
  bool HasSendable() const noexcept {
    for (std::uint64_t s = next_send_; s < ops_.end_seq(); ++s) {
      const Op& op = ops_.At(s);
      if (!op.secondary_done) return protocol_.Sendable(op);
    }
    return false;
  }
  // Next() went out: its replies are awaited, after those of the ops sent before.
  void Sent(Op& op) noexcept {
    op.sent = true;
    ++next_send_;
    ++in_flight_;
  }
  // The op sent last, and answered, goes out again: its secondary side is
  // open again (Postgres two-phase commit: PREPARE TRANSACTION, then
  // COMMIT PREPARED). No op after it was sent.
  void Resend(Op& op) noexcept {
    op.sent = false;
    op.secondary_done = false;
    next_send_ = op.seq;
    if (next_reply_ > op.seq) next_reply_ = op.seq;
  }
  // Next() goes no further without being sent (nothing to send, or its
  // secondary side is decided here): the protocol marks it done.
  void Passed() noexcept { ++next_send_; }

  // ---- replies
  // The op the next reply frame belongs to: the oldest sent and not done.
  Op* Head() noexcept {
    while (next_reply_ < next_send_) {
      Op& op = ops_.At(next_reply_);
      if (!op.secondary_done) return &op;
      ++next_reply_;
    }
    return nullptr;
  }
  // One reply frame: `digest(op)` is the protocol's step for the op at the
  // head (Head() must not be nullptr). kDone takes the op off the FIFO and
  // marks its secondary side done (SecondaryDone).
  template <class DigestFrame>
  Digest OnReply(DigestFrame&& digest) {
    Op& op = *Head();
    const Digest d = std::forward<DigestFrame>(digest)(op);
    if (d == Digest::kDone) {
      if (in_flight_ > 0) --in_flight_;
      ++next_reply_;
      Done(op);
    }
    return d;
  }
  // The connection is gone: `fail(op)` for each op sent and not answered
  // (it records why and calls Done); none is awaited any more.
  template <class Fail>
  void FailInFlight(Fail&& fail) {
    const std::uint64_t from = next_reply_ < ops_.base_seq() ? ops_.base_seq() : next_reply_;
    for (std::uint64_t s = from; s < next_send_; ++s) {
      Op& op = ops_.At(s);
      if (!op.secondary_done) fail(op);
    }
    in_flight_ = 0;
    next_reply_ = next_send_;
  }
  // Nothing in flight: no reply is awaited for the ops passed so far.
  void CatchUp() noexcept {
    if (next_reply_ < next_send_ && in_flight_ == 0) next_reply_ = next_send_;
  }

  // ---- both sides
  // The op's secondary side is over (answered, failed, dropped).
  void Done(Op& op) {
    MarkDone(op);
    protocol_.SecondaryDone(op);
  }
  // The same without the protocol's step, for a caller that settles the op
  // itself (abandoning the rest of the queue, a two-phase commit that could
  // not prepare). Either way an async dual-write stops holding back the
  // session's reads of the secondary (the fence): it is applied there, or
  // journaled.
  void MarkDone(Op& op) noexcept {
    op.secondary_done = true;
    if (op.fence_seq != 0 && fence_ != nullptr) fence_->OnResolved(op.fence_seq);
  }
  // Hands the op to the protocol's outcome step once both sides are done
  // with it; true when it did so now.
  bool MaybeFinish(Op& op) {
    if (op.finished || !op.secondary_done || !op.primary_done) return false;
    op.finished = true;
    protocol_.Finish(op);
    return true;
  }

  // After OpQueue::Trim: the cursors never point below the queue.
  void Trimmed() noexcept {
    if (next_send_ < ops_.base_seq()) next_send_ = ops_.base_seq();
    if (next_reply_ < ops_.base_seq()) next_reply_ = ops_.base_seq();
  }

  std::uint64_t next_send() const noexcept { return next_send_; }
  std::uint64_t next_reply() const noexcept { return next_reply_; }
  std::size_t in_flight() const noexcept { return in_flight_; }
  // Every op was sent or passed over.
  bool all_sent() const noexcept { return next_send_ == ops_.end_seq(); }

 private:
  OpQueue<Op>& ops_;
  Protocol& protocol_;
  const std::size_t max_in_flight_;
  routing::ReadYourWritesFence* const fence_;
  std::uint64_t next_send_ = 1;
  std::uint64_t next_reply_ = 1;
  std::size_t in_flight_ = 0;
};

}  // namespace turnout::proxy::secondary
