// feature_flag (DESIGN.md §2): an enabled flag's scope, or all traffic, goes
// to new for rollout_percentage of clients, hashed by client identity
// (ClientHash: user, application_name, address), so one client sees one side
// for every request, on every sidecar.
//
// Flag names are scope names. An enabled flag that names no scope covers all
// traffic, as DESIGN.md says; note that a flag meant for a scope not yet
// added therefore moves everything until the scope exists, so add scopes
// before enabling their flags. Scoped eligibility follows strangler_fig:
// every target inside an enabled flag's scope (at least one target); mixed
// requests go to old and are flagged kPlanCrossScope.

#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"
#include "routing/policy_rules.h"
#include "routing/stable_hash.h"

namespace turnout::routing {

absl::Status FeatureFlagSpec::Validate() const {
  for (const auto& [name, enabled] : flags)
    if (name.empty())
      return absl::InvalidArgumentError("strategy.flags: flag name must not be empty");
  return internal::CheckFraction("rollout_percentage", rollout_percentage);
}

namespace internal {

absl::Status CompileFeatureFlag(const FeatureFlagSpec& spec, const CompileContext& ctx,
                                Rules& out) {
  bool any_enabled = false;
  for (const auto& [name, enabled] : spec.flags) {
    if (!enabled) continue;
    any_enabled = true;
    const Scope* scope = nullptr;
    for (const Scope& s : *ctx.scopes)
      if (s.name == name) scope = &s;
    if (scope == nullptr) {
      out.flag_all_traffic = true;
    } else if (auto s = out.scope.Add(*scope, ctx.protocol); !s.ok()) {
      return s;
    }
  }
  const double p = spec.rollout_percentage;
  if (!any_enabled || p <= 0.0) {
    out.SetAllFixed(To(Side::kOld));
  } else if (p >= 1.0) {
    // Exact at 100 %: no hash involved.
    if (out.flag_all_traffic) {
      out.SetAllFixed(To(Side::kNew));
    } else {
      out.SetAllSelected(Selector::kScope);
    }
  } else {
    out.SetAllSelected(Selector::kFlag);
    for (ClassRule& r : out.by_class) r.threshold = PercentageThreshold(p);
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
