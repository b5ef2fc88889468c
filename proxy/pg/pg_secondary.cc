// Secondary work of a PostgreSQL session (DESIGN.md §2): dual-write and
// shadow comparison, on the session's connection to the backend that is not
// the primary. See SecondaryOp in pg_session_impl.h for what one op is.
//
//   ClientLoop:   PlanRequest ─► PlanSecondary ─► barrier (quiet; PrepareSecondary)
//                 StartOp / CaptureFrame ─► op.main holds the request
//   primary  Z:   PrimaryOpDone ─► what the secondary will get
//   SecondarySender: prefix, BEGIN, main, suffix ─► secondary, in op order,
//                 each once its primary answered
//   secondary Z:  OnSecondaryFrame ─► FinishOp: compare, journal, metrics
//
// Order and locks: an op goes to the secondary only after the primary
// answered it, so rows are locked on the secondary in the order the primary
// granted them; a transaction is carried over lazily (BEGIN before its
// first write) and ends on both sides in the same order, so sessions cannot
// deadlock across the two backends.
//
// Session state: each op starts with the state changes (SET, prepared
// statements, LISTEN) the secondary has not seen since it was last brought
// up to date (SessionState::AppendReplay from BackendConnection::synced()).
//
// Crash-safe (issue 14 item 2): a dual-write names its tables in the intent
// record (proxy/intent_ring.h) at StartOp, before its first frame goes to
// the primary; the slot is cleared once the secondary applied it, or handed
// to the journal flusher once it was journaled. Inside a transaction a
// statement applied on the secondary is not committed there yet: its slot
// is kept (CarriedTransaction::intents) until the transaction ends on both
// sides. A process killed in between leaves those tables to the next
// start, which journals them for repair.
//
// Nothing is lost: a dual-write that cannot be applied (no connection, the
// connection lost, a full queue, a request too large to keep, the
// transaction lost on the secondary) or whose outcome differs is journaled
// with its statement, parameters and tables; shadow work is only counted.
//
// Where it lives: this file plans an op (PlanSecondary) and captures its
// request (StartOp, CaptureFrame); pg_secondary_queue.cc sends ops and
// matches replies; pg_secondary_outcome.cc compares, journals and settles
// the intent record; pg_transactions.cc runs two-phase commit.

#include <algorithm>

#include "absl/strings/match.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/wire.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/secondary/outcome.h"
#include "proxy/secondary/backend_health.h"
#include "proxy/secondary/op_queue.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using routing::JournalKind;
using routing::RequestClass;
using routing::SecondaryRole;

namespace {

// One request kept for the secondary; a larger batch is journaled instead.
constexpr std::size_t kMaxCaptureBytes = 4u << 20;

bool IsWrite(RequestClass c) { return c == RequestClass::kWrite || c == RequestClass::kDdl; }

}  // namespace

// ================================================================== planning

PgSession::PlannedWork PgSession::PlanSecondary(const routing::Plan& plan, const RequestStart& start) {
  const RequestClass cls = start.cls;
  // What the classifier last saw is this request's statement only when it
  // came as a Query or a Parse.
  const bool classified = start.type == 'Q' || start.type == 'P';
  PlannedWork w;
  if (debug_pinned_) return w;
  const routing::Secondary* dual = nullptr;
  const routing::Secondary* shadow = nullptr;
  for (const auto& s : plan.secondaries()) {
    if (s.role == SecondaryRole::kDualWrite) dual = &s;
    if (s.role == SecondaryRole::kShadow) shadow = &s;
  }
  if (carried_.followed()) {
    // The secondary follows the client's transaction: its writes, and its end.
    if (IsWrite(cls) || cls == RequestClass::kTxnControl) {
      w.any = true;
      w.sync = carried_.sync;
    }
    // A COMMIT the classifier saw whole (a Query or a Parse of its own).
    const auto& statements = tracker_.classification().statements;
    w.async_txn_end = carried_.open && !w.sync && cls == RequestClass::kTxnControl;
    w.atomic_commit = carried_.open && carried_.atomic && cls == RequestClass::kTxnControl && classified &&
                      statements.size() == 1 && statements[0].txn == ppg::TxnControl::kCommit;
  } else if (dual != nullptr && IsWrite(cls)) {
    w.any = true;
    w.sync = dual->apply == routing::Apply::kSync;
    w.atomic_commit = plan.has(routing::kPlanAtomic) && w.sync;  // remembered for the COMMIT (StartOp)
  } else if (const auto carried = BatchOpensTransactionForWrites(start)) {
    // An extended batch that opens a transaction (pgjdbc with autocommit
    // off sends BEGIN with the transaction's first statement): its writes
    // come later in the same batch, where no op can start, so the batch is
    // carried whole and the secondary follows the transaction from there.
    w.any = true;
    w.sync = carried->apply == routing::Apply::kSync;
    w.atomic_commit = carried->atomic && w.sync;
    w.opens_txn = true;
  } else if (shadow != nullptr && (cls == RequestClass::kRead || IsWrite(cls))) {
    w.any = true;
    w.role = SecondaryRole::kShadow;
    w.sync = false;
    w.shadow_write = cls != RequestClass::kRead;
  }
  if (!w.any) return w;
  // COPY FROM STDIN needs the client's data stream; transaction control
  // inside a shadow write would break its rollback.
  bool copy = false, txn_control = false;
  if (classified) {
    for (const auto& st : tracker_.classification().statements) {
      if (st.statement_class == ppg::StatementClass::kWrite &&
          absl::EqualsIgnoreCase(absl::string_view(st.command.data(), st.command.size()), "copy"))
        copy = true;
      if (st.txn != ppg::TxnControl::kNone) txn_control = true;
    }
  }
  if (copy && w.role == SecondaryRole::kDualWrite) {
    w.any = false;
    w.copy_journaled = true;  // CommitPlan journals its tables
  } else if (copy || (w.shadow_write && txn_control)) {
    w.any = false;
  }
  return w;
}

void PgSession::NoteLaterExecute(const routing::Plan& plan, RequestClass cls,
                                 std::span<const std::string_view> targets) {
  if (!IsWrite(cls)) return;
  bool dual = carried_.followed();
  for (const auto& s : plan.secondaries())
    if (s.role == SecondaryRole::kDualWrite) dual = true;
  if (capturing_ != nullptr && capturing_->role == SecondaryRole::kShadow && !capturing_->shadow_write) {
    // A shadow read turned out to write: never mirror it unwrapped.
    AbandonCapture("");
  }
  if (dual && (capturing_ == nullptr || capturing_->role != SecondaryRole::kDualWrite)) {
    uncaptured_write_ = true;
    uncaptured_tables_.assign(targets.begin(), targets.end());
    return;
  }
  if (capturing_ != nullptr && capturing_->role == SecondaryRole::kDualWrite) {
    capturing_->opens_txn_only = false;
    // A later write of the captured batch: its tables are the op's too (a
    // journal entry names them), and the transaction's (its COMMIT's
    // intent names them: proxy/intent_ring.h).
    for (std::string_view t : targets)
      if (std::find(capturing_->tables.begin(), capturing_->tables.end(), t) == capturing_->tables.end())
        capturing_->tables.emplace_back(t);
    carried_.AddTables(targets);
  }
}

routing::Plan PgSession::PlanOfAWrite() {
  routing::Request req;
  req.request_class = RequestClass::kWrite;
  req.client = routing::ClientIdentity{user_, application_name_, address_};
  req.connection_id = ctx_.connection_id;
  return reader_->policy().Decide(req, absl::Now());
}

std::optional<PgSession::CarriedWrites> PgSession::BatchOpensTransactionForWrites(const RequestStart& start) {
  if (start.cls != RequestClass::kTxnControl || start.type != 'P') return std::nullopt;
  const auto& statements = tracker_.classification().statements;
  if (statements.size() != 1 || statements[0].txn != ppg::TxnControl::kBegin) return std::nullopt;
  const routing::Plan plan = PlanOfAWrite();
  for (const auto& s : plan.secondaries())
    if (s.role == SecondaryRole::kDualWrite) return CarriedWrites{s.apply, plan.has(routing::kPlanAtomic)};
  return std::nullopt;
}

bool PgSession::WritesAreDualWritten() {
  if (carried_.followed()) return true;
  const routing::Plan plan = PlanOfAWrite();
  for (const auto& s : plan.secondaries())
    if (s.role == SecondaryRole::kDualWrite) return true;
  return false;
}

awaitable<void> PgSession::PrepareSecondary() {
  const Side side = Other(primary_side_);
  BackendConnection* b = backend(side);
  if (b != nullptr && b->ready()) co_return;
  // The back-off every session of the process shares (proxy/secondary/
  // backend_health.h): inside a backend's window nobody tries; when it
  // ends, one caller does and reports.
  secondary::BackendHealth& health = *ctx_.services->backend_health;
  const std::string& name = BackendName(side);
  if (!health.MayTry(name, Clock::now())) co_return;
  std::string notice, error;
  if (!co_await EnsureSynced(side, &notice, &error)) {
    health.ReportFailure(name, Clock::now());
    ctx_.route.RecordUpstreamError(side);
    LogWarn("pg secondary backend unavailable; its work is journaled",
            {{"route", route().name}, {"backend", name}, {"error", error}});
    co_return;
  }
  health.ReportSuccess(name);
  if (!notice.empty())
    LogWarn("pg secondary backend: session state not fully replayed",
            {{"route", route().name}, {"backend", name}, {"error", notice}});
}

// ================================================================== capture

bool PgSession::StartOp(const ppg::Frame& f, PlannedWork& w) {
  TrimOps();
  const Side side = Other(primary_side_);
  BackendConnection* b = backend(side);
  const bool connected = b != nullptr && b->ready();
  // The queue decides (proxy/secondary/op_queue.h: bounds shared with Redis
  // and configured; shadow work shed first, sampled as it fills, so it
  // never holds memory dual-writes need). A request is admitted on what is
  // already queued; its own bytes are counted as it is captured (a batch
  // is kept up to kMaxCaptureBytes).
  const bool shadow = w.role == SecondaryRole::kShadow;
  const secondary::Work work = shadow   ? secondary::Work::kShadow
                               : w.sync ? secondary::Work::kSyncWrite
                                        : secondary::Work::kAsyncWrite;
  const secondary::Admission admission =
      shadow && !connected ? secondary::Admission::kShed : sec_ops_.Admit(work, 0);
  if (admission == secondary::Admission::kShed) {
    secondary::OutcomeStep(ctx_.route, *ctx_.services).ShadowDropped();
    return false;
  }

  // The first op starts the sender (NewSideLoops).
  if (sec_ops_.empty()) backend_ready_.Notify();
  SecondaryOp& op = sec_ops_.Emplace(shadow);
  answering_for_ = kNoRequest;  // this request may be the one being answered
  op.request_seq = w.request_seq;
  op.role = w.role;
  op.sync = w.sync;
  op.shadow_write = w.shadow_write;
  op.side = side;
  op.start = Clock::now();
  op.tables = std::move(w.tables);
  const bool client_in_txn = tracker_.txn_status() != ppg::TransactionStatus::kIdle;
  if (w.role == SecondaryRole::kDualWrite) {
    op.cls = RequestClass::kWrite;
    // A transaction's end names every table the transaction wrote: lost,
    // it is what a repair must look at.
    if (client_in_txn) {
      carried_.AddTables(op.tables);
      if (op.tables.empty()) op.tables = carried_.tables;
    } else {
      carried_.tables.clear();
    }
    if (carried_.lost) {
      op.failure = "turnout: the secondary lost this transaction; journaled for repair";
    } else if (admission != secondary::Admission::kAdmit) {
      // kDrop (async); kWait only when the barrier's wait for room
      // (AwaitPlan) gave up: a sync write is never queued past the bound.
      op.failure = "turnout: the secondary's queue is full; journaled for repair";
    } else if (!connected) {
      op.failure = "turnout: backend unavailable (retrying shortly); journaled for repair";
    }
    op.in_txn = carried_.open;
    op.opens_txn_only = w.opens_txn;
    if (op.failure.empty() && client_in_txn && !carried_.open) {
      // The client's transaction reaches the secondary with its first write.
      op.begins_txn = true;
      op.prefix_replies += carried_.Begin(&op.begin, tracker_.state().local_settings(), op.sync, w.atomic_commit);
    } else if (w.atomic_commit && op.in_txn && op.failure.empty()) {
      op.atomic = true;
      carried_.holding = true;
    }
    if (!op.sync) {
      op.fence_seq = fence_.OnQueued();
    }
    op.intent = RecordIntent(op.tables, side);
  } else {
    op.cls = w.shadow_write ? RequestClass::kWrite : RequestClass::kRead;
    if (w.shadow_write) {
      // Run on the secondary and always rolled back (DESIGN.md §2).
      ppg::AppendQuery(&op.begin, "BEGIN");
      op.prefix_replies += 1;
      ppg::AppendQuery(&op.suffix, "ROLLBACK");
      op.suffix_replies = 1;
    }
  }
  if (op.failure.empty()) {
    op.prefix_replies += tracker_.state().AppendReplay(&op.prefix, &b->synced());
    if (!op.prefix.empty()) b->MarkSynced(tracker_.state().snapshot());
  }
  ReplyDigest::Options options;
  if (op.role == SecondaryRole::kShadow && f.type == 'Q') {
    ppg::Query q;
    if (!ppg::Decode(f.payload, &q)) options.ordered = QueryHasTopLevelOrderBy(q.sql);
  } else if (op.role == SecondaryRole::kShadow && f.type == 'P') {
    ppg::Parse p;
    if (!ppg::Decode(f.payload, &p)) options.ordered = QueryHasTopLevelOrderBy(p.query);
  }
  op.primary.Reset(options);
  op.secondary.Reset(options);
  op.main.assign(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
  sec_ops_.Grow(op, op.main.size() + op.prefix.size());
  UpdateWriterHold();
  if (f.type == 'Q') {
    op.complete = true;
    op.released = true;
    sec_progress_.Notify();
    return true;
  }
  capturing_ = &op;
  return false;
}

bool PgSession::CaptureFrame(const ppg::Frame& f) {
  SecondaryOp& op = *capturing_;
  if (op.main.size() + f.total_size > kMaxCaptureBytes) {
    AbandonCapture("turnout: an extended batch larger than 4 MiB is not dual-written; journaled for repair");
    return false;
  }
  op.main.append(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
  sec_ops_.Grow(op, f.total_size);
  if (f.type != 'S') return false;
  op.complete = true;
  EndCapture();
  sec_progress_.Notify();
  return true;
}

void PgSession::EndCapture() noexcept {
  if (capturing_ == nullptr) return;
  capturing_->released = true;
  capturing_ = nullptr;
}

// The batch being captured cannot be carried whole: a dual-write is
// journaled (its statement as far as it was seen), shadow work dropped.
void PgSession::AbandonCapture(std::string_view why) {
  SecondaryOp& op = *capturing_;
  EndCapture();
  op.complete = true;
  if (op.atomic) {
    // The held frames go to the primary after all, ahead of anything else
    // (FlushClientParsed); the transaction commits in one phase.
    carried_.held_for_primary = std::move(op.main);
    op.main.clear();
    op.atomic = false;
    carried_.holding = false;
  }
  if (op.role == SecondaryRole::kShadow) {
    op.skipped = true;
    op.send_main = false;
  } else if (op.failure.empty()) {
    op.failure = std::string(why);
    op.failure_kind = JournalKind::kDropped;
  }
  sec_progress_.Notify();
}

awaitable<bool> PgSession::OpComplete() {
  if (!co_await FlushClientParsed()) co_return false;
  SecondaryOp& last = sec_ops_.back();
  if (last.atomic && !co_await AtomicCommit(last)) co_return false;
  if (!last.sync) co_return true;
  const std::uint64_t seq = last.seq;
  // Sync: the client's next request waits until both sides answered.
  for (;;) {
    const SecondaryOp* op = sec_ops_.Find(seq);  // trimmed: finished
    if (op == nullptr || op->finished) co_return true;
    co_await sec_progress_.Wait();
  }
}

}  // namespace turnout::proxy::pg::detail
