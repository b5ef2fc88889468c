// Dual-write carried by the change stream (issue "Postgres dual-write and
// cutover on the change stream"; routing/stream_positions.h). The session
// sends a write to old only; the stream brings it to new. What the session
// still owes the client is the meaning of `apply`:
//
//   sync   the ReadyForQuery that ends a transaction which wrote (or an
//          autocommit write's) is held until new applied past a position of
//          old sampled after that commit; then released. "When the client
//          sees COMMIT, new has it."
//   async  not held; the commit's sample is remembered, and a read that the
//          policy sends to new waits until new has it (read-your-writes by
//          position), or goes to old when it does not come in time.
//
// Both waits are bounded by limits.stream_wait_timeout and never wait for a
// stream that does not report (copying, stopped, unreachable): the commit
// is on old and the stream carries it whenever it runs again; only the
// "new has it now" promise is not kept, and the metric
// turnout_stream_waits_total{result="timeout"|"not_live"} says so.

#include "proxy/pg/pg_session_impl.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using routing::RequestClass;
using routing::StreamPosition;
using Kind = RouteRuntime::StreamWaitKind;

namespace {
// The session is ending (its loops were cancelled): stop waiting, and
// start no further operation (it would be cancelled, or throw).
bool Cancelled(const asio::cancellation_state& cs) { return cs.cancelled() != asio::cancellation_type::none; }
}  // namespace

routing::StreamPosition& PgSession::stream_position() {
  if (stream_pos_ == nullptr) {
    stream_pos_ = &ctx_.services->stream_positions->For(route().name);
    stream_timer_ = std::make_shared<Timer>(ex_);
    stream_wake_ = std::make_unique<StreamWake>(ex_, stream_timer_);
  }
  return *stream_pos_;
}

void PgSession::NoteStreamWrite(const routing::Plan& plan, RequestClass cls, Side side) {
  // While a stream carries the route, a transaction that may write counts
  // as open, whichever side it writes to: a cutover's window (to new, or
  // back to old) must not close while it can. One opened by BEGIN counts
  // from its start: having only read so far, it may write next.
  const bool counted = reader_->policy().inputs().writes_by_stream;
  if (cls == RequestClass::kTxnControl && counted && tracker_.txn_status() == ppg::TransactionStatus::kIdle)
    CountOpenWriter(true);
  if (cls != RequestClass::kWrite && cls != RequestClass::kDdl) return;
  if (counted) CountOpenWriter(true);
  if (side != Side::kOld) return;
  if (plan.has(routing::kPlanStreamSync)) {
    stream_wrote_ = true;
    stream_wrote_sync_ = true;
  } else if (plan.has(routing::kPlanStreamAsync)) {
    stream_wrote_ = true;
  }
  if (stream_wrote_) CountOpenWriter(true);
}

void PgSession::CountOpenWriter(bool open) {
  if (open == open_writer_) return;
  open_writer_ = open;
  if (open) stream_position().AddOpenWriter();
  else stream_position().RemoveOpenWriter();
}

awaitable<void> PgSession::HoldForCutover() {
  // Bounded by the cutover's own timeout (after which it is abandoned and a
  // policy without the hold is published), with a margin.
  const auto limit = Clock::now() + 2 * absl::ToChronoNanoseconds(ctx_.config->limits.cutover_timeout);
  Timer timer(ex_);
  while (reader_->policy().inputs().hold_writes && Clock::now() < limit && !closing_) {
    timer.expires_after(std::chrono::milliseconds(1));
    co_await timer.async_wait();
    if (Cancelled(co_await asio::this_coro::cancellation_state)) break;  // the session ends
    reader_->Refresh();
  }
}

routing::Plan PgSession::FenceStreamRead(routing::Plan plan, bool may_wait, bool* wait) {
  if (stream_ticket_ == 0 || !plan.has(routing::kPlanFenceable) || plan.primary() == plan.fence_side())
    return plan;
  switch (stream_position().Wait(stream_ticket_, stream_wake_.get(), absl::Now())) {
    case StreamPosition::WaitState::kReached:
      stream_position().Cancel(stream_wake_.get());
      stream_ticket_ = 0;
      return plan;
    case StreamPosition::WaitState::kNotLive:
      break;
    case StreamPosition::WaitState::kWaiting:
      stream_position().Cancel(stream_wake_.get());
      if (may_wait) {
        *wait = true;  // AwaitPlan waits, then the request is planned again
        return plan;
      }
      break;
  }
  return routing::ApplyReadYourWritesFence(plan, /*session_has_unapplied_writes=*/true);
}

bool PgSession::HoldForStream(const ppg::Frame& f, bool forward) {
  ppg::ReadyForQuery z;
  if (ppg::Decode(f.payload, &z) || z.status != ppg::TransactionStatus::kIdle) return false;
  CountOpenWriter(false);
  if (!stream_wrote_) return false;
  if (!forward) {
    // Not the client's (a reply turnout swallows): nothing to hold.
    stream_wrote_ = stream_wrote_sync_ = false;
    return false;
  }
  const bool sync = stream_wrote_sync_;
  stream_wrote_ = stream_wrote_sync_ = false;
  // A sync commit waits at once: its sample is a fence (see WaitStreamApplied).
  const std::uint64_t ticket = stream_position().RequestSample(/*with_fence=*/sync);
  if (!sync) {
    stream_ticket_ = ticket;
    return false;
  }
  stream_ticket_ = ticket;
  stream_held_z_.assign(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
  stream_hold_ = true;
  return true;
}

awaitable<void> PgSession::ReleaseStreamHold() {
  const auto start = Clock::now();
  const StreamWaitResult result = co_await WaitStreamApplied(stream_ticket_, /*nudge=*/false);
  ctx_.route.RecordStreamWait(Kind::kCommit, result,
                              static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                             Clock::now() - start)
                                                             .count()));
  if (result == StreamWaitResult::kApplied) stream_ticket_ = 0;
  release_ += stream_held_z_;
  stream_held_z_.clear();
  stream_hold_ = false;
  idle_.Notify();  // a barrier may have waited for the release
}

awaitable<PgSession::StreamWaitResult> PgSession::WaitStreamApplied(std::uint64_t ticket, bool nudge) {
  StreamPosition& pos = stream_position();
  const auto deadline = Clock::now() + absl::ToChronoNanoseconds(ctx_.config->limits.stream_wait_timeout);
  // An async commit's sample is a bare position of old
  // (routing/stream_positions.h): the next commit after it brings the
  // stream past it, or a fence asked for here once a read waits for it,
  // whichever the applier reaches first. A sync commit asked for its fence
  // with the sample.
  bool nudged = !nudge;
  StreamWaitResult result = StreamWaitResult::kTimeout;
  for (;;) {
    const absl::Time now = absl::Now();
    const auto state = pos.Wait(ticket, stream_wake_.get(), now);
    if (state == StreamPosition::WaitState::kReached) {
      result = StreamWaitResult::kApplied;
      break;
    }
    if (state == StreamPosition::WaitState::kNotLive) {
      result = StreamWaitResult::kNotLive;
      break;
    }
    if (Clock::now() >= deadline) break;
    if (!nudged) {
      pos.Nudge();
      nudged = true;
    }
    // Woken by the position, at the deadline, or when the stream's last
    // report stops vouching for it (then it is re-checked as not live).
    auto until = deadline;
    const absl::Duration vouched = pos.live_until() - now;
    if (vouched < absl::ZeroDuration()) until = Clock::now();
    else if (vouched < absl::Hours(1)) until = std::min(until, Clock::now() + absl::ToChronoNanoseconds(vouched));
    stream_timer_->expires_at(until);
    co_await stream_timer_->async_wait();
    if (closing_ || Cancelled(co_await asio::this_coro::cancellation_state)) break;  // the session ends
  }
  pos.Cancel(stream_wake_.get());
  co_return result;
}

}  // namespace turnout::proxy::pg::detail
