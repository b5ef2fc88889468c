#pragma once
// Off-path connections to the real backends for the control plane (libpq and
// hiredis, never on the relay path): log in, read versions and schemas, and
// compute the counts and checksums the dry run (POST …/test) and the
// validator (POST …/verify) report.

#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/migration.h"
#include "routing/config.h"

namespace turnout::control {

// POST /api/v1/migrations/{id}/test: reach and log in to both sides of every
// route, compare Postgres schemas of the tables in scope (all user tables
// when no scope names tables) or Redis versions; report what would block.
absl::StatusOr<boost::json::value> DryRun(const routing::Config& config, const Migration& m);

// POST /api/v1/migrations/{id}/verify: per table, key ranges digested on
// both sides and bisected down to the rows that differ (control/pg_verify.h:
// each table's entry names them by primary key, with the differing columns);
// per Redis scope key counts and per-key value comparison. Differences name
// the table or key.
//
// Consistency: a Postgres route whose change stream runs (its progress says
// "streaming") is compared in "lsn" mode, else in "recheck" mode
// (control/pg_verify.h); each route and table says which in "consistency".
absl::StatusOr<boost::json::value> Verify(const routing::Config& config, const Migration& m);

// The key globs a Redis route of the migration compares: its API scopes'
// keys, or every key ("*") when no scope names keys.
std::vector<std::string> RedisKeyGlobs(const Migration& m);

// Where a run is, after each chunk of rows or keys (continuous verification
// saves it in the record).
struct VerifyProgress {
  std::string route, table;  // table: "keys" for a Redis route
  std::int64_t rows = 0;     // compared so far in this run (rows and keys)
  double elapsed_seconds = 0;
  double rate = 0;           // rows / elapsed_seconds
  std::int64_t rows_per_second = 0;  // the budget; 0: unthrottled
};

struct VerifyOptions {
  // The throttle (data.verify.rows_per_second, control/verify_pace.h); 0: none.
  std::int64_t rows_per_second = 0;
  // After every chunk; a status other than OK ends the run with it.
  std::function<absl::Status(const VerifyProgress&)> progress;
  // Asked while the throttle waits: true ends the run (Cancelled).
  std::function<bool()> stopping;
  // "lsn" mode: how long a chunk waits for the stream to apply past old's snapshot.
  absl::Duration lsn_wait = absl::Seconds(10);
  // Only the routes of this protocol (repair compares Redis keys itself).
  std::optional<routing::Protocol> only;
};
absl::StatusOr<boost::json::value> Verify(const routing::Config& config, const Migration& m,
                                          const VerifyOptions& options);

}  // namespace turnout::control
