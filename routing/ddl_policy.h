#pragma once
// What a migration lets through of HIGH-risk DDL (DESIGN.md §3 "DDL during a
// migration"): the `ddl` object of the migration's strategy,
//
//   "strategy": {"type": "canary", ..., "ddl": {"high_risk": "allow_outside_scope"}}
//
//   allow_outside_scope  (default) refuse a HIGH statement only where it risks
//                        data the migration moves: one naming a table of the
//                        migration (a table of its scopes; every table when it
//                        has no table scope), or one that names no table but
//                        can reach tables (CASCADE, ALTER SCHEMA ...).
//   refuse               refuse every HIGH statement, in scope or not.
//   allow                refuse nothing.
//
// Whatever the mode, what can remove no rows of the migration is never
// refused: temporary objects (CREATE TEMP in the same session, pg_temp.*),
// and DROP of an object that holds no rows without CASCADE (ROLE, FUNCTION,
// DATABASE, SCHEMA, TYPE, SEQUENCE, EXTENSION ...: the server's own
// dependency checks refuse the drop where a table depends on it). The
// session works that out from the statement (proxy/pg/request_tracker.cc);
// the policy applies the scope rule (routing/policy.cc). Nothing is asked of
// the server: `DROP TABLE IF EXISTS x` of an x outside the migration's tables
// passes; of an x inside them it is refused, as turnout cannot tell without a
// query whether x exists and holds rows.
// A refusal applies only while the route migrates (Prepared, Running, Paused).

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace turnout::routing {

enum class HighRiskDdl : std::uint8_t { kAllowOutsideScope, kRefuse, kAllow };

std::string_view HighRiskDdlName(HighRiskDdl h) noexcept;
// "strategy.ddl.high_risk: unknown value ..., expected one of ..."
absl::StatusOr<HighRiskDdl> ParseHighRiskDdl(std::string_view text);

struct DdlPolicy {
  HighRiskDdl high_risk = HighRiskDdl::kAllowOutsideScope;
  friend bool operator==(const DdlPolicy&, const DdlPolicy&) = default;
};

}  // namespace turnout::routing
