#pragma once
// Continuous verification (issue 12, "Continuous mode"): while a migration
// whose `data` has `"verify": {"continuous": true, "interval_s": n}` is
// Running, Verify(config, migration) (control/backend_inspector.h) runs
// every n seconds (default 30) on this class's own thread, never on the
// admin thread. The latest report, the runs so far and the rows compared go
// into the migration record (DataProgress::continuous_verification,
// verify_runs, verify_rows) through MigrationService::SaveContinuousVerification,
// which changes only those fields: the data movement job's checkpoints and
// these saves never overwrite each other.
//
// Who runs it: the sidecar holding the store's exclusive lock
// "verify:" + id (TryLockExclusive, as data movement does with "data:" + id,
// but a lock of its own: verification also runs with data "none" and after
// the copy finished, when nobody holds the data lock). One sidecar of a
// fleet; another takes over within lock_retry when the holder dies.
//
// No run while a route is still being copied (its differences would be the
// copy's backlog, not findings): a route counts as copied once its phase is
// done or its change stream is streaming / caught up.
//
// Throttle and progress: with `"rows_per_second": n` a run compares at most
// n rows (Postgres) or keys (Redis) per second, in chunks of at most n. While
// it runs, the record's continuous_verification holds the last report (or
// nothing yet) plus "progress": {route, table, rows, elapsed_s, rate,
// rows_per_second}, saved at most once a second; a finished report carries
// the same figures as "pace".
//
// Stop() ends a run waiting on its throttle at once; a run in the middle of
// a comparison is waited for (bounded by the backends' timeouts).

#include <boost/json/value.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/migration.h"
#include "control/migration_service.h"
#include "control/state_store.h"
#include "routing/config.h"

namespace turnout::control {

// `data.verify`, with defaults (validated by the migration service).
struct ContinuousVerifySpec {
  bool continuous = false;
  std::chrono::seconds interval{30};
  std::int64_t rows_per_second = 0;  // the throttle (control/verify_pace.h); 0: none
};
ContinuousVerifySpec ContinuousVerifySpecOf(const boost::json::value& data);

// Rows compared by a Verify() report: old_rows over every table plus
// keys_compared over every Redis route.
std::int64_t RowsCompared(const boost::json::value& report);

struct ContinuousVerifyOptions {
  std::string instance_id = "turnout-0";
  std::chrono::milliseconds lock_retry{2000};
  // Tests and benchmarks may replace the verifier.
  std::function<absl::StatusOr<boost::json::value>(const routing::Config&, const Migration&)> verify;
  std::function<void(const std::string&)> log;
};

class ContinuousVerifier {
 public:
  ContinuousVerifier(std::shared_ptr<const routing::Config> config, MigrationService* service, StateStore* store,
                     ContinuousVerifyOptions options);
  ~ContinuousVerifier();
  ContinuousVerifier(const ContinuousVerifier&) = delete;
  ContinuousVerifier& operator=(const ContinuousVerifier&) = delete;

  void Start();
  void Stop();
  // The service's OnPublish callback (its lock is held: only records and wakes).
  void OnMigrations(const std::vector<Migration>& all);

 private:
  struct Held {
    std::unique_ptr<ExclusiveLock> lock;
    std::chrono::steady_clock::time_point next_run;
  };
  void Loop();
  // One pass: locks taken or dropped, due runs made. Returns when to look again.
  std::chrono::steady_clock::time_point Pass();
  void RunOnce(const std::string& id);
  bool Stopping();
  void Log(const std::string& line) const;

  const std::shared_ptr<const routing::Config> config_;
  MigrationService* const service_;
  StateStore* const store_;
  const ContinuousVerifyOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool poked_ = false;
  bool stopping_ = false;
  std::vector<Migration> latest_;
  std::thread thread_;
  // Loop thread only.
  std::map<std::string, Held> held_;
  std::map<std::string, std::chrono::steady_clock::time_point> next_try_;
  std::map<std::string, std::string> said_;
};

}  // namespace turnout::control
