#pragma once
// Internal to routing/: the compiled form of a policy, and the per-strategy
// compile functions (routing/<strategy>.cc) that fill it. Not for sessions or
// the control plane; they use routing/policy.h.
//
// A policy is one ClassRule per request class. A rule picks between two
// precomputed plans, `a` (the old-side choice) and `b` (the new-side choice),
// by one selector; kFixed always takes `a`. Everything that does not depend
// on the request (phase, sidecar instance and region, blue/green side,
// percentages 0 and 1) is resolved at compile time.

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "routing/config.h"
#include "routing/plan.h"
#include "routing/request.h"
#include "routing/scope.h"
#include "routing/strategy.h"

namespace turnout::routing {

struct SidecarContext;

namespace internal {

enum class Selector : std::uint8_t {
  kFixed,   // a
  kSplit,   // b iff StickyHash(request, stickiness) < threshold
  kScope,   // b iff every target is in the scope matcher (at least one target)
  kFlag,    // b iff eligible (all traffic, or every target in scope) and ClientHash < threshold
  kWindow,  // b iff window_start <= now <= window_end
};

struct ClassRule {
  Selector selector = Selector::kFixed;
  Stickiness stickiness = Stickiness::kConnection;
  std::uint64_t threshold = 0;
  Plan a;
  Plan b;
};

struct Rules {
  std::array<ClassRule, kRequestClassCount> by_class{};
  ScopeMatcher scope;             // kScope, kFlag
  bool flag_all_traffic = false;  // kFlag: eligibility needs no scope match
  absl::Time window_start = absl::InfinitePast();
  absl::Time window_end = absl::InfinitePast();

  ClassRule& operator[](RequestClass c) { return by_class[static_cast<int>(c)]; }
  const ClassRule& operator[](RequestClass c) const { return by_class[static_cast<int>(c)]; }

  // Every class: fixed plan `p`.
  void SetAllFixed(const Plan& p);
  // Every class: selector `s` between "all to old" and "all to new", with
  // secondaries left empty.
  void SetAllSelected(Selector s);
};

// What a strategy compiles against besides its own spec.
struct CompileContext {
  Protocol protocol = Protocol::kPostgres;
  const std::vector<Scope>* scopes = nullptr;
  const SidecarContext* sidecar = nullptr;
};

// Helpers for building plans.
Plan To(Side primary);
Plan WithDualWrite(Side primary, Apply apply);  // secondary: the other side
Plan WithShadow(Side primary);                  // secondary: the other side, async
Apply ToApply(DualWriteApply a);
Side AuthoritySide(Authority a);

// The plans of a strategy while its migration executes (Running or Paused).
absl::Status CompileBigBang(const BigBangSpec& spec, const CompileContext& ctx, Rules& out);
absl::Status CompileCanary(const CanarySpec& spec, const CompileContext& ctx, Rules& out);
absl::Status CompileBlueGreen(const BlueGreenSpec& spec, const CompileContext& ctx, Rules& out);
absl::Status CompileShadowTraffic(const ShadowTrafficSpec& spec, const CompileContext& ctx,
                                  Rules& out);
absl::Status CompileRollingUpdate(const RollingUpdateSpec& spec, const CompileContext& ctx,
                                  Rules& out);
absl::Status CompileStranglerFig(const StranglerFigSpec& spec, const CompileContext& ctx,
                                 Rules& out);
absl::Status CompileFeatureFlag(const FeatureFlagSpec& spec, const CompileContext& ctx,
                                Rules& out);
absl::Status CompileGeographic(const GeographicSpec& spec, const CompileContext& ctx, Rules& out);
absl::Status CompileTimeWindow(const TimeWindowSpec& spec, const CompileContext& ctx, Rules& out);

// The dual-write a strategy asks for once /sync has prepared the migration
// (before /migrate): canary dual_write, blue_green keep_standby. Writes stay
// on old and the other side receives them.
struct PreparedDualWrite {
  bool enabled = false;
  Apply apply = Apply::kSync;
  bool atomic = false;
};
PreparedDualWrite PreparedDualWriteOf(const StrategySpec& spec);

// Validation helper: "strategy.<field>: must be between 0 and 1, got <v>".
absl::Status CheckFraction(std::string_view field, double v);

}  // namespace internal
}  // namespace turnout::routing
