// strangler_fig (DESIGN.md §2): requests inside a scope whose feature is true
// go to new, the rest to old. Feature names are scope names.
//
// A request touching several tables or keys goes to new only if every one of
// them is inside an enabled feature's scope; otherwise (some outside, or no
// target at all, e.g. `SELECT 1` or PING) it goes to old, which still holds
// every table. A request that touched both is flagged kPlanCrossScope so the
// session can count it: a join across the strangled boundary is a sign that
// the feature's scope is incomplete.
//
// An enabled feature that names no scope (yet) matches nothing: features may
// be declared before their scope is added with POST .../api/{scope}.

#include "absl/strings/str_cat.h"
#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status StranglerFigSpec::Validate() const {
  for (const auto& [name, enabled] : features)
    if (name.empty())
      return absl::InvalidArgumentError("strategy.features: feature name must not be empty");
  return absl::OkStatus();
}

namespace internal {

absl::Status CompileStranglerFig(const StranglerFigSpec& spec, const CompileContext& ctx,
                                 Rules& out) {
  for (const Scope& scope : *ctx.scopes) {
    auto it = spec.features.find(scope.name);
    if (it == spec.features.end() || !it->second) continue;
    if (auto s = out.scope.Add(scope, ctx.protocol); !s.ok()) return s;
  }
  if (out.scope.empty()) {
    out.SetAllFixed(To(Side::kOld));
  } else {
    out.SetAllSelected(Selector::kScope);
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
