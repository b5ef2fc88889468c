// The outcome of a PostgreSQL session's secondary op, once both sides
// answered (FinishOp): a shadow op's replies are compared, a dual-write's
// outcome (applied, failed, diverged, dropped) is decided here and handed
// to the outcome step both protocols share (proxy/secondary/outcome.h:
// metrics, journal with its statement, parameters and tables, samples); and
// the intent record (proxy/intent_ring.h) that covered the op meanwhile is
// settled. The whole design is in pg_secondary.cc.

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxy/intent_ring.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/request_text.h"
#include "proxy/secondary/outcome.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using routing::JournalKind;
using routing::SecondaryRole;

namespace {

// An applied dual-write: counted (proxy/secondary/outcome.h); no journal
// entry, so 0.
std::uint64_t CountApplied(const SessionContext& ctx) {
  return secondary::OutcomeStep(ctx.route, *ctx.services)
      .DualWrite(secondary::SecondaryOutcome::kApplied, [](routing::JournalEntry&) {});
}

}  // namespace

// ================================================================== outcome

void PgSession::FinishOp(SecondaryOp& op) {
  op.finished = true;
  UpdateWriterHold();
  if (op.seq == held_z_op_) {
    release_ += held_z_;
    held_z_.clear();
    held_z_op_ = 0;
  }
  sec_progress_.Notify();
  if (op.role == SecondaryRole::kShadow) {
    if (op.skipped || op.large_reply || !op.failure.empty() || !op.sent) return;  // not a comparison
    const auto scope = op.shadow_write ? CompareScope::kOutcome : CompareScope::kFull;
    const auto mismatch = CompareDigests(op.primary, op.secondary, scope);
    ctx_.route.RecordRequest(op.side, op.cls, op.secondary_us);
    secondary::OutcomeStep(ctx_.route, *ctx_.services).Shadow(mismatch, [&](routing::ShadowSample& s) {
      std::vector<std::string> params;
      DescribeRequest(op.main, tracker_.state(), &s.request, &params);
      if (!params.empty()) absl::StrAppend(&s.request, " -- parameters: ", absl::StrJoin(params, ", "));
      s.primary = op.primary.Render();
      s.secondary = op.secondary.Render();
      s.primary_latency_us = op.primary_us;
      s.secondary_latency_us = op.secondary_us;
    });
    return;
  }
  if (!op.failure.empty() && op.opens_txn_only) {
    // A batch that only opened the transaction wrote nothing: nothing to
    // repair. The transaction's writes are ops of their own (lazy BEGIN).
    SettleIntent(op, 0);
    return;
  }
  if (!op.failure.empty()) {
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
      SettleIntent(op, CountApplied(ctx_));
      return;
    }
    SettleIntent(op, JournalOp(op, JournalKind::kFailed, op.primary.Outcome(), op.secondary.Outcome()));
    return;
  }
  auto mismatch = CompareDigests(op.primary, op.secondary, CompareScope::kOutcome);
  if (!mismatch && !op.prefix_errors.empty() && op.begins_txn) mismatch = RouteRuntime::ShadowMismatch::kError;
  const secondary::SecondaryOutcome outcome = secondary::OutcomeOfComparison(mismatch);
  if (outcome == secondary::SecondaryOutcome::kApplied) {
    SettleIntent(op, CountApplied(ctx_));
    return;
  }
  std::string secondary_outcome = op.secondary.Outcome();
  if (!op.prefix_errors.empty()) absl::StrAppend(&secondary_outcome, " (before it: ", op.prefix_errors, ")");
  SettleIntent(op, JournalOp(op, secondary::JournalKindOf(outcome), op.primary.Outcome(),
                             std::move(secondary_outcome)));
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
    if (op.intent != IntentRing::kNoSlot) carried_.intents.push_back(op.intent);
    op.intent = IntentRing::kNoSlot;
    return;
  }
  settle(op.intent);
  op.intent = IntentRing::kNoSlot;
  if (txn_open) return;
  // The transaction ended (committed on both sides, rolled back, or
  // journaled with its tables by this op).
  for (std::uint32_t slot : carried_.intents) settle(slot);
  carried_.intents.clear();
}

// ================================================================== the journal

// A dual-write not applied: counted by the outcome of its journal kind and
// journaled (proxy/secondary/outcome.h).
std::uint64_t PgSession::JournalOp(const SecondaryOp& op, JournalKind kind, std::string primary_outcome,
                                   std::string secondary_outcome) {
  return secondary::OutcomeStep(ctx_.route, *ctx_.services)
      .DualWrite(secondary::OutcomeOf(kind), [&](routing::JournalEntry& e) {
        e.migration_id = reader_->policy().migration_id();
        e.backend = BackendName(op.side);
        e.database = SecondaryDatabase(op.side);
        e.session = ctx_.connection_id;
        DescribeRequest(op.main, tracker_.state(), &e.statement, &e.params);
        e.targets = op.tables;
        e.primary_outcome = std::move(primary_outcome);
        e.secondary_outcome = std::move(secondary_outcome);
      });
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
  const Side side = Other(primary_side_);
  const std::uint64_t entry = secondary::OutcomeStep(ctx_.route, *ctx_.services)
                                  .DualWrite(secondary::SecondaryOutcome::kDropped, [&](routing::JournalEntry& e) {
                                    e.migration_id = reader_->policy().migration_id();
                                    e.backend = BackendName(side);
                                    e.database = SecondaryDatabase(side);
                                    e.session = ctx_.connection_id;
                                    e.statement = "(not captured)";
                                    e.targets.assign(tables.begin(), tables.end());
                                    e.secondary_outcome = std::string(why);
                                  });
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
