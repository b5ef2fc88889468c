#pragma once
// The compiled, immutable, versioned routing decision table of one route
// (DESIGN.md §1 "policy"). The control plane compiles one from the route's
// migration (strategy spec, phase, scopes) and this sidecar's context, and
// publishes it through a RouteTable (routing/policy_table.h); sessions call
// Decide() for every request. A Policy never changes after Compile: a new
// strategy or phase is a new Policy with a higher version.
//
// Phase overlay (applied before the strategy):
//   kNotStarted  Pending/Ready, or no migration       everything to old
//   kPrepared    after /sync, before /migrate         old; writes also
//                dual-written to new where the strategy asks (canary
//                dual_write, blue_green keep_standby)
//   kExecuting   Running (after /migrate)             the strategy decides
//   kPaused      Paused                               the strategy decides:
//                a pause freezes the rollout (data movement, automatic
//                progress) where it is, as pausing a canary in Argo Rollouts
//                or Flagger keeps its weight; moving traffic is a PATCH or a
//                rollback, never a side effect of pausing
//   kCompleted   Completed                            everything to new
//   kRolledBack  Failed, RollingBack, RolledBack      everything to old
//
// Request classes (DESIGN.md §2 table, per strategy in routing/<name>.cc):
//   kRead        the strategy's read rule; fenceable when dual-writes are async
//   kWrite       the strategy's write rule (write_mode for canary)
//   kDdl         the write rule, except that a dual-write of DDL is always
//                sync, and under a canary cutover split DDL goes to old with a
//                sync dual-write to new so both schemas stay equal. HIGH risk
//                on a migrating route (kPrepared, kExecuting, kPaused) is
//                flagged kPlanRefused as the strategy's `ddl.high_risk` says
//                (routing/ddl_policy.h): by default only where it names a
//                table the migration moves (its scopes' tables; any table
//                when it has no table scope) or names no table at all.
//   kTxnControl  the write rule as for a write touching no table/key: primary
//                plus the dual-write secondary when writes are dual. The
//                session sends BEGIN/COMMIT/ROLLBACK to its transaction's
//                pinned primary instead, and to the secondary only where it
//                has lazily begun (DESIGN.md §3); Decide gives the default
//                for a statement outside a transaction.
//   kSession,    the write rule's primary, no secondaries: the side that owns
//   kAdmin       the data. The session records session state and replays it
//                on every connection it opens (DESIGN.md §3), so SET and
//                friends need no secondary here.
// Requests with no targets never match a scope (strangler_fig,
// feature_flag with scoped flags) and go to old.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "routing/config.h"
#include "routing/ddl_policy.h"
#include "routing/plan.h"
#include "routing/policy_rules.h"
#include "routing/request.h"
#include "routing/scope.h"
#include "routing/strategy.h"

namespace turnout::routing {

enum class MigrationPhase : std::uint8_t {
  kNotStarted,
  kPrepared,
  kExecuting,
  kPaused,
  kCompleted,
  kRolledBack,
};
std::string_view MigrationPhaseName(MigrationPhase p) noexcept;

// This sidecar, as rolling_update and geographic see it (Config::instance_id
// and Config::region).
struct SidecarContext {
  std::string instance_id;
  std::string region;
};

struct PolicyInputs {
  std::string route;  // route name, for logs and RouteTable keys
  Protocol protocol = Protocol::kPostgres;
  std::string migration_id;  // empty: the route is in no migration
  // The backend Side::kNew stands for on this route (the migration's
  // interlay endpoint); empty means the route's configured `new`.
  std::string new_backend;
  // Set by the control plane (e.g. the migration's revision); reported as the
  // policy version metric. RouteTable versions are separate.
  std::uint64_t version = 0;
  StrategySpec strategy = BigBangSpec{};
  MigrationPhase phase = MigrationPhase::kNotStarted;
  std::vector<Scope> scopes;
  SidecarContext sidecar;
  // Overrides the strategy's `ddl.high_risk` with `allow` when set.
  bool allow_high_risk_ddl = false;
  // Postgres: the migration's change stream carries every committed write to
  // the other side (control/pg_change_stream.h), so no plan sends writes
  // there again as statements (a second evaluation would differ: now(),
  // sequences, defaults). Shadow work is kept.
  bool writes_by_stream = false;
  // A cutover's write window (control/cutover.h): writes and DDL are held
  // at their start (kPlanHoldWrites) until the flip is published.
  bool hold_writes = false;
};

class Policy {
 public:
  // Validates the strategy (with the route's protocol) and the scopes, and
  // compiles the decision table. Errors name the field, e.g.
  // "strategy.read_percentage: must be between 0 and 1, got 1.5".
  static absl::StatusOr<std::shared_ptr<const Policy>> Compile(PolicyInputs inputs);

  // A route outside any migration: everything to old.
  static std::shared_ptr<const Policy> Passthrough(std::string route, Protocol protocol,
                                                   std::uint64_t version = 0);

  // The plan for one request at `now`. No allocation, no locks, no clock.
  Plan Decide(const Request& request, absl::Time now) const noexcept;

  const std::string& route() const noexcept { return inputs_.route; }
  Protocol protocol() const noexcept { return inputs_.protocol; }
  const std::string& migration_id() const noexcept { return inputs_.migration_id; }
  std::uint64_t version() const noexcept { return inputs_.version; }
  MigrationPhase phase() const noexcept { return inputs_.phase; }
  StrategyType strategy_type() const noexcept { return TypeOf(inputs_.strategy); }
  const PolicyInputs& inputs() const noexcept { return inputs_; }
  // HIGH-risk DDL may be refused: the route migrates (kPrepared,
  // kExecuting, kPaused) and `ddl.high_risk` is not `allow`.
  bool refuses_high_risk_ddl() const noexcept { return refuse_high_risk_ddl_; }
  HighRiskDdl high_risk_ddl() const noexcept { return high_risk_ddl_; }
  // Would HIGH-risk DDL naming `targets` be refused (the scope rule of
  // `allow_outside_scope`; every target for `refuse`)?
  bool RefusesHighRiskDdl(std::span<const std::string_view> targets) const noexcept;
  // Redis shadow writes rewrite their keys under this prefix (shadow_traffic
  // with shadow_writes); empty otherwise.
  std::string_view scratch_key_prefix() const noexcept { return scratch_key_prefix_; }

  std::string DebugString() const;

  // Public for std::make_shared; use Compile or Passthrough.
  struct PrivateTag {};
  Policy(PrivateTag, PolicyInputs inputs);

 private:
  PolicyInputs inputs_;
  internal::Rules rules_;
  bool refuse_high_risk_ddl_ = false;
  HighRiskDdl high_risk_ddl_ = HighRiskDdl::kAllowOutsideScope;
  // The migration's tables for the DDL rule: every table of its Postgres
  // scopes; empty with ddl_all_tables_ when it has none (the whole route moves).
  ScopeMatcher ddl_tables_;
  bool ddl_all_tables_ = true;
  std::string scratch_key_prefix_;
};

// The hash a kSplit rule compares: connection id, ClientHash, or the first
// target (falling back to the connection id when there is none). Exposed for
// tests and for sessions that log which bucket a client fell in.
std::uint64_t StickyHash(const Request& request, Stickiness stickiness) noexcept;

}  // namespace turnout::routing
