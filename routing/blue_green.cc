// blue_green (DESIGN.md §2): everything goes to the active side
// (active_is_new). With keep_standby, writes, DDL and transaction control are
// also dual-written to the standby, sync, so flipping active_is_new back is an
// instant rollback that loses nothing: the standby has every acknowledged
// write. Reads never touch the standby.

#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status BlueGreenSpec::Validate() const { return absl::OkStatus(); }

namespace internal {

absl::Status CompileBlueGreen(const BlueGreenSpec& spec, const CompileContext& /*ctx*/,
                              Rules& out) {
  const Side active = spec.active_is_new ? Side::kNew : Side::kOld;
  out.SetAllFixed(To(active));
  if (spec.keep_standby) {
    const Plan dual = WithDualWrite(active, Apply::kSync);
    out[RequestClass::kWrite].a = dual;
    out[RequestClass::kDdl].a = dual;
    out[RequestClass::kTxnControl].a = dual;
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
