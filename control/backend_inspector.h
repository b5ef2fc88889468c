#pragma once
// Off-path connections to the real backends for the control plane (libpq and
// hiredis, never on the relay path): log in, read versions and schemas, and
// compute the counts and checksums the dry run (POST …/test) and the
// validator (POST …/verify) report.

#include <boost/json/value.hpp>

#include "absl/status/statusor.h"
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
absl::StatusOr<boost::json::value> Verify(const routing::Config& config, const Migration& m);

}  // namespace turnout::control
