#pragma once
// What a migration's record says about its routing (migration_service.h):
// the policy phase of its state, whether the change stream carries a
// route's writes, where a cutover stands (control/cutover.h), and whether
// two records route alike.
//
// Not included by migration_service.h: its readers (data_movement.cc,
// continuous_verify.cc) keep local helpers of the same names.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>

#include "control/migration.h"
#include "routing/config.h"
#include "routing/policy.h"

namespace turnout::control {

// The migration moves data (`data` is not "none").
bool HasData(const Migration& m);
// A data movement has work left: its routes must be copied before the
// migration may complete.
bool DataPending(const Migration& m);
// The policy version CompileFor gives a migration's routes.
std::uint64_t PolicyVersion(const Migration& m);
// The change stream carries the route's writes to the other side (see
// routing::PolicyInputs::writes_by_stream). Postgres routes only.
bool WritesByStream(const Migration& m, const std::string& route);
// Some Postgres route of `m` has its writes carried by the change stream.
bool AnyRouteByStream(const Migration& m, const routing::Config& config);

// A cutover's write window is open (control/cutover.h).
bool CutoverHolding(const Migration& m);
// A cutover is under way: catching up before the hold, or holding.
bool CutoverOpen(const Migration& m);
// A cutover flipped write authority to new and the strategy still writes there.
bool WritesMovedToNew(const Migration& m);
// The record of a window that moves authority back to old (cutover.h).
boost::json::object BackWindow(const Migration& m, const boost::json::value& strategy, bool then_rollback);

// Equal in everything the route table is compiled from: publishing `b` in
// place of `a` would build the same policies.
bool SameRouting(const Migration& a, const Migration& b);

// The policy phase a migration in state `m` routes by (migration_service.h).
routing::MigrationPhase PhaseOf(const Migration& m, routing::StrategyType type);

}  // namespace turnout::control
