// time_window (DESIGN.md §2): traffic cuts over to new inside
// [window_start, window_end] (both inclusive); `executed` records that the
// cutover succeeded, after which everything stays on new whatever the time.
// Outside the window and not executed, nothing moves: everything on old.
//
// Inside the window, until `executed` is recorded, writes (and DDL and
// transaction control) on new are also dual-written to old, sync: if the
// window closes without success, traffic falls back to old and old has every
// write acknowledged during the window. Without this, falling back would
// silently lose those writes, which DESIGN.md never allows.

#include "absl/strings/str_cat.h"
#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status TimeWindowSpec::Validate() const {
  if (window_start == absl::InfinitePast())
    return absl::InvalidArgumentError("strategy.window_start: required");
  if (window_end == absl::InfinitePast())
    return absl::InvalidArgumentError("strategy.window_end: required");
  if (window_start == absl::InfiniteFuture())
    return absl::InvalidArgumentError("strategy.window_start: must be a finite time");
  if (window_end == absl::InfiniteFuture())
    return absl::InvalidArgumentError("strategy.window_end: must be a finite time");
  if (window_end <= window_start)
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.window_end: must be after window_start (", FormatInstant(window_start),
        "), got ", FormatInstant(window_end)));
  return absl::OkStatus();
}

namespace internal {

absl::Status CompileTimeWindow(const TimeWindowSpec& spec, const CompileContext& /*ctx*/,
                               Rules& out) {
  if (spec.executed) {
    out.SetAllFixed(To(Side::kNew));
    return absl::OkStatus();
  }
  out.SetAllSelected(Selector::kWindow);
  out.window_start = spec.window_start;
  out.window_end = spec.window_end;
  const Plan dual = WithDualWrite(Side::kNew, Apply::kSync);
  out[RequestClass::kWrite].b = dual;
  out[RequestClass::kDdl].b = dual;
  out[RequestClass::kTxnControl].b = dual;
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
