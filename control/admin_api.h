#pragma once
// The admin API of DESIGN.md §5 over HTTP: path routing, authentication and
// the access table, JSON parsing, and the reply shapes
//   {"status":"success","data":…}   {"status":"error","error":"…","details":"…"}
// with the status code derived from the absl::Status in one place.
//
// Every name taken from a path (migration id, route, scope) is checked with
// ValidName before anything else: a bad one is a 400 and nothing changes.
//
// POST …/repair takes an optional body {"wait": true | false}:
//   wait true (the default, and an empty body)  the reply is the repair's
//       full result (200), as before repair became a job;
//   wait false  the job starts and the reply is 202 with
//       {"migration", "repair": <the record's repair object>} and a Location
//       header naming the migration, whose record shows the job's progress
//       and, once it ended, its summary (control/repair_job.h).
// Either way a second repair of the same migration while one runs (on this
// sidecar or another sharing the store) is a 409; any other field, or a
// body that is not such an object, is a 400 and starts nothing.

#include <boost/json/value.hpp>

#include <cstddef>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "control/admin_server.h"
#include "control/auth.h"
#include "control/migration_service.h"
#include "control/repair_job.h"

namespace turnout::control {

struct AdminApiDeps {
  MigrationService* migrations = nullptr;
  const Authenticator* auth = nullptr;
  // Prometheus text exposition of every metric family.
  std::function<std::string()> metrics_text;
  // OK when the process is ready to serve; otherwise the reasons.
  std::function<absl::Status()> readiness;
  // POST …/test and …/verify: run against the real backends.
  std::function<absl::StatusOr<boost::json::value>(const Migration&)> dry_run;
  std::function<absl::StatusOr<boost::json::value>(const Migration&)> verify;
  // GET …/journal: failed or pending secondary writes of the migration's routes.
  std::function<absl::StatusOr<boost::json::value>(const Migration&)> journal;
  // GET …/shadow: sampled shadow mismatches of the migration's routes.
  std::function<absl::StatusOr<boost::json::value>(const Migration&)> shadow;
  // POST …/repair: re-copy what the journal names (and what the verifier
  // finds), telling its progress; run as a job (control/repair_job.h).
  RepairFn repair;
  // test, verify and repair talk to backends: they run as deferred replies
  // (admin_server.h) so probes and metrics never wait for them. At most this
  // many run at once (beyond it: 429 with Retry-After); two for the same
  // migration run one after the other, as they did on the single admin thread.
  std::size_t max_long_requests = kAdminWorkerThreads;
};

// Builds the handler the AdminServer calls for every request.
AdminHandler MakeAdminHandler(AdminApiDeps deps);

}  // namespace turnout::control
