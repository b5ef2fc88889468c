#pragma once
// The migration lifecycle (DESIGN.md §5) and its effect on routing: every
// accepted change is validated, stored (optimistically, so a fleet sharing
// a Postgres store agrees), recorded in the audit history, and compiled into
// per-route policies published to the data plane's route table.
//
// States: Pending → Ready (a route or scope added) → Running ⇄ Paused →
// Completed | Failed; Failed, Running or Paused → RollingBack → RolledBack.
// An illegal transition is FAILED_PRECONDITION (HTTP 409) naming the state.
//
// How a state routes (the policy phase, routing/policy.h):
//   Pending                       everything to old
//   Ready                         the strategy decides: a canary at 5 % sends
//                                 5 % of reads to new as soon as its route is
//                                 attached, so the API guide's walk-through
//                                 (create, PATCH 25 %, 75 %, 100 %) moves
//                                 traffic at each step. big_bang is the
//                                 exception: old until /migrate (after /sync
//                                 it dual-writes to new).
//   Running                       the strategy decides
//   Paused                        the strategy decides (frozen where it is)
//   Completed                     everything to new
//   Failed, RollingBack, RolledBack  everything to old
//
// Routes: a migration created without interlays is attached to every route
// of turnout.yaml that names a `new` backend and is in no other migration
// (a sidecar usually exists to move exactly those routes). A route belongs
// to at most one migration that is not RolledBack.

#include <boost/json/value.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/migration.h"
// The typed commands the service takes; CheckName for the admin layer.
#include "control/migration_request.h"
#include "control/state_store.h"
#include "routing/config.h"
#include "routing/policy.h"
#include "routing/policy_table.h"

namespace turnout::control {

class MigrationService {
 public:
  MigrationService(std::shared_ptr<const routing::Config> config, StateStore* store,
                   routing::RouteTablePublisher* route_table);

  // Loads every stored migration and publishes the route table. Startup
  // fails if the store cannot be read.
  absl::Status Start();
  // Re-reads the store (another sidecar changed it) and republishes when
  // something routing reads changed.
  absl::Status Reload();
  // Re-reads one migration (another sidecar changed or deleted it) by the
  // same rules as Reload(). The route table is republished only when a
  // policy input changed; a progress checkpoint just runs the OnPublish
  // callbacks. Falls back to Reload() after a failed read, so a missed
  // change is picked up with the next notice.
  absl::Status ReloadMigration(const std::string& id);
  bool loaded() const;
  // Route table publications so far (the turnout_control_policy_publishes_total metric).
  std::uint64_t publishes() const { return publishes_.load(std::memory_order_relaxed); }

  // The bodies come parsed by the admin layer (migration_request.h), and the
  // admin layer renders what comes back (MigrationToJson): each operation
  // returns the migration as it now is, Delete as it was.
  absl::StatusOr<Migration> Create(const CreateMigrationCommand& cmd, const std::string& actor);
  std::vector<Migration> List() const;
  absl::StatusOr<Migration> Patch(const std::string& id, const PatchMigrationCommand& cmd, const std::string& actor);
  absl::StatusOr<Migration> AddInterlay(const std::string& id, const std::string& route, const AddInterlayCommand& cmd,
                                        const std::string& actor);
  absl::StatusOr<Migration> AddScope(const std::string& id, const ApiScope& scope, const std::string& actor);
  // sync, migrate, pause, resume, rollback.
  absl::StatusOr<Migration> Transition(const std::string& id, const std::string& action, const std::string& actor);
  absl::StatusOr<Migration> Delete(const std::string& id, const std::string& actor);

  // Data movement (control/data_movement.h) records its progress here so it
  // is stored and versioned like every change. A checkpoint is quiet: no
  // audit entry, no new policy version; give `audit_action` for the few
  // events worth an audit entry (job started, route failed, retry).
  absl::Status SaveProgress(const std::string& id, const DataProgress& progress,
                            const std::string& audit_action = "");
  // Continuous verification (control/continuous_verify.h) records its latest
  // result: only DataProgress::continuous_verification changes, plus, when
  // `counted` (the run finished), verify_runs by one and verify_rows by
  // `rows`. Quiet like a checkpoint; the job's own saves keep these fields.
  absl::Status SaveContinuousVerification(const std::string& id, const boost::json::value& result, bool counted,
                                          std::int64_t rows);
  // The stream back (control/stream_back.h) records the figures of one
  // route (RouteProgress::stream_back) and nothing else; quiet like a
  // checkpoint. Recorded as "stopped" once the migration no longer wants a
  // stream back, whatever the runner says.
  absl::Status SaveStreamBack(const std::string& id, const std::string& route, const StreamProgress& stream_back);
  // POST …/repair (control/repair_job.h): one repair of a migration at a
  // time across the fleet, by the store's exclusive lock "repair:" + id
  // (nullptr while another holder, here or on another sidecar, has it).
  absl::StatusOr<std::unique_ptr<ExclusiveLock>> LockRepair(const std::string& id);
  // Records the repair job's state (Migration::repair) and nothing else;
  // quiet like a checkpoint (no audit entry, no new policy version).
  absl::Status SaveRepair(const std::string& id, const boost::json::value& repair);
  // Every route is copied (and verified). With `complete`, a Running
  // migration whose strategy sends everything to new becomes Completed; else
  // it stays Running with its progress at 100 %. Returns the new state.
  absl::StatusOr<MigrationState> FinishDataMovement(const std::string& id, const DataProgress& progress,
                                                    bool complete);
  // The data movement failed for good (failure_handling): a Running
  // migration becomes Failed with `error`, and so routes to old.
  absl::Status FailDataMovement(const std::string& id, const DataProgress& progress, const std::string& error);

  // A cutover's write window (control/cutover.h) ends: with `flipped` the
  // held strategy becomes the migration's (and a Running migration whose
  // data is moved and whose strategy sends everything to new completes);
  // otherwise the window is abandoned for `reason` and routing stays. Only
  // for the window numbered `epoch`; audited with the hold's length.
  // A cutover caught up (the stream's lag is small): its window starts
  // holding writes. Only for the window numbered `epoch`, still catching up.
  absl::Status HoldCutover(const std::string& id, std::int64_t epoch);
  // `stream_back`: a flip to new prepared the stream back to old
  // (StreamBackWanted). A window back to old opened by `rollback` ends,
  // flipped, in RolledBack.
  absl::Status EndCutover(const std::string& id, std::int64_t epoch, bool flipped, std::int64_t hold_ms,
                          const std::string& reason, bool stream_back = false);

  // A copy of one migration (GET, the dry run, the validator).
  absl::StatusOr<Migration> Snapshot(const std::string& id) const;
  const routing::Config& config() const { return *config_; }

  // Called after every publication (metrics: policy versions, states) and
  // every progress checkpoint, with the service's lock held: do not call
  // back into the service.
  void OnPublish(std::function<void(const std::vector<Migration>&)> cb);

 private:
  using Mutation = std::function<absl::Status(Migration&)>;
  // Applies `change` to a copy of the migration, stores it with the next
  // revision, records the audit entry, and republishes. Without `audit`
  // (progress checkpoints) no audit entry is added, the policy version stays
  // and only the OnPublish callbacks run.
  absl::StatusOr<Migration> Mutate(const std::string& id, const std::string& actor,
                                   const std::string& action, const Mutation& change, bool audit = true);
  void NotifyLocked();
  absl::Status CheckRouteFree(const std::string& route, const std::string& except_id) const;
  absl::Status ValidateForRoutes(const Migration& m) const;
  absl::StatusOr<std::shared_ptr<const routing::Policy>> CompileFor(const Migration& m,
                                                                   const Interlay& interlay) const;
  void PublishLocked();

  std::shared_ptr<const routing::Config> config_;
  StateStore* store_;
  routing::RouteTablePublisher* route_table_;
  mutable std::mutex mu_;
  std::map<std::string, Migration> migrations_;
  // Successful writes of this process (Reload checks none raced its read).
  std::uint64_t local_writes_ = 0;
  bool loaded_ = false;
  // A ReloadMigration read failed: the next one reloads everything.
  bool reload_all_ = false;
  std::atomic<std::uint64_t> publishes_{0};
  std::vector<std::function<void(const std::vector<Migration>&)>> on_publish_;
};

}  // namespace turnout::control
