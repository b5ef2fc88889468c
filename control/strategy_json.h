#pragma once
// The `strategy` object of the admin API (and of routes[].strategy in
// turnout.yaml) to routing::StrategySpec and back. Field names and shapes are
// documented in routing/strategy.h. Unknown fields are errors, and every
// error names the field: "strategy.write_mode.policy: expected one of ...".

#include <boost/json/value.hpp>

#include "absl/status/statusor.h"
#include "routing/strategy.h"

namespace turnout::control {

absl::StatusOr<routing::StrategySpec> StrategyFromJson(const boost::json::value& v);

// The strategy sends every read and write to new: the migration completes
// once its data is there.
bool IsFullCutover(const routing::StrategySpec& spec);
// The strategy keeps both sides written (canary dual_write, blue_green with
// keep_standby): a Postgres change stream then runs until the cutover.
bool DualWrites(const routing::StrategySpec& spec);
// The strategy sends writes to new (any of them): moving to it from one
// that does not moves write authority (a cutover, control/cutover.h).
bool WritesToNew(const routing::StrategySpec& spec);
boost::json::object StrategyToJson(const routing::StrategySpec& spec);

}  // namespace turnout::control
