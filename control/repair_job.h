#pragma once
// POST …/repair as a job (issue 12: repair "runs as a job with progress,
// never on the thread that answers probes and metrics"). The work itself is
// RepairFromJournal (control/journal_repair.h); this file gives it a lock,
// a place in the migration record and metrics.
//
// One repair of a migration at a time, fleet-wide: Begin takes the state
// store's exclusive lock "repair:" + id (MigrationService::LockRepair: an
// in-process lock with the file store, an advisory lock on a connection of
// its own with the Postgres store) and holds it until the job's last record
// is saved. A second Begin, on this sidecar or another, is refused with
// FAILED_PRECONDITION (HTTP 409) naming the runner. A sidecar that dies
// mid-repair loses the lock with its process or connection; its record
// still says "running" until the next repair replaces it.
//
// The record (Migration::repair, GET /api/v1/migrations/{id} with or
// without X-Verbose):
//   {"state": "running", "runner", "actor", "started_at",
//    "progress": {"phase", "route", "table", "rows", "table_rows",
//                 "tables_done", "tables_total", "elapsed_s", "rate"
//                 [, "compared" while a verification pass runs]}}
// saved when the job starts and then once a second while it runs, by a
// ticker thread of the job (a 1,000,000-row repair writes the record a few
// hundred times, not once per batch, and never waits for the store). When it ends: "state" "finished" (RepairFromJournal
// answered; whether everything is equal is in the summary) or "failed" (it
// could not run: a backend unreachable, the migration deleted), with
// "finished_at", "elapsed_s", the last "progress", and a bounded "summary"
// (counts, the first kSummaryFailures failures) or "error". The full result
// is what a waiting POST returns; the record never holds lists that grow
// with the data.
//
// Metrics (process-local, appended to /metrics by the admin API):
//   turnout_repairs_running                      gauge
//   turnout_repairs_total{result}                finished | failed
//   turnout_repair_rows_total{route}             rows (and keys) repaired:
//                                                a table's rows once its
//                                                transaction committed

#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "control/journal_repair.h"
#include "control/migration.h"
#include "control/migration_service.h"
#include "control/state_store.h"

namespace turnout::control {

// The repair a job runs: RepairFromJournal in the process, anything in tests.
using RepairFn = std::function<absl::StatusOr<boost::json::value>(const Migration&, const RepairProgressFn&)>;

// Failures listed by a finished record's summary (the rest are counted).
inline constexpr std::size_t kSummaryFailures = 5;

// The bounded summary a record keeps of RepairFromJournal's result.
boost::json::object RepairSummary(const boost::json::value& result);

class RepairJobs {
 public:
  RepairJobs(MigrationService* migrations, RepairFn repair);
  // Waits for jobs started with Detach (a repair cannot be interrupted, as
  // the admin server waits for its deferred work).
  ~RepairJobs();
  RepairJobs(const RepairJobs&) = delete;
  RepairJobs& operator=(const RepairJobs&) = delete;

  struct Job {
    std::string id;
    std::string actor;
    std::string started_at;
    std::chrono::steady_clock::time_point start;
    std::unique_ptr<ExclusiveLock> lock;
    boost::json::object record;  // as last saved
  };

  // Takes the lock and records the job as running. FAILED_PRECONDITION
  // while a repair of `id` runs (here or on another sidecar); NOT_FOUND for
  // an unknown migration; UNAVAILABLE when the store cannot be reached.
  absl::StatusOr<std::unique_ptr<Job>> Begin(const std::string& id, const std::string& actor);
  // Runs `job` on this thread once `order` (the migration's long-request
  // order, admin_api.cc) is free; the full result, its summary recorded.
  absl::StatusOr<boost::json::value> Run(std::unique_ptr<Job> job, const std::shared_ptr<std::mutex>& order);
  // Runs `job` on a thread of its own and returns at once; `hold` (the
  // admission slot) is kept until the job ends.
  void Detach(std::unique_ptr<Job> job, std::shared_ptr<std::mutex> order, std::shared_ptr<void> hold);

  // Prometheus text of the three families above.
  std::string MetricsText() const;

 private:
  struct Thread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void Save(Job& job);
  void Log(const std::string& line) const;

  MigrationService* const migrations_;
  const RepairFn repair_;
  const std::string instance_id_;

  mutable std::mutex mu_;
  std::list<Thread> threads_;  // Detach's; finished ones joined at the next Detach
  std::int64_t running_ = 0;
  std::map<std::string, std::int64_t> results_;     // result -> jobs
  std::map<std::string, std::int64_t> route_rows_;  // route -> rows repaired
};

}  // namespace turnout::control
