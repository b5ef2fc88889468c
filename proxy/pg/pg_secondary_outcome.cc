// The outcome of a PostgreSQL session's secondary op, once both sides
// answered (FinishOp): a shadow op's replies are compared and counted, a
// dual-write is counted as applied, or journaled with its statement,
// parameters and tables when it failed, diverged or could not be sent; and
// the intent record (proxy/intent_ring.h) that covered the op meanwhile is
// settled. The whole design is in pg_secondary.cc.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxy/intent_ring.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/request_text.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using routing::JournalKind;
using routing::SecondaryRole;

// ================================================================== outcome

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

// ================================================================== the journal

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

}  // namespace turnout::proxy::pg::detail
