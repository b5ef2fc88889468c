// Secondary work of a PostgreSQL session (DESIGN.md §2): dual-write and
// shadow comparison, on the session's connection to the backend that is not
// the primary. See SecondaryOp in pg_session_impl.h for what one op is.
//
//   ClientLoop:   Route ─► PlanSecondary ─► barrier (quiet; PrepareSecondary)
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
// is kept (txn_intents_) until the transaction ends on both sides. A process
// killed in between leaves those tables to the next start, which journals
// them for repair.
//
// Nothing is lost: a dual-write that cannot be applied (no connection, the
// connection lost, a full queue, a request too large to keep, the
// transaction lost on the secondary) or whose outcome differs is journaled
// with its statement, parameters and tables; shadow work is only counted.

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/wire.h"
#include "proxy/intent_ring.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/request_text.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using namespace asio::experimental::awaitable_operators;
using routing::JournalKind;
using routing::RequestClass;
using routing::SecondaryRole;

namespace {

// Bounds of the queue of ops not yet finished (async work piles up here).
constexpr std::size_t kMaxOps = 1024;
constexpr std::size_t kMaxBytes = 16u << 20;
// Shadow work is shed earlier: it must never hold memory dual-writes need.
constexpr std::size_t kMaxShadowOps = 256;
// One request kept for the secondary; a larger batch is journaled instead.
constexpr std::size_t kMaxCaptureBytes = 4u << 20;
// A secondary silent this long (and at least twice the primary's time) with
// work outstanding is given up, so a hung server cannot hold clients.
constexpr auto kReplyTimeout = std::chrono::seconds(30);
// After the client left, how long queued work may take to reach the secondary.
constexpr auto kFinishTimeout = std::chrono::seconds(10);

std::uint64_t MicrosBetween(Clock::time_point a, Clock::time_point b) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

bool IsWrite(RequestClass c) { return c == RequestClass::kWrite || c == RequestClass::kDdl; }


}  // namespace

// ================================================================== planning

PgSession::PlannedWork PgSession::PlanSecondary(const routing::Plan& plan, RequestClass cls,
                                                std::span<const std::string_view> targets) {
  PlannedWork w;
  if (debug_pinned_) return w;
  const routing::Secondary* dual = nullptr;
  const routing::Secondary* shadow = nullptr;
  for (const auto& s : plan.secondaries()) {
    if (s.role == SecondaryRole::kDualWrite) dual = &s;
    if (s.role == SecondaryRole::kShadow) shadow = &s;
  }
  if (sec_txn_ || sec_txn_lost_) {
    // The secondary follows the client's transaction: its writes, and its end.
    if (IsWrite(cls) || cls == RequestClass::kTxnControl) {
      w.any = true;
      w.sync = sec_txn_sync_;
    }
    // A COMMIT the classifier saw whole (a Query or a Parse of its own).
    const auto& statements = tracker_.classification().statements;
    w.async_txn_end = sec_txn_ && !w.sync && cls == RequestClass::kTxnControl;
    w.atomic_commit = sec_txn_ && sec_txn_atomic_ && cls == RequestClass::kTxnControl &&
                      (routing_frame_type_ == 'Q' || routing_frame_type_ == 'P') && statements.size() == 1 &&
                      statements[0].txn == ppg::TxnControl::kCommit;
  } else if (dual != nullptr && IsWrite(cls)) {
    w.any = true;
    w.sync = dual->apply == routing::Apply::kSync;
    w.atomic_commit = plan.has(routing::kPlanAtomic) && w.sync;  // remembered for the COMMIT (StartOp)
  } else if (const auto carried = BatchOpensTransactionForWrites(cls)) {
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
  // inside a shadow write would break its rollback. (What the classifier
  // last saw is this request only when it came as a Query or a Parse.)
  bool copy = false, txn_control = false;
  if (routing_frame_type_ == 'Q' || routing_frame_type_ == 'P') {
    for (const auto& st : tracker_.classification().statements) {
      if (st.statement_class == ppg::StatementClass::kWrite &&
          absl::EqualsIgnoreCase(absl::string_view(st.command.data(), st.command.size()), "copy"))
        copy = true;
      if (st.txn != ppg::TxnControl::kNone) txn_control = true;
    }
  }
  planned_tables_.assign(targets.begin(), targets.end());
  if (copy && w.role == SecondaryRole::kDualWrite) {
    w.any = false;
    JournalUncaptured("turnout: COPY FROM is not dual-written; its tables are journaled for repair", targets);
  } else if (copy || (w.shadow_write && txn_control)) {
    w.any = false;
  }
  return w;
}

void PgSession::NoteLaterExecute(const routing::Plan& plan, RequestClass cls,
                                 std::span<const std::string_view> targets) {
  if (!IsWrite(cls)) return;
  bool dual = sec_txn_ || sec_txn_lost_;
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
    for (std::string_view t : targets) {
      if (std::find(capturing_->tables.begin(), capturing_->tables.end(), t) == capturing_->tables.end())
        capturing_->tables.emplace_back(t);
      if (std::find(txn_tables_.begin(), txn_tables_.end(), t) == txn_tables_.end()) txn_tables_.emplace_back(t);
    }
  }
}

routing::Plan PgSession::PlanOfAWrite() {
  routing::Request req;
  req.request_class = RequestClass::kWrite;
  req.client = routing::ClientIdentity{user_, application_name_, address_};
  req.connection_id = ctx_.connection_id;
  return reader_->policy().Decide(req, absl::Now());
}

std::optional<PgSession::CarriedWrites> PgSession::BatchOpensTransactionForWrites(RequestClass cls) {
  if (cls != RequestClass::kTxnControl || routing_frame_type_ != 'P') return std::nullopt;
  const auto& statements = tracker_.classification().statements;
  if (statements.size() != 1 || statements[0].txn != ppg::TxnControl::kBegin) return std::nullopt;
  const routing::Plan plan = PlanOfAWrite();
  for (const auto& s : plan.secondaries())
    if (s.role == SecondaryRole::kDualWrite) return CarriedWrites{s.apply, plan.has(routing::kPlanAtomic)};
  return std::nullopt;
}

bool PgSession::WritesAreDualWritten() {
  if (sec_txn_ || sec_txn_lost_) return true;
  const routing::Plan plan = PlanOfAWrite();
  for (const auto& s : plan.secondaries())
    if (s.role == SecondaryRole::kDualWrite) return true;
  return false;
}

awaitable<void> PgSession::PrepareSecondary() {
  const Side side = Other(primary_side_);
  BackendConnection* b = backend(side);
  if ((b != nullptr && b->ready()) || SideDown(side)) co_return;
  std::string notice, error;
  if (!co_await EnsureSynced(side, &notice, &error)) {
    down_until_[static_cast<int>(side)] = Clock::now() + std::chrono::seconds(1);
    ctx_.route.RecordUpstreamError(side);
    LogWarn("pg secondary backend unavailable; its work is journaled",
            {{"route", route().name}, {"backend", BackendName(side)}, {"error", error}});
  } else if (!notice.empty()) {
    LogWarn("pg secondary backend: session state not fully replayed",
            {{"route", route().name}, {"backend", BackendName(side)}, {"error", notice}});
  }
}

// ================================================================== capture

bool PgSession::StartOp(const ppg::Frame& f) {
  TrimOps();
  const PlannedWork w = planned_;
  planned_ = PlannedWork{};
  prepared_ = false;
  const Side side = Other(primary_side_);
  BackendConnection* b = backend(side);
  const bool connected = b != nullptr && b->ready();
  if (w.role == SecondaryRole::kShadow &&
      (!connected || shadow_queued_ >= kMaxShadowOps || sec_ops_.size() >= kMaxOps || sec_bytes_ >= kMaxBytes)) {
    ctx_.route.shadow_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  SecondaryOp& op = sec_ops_.emplace_back();
  answering_for_ = kNoRequest;  // this request may be the one being answered
  if (w.role == SecondaryRole::kShadow) ++shadow_queued_;
  op.request_seq = planned_seq_;
  op.role = w.role;
  op.sync = w.sync;
  op.shadow_write = w.shadow_write;
  op.side = side;
  op.start = Clock::now();
  op.tables = std::move(planned_tables_);
  planned_tables_.clear();
  const bool client_in_txn = tracker_.txn_status() != ppg::TransactionStatus::kIdle;
  if (w.role == SecondaryRole::kDualWrite) {
    op.cls = RequestClass::kWrite;
    // A transaction's end names every table the transaction wrote: lost,
    // it is what a repair must look at.
    if (client_in_txn) {
      for (const auto& t : op.tables)
        if (std::find(txn_tables_.begin(), txn_tables_.end(), t) == txn_tables_.end()) txn_tables_.push_back(t);
      if (op.tables.empty()) op.tables = txn_tables_;
    } else {
      txn_tables_.clear();
    }
    if (sec_txn_lost_) {
      op.failure = "turnout: the secondary lost this transaction; journaled for repair";
    } else if (sec_ops_.size() > kMaxOps || sec_bytes_ >= kMaxBytes) {
      op.failure = "turnout: the secondary's queue is full; journaled for repair";
    } else if (!connected) {
      op.failure = "turnout: backend unavailable (retrying shortly); journaled for repair";
    }
    op.in_txn = sec_txn_;
    op.opens_txn_only = w.opens_txn;
    if (op.failure.empty() && client_in_txn && !sec_txn_) {
      // The client's transaction reaches the secondary with its first write.
      op.begins_txn = true;
      ppg::AppendQuery(&op.begin, "BEGIN");
      op.prefix_replies += 1;
      for (const auto& local : tracker_.state().local_settings()) {
        ppg::AppendQuery(&op.begin, local);
        op.prefix_replies += 1;
      }
      sec_txn_ = true;
      sec_txn_sync_ = op.sync;
      sec_txn_atomic_ = w.atomic_commit;
    } else if (w.atomic_commit && op.in_txn && op.failure.empty()) {
      op.atomic = true;
      holding_ = true;
    }
    if (!op.sync) {
      op.fenced = true;
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
  sec_bytes_ += op.main.size() + op.prefix.size();
  UpdateWriterHold();
  if (f.type == 'Q') {
    op.complete = true;
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
  sec_bytes_ += f.total_size;
  if (f.type != 'S') return false;
  op.complete = true;
  capturing_ = nullptr;
  sec_progress_.Notify();
  return true;
}

// The batch being captured cannot be carried whole: a dual-write is
// journaled (its statement as far as it was seen), shadow work dropped.
void PgSession::AbandonCapture(std::string_view why) {
  SecondaryOp& op = *capturing_;
  capturing_ = nullptr;
  op.complete = true;
  if (op.atomic) {
    // The held frames go to the primary after all, ahead of anything else
    // (FlushClientParsed); the transaction commits in one phase.
    held_for_primary_ = std::move(op.main);
    op.main.clear();
    op.atomic = false;
    holding_ = false;
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
  const std::uint64_t seq = last.request_seq;
  // Sync: the client's next request waits until both sides answered.
  for (;;) {
    const SecondaryOp* op = nullptr;
    for (const auto& o : sec_ops_)
      if (o.request_seq == seq) op = &o;
    if (op == nullptr || op->finished) co_return true;
    co_await sec_progress_.Wait();
  }
}

// ================================================================== the primary's side

// Looked up once per request, not per reply frame (a result may have
// millions of rows while async work queues up).
SecondaryOp* PgSession::OpAnswering(std::uint64_t seq) {
  if (seq != answering_for_) {
    answering_for_ = seq;
    answering_op_ = nullptr;
    for (auto& op : sec_ops_) {
      if (op.request_seq == seq && !op.primary_done) {
        answering_op_ = &op;
        break;
      }
    }
  }
  return answering_op_ != nullptr && !answering_op_->primary_done ? answering_op_ : nullptr;
}

void PgSession::PrimaryOpDone(SecondaryOp& op) {
  op.primary_done = true;
  op.primary_us = MicrosBetween(op.start, Clock::now());
  BackendConnection* b = backend(op.side);
  if (op.atomic) {
    if (!op.skipped && (op.primary.has_error() || op.primary.tags() != "COMMIT"))
      op.main = QueryFrame(absl::StrCat("ROLLBACK PREPARED '", op.gid, "'"));
    sec_txn_ = false;
  } else if (op.role == SecondaryRole::kDualWrite && op.failure.empty()) {
    const bool primary_failed = op.primary.has_error();
    const bool txn_over = op.primary_status == ppg::TransactionStatus::kIdle;
    if (!primary_failed) {
      // The secondary follows the client's transaction while it lasts. A
      // COMMIT of a failed transaction is a ROLLBACK on the primary: so it
      // is on the secondary, never a commit of what came before the failure.
      sec_txn_ = !txn_over;
      if (op.in_txn && txn_over && op.primary.tags() == "ROLLBACK") op.main = QueryFrame("ROLLBACK");
    } else if (op.in_txn && txn_over) {
      // The transaction ended with the error (a COMMIT that failed): it
      // ends on the secondary too, rolled back.
      op.main = QueryFrame("ROLLBACK");
      op.skipped = true;
      sec_txn_ = false;
    } else if (op.in_txn) {
      // A statement failed inside the transaction: not applied on the
      // secondary either, whose transaction stays usable for a ROLLBACK TO
      // SAVEPOINT (the primary refuses everything else until the end).
      op.send_main = false;
      op.skipped = true;
    } else {
      // Nothing was applied on the primary: nothing to apply on the secondary.
      op.send_main = false;
      op.skipped = true;
      op.begin.clear();
      if (op.begins_txn) {
        op.prefix_replies -= 1 + static_cast<int>(tracker_.state().local_settings().size());
        sec_txn_ = false;
      }
    }
    if (tracker_.txn_status() == ppg::TransactionStatus::kIdle) sec_txn_ = false;
  }
  // The secondary's state after this op is the primary's now.
  if (b != nullptr && op.send_main && !op.skipped && op.failure.empty() &&
      !(b->synced() == tracker_.state().snapshot()))
    b->MarkSynced(tracker_.state().snapshot());
  sec_progress_.Notify();
  MaybeFinish(op);
  UpdateWriterHold();
}

// ================================================================== the secondary's side

// Replies come in the order ops were sent: the op found stays the one until
// it is done.
SecondaryOp* PgSession::OpAwaitingReply() {
  if (replying_op_ != nullptr && replying_op_->sent && !replying_op_->secondary_done) return replying_op_;
  replying_op_ = nullptr;
  for (auto& op : sec_ops_) {
    if (op.sent && !op.secondary_done) {
      replying_op_ = &op;
      break;
    }
  }
  return replying_op_;
}

bool PgSession::OnSecondaryFrame(Side side, const ppg::Frame& f) {
  BackendConnection& b = *backend(side);
  if (b.swallow_replies > 0 && f.type != 'A') {
    // Replies to a catch-up replay (EnsureSynced).
    if (f.type == 'E') {
      ppg::ErrorResponse e;
      if (!ppg::Decode(f.payload, &e)) {
        if (!b.swallow_errors.empty()) b.swallow_errors += "; ";
        b.swallow_errors.append(e.message());
      }
    } else if (f.type == 'Z' && --b.swallow_replies == 0) {
      idle_.Notify();
    }
    return false;
  }
  // A backend that is not serving the client only has asynchronous news
  // for it: notifications on the channels the session listens to.
  if (f.type == 'A') return true;
  if (f.type == 'S') {
    ppg::ParameterStatus ps;
    if (!ppg::Decode(f.payload, &ps)) b.SetParameter(ps.name, ps.value);
    return false;
  }
  SecondaryOp* op = OpAwaitingReply();
  if (op == nullptr || op->side != side) return false;
  sec_last_reply_ = Clock::now();
  const int main_reply = op->prefix_replies;
  const int expected = op->prefix_replies + (op->send_main ? 1 : 0) + op->suffix_replies;
  if (op->replies_seen < main_reply || !op->send_main || op->replies_seen > main_reply) {
    // Replies to the replayed state, the BEGIN or the ROLLBACK.
    if (f.type == 'E' && op->prefix_errors.size() < 512) {
      ppg::ErrorResponse e;
      if (!ppg::Decode(f.payload, &e)) {
        if (!op->prefix_errors.empty()) op->prefix_errors += "; ";
        op->prefix_errors.append(e.sqlstate()).append(" ").append(e.message());
      }
    }
  } else {
    op->secondary.OnFrame(f);
    if (f.type == 'Z') op->secondary_us = MicrosBetween(op->sent_at, Clock::now());
  }
  if (f.type != 'Z') return false;
  if (++op->replies_seen < expected) return false;
  op->secondary_done = true;
  sec_progress_.Notify();
  MaybeFinish(*op);
  return false;
}

void PgSession::NoteLargeReply(Side side) {
  SecondaryOp* op = side == primary_side_ ? OpAnswering(tracker_.answering_seq()) : OpAwaitingReply();
  if (op != nullptr) op->large_reply = true;
}

awaitable<void> PgSession::SecondarySender() {
  Timer timer(ex_);
  for (;;) {
    TrimOps();
    SecondaryOp* next = nullptr;
    for (auto& op : sec_ops_) {
      if (!op.sent && !op.secondary_done) {
        next = &op;
        break;
      }
    }
    if (next == nullptr || !next->complete || !next->primary_done) {
      // Nothing to send yet; watch a secondary that stopped answering.
      if (SecondaryOp* waiting = OpAwaitingReply()) {
        const auto quiet = Clock::now() - std::max(waiting->sent_at, sec_last_reply_);
        const auto limit = std::max<Clock::duration>(kReplyTimeout, std::chrono::microseconds(2 * waiting->primary_us));
        if (quiet >= limit) {
          LogWarn("pg secondary backend stopped answering; its work is journaled",
                  {{"route", route().name}, {"backend", BackendName(waiting->side)}});
          if (BackendConnection* b = backend(waiting->side)) b->Close();  // BackendLoop journals the rest
        }
        timer.expires_after(std::chrono::seconds(1));
        co_await (sec_progress_.Wait() || timer.async_wait());
      } else {
        co_await sec_progress_.Wait();
      }
      continue;
    }
    SecondaryOp& op = *next;
    BackendConnection* b = backend(op.side);
    if (op.failure.empty() && (b == nullptr || !b->ready())) {
      op.failure = "turnout: connection to the backend lost; journaled for repair";
      op.failure_kind = JournalKind::kDropped;
    }
    if (!op.failure.empty() || (!op.send_main && op.prefix.empty())) {
      op.secondary_done = true;
      MaybeFinish(op);
      if (!co_await WriteRelease()) co_return;
      continue;
    }
    op.sent = true;
    op.sent_at = Clock::now();
    std::array<asio::const_buffer, 4> parts = {asio::buffer(op.prefix), asio::buffer(op.begin),
                                               asio::const_buffer(), asio::buffer(op.suffix)};
    if (op.send_main) parts[2] = asio::buffer(op.main);
    auto [ec, n] = co_await b->stream().Write(std::span<const asio::const_buffer>(parts.data(), parts.size()));
    if (ec) b->Close();  // BackendLoop sees it and journals what was outstanding
  }
}

// ================================================================== outcome

void PgSession::MaybeFinish(SecondaryOp& op) {
  if (!op.finished && op.primary_done && op.secondary_done) FinishOp(op);
}

void PgSession::FinishOp(SecondaryOp& op) {
  op.finished = true;
  UpdateWriterHold();
  if (op.fenced) fence_.OnResolved(op.fence_seq);
  if (!op.held_z.empty()) {
    release_ += op.held_z;
    op.held_z.clear();
  }
  sec_progress_.Notify();
  if (op.role == SecondaryRole::kShadow) {
    if (op.skipped || op.large_reply || !op.failure.empty() || !op.sent) return;  // not a comparison
    const auto scope = op.shadow_write ? CompareScope::kOutcome : CompareScope::kFull;
    const auto mismatch = CompareDigests(op.primary, op.secondary, scope);
    ctx_.route.RecordShadow(mismatch);
    ctx_.route.RecordRequest(op.side, op.cls, op.secondary_us);
    if (mismatch && ctx_.services->shadow_samples != nullptr) {
      routing::ShadowSample s;
      s.at = absl::Now();
      s.route = route().name;
      s.kind = RouteRuntime::ShadowMismatchName(*mismatch);
      std::vector<std::string> params;
      DescribeRequest(op.main, tracker_.state(), &s.request, &params);
      if (!params.empty()) absl::StrAppend(&s.request, " -- parameters: ", absl::StrJoin(params, ", "));
      s.primary = op.primary.Render();
      s.secondary = op.secondary.Render();
      s.primary_latency_us = op.primary_us;
      s.secondary_latency_us = op.secondary_us;
      ctx_.services->shadow_samples->Add(std::move(s));
    }
    return;
  }
  if (!op.failure.empty() && op.opens_txn_only) {
    // A batch that only opened the transaction wrote nothing: nothing to
    // repair. The transaction's writes are ops of their own (lazy BEGIN).
    SettleIntent(op, 0);
    return;
  }
  if (!op.failure.empty()) {
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kJournaled);
    SettleIntent(op, JournalOp(op, op.failure_kind, op.primary_done ? op.primary.Outcome() : "unknown", op.failure));
    return;
  }
  if (op.skipped) {  // the primary did not apply it
    SettleIntent(op, 0);
    return;
  }
  if (op.atomic) {
    // Phase two: COMMIT PREPARED (or ROLLBACK PREPARED) must succeed.
    if (!op.secondary.has_error()) {
      ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kApplied);
      SettleIntent(op, 0);
      return;
    }
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kFailed);
    SettleIntent(op, JournalOp(op, JournalKind::kFailed, op.primary.Outcome(), op.secondary.Outcome()));
    return;
  }
  auto mismatch = CompareDigests(op.primary, op.secondary, CompareScope::kOutcome);
  if (!mismatch && !op.prefix_errors.empty() && op.begins_txn) mismatch = RouteRuntime::ShadowMismatch::kError;
  if (!mismatch) {
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kApplied);
    SettleIntent(op, 0);
    return;
  }
  ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kFailed);
  std::string secondary = op.secondary.Outcome();
  if (!op.prefix_errors.empty()) absl::StrAppend(&secondary, " (before it: ", op.prefix_errors, ")");
  SettleIntent(op, JournalOp(op,
                             *mismatch == RouteRuntime::ShadowMismatch::kError ? JournalKind::kFailed
                                                                               : JournalKind::kDiverged,
                             op.primary.Outcome(), std::move(secondary)));
}

// ================================================================== the intent record

std::uint32_t PgSession::RecordIntent(std::span<const std::string> tables, Side side) {
  IntentRing* ring = ctx_.services->intents;
  if (ring == nullptr) return IntentRing::kNoSlot;
  const std::string database = SecondaryDatabase(side);
  const IntentWhere where{IntentProtocol::kPostgres, reader_->policy().migration_id(), route().name,
                          BackendName(side), database};
  const std::uint32_t slot = ring->Record(where, tables);
  if (slot != IntentRing::kNoSlot) return slot;
  // No slot can hold it (the ring is full, or its table names are too
  // long): journaled now, before the primary is asked. The entry stays (a
  // repair of tables already equal finds nothing to do); it is counted.
  ring->CountOverflow();
  routing::JournalEntry e;
  e.at = absl::Now();
  e.migration_id = reader_->policy().migration_id();
  e.route = route().name;
  e.backend = BackendName(side);
  e.database = database;
  e.session = ctx_.connection_id;
  e.kind = JournalKind::kDropped;
  e.statement = "(in flight with no intent slot free: journaled before it was sent)";
  e.targets.assign(tables.begin(), tables.end());
  ctx_.services->journal->Append(std::move(e));
  return IntentRing::kNoSlot;
}

// `entry`: the journal entry that now records the op (0: none needed).
void PgSession::SettleIntent(SecondaryOp& op, std::uint64_t entry) {
  IntentRing* ring = ctx_.services->intents;
  if (ring == nullptr) return;
  auto settle = [&](std::uint32_t slot) {
    if (slot == IntentRing::kNoSlot) return;
    if (entry != 0) {
      ring->Journaled(slot, entry);  // freed once the journal is on disk past it
    } else {
      ring->Clear(slot);
    }
  };
  // The client's transaction on the primary after this op: still open, a
  // statement applied on the secondary is not committed there yet.
  const bool txn_open = op.primary_done && op.primary_status != ppg::TransactionStatus::kIdle;
  if (txn_open && entry == 0 && !op.skipped) {
    if (op.intent != IntentRing::kNoSlot) txn_intents_.push_back(op.intent);
    op.intent = IntentRing::kNoSlot;
    return;
  }
  settle(op.intent);
  op.intent = IntentRing::kNoSlot;
  if (txn_open) return;
  // The transaction ended (committed on both sides, rolled back, or
  // journaled with its tables by this op).
  for (std::uint32_t slot : txn_intents_) settle(slot);
  txn_intents_.clear();
}

void PgSession::TrimOps() {
  while (!sec_ops_.empty() && sec_ops_.front().finished && &sec_ops_.front() != capturing_) {
    const SecondaryOp& op = sec_ops_.front();
    sec_bytes_ -= std::min(sec_bytes_, op.main.size() + op.prefix.size());
    if (op.role == SecondaryRole::kShadow) --shadow_queued_;
    if (&op == answering_op_) answering_op_ = nullptr;
    if (&op == replying_op_) replying_op_ = nullptr;
    sec_ops_.pop_front();
  }
}

std::uint64_t PgSession::JournalOp(const SecondaryOp& op, JournalKind kind, std::string primary_outcome,
                                   std::string secondary_outcome) {
  routing::JournalEntry e;
  e.at = absl::Now();
  e.migration_id = reader_->policy().migration_id();
  e.route = route().name;
  e.backend = BackendName(op.side);
  e.database = SecondaryDatabase(op.side);
  e.session = ctx_.connection_id;
  e.kind = kind;
  DescribeRequest(op.main, tracker_.state(), &e.statement, &e.params);
  e.targets = op.tables;
  e.primary_outcome = std::move(primary_outcome);
  e.secondary_outcome = std::move(secondary_outcome);
  return ctx_.services->journal->Append(std::move(e));
}

// The database the session uses on `side` (as MakeLogin picks it).
std::string PgSession::SecondaryDatabase(Side side) const {
  const routing::Backend* b = ctx_.config->FindBackend(BackendName(side));
  return b == nullptr || b->database.empty() ? database_ : b->database;
}

// A write that went to the primary without being captured for the
// secondary: journaled with what is known (its tables), never lost.
void PgSession::JournalUncaptured(std::string_view why, std::span<const std::string_view> tables) {
  uncaptured_write_ = false;
  routing::JournalEntry e;
  e.at = absl::Now();
  e.migration_id = reader_->policy().migration_id();
  e.route = route().name;
  e.backend = BackendName(Other(primary_side_));
  e.database = SecondaryDatabase(Other(primary_side_));
  e.session = ctx_.connection_id;
  e.kind = JournalKind::kDropped;
  e.statement = "(not captured)";
  e.targets.assign(tables.begin(), tables.end());
  e.secondary_outcome = std::string(why);
  ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kJournaled);
  const std::uint64_t entry = ctx_.services->journal->Append(std::move(e));
  // On disk only at the next flush: the intent record covers that window.
  if (IntentRing* ring = ctx_.services->intents) {
    const std::string database = SecondaryDatabase(Other(primary_side_));
    const IntentWhere where{IntentProtocol::kPostgres, reader_->policy().migration_id(), route().name,
                            BackendName(Other(primary_side_)), database};
    const std::uint32_t slot = ring->Record(where, tables);
    if (slot != IntentRing::kNoSlot) ring->Journaled(slot, entry);
  }
}

// ================================================================== losing the secondary

void PgSession::SecondaryLost(Side side) {
  const int i = static_cast<int>(side);
  if (!backends_[i]) return;
  LogWarn("pg secondary backend lost", {{"route", route().name}, {"backend", backends_[i]->backend().name}});
  ctx_.route.RecordUpstreamError(side);
  cancel_slots_->Clear(i);
  backends_[i]->Close();
  dead_backends_.push_back(std::move(backends_[i]));
  down_until_[i] = Clock::now() + std::chrono::seconds(1);
  if (sec_txn_) {
    sec_txn_ = false;
    sec_txn_lost_ = true;
  }
  AbandonSecondaryWork("turnout: connection to the backend lost; journaled for repair", false);
}

void PgSession::AbandonSecondaryWork(std::string_view why, bool session_ending) {
  for (auto& op : sec_ops_) {
    if (op.finished) continue;
    if (!op.secondary_done) {
      if (op.failure.empty()) {
        op.failure = std::string(why);
        op.failure_kind = op.sent ? JournalKind::kFailed : JournalKind::kDropped;
      }
      op.secondary_done = true;
    }
    if (session_ending) op.primary_done = true;  // its outcome will never be known
    MaybeFinish(op);
  }
  capturing_ = nullptr;
  if (session_ending) {
    sec_txn_ = false;
    // A transaction still open ends with the session, rolled back on both
    // sides: its statements' intents go (what was journaled above stays).
    if (IntentRing* ring = ctx_.services->intents)
      for (std::uint32_t slot : txn_intents_) ring->Clear(slot);
    txn_intents_.clear();
  }
  UpdateWriterHold();
  sec_progress_.Notify();
}

awaitable<void> PgSession::WaitSecondaryIdle() {
  for (;;) {
    bool busy = false;
    for (const auto& op : sec_ops_) {
      if (!op.primary_done) break;  // nothing after it can move before the primary answers
      if (!op.finished) busy = true;
    }
    if (!busy) co_return;
    co_await sec_progress_.Wait();
  }
}

awaitable<void> PgSession::FinishSecondaryWork() {
  const Side side = Other(primary_side_);
  BackendConnection* b = backend(side);
  if (sec_ops_.empty() || b == nullptr || !b->ready()) co_return;
  Timer timer(ex_, kFinishTimeout);
  co_await ((SecondarySender() || BackendLoop(side) || WaitSecondaryIdle()) || timer.async_wait());
}

}  // namespace turnout::proxy::pg::detail
