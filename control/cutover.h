#pragma once
// A cutover's held write window (issue "Postgres dual-write and cutover on
// the change stream"): when write authority moves from old to new while the
// change stream carries old's writes, no write may reach new before the
// stream has brought every write of old there, and none may reach old after.
//
//   PATCH (authority moves)   the record gets cutover {phase: catching_up,
//                             strategy: the target}; nothing is held yet
//   one sidecar (runner)      fences the stream until a round (fence written,
//                             fence applied) is short or stops shrinking,
//                             then sets phase holding (HoldCutover): the hold
//                             lasts the last stretch, not the stream's lag
//   holding                   every sidecar publishes policies that hold new
//                             write transactions at their start (routing
//                             kPlanHoldWrites)
//   every sidecar (gate)      holds a shared store lock "writes:<id>" while
//                             it may write to old; releases it once the hold
//                             is published here and no transaction that
//                             wrote is still open (StreamPosition::open_writers)
//   one sidecar (runner)      takes "writes:<id>" exclusively: every sidecar
//                             drained; fences the stream on old
//                             (EmitStreamFence) and waits until new applied
//                             past the fence; sets new's sequences past old's;
//                             flips: the target strategy becomes the
//                             migration's (EndCutover), the hold ends
//   timeout                   limits.cutover_timeout: the window is abandoned
//                             (EndCutover without flip), writes resume on old
//
// The window's length is recorded in the record (cutover.hold_ms), the audit
// history and turnout_cutover_write_hold_seconds.
//
// The stream back (new -> old). A flip to new that leaves the migration
// running (anything but a full cutover) prepares, during the window, a
// stream from new to old (PrepareStreamBack: its slot exists before the
// first write reaches new) and records cutover.stream_back; StreamBacks
// (control/stream_back.h) then runs it. Moving authority back (a PATCH
// whose strategy no longer writes to new, or `rollback`) opens the same
// window the other way (cutover.direction "back"): writes held, a fence in
// new's WAL, old applied past it (heard on kAppliedChannel on old), old's
// sequences past new's, then the flip (or RolledBack).

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/migration.h"
#include "control/migration_service.h"
#include "control/state_store.h"
#include "control/stream_back.h"
#include "routing/config.h"
#include "routing/policy_table.h"
#include "routing/stream_positions.h"

namespace turnout::control {

class Cutovers {
 public:
  Cutovers(std::shared_ptr<const routing::Config> config, const routing::RouteTablePublisher* route_table,
           MigrationService* service, StateStore* store, routing::StreamPositions* positions,
           std::function<void(const std::string&)> log = {});
  ~Cutovers();
  Cutovers(const Cutovers&) = delete;
  Cutovers& operator=(const Cutovers&) = delete;

  // MigrationService::OnPublish (its lock is held: only copies).
  void OnMigrations(const std::vector<Migration>& all);
  void Start();
  void Stop();

 private:
  struct Gate;    // this sidecar's shared hold of "writes:<id>"
  struct Runner;  // this sidecar runs the window of one migration
  void Loop();
  // One look at every migration: gates, runners, stream backs. True while
  // a window is open.
  bool Step();
  // The runner's work: flips, or abandons the window.
  void Run(const Migration& m, std::int64_t epoch, const std::atomic<bool>& stop);
  void Log(const std::string& line) const;

  std::shared_ptr<const routing::Config> config_;
  const routing::RouteTablePublisher* route_table_;
  MigrationService* service_;
  StateStore* store_;
  routing::StreamPositions* positions_;
  std::function<void(const std::string&)> log_;

  std::mutex mu_;
  // The latest published, shared (Step runs every millisecond while a
  // window is open: it takes this pointer, not a copy of every record).
  std::shared_ptr<const std::vector<Migration>> migrations_ = std::make_shared<const std::vector<Migration>>();
  std::map<std::string, std::unique_ptr<Gate>> gates_;
  std::map<std::string, std::unique_ptr<Runner>> runners_;
  StreamBacks backs_;  // stepped on the loop's thread, like gates_ and runners_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace turnout::control
