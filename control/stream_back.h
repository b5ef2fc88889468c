#pragma once
// The stream back from new to old after a cutover (issue 11; the window
// that prepares it is control/cutover.h). A flip to new that leaves the
// migration running records cutover.stream_back; from then on one sidecar
// of the fleet (store lock "back:<id>") applies new's writes on old, a
// stream per route (StreamPostgresBack), until the migration no longer
// wants it (StreamBackWanted: it left Running/Paused, or a window back to
// old flipped). Its position lives on old with the rows it applied
// (_turnout.stream_position), so whoever takes the lock next, after a kill
// or a restart, resumes there.
//
// Its figures go to the record about once a second, like the forward
// stream's: progress.routes[].stream_back {slot, phase: streaming |
// stopped, applied_lsn, lag_bytes, lag_seconds, retained_wal_bytes,
// transactions, rows, error, updated_at} (MigrationService::SaveStreamBack).
// Every sidecar marks it "stopped" once the migration no longer wants it
// and drops its slot and publication on new once no migration does.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "control/migration.h"
#include "control/migration_service.h"
#include "control/state_store.h"
#include "routing/config.h"
#include "routing/policy_table.h"

namespace turnout::control {

class StreamBacks {
 public:
  StreamBacks(std::shared_ptr<const routing::Config> config, const routing::RouteTablePublisher* route_table,
              MigrationService* service, StateStore* store, std::function<void(const std::string&)> log);
  ~StreamBacks();
  StreamBacks(const StreamBacks&) = delete;
  StreamBacks& operator=(const StreamBacks&) = delete;

  // One look at `m` (the cutover loop's thread, every tick): starts this
  // sidecar's stream back when wanted and the lock is free; once not
  // wanted, stops it, marks it stopped in the record and drops stale slots.
  void Step(const Migration& m, const std::vector<Migration>& all);
  // Stops the stream backs of migrations that are gone from `all` (deleted).
  void Forget(const std::vector<Migration>& all);
  // Stops every stream back here (shutdown): the record keeps saying
  // "streaming"; the next holder of the lock resumes.
  void Stop();

 private:
  struct Back;
  void Run(const Migration& m, Back& back);
  void StopOne(std::map<std::string, std::unique_ptr<Back>>::iterator it);
  // The record still shows a stream back of `m` running: say it stopped.
  void MarkStopped(const Migration& m);
  // Drops `m`'s slots on new that no migration wants any more.
  void DropStale(const Migration& m, const std::vector<Migration>& all);
  void Log(const std::string& line) const;

  std::shared_ptr<const routing::Config> config_;
  const routing::RouteTablePublisher* route_table_;
  MigrationService* service_;
  StateStore* store_;
  std::function<void(const std::string&)> log_;

  std::map<std::string, std::unique_ptr<Back>> backs_;
  // (migration, epoch) whose stale back slots were dropped here, and when
  // to try again those whose drop did not finish (a slot still in use, new
  // unreachable).
  std::set<std::pair<std::string, std::int64_t>> cleaned_;
  std::map<std::pair<std::string, std::int64_t>, std::chrono::steady_clock::time_point> clean_retry_;
};

}  // namespace turnout::control
