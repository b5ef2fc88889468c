// The secondary's op queue of a PostgreSQL session: ops reach the secondary
// in order, each once its primary answered (SecondarySender); the replies
// of both sides are matched to their op (PrimaryOpDone, OnSecondaryFrame)
// until the op is done on both and finishes (pg_secondary_outcome.cc);
// a lost secondary, or the end of the session, abandons what is left. The
// whole design is in pg_secondary.cc.
//
// Which op goes next, which op a secondary's reply belongs to, and when an
// op is done on both sides is the sender both protocols share
// (proxy/secondary/sender.h, sec_sender_); this file supplies the
// connection, the wire (prefix, BEGIN, main, suffix) and the digest of a
// reply frame (OnSecondaryFrame).

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "protocol/pg/wire.h"
#include "proxy/intent_ring.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/request_text.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using namespace asio::experimental::awaitable_operators;
using routing::JournalKind;
using routing::SecondaryRole;

namespace {

// A secondary silent this long (and at least twice the primary's time) with
// work outstanding is given up, so a hung server cannot hold clients.
constexpr auto kReplyTimeout = std::chrono::seconds(30);
// After the client left, how long queued work may take to reach the secondary.
constexpr auto kFinishTimeout = std::chrono::seconds(10);

std::uint64_t MicrosBetween(Clock::time_point a, Clock::time_point b) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
}

}  // namespace

// ================================================================== the primary's side

// Looked up once per request, not per reply frame (a result may have
// millions of rows while async work queues up).
SecondaryOp* PgSession::OpAnswering(std::uint64_t seq) {
  if (seq != answering_for_) {
    answering_for_ = seq;
    answering_op_ = 0;
    for (const auto& op : sec_ops_) {
      if (op.request_seq == seq && !op.primary_done) {
        answering_op_ = op.seq;
        break;
      }
    }
  }
  SecondaryOp* op = sec_ops_.Find(answering_op_);
  return op != nullptr && !op->primary_done ? op : nullptr;
}

void PgSession::PrimaryOpDone(SecondaryOp& op) {
  op.primary_done = true;
  op.primary_us = MicrosBetween(op.start, Clock::now());
  BackendConnection* b = backend(op.side);
  if (op.atomic) {
    if (!op.skipped && (op.primary.has_error() || op.primary.tags() != "COMMIT"))
      op.main = QueryFrame(absl::StrCat("ROLLBACK PREPARED '", op.gid, "'"));
    carried_.open = false;
  } else if (op.role == SecondaryRole::kDualWrite && op.failure.empty()) {
    const bool primary_failed = op.primary.has_error();
    const bool txn_over = op.primary_status == ppg::TransactionStatus::kIdle;
    if (!primary_failed) {
      // The secondary follows the client's transaction while it lasts. A
      // COMMIT of a failed transaction is a ROLLBACK on the primary: so it
      // is on the secondary, never a commit of what came before the failure.
      carried_.open = !txn_over;
      if (op.in_txn && txn_over && op.primary.tags() == "ROLLBACK") op.main = QueryFrame("ROLLBACK");
    } else if (op.in_txn && txn_over) {
      // The transaction ended with the error (a COMMIT that failed): it
      // ends on the secondary too, rolled back.
      op.main = QueryFrame("ROLLBACK");
      op.skipped = true;
      carried_.open = false;
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
        carried_.open = false;
      }
    }
    if (tracker_.txn_status() == ppg::TransactionStatus::kIdle) carried_.open = false;
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

// The sender marked the op's secondary side done (answered, or passed over
// with nothing to send).
void PgSession::SecondaryDone(SecondaryOp& op) {
  sec_progress_.Notify();
  MaybeFinish(op);
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
  // Replies come in the order ops were sent: the frame is the head's.
  const SecondaryOp* head = sec_sender_.Head();
  if (head == nullptr || head->side != side) return false;
  sec_last_reply_ = Clock::now();
  sec_sender_.OnReply([&](SecondaryOp& op) {
    const int main_reply = op.prefix_replies;
    const int expected = op.prefix_replies + (op.send_main ? 1 : 0) + op.suffix_replies;
    if (op.replies_seen < main_reply || !op.send_main || op.replies_seen > main_reply) {
      // Replies to the replayed state, the BEGIN or the ROLLBACK.
      if (f.type == 'E' && op.prefix_errors.size() < 512) {
        ppg::ErrorResponse e;
        if (!ppg::Decode(f.payload, &e)) {
          if (!op.prefix_errors.empty()) op.prefix_errors += "; ";
          op.prefix_errors.append(e.sqlstate()).append(" ").append(e.message());
        }
      }
    } else {
      op.secondary.OnFrame(f);
      if (f.type == 'Z') op.secondary_us = MicrosBetween(op.sent_at, Clock::now());
    }
    // Each part (replay, BEGIN, the request, ROLLBACK) ends with ReadyForQuery.
    if (f.type != 'Z' || ++op.replies_seen < expected) return secondary::Digest::kMore;
    return secondary::Digest::kDone;
  });
  return false;
}

void PgSession::NoteLargeReply(Side side) {
  SecondaryOp* op = side == primary_side_ ? OpAnswering(tracker_.answering_seq()) : sec_sender_.Head();
  if (op != nullptr) op->large_reply = true;
}

awaitable<void> PgSession::SecondarySender() {
  Timer timer(ex_);
  for (;;) {
    TrimOps();
    SecondaryOp* next = sec_sender_.NextSendable();
    if (next == nullptr) {
      // Nothing to send yet; watch a secondary that stopped answering.
      if (SecondaryOp* waiting = sec_sender_.Head()) {
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
      sec_sender_.Passed();
      sec_sender_.Done(op);
      if (!co_await WriteRelease()) co_return;
      continue;
    }
    sec_sender_.Sent(op);
    op.sent_at = Clock::now();
    std::array<asio::const_buffer, 4> parts = {asio::buffer(op.prefix), asio::buffer(op.begin),
                                               asio::const_buffer(), asio::buffer(op.suffix)};
    if (op.send_main) parts[2] = asio::buffer(op.main);
    auto [ec, n] = co_await b->stream().Write(std::span<const asio::const_buffer>(parts.data(), parts.size()));
    if (ec) b->Close();  // BackendLoop sees it and journals what was outstanding
  }
}

// ================================================================== finished ops

// An op finishes (pg_secondary_outcome.cc) once both sides are done with it
// (MaybeFinish: the sender hands it to FinishOp). Finished ops leave the
// queue from its head; the batch being captured is not released until it
// is complete (EndCapture).
void PgSession::TrimOps() {
  sec_ops_.Trim();
  sec_sender_.Trimmed();
}

// ================================================================== losing the secondary

void PgSession::SecondaryLost(Side side) {
  const int i = static_cast<int>(side);
  if (!backends_[i]) return;
  LogWarn("pg secondary backend lost", {{"route", route().name}, {"backend", backends_[i]->backend().name}});
  ctx_.route.RecordUpstreamError(side);
  cancel_slots_->Clear(i);
  backends_[i]->Close();
  // Every session of the process backs off (proxy/secondary/backend_health.h).
  ctx_.services->backend_health->ReportFailure(backends_[i]->backend().name, Clock::now());
  dead_backends_.push_back(std::move(backends_[i]));
  carried_.Lose();
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
      sec_sender_.MarkDone(op);
    }
    if (session_ending) op.primary_done = true;  // its outcome will never be known
    MaybeFinish(op);
  }
  // Every op is done: none awaits a reply any more.
  sec_sender_.FailInFlight([](SecondaryOp&) {});
  EndCapture();
  if (session_ending) {
    carried_.open = false;
    // A transaction still open ends with the session, rolled back on both
    // sides: its statements' intents go (what was journaled above stays).
    if (IntentRing* ring = ctx_.services->intents)
      for (std::uint32_t slot : carried_.intents) ring->Clear(slot);
    carried_.intents.clear();
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

// Everything before the request was answered (the barrier), so every op
// queued can finish: sent and answered, or journaled when the secondary is
// lost or stops answering (kReplyTimeout). An async write waits at most
// secondary::kAsyncRoomWait.
awaitable<void> PgSession::WaitForRoom(bool sync) {
  using namespace asio::experimental::awaitable_operators;
  TrimOps();
  if (sec_ops_.HasRoom(0)) co_return;
  Timer limit(ex_);
  if (sync) limit.expires_at(Clock::time_point::max());
  else limit.expires_after(secondary::kAsyncRoomWait);
  for (;;) {
    const auto woken = co_await (sec_progress_.Wait() || limit.async_wait());
    TrimOps();
    if (sec_ops_.HasRoom(0) || woken.index() == 1) co_return;
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
