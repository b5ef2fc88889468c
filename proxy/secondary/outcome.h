#pragma once
// The outcome step of secondary work (DESIGN.md §2), one for every
// protocol: once both sides are done with an op, the protocol says what
// happened (an outcome), and this step counts it, journals it and samples
// it with one meaning whatever the protocol. A protocol supplies only the
// words: how to describe the op for the journal and for a shadow sample.
//
// turnout_dualwrite_total{route, result} counts every dual-write op once,
// by its outcome (docs/secondary-work.md "Outcomes"):
//   applied   applied on the secondary with the primary's outcome
//   failed    the secondary refused it (an error where the primary had
//             none), or the connection was lost after it was sent (its
//             outcome there is unknown)
//   diverged  applied on both sides, with different outcomes (affected
//             rows, command tag, reply value)
//   dropped   it never reached the secondary: unreachable or in its
//             back-off window, queue full, too large to keep, not
//             capturable (Postgres COPY FROM), the secondary's copy of the
//             transaction lost
// An op the primary did not apply is no dual-write (nothing is counted).
// Every op not applied is journaled with the kind of its outcome
// (routing::JournalKind: failed, diverged, dropped). When the journal is
// full the entry is still recorded, folded into an overflow entry that
// names only its tables or keys (routing/journal.h), and an error is
// logged at most every 10 s; turnout_dualwrite_journal_full turns 1.
//
// Shadow work is not a dual-write: a comparison is counted in
// turnout_shadow_comparisons_total (and _mismatches_total by kind), a
// mismatch sampled for GET …/shadow; a shadow request the queue had no
// room for is counted in turnout_shadow_dropped_total.
//
// No protocol header here: this folder is shared by proxy/pg and
// proxy/redis (tests/layering_test.cc keeps it so).

#include <cstdint>
#include <optional>

#include "absl/functional/function_ref.h"
#include "proxy/session.h"
#include "routing/journal.h"
#include "routing/shadow_samples.h"

namespace turnout::proxy {
struct ProxyServices;
}  // namespace turnout::proxy

namespace turnout::proxy::secondary {

// The outcomes are the label set of turnout_dualwrite_total itself, so an
// outcome is counted as it is (kCount is no outcome).
using SecondaryOutcome = RouteRuntime::DualWriteResult;

// The outcome of an op whose replies were compared: nullopt applied; an
// error on one side only (kError) failed; any other difference diverged.
SecondaryOutcome OutcomeOfComparison(std::optional<RouteRuntime::ShadowMismatch> mismatch) noexcept;
// The outcome of an op that failed before a comparison, by the journal
// kind the protocol gave the failure (kDropped: never sent; kFailed: sent,
// outcome unknown, or refused).
SecondaryOutcome OutcomeOf(routing::JournalKind kind) noexcept;
// The journal kind of an outcome that is not kApplied.
routing::JournalKind JournalKindOf(SecondaryOutcome outcome) noexcept;
const char* SecondaryOutcomeName(SecondaryOutcome outcome) noexcept;

class OutcomeStep {
 public:
  // Fills what the protocol knows of an op: migration, backend, database,
  // session, statement, parameters, targets, both outcomes. The step sets
  // `at`, `route` and `kind`. Called only when an entry is written.
  using DescribeEntry = absl::FunctionRef<void(routing::JournalEntry&)>;
  // Fills request, primary, secondary and the latencies of a mismatch;
  // the step sets `at`, `route` and `kind`. Called only on a mismatch.
  using DescribeSample = absl::FunctionRef<void(routing::ShadowSample&)>;

  OutcomeStep(RouteRuntime& route, const ProxyServices& services) noexcept : route_(route), services_(services) {}

  // A dual-write op's outcome: counted; journaled unless applied. Returns
  // the journal entry's sequence number (0: none written).
  std::uint64_t DualWrite(SecondaryOutcome outcome, DescribeEntry describe) const;
  // A shadow op whose replies were compared (`mismatch`: how they differ).
  void Shadow(std::optional<RouteRuntime::ShadowMismatch> mismatch, DescribeSample describe) const;
  // A shadow request the queue had no room for.
  void ShadowDropped() const noexcept;

 private:
  RouteRuntime& route_;
  const ProxyServices& services_;
};

}  // namespace turnout::proxy::secondary
