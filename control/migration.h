#pragma once
// A migration as the admin API and the state stores see it (DESIGN.md §5):
// identity, the strategy / data / failure_handling objects as the operator
// gave them (validated), the lifecycle state, the routes ("interlays") and
// scopes ("apis") it covers, and its audit history. Plain data with a JSON
// form; the migration service owns the rules that change it.

#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace turnout::control {

enum class MigrationState { kPending, kReady, kRunning, kPaused, kCompleted, kFailed, kRollingBack, kRolledBack };
// "Pending", "Ready", ... as the API shows them.
const char* MigrationStateName(MigrationState s);
absl::StatusOr<MigrationState> ParseMigrationState(absl::string_view text);

// A route moved by the migration: `route` is a route name of turnout.yaml,
// `endpoint` the backend it moves to.
struct Interlay {
  std::string route;
  std::string endpoint;
};

// A scope: a named subset of traffic, Postgres tables or Redis key globs.
struct ApiScope {
  std::string name;
  std::vector<std::string> tables;
  std::vector<std::string> keys;
};

struct AuditEntry {
  std::string at;      // RFC 3339
  std::string actor;   // token subject, or "config" / "system"
  std::string action;  // "create", "patch", "migrate", ...
  boost::json::value before;
  boost::json::value after;
};

struct Migration {
  std::string id;
  std::string uuid;
  std::string description;
  boost::json::value strategy;
  boost::json::value data = "none";
  boost::json::value failure_handling = "rollback_all";
  MigrationState state = MigrationState::kPending;
  bool synced = false;  // /sync ran: dual-write armed where the strategy asks
  std::vector<Interlay> interlays;
  std::vector<ApiScope> apis;
  std::string created_at;
  std::string updated_at;
  // Bumped on every change; stores use it for optimistic updates.
  std::uint64_t revision = 0;
  std::string last_error;
  std::vector<AuditEntry> history;
};

// The API form. `verbose` adds interlays, scopes, history (X-Verbose: true).
boost::json::object MigrationToJson(const Migration& m, bool verbose);
// The stored form (always complete) and its inverse.
boost::json::object MigrationToStored(const Migration& m);
absl::StatusOr<Migration> MigrationFromStored(const boost::json::value& v);

// RFC 3339 UTC timestamp of now, second precision ("2024-01-15T10:30:00Z").
std::string NowRfc3339();

}  // namespace turnout::control
