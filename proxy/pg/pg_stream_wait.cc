// Dual-write carried by the change stream (issue "Postgres dual-write and
// cutover on the change stream"; routing/stream_positions.h). The session
// sends a write to old only; the stream brings it to new. What the session
// still owes the client is the meaning of `apply`:
//
//   sync   the ReadyForQuery that ends a transaction which wrote (or an
//          autocommit write's) is held until new applied that commit; then
//          released. "When the client sees COMMIT, new has it." Where the
//          stream runs in this process and the commit is a COMMIT of its
//          own or an autocommit write (a simple Query, or an extended batch
//          of DML: QueueBatchXid), the session asks old for
//          the transaction's xid just before it commits (a query of its
//          own, whose replies the client does not see) and waits for
//          exactly that commit; otherwise for a position of old sampled
//          after the commit, with a fence. A transaction that rolled back
//          or had no xid is not held.
//   async  not held; the commit's sample is remembered, and a read that the
//          policy sends to new waits until new has it (read-your-writes by
//          position), or goes to old when it does not come in time.
//
// Both waits are bounded by limits.stream_wait_timeout and never wait for a
// stream that does not report (copying, stopped, unreachable): the commit
// is on old and the stream carries it whenever it runs again; only the
// "new has it now" promise is not kept, and the metric
// turnout_stream_waits_total{result="timeout"|"not_live"} says so.

#include <algorithm>
#include <charconv>
#include <optional>

#include "protocol/pg/message_writer.h"
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

// The xid query: the transaction's top-level xid, NULL when it has none
// (it changed nothing: old logged no commit for it, nothing to wait for).
// It reads a backend-local variable: no lock, no write, cannot conflict.
constexpr std::string_view kCommitXidSql = "select pg_current_xact_id_if_assigned()";
const std::string& CommitXidQuery() {
  static const std::string query = [] {
    std::string q;
    ppg::AppendQuery(&q, kCommitXidSql);
    return q;
  }();
  return query;
}

// How long a commit waits for the stream to decode its xid before it also
// takes a sample with a fence: the stream decodes a commit within a
// millisecond or two of it, so this is reached only by a transaction the
// stream never shows (it changed only tables outside the publication, or
// temporary ones) or by a stream that moved to another sidecar.
constexpr auto kCommitXidGrace = std::chrono::milliseconds(20);
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

bool PgSession::XidQueryFits() const {
  return stream_wrote_sync_ && capturing_ == nullptr && !carried_.holding && primary_side_ == Side::kOld;
}

bool PgSession::MayAskXid(const RequestPlan& p) {
  // Nothing of the client's in flight before the request (the xid query's
  // replies come first), no secondary work around it, the write on old,
  // and the stream runs here (only this process hears its xids).
  if (!XidQueryFits() || p.work.any || !tracker_.BackendIdle() || tracker_.unsynced()) return false;
  return stream_position().reported_here(absl::Now());
}

bool PgSession::WantsCommitXid(const RequestStart& start, const RequestPlan& p) {
  // A COMMIT that starts its request: a simple Query, or the first message
  // of an extended batch (pgjdbc: Parse or Bind, Execute, Sync).
  return start.commit && start.batch_start && tracker_.txn_status() == ppg::TransactionStatus::kInTransaction &&
         MayAskXid(p);
}

void PgSession::QueueCommitXidQuery() {
  own_request_ = CommitXidQuery();
  xid_reply_ = XidReply::kOwnQuery;
  commit_xid_state_ = CommitXid::kAsked;
  commit_xid_ = 0;
}

bool PgSession::AutocommitDml(const RequestStart& start, const RequestPlan& p) {
  // One data-changing statement outside a transaction: a query after it
  // runs in its implicit transaction (RequestStart::dml).
  return start.cls == RequestClass::kWrite && start.dml &&
         tracker_.txn_status() == ppg::TransactionStatus::kIdle && MayAskXid(p);
}

bool PgSession::WantsWriteXid(const RequestStart& start, const RequestPlan& p) {
  return start.type == 'Q' && AutocommitDml(start, p);
}

bool PgSession::WantsBatchXid(const RequestStart& start, const RequestPlan& p) {
  return start.type != 'Q' && start.batch_start && AutocommitDml(start, p);
}

void PgSession::NoteBatchXidFrame(const ppg::Frame& f, const RequestStart* execute) {
  // The client's message, and the reply that ends what the server says to
  // it (OnXidReply counts those down).
  switch (f.type) {
    case 'P':  // Parse: ParseComplete
    case 'B':  // Bind: BindComplete
    case 'C':  // Close: CloseComplete
    case 'D':  // Describe: RowDescription or NoData
      ++batch_xid_.client_replies;
      return;
    case 'E':
      // Execute: CommandComplete, PortalSuspended or EmptyQueryResponse. Only DML
      // and reads: a statement that commits (COMMIT, CALL) or opens a
      // transaction block would leave the xid query outside the write's
      // transaction; one routing was not told of is unknown.
      ++batch_xid_.client_replies;
      batch_xid_.executed = true;
      if (execute == nullptr || execute->type != 'E' || (!execute->dml && execute->cls != RequestClass::kRead))
        batch_xid_.armed = false;
      if (execute != nullptr && execute->dml) batch_xid_.wrote = true;
      return;
    case 'H':  // Flush: no reply
      return;
    default:  // a copy message, a FunctionCall, a Query inside the batch
      batch_xid_.armed = false;
  }
}

namespace {
// The xid query as a statement of turnout's, before an extended batch's
// Sync: closed first (not an error when absent), so a name left by a batch
// whose query failed cannot make this Parse fail; closed after, so nothing
// of it stays. The client's unnamed statement is left alone; the unnamed
// portal is bound again, but the batch's implicit transaction ends at its
// Sync, and every portal with it.
constexpr std::string_view kBatchXidStatement = "turnout_commit_xid";
const std::string& BatchXidMessages() {
  static const std::string messages = [] {
    std::string m;
    ppg::AppendClose(&m, ppg::Target::kStatement, kBatchXidStatement);
    ppg::AppendParse(&m, kBatchXidStatement, kCommitXidSql);
    ppg::AppendBind(&m, "", kBatchXidStatement, {}, {}, {});
    ppg::AppendExecute(&m, "", 0);
    ppg::AppendClose(&m, ppg::Target::kStatement, kBatchXidStatement);
    return m;
  }();
  return messages;
}
}  // namespace

void PgSession::QueueBatchXid() {
  const BatchXid batch = std::exchange(batch_xid_, BatchXid{});
  if (!batch.armed) return;
  if (!batch.executed) {
    // Parse, Bind, Describe, Close only (PQprepare of an INSERT): nothing
    // ran, nothing commits, nothing to wait for.
    commit_xid_state_ = CommitXid::kKnown;
    commit_xid_ = 0;
    return;
  }
  if (!batch.wrote || batch.client_replies == 0) return;
  // What MayAskXid said at the batch's start, still so at its end.
  if (!XidQueryFits()) return;
  if (!own_request_.empty() || xid_reply_ != XidReply::kNone) return;
  own_request_ = BatchXidMessages();
  xid_reply_ = XidReply::kClientBatch;
  xid_client_replies_ = batch.client_replies;
  commit_xid_state_ = CommitXid::kAsked;
  commit_xid_ = 0;
}

void PgSession::QueueWriteWithXid(const ppg::Frame& f) {
  ppg::Query q;
  (void)ppg::Decode(f.payload, &q);  // decoded by the tracker already
  // After a line break, so that a trailing `--` comment cannot hide it; a
  // trailing `;` leaves an empty statement, which the server skips.
  write_with_xid_.clear();
  ppg::FrameBuilder b(&write_with_xid_, 'Q');
  b.Raw(q.sql).Raw("\n;").CString(kCommitXidSql);
  b.Finish();
  own_request_ = write_with_xid_;
  xid_reply_ = XidReply::kClientFirst;
  commit_xid_state_ = CommitXid::kAsked;
  commit_xid_ = 0;
}

void PgSession::TakeXid(const ppg::Frame& data_row) {
  ppg::DataRow row;
  std::uint64_t xid8 = 0;
  if (ppg::Decode(data_row.payload, &row) || row.columns.size() != 1) {
    commit_xid_state_ = CommitXid::kFailed;
  } else if (!row.columns[0].has_value()) {
    commit_xid_state_ = CommitXid::kKnown;  // none assigned
  } else if (const std::string_view text = *row.columns[0];
             std::from_chars(text.data(), text.data() + text.size(), xid8).ec == std::errc{}) {
    commit_xid_state_ = CommitXid::kKnown;
    commit_xid_ = static_cast<std::uint32_t>(xid8);  // pgoutput's xid: the low 32 bits of the xid8
  } else {
    commit_xid_state_ = CommitXid::kFailed;
  }
}

std::optional<bool> PgSession::OnXidReply(const ppg::Frame& f) {
  if (xid_reply_ == XidReply::kClientBatch) {
    switch (f.type) {
      case '1': case '2': case '3': case 'T': case 'n': case 'C': case 's': case 'I':
        // The reply that ends one of the client's messages: after the
        // last, the xid query's.
        if (--xid_client_replies_ == 0) xid_reply_ = XidReply::kAppended;
        break;
      case 'E':
      case 'Z':
        // The batch failed: the server skipped to the Sync, the xid query
        // too, and rolled the implicit transaction back.
        xid_reply_ = XidReply::kNone;
        commit_xid_state_ = CommitXid::kKnown;
        commit_xid_ = 0;
        break;
      default:
        break;
    }
    return std::nullopt;
  }
  if (xid_reply_ == XidReply::kClientFirst) {
    if (f.type == 'C') {
      xid_reply_ = XidReply::kAppended;
    } else if (f.type == 'E' || f.type == 'Z') {
      // The client's statement failed: its implicit transaction rolled
      // back, and the appended query did not run. Nothing to wait for.
      xid_reply_ = XidReply::kNone;
      commit_xid_state_ = CommitXid::kKnown;
      commit_xid_ = 0;
    }
    return std::nullopt;
  }
  // The xid query's replies: its own request's (kOwnQuery), or the end of
  // the client's (kAppended), whose ReadyForQuery is the client's.
  switch (f.type) {
    case 'D':
      TakeXid(f);
      return false;
    case 'T':
    case 'C':
    case '1':  // the extended batch's (QueueBatchXid): Parse, Bind, Close
    case '2':
    case '3':
      return false;
    case 'E':
      // Cancelled or timed out: the transaction failed with it (a COMMIT
      // after it says ROLLBACK; the write it was appended to is undone),
      // so nothing will commit. The client hears why.
      commit_xid_state_ = CommitXid::kKnown;
      commit_xid_ = 0;
      return std::nullopt;
    case 'Z': {
      const bool own = xid_reply_ == XidReply::kOwnQuery;
      xid_reply_ = XidReply::kNone;
      if (commit_xid_state_ == CommitXid::kAsked) commit_xid_state_ = CommitXid::kFailed;
      return own ? std::optional<bool>(false) : std::nullopt;
    }
    default:
      return std::nullopt;  // a notice or notification: the client's
  }
}

bool PgSession::HoldForStream(const ppg::Frame& f, bool forward, CommitXid xid_state) {
  // (The tracker saw `f` first: ended_by() is of the replies before it.)
  const RequestTracker::Ended ended_by = tracker_.ended_by();
  ppg::ReadyForQuery z;
  if (ppg::Decode(f.payload, &z)) return false;
  if (z.status == ppg::TransactionStatus::kInTransaction && ended_by == RequestTracker::Ended::kCommit &&
      xid_state == CommitXid::kKnown && commit_xid_ != 0 && stream_wrote_sync_ && forward) {
    // COMMIT AND CHAIN: the transaction committed and the next one began;
    // the client hears of the commit once new has it, as for a COMMIT. The
    // chained transaction has written nothing yet.
    stream_wrote_ = stream_wrote_sync_ = false;
    return HoldCommit(f, /*ticket=*/0, commit_xid_);
  }
  if (z.status != ppg::TransactionStatus::kIdle) return false;
  CountOpenWriter(false);
  if (!stream_wrote_) return false;
  if (!forward) {
    // Not the client's (a reply turnout swallows): nothing to hold.
    stream_wrote_ = stream_wrote_sync_ = false;
    return false;
  }
  const bool sync = stream_wrote_sync_;
  stream_wrote_ = stream_wrote_sync_ = false;
  if (ended_by == RequestTracker::Ended::kRollback) {
    // Rolled back: nothing of it committed, nothing to wait for.
    if (sync) ctx_.route.RecordCommitTarget(RouteRuntime::CommitTarget::kNone);
    return false;
  }
  if (sync && xid_state == CommitXid::kKnown) {
    // Old logged no commit for a transaction without an xid: nothing to wait for.
    if (commit_xid_ == 0) {
      ctx_.route.RecordCommitTarget(RouteRuntime::CommitTarget::kNone);
      return false;
    }
    return HoldCommit(f, /*ticket=*/0, commit_xid_);
  }
  // A sync commit waits at once: its sample is a fence (see WaitStreamApplied).
  const std::uint64_t ticket = stream_position().RequestSample(/*with_fence=*/sync);
  if (!sync) {
    stream_ticket_ = ticket;
    return false;
  }
  return HoldCommit(f, ticket, /*xid=*/0);
}

bool PgSession::HoldCommit(const ppg::Frame& f, std::uint64_t ticket, std::uint32_t xid) {
  stream_ticket_ = ticket;
  stream_xid_ = xid;
  stream_held_z_.assign(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
  stream_hold_ = true;
  return true;
}

awaitable<void> PgSession::ReleaseStreamHold() {
  const auto start = Clock::now();
  bool fenced = false;
  const StreamWaitResult result =
      co_await WaitStreamApplied(stream_ticket_, stream_xid_, /*nudge=*/false, &fenced);
  ctx_.route.RecordCommitTarget(stream_xid_ == 0 ? RouteRuntime::CommitTarget::kFence
                                : fenced          ? RouteRuntime::CommitTarget::kXidThenFence
                                                  : RouteRuntime::CommitTarget::kXid);
  ctx_.route.RecordStreamWait(Kind::kCommit, result,
                              static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                             Clock::now() - start)
                                                             .count()));
  if (result == StreamWaitResult::kApplied) {
    stream_ticket_ = 0;
  } else if (stream_ticket_ == 0 && stream_xid_ != 0) {
    // Reads on new after it still wait for it (a sample taken now is after it).
    stream_ticket_ = stream_position().RequestSample();
  }
  stream_xid_ = 0;
  release_ += stream_held_z_;
  stream_held_z_.clear();
  stream_hold_ = false;
  idle_.Notify();  // a barrier may have waited for the release
}

awaitable<PgSession::StreamWaitResult> PgSession::WaitStreamApplied(std::uint64_t ticket, std::uint32_t xid,
                                                                   bool nudge, bool* fenced) {
  StreamPosition& pos = stream_position();
  const auto deadline = Clock::now() + absl::ToChronoNanoseconds(ctx_.config->limits.stream_wait_timeout);
  const auto grace = Clock::now() + kCommitXidGrace;
  // An async commit's sample is a bare position of old
  // (routing/stream_positions.h): the next commit after it brings the
  // stream past it, or a fence asked for here once a read waits for it,
  // whichever the applier reaches first. A sync commit asked for its fence
  // with the sample.
  bool nudged = !nudge;
  StreamWaitResult result = StreamWaitResult::kTimeout;
  for (;;) {
    const absl::Time now = absl::Now();
    const auto state = pos.Wait(ticket, xid, stream_wake_.get(), now);
    if (state == StreamPosition::WaitState::kReached) {
      result = StreamWaitResult::kApplied;
      break;
    }
    if (state == StreamPosition::WaitState::kNotLive) {
      result = StreamWaitResult::kNotLive;
      break;
    }
    if (Clock::now() >= deadline) break;
    if (ticket == 0 && Clock::now() >= grace) {
      // The stream did not show the xid: a sample with a fence as well.
      ticket = pos.RequestSample(/*with_fence=*/true);
      if (fenced != nullptr) *fenced = true;
      continue;
    }
    if (!nudged) {
      pos.Nudge();
      nudged = true;
    }
    // Woken by the position, at the deadline, or when the stream's last
    // report stops vouching for it (then it is re-checked as not live).
    auto until = ticket == 0 ? std::min(deadline, grace) : deadline;
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
