// The outcome step both protocols share (proxy/secondary/outcome.h): each
// outcome is counted once under its own label of turnout_dualwrite_total,
// every outcome but applied leaves a journal entry of its kind (also when
// the journal is full), and shadow comparisons are counted and sampled.
#include "proxy/secondary/outcome.h"

#include <gtest/gtest.h>

#include <memory>

#include "proxy/session_context.h"

namespace turnout::proxy::secondary {
namespace {

using Result = RouteRuntime::DualWriteResult;
using routing::JournalKind;

routing::Route NamedRoute() {
  routing::Route r;
  r.name = "r1";
  return r;
}

class OutcomeStepTest : public ::testing::Test {
 protected:
  OutcomeStepTest() {
    services_.journal = journal_.get();
    services_.shadow_samples = &samples_;
  }
  std::uint64_t Count(Result r) const { return route_.dual_writes[static_cast<int>(r)].load(); }
  std::uint64_t DualWrite(SecondaryOutcome o) {
    return OutcomeStep(route_, services_).DualWrite(o, [](routing::JournalEntry& e) {
      e.backend = "new";
      e.statement = "SET k v";
      e.targets = {"k"};
    });
  }

  RouteRuntime route_{NamedRoute()};
  std::unique_ptr<routing::Journal> journal_ = routing::Journal::InMemory({.max_entries = 2});
  routing::ShadowSamples samples_;
  ProxyServices services_;
};

TEST_F(OutcomeStepTest, AppliedIsCountedAndNotJournaled) {
  EXPECT_EQ(DualWrite(SecondaryOutcome::kApplied), 0u);
  EXPECT_EQ(Count(Result::kApplied), 1u);
  EXPECT_EQ(Count(Result::kFailed) + Count(Result::kDiverged) + Count(Result::kDropped), 0u);
  EXPECT_EQ(journal_->PendingCount(), 0u);
}

TEST_F(OutcomeStepTest, EachOtherOutcomeIsCountedOnceAndJournaledWithItsKind) {
  const struct {
    SecondaryOutcome outcome;
    Result label;
    JournalKind kind;
  } cases[] = {{SecondaryOutcome::kFailed, Result::kFailed, JournalKind::kFailed},
               {SecondaryOutcome::kDiverged, Result::kDiverged, JournalKind::kDiverged},
               {SecondaryOutcome::kDropped, Result::kDropped, JournalKind::kDropped}};
  for (const auto& c : cases) {
    auto journal = routing::Journal::InMemory({});
    RouteRuntime route(NamedRoute());
    ProxyServices services;
    services.journal = journal.get();
    const std::uint64_t seq = OutcomeStep(route, services).DualWrite(c.outcome, [](routing::JournalEntry& e) {
      e.backend = "new";
      e.statement = "SET k v";
    });
    EXPECT_NE(seq, 0u) << SecondaryOutcomeName(c.outcome);
    for (int r = 0; r < static_cast<int>(Result::kCount); ++r)
      EXPECT_EQ(route.dual_writes[r].load(), r == static_cast<int>(c.label) ? 1u : 0u)
          << SecondaryOutcomeName(c.outcome) << " label " << RouteRuntime::DualWriteResultName(static_cast<Result>(r));
    const auto pending = journal->Pending();
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_EQ(pending[0].kind, c.kind);
    EXPECT_EQ(pending[0].route, "r1");
    EXPECT_EQ(pending[0].backend, "new");
    EXPECT_EQ(pending[0].statement, "SET k v");
  }
}

TEST_F(OutcomeStepTest, AFullJournalStillRecordsTheTargetsAndTheOutcomeIsCounted) {
  for (int i = 0; i < 4; ++i) EXPECT_NE(DualWrite(SecondaryOutcome::kDropped), 0u);
  EXPECT_TRUE(journal_->full());
  EXPECT_EQ(Count(Result::kDropped), 4u);
  // Two entries, then one overflow entry naming the key.
  const auto pending = journal_->Pending();
  ASSERT_EQ(pending.size(), 3u);
  EXPECT_EQ(pending[2].statement, routing::Journal::kOverflowStatement);
  EXPECT_EQ(pending[2].targets, std::vector<std::string>{"k"});
}

TEST_F(OutcomeStepTest, OutcomesFollowTheComparisonAndTheJournalKind) {
  EXPECT_EQ(OutcomeOfComparison(std::nullopt), SecondaryOutcome::kApplied);
  EXPECT_EQ(OutcomeOfComparison(RouteRuntime::ShadowMismatch::kError), SecondaryOutcome::kFailed);
  EXPECT_EQ(OutcomeOfComparison(RouteRuntime::ShadowMismatch::kValue), SecondaryOutcome::kDiverged);
  EXPECT_EQ(OutcomeOfComparison(RouteRuntime::ShadowMismatch::kCommandTag), SecondaryOutcome::kDiverged);
  for (auto k : {JournalKind::kFailed, JournalKind::kDiverged, JournalKind::kDropped})
    EXPECT_EQ(JournalKindOf(OutcomeOf(k)), k);
  EXPECT_STREQ(SecondaryOutcomeName(SecondaryOutcome::kDiverged), "diverged");
  EXPECT_STREQ(SecondaryOutcomeName(SecondaryOutcome::kDropped), "dropped");
}

TEST_F(OutcomeStepTest, ShadowMismatchIsCountedAndSampledAMatchOnlyCounted) {
  int described = 0;
  auto describe = [&](routing::ShadowSample& s) {
    ++described;
    s.request = "GET k";
    s.primary = "\"a\"";
    s.secondary = "\"b\"";
  };
  OutcomeStep step(route_, services_);
  step.Shadow(std::nullopt, describe);
  step.Shadow(RouteRuntime::ShadowMismatch::kValue, describe);
  step.ShadowDropped();
  EXPECT_EQ(described, 1);
  EXPECT_EQ(route_.shadow_compared.load(), 2u);
  EXPECT_EQ(route_.shadow_matched.load(), 1u);
  EXPECT_EQ(route_.shadow_mismatches[static_cast<int>(RouteRuntime::ShadowMismatch::kValue)].load(), 1u);
  EXPECT_EQ(route_.shadow_dropped.load(), 1u);
  const auto recent = samples_.Recent("r1");
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].kind, "value");
  EXPECT_EQ(recent[0].request, "GET k");
  // Shadow work is no dual-write.
  for (const auto& c : route_.dual_writes) EXPECT_EQ(c.load(), 0u);
}

}  // namespace
}  // namespace turnout::proxy::secondary
