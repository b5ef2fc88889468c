#pragma once
// Data movement (DESIGN.md §6): when POST …/migrate moves a migration with
// `data` other than "none" to Running, a job copies every route's data from
// its old backend to the route's endpoint, then runs the validator.
//
//   MigrationService ──OnPublish──► DataMovement (reconciler thread)
//                                     │ Running, progress not finished,
//                                     │ no local job, TryLockExclusive("data:" + id)
//                                     ▼
//                                   job thread ── CopyPostgres / CopyRedis per route
//                                     │ every batch: SaveProgress (checkpoint),
//                                     │ then go on only while still Running
//                                     ▼
//                                   Verify → FinishDataMovement | FailDataMovement
//
// Exactly one sidecar of a fleet runs a job: the lock is a Postgres advisory
// lock with the `postgres` store (released when its holder dies, so another
// sidecar resumes within `lock_retry`), an in-process lock with the file
// store. The others see the job's progress in the migration record.
//
// A job stops at the next batch boundary when the migration leaves Running
// (pause, rollback) or the process stops; its checkpoint stays. Whoever gets
// the lock next (after resume, a restart, or the holder's death) continues
// from the checkpoint. Re-applying a batch is harmless: every write is an
// upsert by primary key or a RESTORE by key under the same conflict rule.
//
// Failure handling across routes (`failure_handling`):
//   rollback_all     the migration becomes Failed (routing back to old)
//   retry_then_all   the failed route is retried from its checkpoint up to
//                    retry_count times (1 s, 2 s, ... apart), then rollback_all
//   allow_partial    the route is marked failed, the others go on; the
//                    migration stays Running with the failure in progress

#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "control/migration.h"
#include "control/migration_service.h"
#include "control/state_store.h"
#include "routing/config.h"
#include "routing/stream_positions.h"

namespace turnout::control {

// What to do with a row or key the target already has.
enum class ConflictRule {
  kNone,     // keep the target's
  kReplace,  // overwrite with the source's
  kMerge,    // Postgres: fill the target's NULL columns; Redis: union of hash/set/zset members
};

// The `data` object of a migration, with defaults.
struct DataSpec {
  enum class Mode { kNone, kSnapshot, kScan };
  Mode mode = Mode::kNone;
  ConflictRule rule = ConflictRule::kNone;
  // Rows per keyset batch (Postgres) or keys per SCAN (Redis); 0: the
  // protocol's default (kPgBatch, kRedisBatch). A checkpoint is stored after
  // every batch (an fsync with the file store), so Postgres batches are large.
  int batch_size = 0;
  static constexpr int kPgBatch = 5000;
  static constexpr int kRedisBatch = 1000;
  std::chrono::milliseconds sleep{10};       // between batches (throttle)
  int passes = 1;                            // scan: full passes (later ones catch rows written behind the cursor)
  int workers = 2;                           // snapshot: parallel table copies
  bool binary = true;                        // COPY format (text tolerates differing column types)
  // Postgres: by change stream (control/pg_change_stream.h) or by the copier
  // alone (snapshot / keyset scan). auto: the stream where old has
  // wal_level = logical and the rights it needs, else the copier (noted).
  enum class Method { kAuto, kStream, kCopy };
  Method method = Method::kAuto;
};
DataSpec DataSpecOf(const boost::json::value& data);

// What a backfill sees of its job while it copies one route.
class BackfillContext {
 public:
  virtual ~BackfillContext() = default;
  // Stores `progress` (counters and checkpoint) durably. An error means the
  // checkpoint could not be stored: the copy stops and is resumed later.
  virtual absl::Status Checkpoint(RouteProgress& progress) = 0;
  // False once the copy must stop at this batch boundary (pause, rollback,
  // shutdown). Cheap enough to call every few thousand rows.
  virtual bool ShouldContinue() = 0;
  // Sleeps for the throttle, returning early when the copy must stop.
  virtual void Sleep(std::chrono::milliseconds d) = 0;
  virtual void Log(const std::string& line) = 0;
};

// The status a backfill returns when ShouldContinue() said stop.
absl::Status StoppedAtBatchBoundary();
bool IsStoppedAtBatchBoundary(const absl::Status& st);

struct DataMovementOptions {
  std::string instance_id = "turnout-0";
  // How often a sidecar without the lock tries again (the holder may die).
  std::chrono::milliseconds lock_retry{2000};
  // Delay before retry n (retry_then_all) is n times this.
  std::chrono::milliseconds retry_backoff{1000};
  std::function<void(const std::string&)> log;
  // Where this process's sessions wait for a route's change stream
  // (StreamOptions::on_applied, on_commits); null: nobody waits here.
  routing::StreamPositions* stream_positions = nullptr;
};

// What this process's sessions hear of a route's change stream
// (StreamOptions::on_applied, on_commits).
struct StreamListeners {
  std::function<void(std::uint64_t)> on_applied;
  std::function<void(std::span<const routing::StreamPosition::DecodedCommit>)> on_commits;
};

class DataMovement {
 public:
  DataMovement(std::shared_ptr<const routing::Config> config, MigrationService* service, StateStore* store,
               DataMovementOptions options);
  ~DataMovement();
  DataMovement(const DataMovement&) = delete;
  DataMovement& operator=(const DataMovement&) = delete;

  // Starts the reconciler. Register OnMigrations with the service first.
  void Start();
  // Stops every job at its next batch boundary and joins the threads.
  void Stop();
  // The service's OnPublish callback (its lock is held: only records and wakes).
  void OnMigrations(const std::vector<Migration>& all);

 private:
  struct Job;
  void ReconcileLoop();
  void Reconcile();
  void RunJob(Job* job);
  // Drops change-stream slots no running or paused migration needs.
  void CleanUpStreams(const std::vector<Migration>& all);
  void Log(const std::string& line) const;
  // StreamOptions::on_applied and on_commits for `route`: they tell its
  // position in options_.stream_positions.
  StreamListeners StreamListenersFor(const std::string& route) const;

  const std::shared_ptr<const routing::Config> config_;
  MigrationService* const service_;
  StateStore* const store_;
  const DataMovementOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool poked_ = false;
  bool stopping_ = false;
  std::vector<Migration> latest_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  // What we last said about a migration we do not run (another holder, a
  // lock error): logged once per change.
  std::map<std::string, std::string> elsewhere_;
  // No new lock attempt for a migration before this (every checkpoint of a
  // job running elsewhere wakes the reconciler).
  std::map<std::string, std::chrono::steady_clock::time_point> next_try_;
  std::thread reconciler_;
  // CleanUpStreams (reconciler thread only): the sources streams ran from,
  // the slots last kept, and whether a stale slot was still in use.
  std::set<std::string> stream_sources_;
  std::set<std::string> stream_targets_;  // their new sides (indexes set aside by a copy)
  std::set<std::string> stream_keep_;
  bool stream_cleanup_due_ = true;
};

}  // namespace turnout::control
