#pragma once
// The state store for a fleet of sidecars (DESIGN.md §5): every sidecar points
// at one PostgreSQL database.
//
//   <schema>.turnout_migrations(id, revision, body jsonb, updated_at)
//       one row per migration; `body` is MigrationToStored(). Put/Remove are
//       optimistic: `UPDATE … WHERE id = $1 AND revision = $2`, 0 rows is
//       ABORTED and the caller reloads.
//   <schema>.turnout_audit(id, migration_id, at, actor, action, before, after)
//       append-only: the history entries a Put adds (the record's own
//       `history` stays what the API shows), and one row per Remove.
//
// Every change runs `pg_notify(<channel>, '<id> <revision>')` (or
// '<id> deleted') in its own transaction, so a listener hears it only once it
// is committed, and a sidecar reloads that one migration instead of all.
// Watch() runs a thread with its own connection that LISTENs and calls
// `on_change` with the migration named; after a reconnect, or for a payload
// it does not parse (an older sidecar sent the bare id), it calls it once
// with an empty id: reload everything, a notification may have been lost.
// TryLockExclusive() takes a session-level advisory lock on a dedicated
// connection: the server drops it when that connection or process dies.
//
// Tables are created on first use under a transaction-level advisory lock,
// so sidecars starting together do not race on the catalog. The dsn's
// password never appears in a status message or a log line.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "control/pg_client.h"
#include "control/state_store.h"

namespace turnout::control {

namespace pg_detail {
// The NOTIFY payload of a change, and back. A payload that does not parse
// is a change to anything (StoreChange with an empty id).
std::string ChangePayload(const std::string& id, std::uint64_t revision, bool deleted);
StoreChange ParseChangePayload(const std::string& payload);
}  // namespace pg_detail

struct PgStateStoreOptions {
  // Schema holding both tables; created if missing. Tests use one each.
  std::string schema = "public";
  // NOTIFY channel; give each schema sharing a database its own.
  std::string channel = "turnout_migrations";
  // Used unless the dsn names its own (shows in pg_stat_activity).
  std::string application_name = "turnout-state-store";
  // Used unless the dsn sets connect_timeout.
  std::chrono::milliseconds connect_timeout{5000};
  // Watcher reconnect backoff: doubles from min to max after each failure.
  std::chrono::milliseconds reconnect_min{200};
  std::chrono::milliseconds reconnect_max{5000};
  // Warnings (connection lost, reconnected); the default drops them.
  std::function<void(const std::string&)> log;
};

class PgStateStore final : public StateStore {
 public:
  using Options = PgStateStoreOptions;

  // Connects, creates the schema and tables if missing. UNAVAILABLE (with the
  // host, port, database, user and libpq's reason, never the password) when
  // the server cannot be reached or refuses the login.
  static absl::StatusOr<std::unique_ptr<PgStateStore>> Open(const std::string& dsn, Options options = {});

  ~PgStateStore() override;
  PgStateStore(const PgStateStore&) = delete;
  PgStateStore& operator=(const PgStateStore&) = delete;

  absl::StatusOr<std::vector<Migration>> LoadAll() override;
  absl::StatusOr<std::optional<Migration>> Load(const std::string& id) override;
  absl::Status Put(const Migration& m, std::uint64_t expected_revision) override;
  absl::Status Remove(const std::string& id, std::uint64_t expected_revision) override;
  // Connects and LISTENs before returning (so a change committed afterwards
  // is never missed) when the server is reachable, else keeps retrying in the
  // background. Changes made through this store do not call `on_change`.
  // A second call replaces the callback. Never call Stop() from `on_change`.
  void Watch(std::function<void(const StoreChange&)> on_change) override;
  absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLockExclusive(const std::string& name) override;
  absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLockShared(const std::string& name) override;
  bool Healthy() const override { return healthy_.load(std::memory_order_acquire); }
  void Stop() override;

  // "host=… port=… dbname=… user=…" of the dsn: for messages.
  const std::string& target() const { return target_; }

 private:
  PgStateStore(std::string dsn, Options options);
  absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLock(const std::string& name, bool shared);

  // A fresh connection (non-blocking connect, bounded by the connect
  // timeout); `stopping` (may be null) abandons the attempt early.
  absl::StatusOr<PgConn> Connect(const std::atomic<bool>* stopping) const;
  // Runs `body` between BEGIN and COMMIT on the command connection,
  // reconnecting first if it was lost. A lost connection is UNAVAILABLE and
  // marks the store unhealthy; any completed round trip marks it healthy.
  absl::Status RunTransaction(const char* what, const std::function<absl::Status(PGconn*)>& body);
  absl::Status EnsureCommandConnLocked();
  absl::Status CreateTables(PGconn* c);
  absl::Status AppendAudit(PGconn* c, const Migration& m, std::size_t first);
  absl::Status Listen(PGconn* c) const;
  void WatchLoop(PgConn conn, std::function<void(const StoreChange&)> on_change);
  void StopLocked();
  void SleepUnlessStopped(std::chrono::milliseconds d);
  void Log(const std::string& message) const;
  // `message` with the password masked and prefixed by the target.
  std::string Describe(const std::string& what, const std::string& message) const;
  std::string Redact(std::string message) const;

  const std::string dsn_;
  const Options options_;
  std::string target_;
  std::string password_;
  std::chrono::milliseconds connect_timeout_;
  // Schema-qualified, identifier-quoted table names.
  std::string migrations_table_, audit_table_;

  std::mutex mu_;  // guards conn_
  PgConn conn_;
  // Backend pid of conn_: the watcher ignores our own notifications.
  std::atomic<int> command_pid_{0};
  std::atomic<bool> healthy_{false};

  std::mutex watch_mu_;  // guards watcher_ (Watch/Stop)
  std::thread watcher_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

}  // namespace turnout::control
