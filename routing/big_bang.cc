// big_bang (DESIGN.md §2): before `migrate` all traffic goes to old (the phase
// overlay in policy.cc), after it all traffic goes to new at once.

#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status BigBangSpec::Validate() const { return absl::OkStatus(); }

namespace internal {

absl::Status CompileBigBang(const BigBangSpec& /*spec*/, const CompileContext& /*ctx*/,
                            Rules& out) {
  out.SetAllFixed(To(Side::kNew));
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
