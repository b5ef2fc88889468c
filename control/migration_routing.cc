// What a migration's record says about its routing: the policy phase of
// its state, whether the change stream carries a route's writes, where a
// cutover stands, and whether two records route alike (so a reload can
// skip republishing). Read by the service's lifecycle and by the saves of
// its jobs; none of them changes the record, except BackWindow, which only
// builds the cutover record a caller stores.
#include "control/migration_routing.h"

#include <boost/json.hpp>

#include "control/strategy_json.h"

namespace turnout::control {
namespace json = boost::json;

bool HasData(const Migration& m) {
  if (m.data.is_string()) return m.data.as_string() != "none";
  const auto* t = m.data.is_object() ? m.data.as_object().if_contains("type") : nullptr;
  return t != nullptr && t->is_string() && t->as_string() != "none";
}

// A data movement has work left: its routes must be copied before the
// migration may complete.
bool DataPending(const Migration& m) { return HasData(m) && !m.progress.finished(); }

// The policy version CompileFor gives a migration's routes.
std::uint64_t PolicyVersion(const Migration& m) { return m.policy_revision != 0 ? m.policy_revision : m.revision; }

// The change stream carries the route's writes to the other side (see
// routing::PolicyInputs::writes_by_stream): the migration moves data, not
// with `data.method: copy`, the runner did not find the source unable to
// stream, and the data movement has not ended. Postgres routes only.
bool WritesByStream(const Migration& m, const std::string& route) {
  if (!HasData(m) || m.progress.finished()) return false;
  if (m.data.is_object())
    if (const auto* method = m.data.as_object().if_contains("method"); method && *method == "copy") return false;
  for (const auto& r : m.progress.routes)
    if (r.route == route && r.stream.phase == "unavailable") return false;
  return true;
}

// A cutover's write window is open (control/cutover.h).
bool CutoverHolding(const Migration& m) { return CutoverPhase(m) == "holding"; }
// A cutover is under way: catching up before the hold, or holding.
bool CutoverOpen(const Migration& m) { return CutoverHolding(m) || CutoverPhase(m) == "catching_up"; }

// A cutover flipped write authority to new (control/cutover.h) and the
// strategy still writes there.
bool WritesMovedToNew(const Migration& m) {
  if (CutoverPhase(m) != "done") return false;
  auto spec = StrategyFromJson(m.strategy);
  return spec.ok() && WritesToNew(*spec);
}

// The record of a window that moves authority back to old (cutover.h):
// to `strategy`, or, `then_rollback`, to RolledBack once old has every
// write new took. The stream back keeps running through it.
json::object BackWindow(const Migration& m, const json::value& strategy, bool then_rollback) {
  json::object c{{"phase", "catching_up"}, {"strategy", strategy},       {"epoch", CutoverEpoch(m) + 1},
                 {"direction", "back"},   {"stream_back", true},        {"started_at", NowRfc3339()}};
  if (then_rollback) c["then"] = "rollback";
  return c;
}

// Some Postgres route of `m` has its writes carried by the change stream.
bool AnyRouteByStream(const Migration& m, const routing::Config& config) {
  for (const auto& i : m.interlays) {
    const routing::Route* r = config.FindRoute(i.route);
    if (r != nullptr && r->protocol == routing::Protocol::kPostgres && WritesByStream(m, i.route)) return true;
  }
  return false;
}

// Equal in everything PublishLocked reads (CompileFor, PhaseOf): publishing
// `b` in place of `a` would build the same policies. Progress, history,
// description, data and failure handling are not among them.
bool SameRouting(const Migration& a, const Migration& b) {
  if (a.state != b.state || a.synced != b.synced || PolicyVersion(a) != PolicyVersion(b) || a.strategy != b.strategy ||
      CutoverHolding(a) != CutoverHolding(b) || CutoverPending(a) != CutoverPending(b))
    return false;
  if (a.interlays.size() != b.interlays.size() || a.apis.size() != b.apis.size()) return false;
  for (std::size_t i = 0; i < a.interlays.size(); ++i)
    if (a.interlays[i].route != b.interlays[i].route || a.interlays[i].endpoint != b.interlays[i].endpoint ||
        WritesByStream(a, a.interlays[i].route) != WritesByStream(b, b.interlays[i].route))
      return false;
  for (std::size_t i = 0; i < a.apis.size(); ++i)
    if (a.apis[i].name != b.apis[i].name || a.apis[i].tables != b.apis[i].tables || a.apis[i].keys != b.apis[i].keys)
      return false;
  return true;
}

routing::MigrationPhase PhaseOf(const Migration& m, routing::StrategyType type) {
  using P = routing::MigrationPhase;
  switch (m.state) {
    case MigrationState::kPending: return P::kNotStarted;
    case MigrationState::kReady:
      if (type == routing::StrategyType::kBigBang) return m.synced ? P::kPrepared : P::kNotStarted;
      return P::kExecuting;
    case MigrationState::kRunning:
      // big_bang's /migrate window (cutover.h) has not flipped yet: old.
      if (type == routing::StrategyType::kBigBang && CutoverPending(m)) return m.synced ? P::kPrepared : P::kNotStarted;
      return P::kExecuting;
    case MigrationState::kPaused: return P::kPaused;
    case MigrationState::kCompleted: return P::kCompleted;
    case MigrationState::kFailed:
    case MigrationState::kRollingBack:
    case MigrationState::kRolledBack: return P::kRolledBack;
  }
  return P::kNotStarted;
}

}  // namespace turnout::control
