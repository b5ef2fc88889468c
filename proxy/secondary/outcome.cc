#include "proxy/secondary/outcome.h"

#include <atomic>
#include <chrono>
#include <utility>

#include "absl/time/clock.h"
#include "proxy/logging.h"
#include "proxy/session_context.h"

namespace turnout::proxy::secondary {

using Mismatch = RouteRuntime::ShadowMismatch;
using routing::JournalKind;

namespace {

// At most one "journal full" line every 10 s for the whole process.
bool ShouldLogJournalFull() {
  static std::atomic<std::int64_t> last{0};
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::int64_t prev = last.load(std::memory_order_relaxed);
  return now - prev >= 10 && last.compare_exchange_strong(prev, now, std::memory_order_relaxed);
}

}  // namespace

SecondaryOutcome OutcomeOfComparison(std::optional<Mismatch> mismatch) noexcept {
  if (!mismatch) return SecondaryOutcome::kApplied;
  return *mismatch == Mismatch::kError ? SecondaryOutcome::kFailed : SecondaryOutcome::kDiverged;
}

SecondaryOutcome OutcomeOf(JournalKind kind) noexcept {
  switch (kind) {
    case JournalKind::kFailed: return SecondaryOutcome::kFailed;
    case JournalKind::kDiverged: return SecondaryOutcome::kDiverged;
    case JournalKind::kDropped: return SecondaryOutcome::kDropped;
  }
  return SecondaryOutcome::kFailed;
}

JournalKind JournalKindOf(SecondaryOutcome outcome) noexcept {
  switch (outcome) {
    case SecondaryOutcome::kDiverged: return JournalKind::kDiverged;
    case SecondaryOutcome::kDropped: return JournalKind::kDropped;
    case SecondaryOutcome::kApplied:
    case SecondaryOutcome::kFailed:
    case SecondaryOutcome::kCount: break;
  }
  return JournalKind::kFailed;
}

const char* SecondaryOutcomeName(SecondaryOutcome outcome) noexcept {
  return RouteRuntime::DualWriteResultName(outcome);
}

std::uint64_t OutcomeStep::DualWrite(SecondaryOutcome outcome, DescribeEntry describe) const {
  route_.RecordDualWrite(outcome);
  if (outcome == SecondaryOutcome::kApplied || services_.journal == nullptr) return 0;
  routing::JournalEntry e;
  describe(e);
  e.at = absl::Now();
  e.route = route_.route.name;
  e.kind = JournalKindOf(outcome);
  // Full: this entry is folded into an overflow entry (its targets only).
  const bool full = services_.journal->full();
  const std::string backend = full ? e.backend : std::string();
  const std::uint64_t entry = services_.journal->Append(std::move(e));
  if (full && ShouldLogJournalFull())
    LogError("dual-write journal full: missed secondary writes are recorded by tables or keys only (repair, or raise "
             "journal.max_entries)",
             {{"route", route_.route.name}, {"backend", backend}});
  return entry;
}

void OutcomeStep::Shadow(std::optional<Mismatch> mismatch, DescribeSample describe) const {
  route_.RecordShadow(mismatch);
  if (!mismatch || services_.shadow_samples == nullptr) return;
  routing::ShadowSample s;
  describe(s);
  s.at = absl::Now();
  s.route = route_.route.name;
  s.kind = RouteRuntime::ShadowMismatchName(*mismatch);
  services_.shadow_samples->Add(std::move(s));
}

void OutcomeStep::ShadowDropped() const noexcept {
  route_.shadow_dropped.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace turnout::proxy::secondary
