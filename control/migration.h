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

// Data movement of one route (DESIGN.md §6), recorded by the sidecar that runs
// the job after every batch so that a restart, or another sidecar, resumes
// where it stopped.
// A Postgres route moved by change stream (control/pg_change_stream.h).
// The stream back from new to old after a cutover (control/stream_back.h)
// has the same figures with new as the source and old as the target.
struct StreamProgress {
  std::string slot;               // empty: the route is not streamed
  std::string phase;              // copy | streaming | caught_up; back: streaming | stopped
  std::string applied_lsn;        // on new, with the rows (exactly-once resume point)
  std::int64_t lag_bytes = 0;     // old's WAL sent position minus applied
  double lag_seconds = 0;         // age of the oldest change not yet applied
  std::int64_t retained_wal_bytes = 0;  // WAL the slot keeps on old
  std::int64_t transactions = 0;  // source transactions applied
  std::int64_t rows = 0;          // row changes applied
  // The stream back only (the forward stream's are the route's): its last
  // connection error while it retries, and when it last reported.
  std::string error;
  std::string updated_at;
};

struct RouteProgress {
  std::string route;
  std::string phase = "pending";  // pending | copying | done | failed
  std::int64_t copied = 0;        // rows (Postgres) or keys (Redis) read from old and applied
  std::int64_t written = 0;       // of those, inserted or changed on new (the rest kept by the rule)
  std::int64_t total = 0;         // estimate; 0 while unknown
  double ratio = 0;               // 0..1; 1 only once done
  double rate = 0;                // copied per second over the last interval
  boost::json::value checkpoint;  // where a resumed copy continues (backfill-specific)
  std::vector<std::string> notes; // tables without a primary key, sequences advanced, ...
  int attempts = 0;               // retries used (failure_handling retry_then_all)
  std::string error;
  std::string updated_at;
  StreamProgress stream;
  // The stream back of this route (new -> old) once a cutover flipped
  // writes to new and the migration runs on; "stopped" once it ended.
  // Written only by MigrationService::SaveStreamBack, about once a second
  // like `stream`; the data movement's own saves keep it.
  StreamProgress stream_back;
};

// Adds `note` to the route's notes unless it is there already.
void AddNote(RouteProgress& p, const std::string& note);

struct DataProgress {
  // Empty: no data movement. pending (after /migrate) | running | paused |
  // verifying | done | failed (rollback_all or retries exhausted) | stopped
  // (rolled back while copying).
  std::string status;
  std::string runner;  // instance id of the sidecar that runs (or ran) the job
  std::string started_at;
  std::string finished_at;
  std::vector<RouteProgress> routes;
  boost::json::value verification;  // Verify()'s report once every route finished
  // Continuous verification (`data.verify.continuous`, control/continuous_verify.h):
  // the latest run's report (with "at", "runner" and, after a failed run,
  // "error"), successful runs so far and rows compared over all of them
  // (old_rows summed per run: cumulative). Written only by
  // MigrationService::SaveContinuousVerification; the data movement's own
  // saves keep them.
  boost::json::value continuous_verification;
  std::int64_t verify_runs = 0;
  std::int64_t verify_rows = 0;

  bool empty() const { return status.empty(); }
  // Something to show: data movement, or continuous verification (which
  // also runs with data "none").
  bool shown() const { return !empty() || !continuous_verification.is_null(); }
  // Nothing is left to run: done, failed or stopped.
  bool finished() const { return status == "done" || status == "failed" || status == "stopped"; }
  // Mean of the routes' ratios.
  double Ratio() const;
};

boost::json::object DataProgressToJson(const DataProgress& p);
DataProgress DataProgressFromJson(const boost::json::value& v);

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
  // The revision of the last audited change: the version of the routing
  // policies. Progress checkpoints bump `revision` but not this, so a data
  // movement does not churn policy versions across the fleet. 0: `revision`.
  std::uint64_t policy_revision = 0;
  std::string last_error;
  // The write window of a cutover (control/cutover.h): null, or
  // {"phase": "catching_up", "strategy": <the strategy once flipped>,
  //  "epoch", "started_at"} ("waiting_for_data" first for big_bang's
  //  /migrate), then "phase": "holding" ("hold_started_at"),
  //  then {"phase": "done" | "abandoned", "hold_ms", "reason"}.
  boost::json::value cutover;
  // The last POST …/repair (control/repair_job.h): null, or {"state":
  // "running" | "finished" | "failed", "runner", "actor", "started_at",
  // "progress": {phase, route, table, rows, tables_done, tables_total,
  // elapsed_s, rate, …}} and, once ended, "finished_at", "elapsed_s" and a
  // bounded "summary" (or "error"). Written only by MigrationService::SaveRepair.
  boost::json::value repair;
  DataProgress progress;
  // The last kMaxAuditEntries audited changes, oldest first (AppendAudit).
  std::vector<AuditEntry> history;
  // Older entries dropped to keep the record bounded.
  std::uint64_t history_dropped = 0;
};

// The audit history is bounded so a migration's record (the state file, the
// store row) stays small whatever is PATCHed: at most kMaxAuditEntries
// entries, and a before/after body whose JSON exceeds kMaxAuditBodyBytes is
// shown as {"truncated": true, "bytes": n, "sha256": hex} (its largest
// members first, so the small ones stay readable).
inline constexpr std::size_t kMaxAuditEntries = 100;
inline constexpr std::size_t kMaxAuditBodyBytes = 16 * 1024;
boost::json::value BoundAuditBody(boost::json::value body);
// Appends `e` (bodies bounded), dropping the oldest entries past the limit.
void AppendAudit(Migration& m, AuditEntry e);

// The cutover record's phase ("catching_up", "holding", "done",
// "abandoned"; "" when none) and epoch (0 when none): the one reader of
// Migration::cutover.
std::string CutoverPhase(const Migration& m);
std::int64_t CutoverEpoch(const Migration& m);
// A window that has not flipped or ended: waiting for the data (big_bang's
// /migrate), catching up, or holding.
bool CutoverPending(const Migration& m);
// The window moves authority back from new to old ("direction": "back").
bool CutoverBack(const Migration& m);
// A stream from new back to old was prepared at a flip to new and still
// runs ("stream_back"): until a window back to old flips.
bool StreamBackWanted(const Migration& m);

// The API form. `verbose` adds interlays, scopes, progress, history (X-Verbose: true).
boost::json::object MigrationToJson(const Migration& m, bool verbose);
// The stored form (always complete) and its inverse.
boost::json::object MigrationToStored(const Migration& m);
absl::StatusOr<Migration> MigrationFromStored(const boost::json::value& v);

// RFC 3339 UTC timestamp of now, second precision ("2024-01-15T10:30:00Z").
std::string NowRfc3339();

}  // namespace turnout::control
