#pragma once
// Where migrations live so that a restart, or another sidecar, sees them
// (DESIGN.md §5). Implementations: FileStateStore (embedded default) and
// PgStateStore (fleets: shared tables, LISTEN/NOTIFY, advisory locks).
//
// Updates are optimistic: Put() succeeds only if the stored revision equals
// `expected_revision` (0 = must not exist yet); otherwise it returns
// ABORTED and the caller reloads and retries. Every method is thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/migration.h"

namespace turnout::control {

// Held while a sidecar runs exclusive work (data movement); released on
// destruction or when the holder's process or connection dies.
class ExclusiveLock {
 public:
  virtual ~ExclusiveLock() = default;
};

// What another process changed, as far as the store knows. An empty `id`
// means "anything may have changed" (a reconnect may have lost notices, or
// the notice came from a version that does not name the migration): the
// caller reloads everything.
struct StoreChange {
  std::string id;
  // The stored revision after the change; 0 when unknown or deleted.
  std::uint64_t revision = 0;
  bool deleted = false;

  bool everything() const { return id.empty(); }
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  virtual absl::StatusOr<std::vector<Migration>> LoadAll() = 0;
  // One migration; nullopt when the store does not hold it.
  virtual absl::StatusOr<std::optional<Migration>> Load(const std::string& id) = 0;
  virtual absl::Status Put(const Migration& m, std::uint64_t expected_revision) = 0;
  virtual absl::Status Remove(const std::string& id, std::uint64_t expected_revision) = 0;

  // Calls `on_change` (from a store thread) after another process changed
  // the store; the caller reloads what it names (everything when its id is
  // empty). A single-process store never calls it.
  virtual void Watch(std::function<void(const StoreChange&)> on_change) = 0;

  // Non-blocking: a lock, or nullptr if another holder has it.
  virtual absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLockExclusive(const std::string& name) = 0;
  // Non-blocking: one of many shared holds of `name`, or nullptr while an
  // exclusive holder has it. An exclusive lock is granted only once every
  // shared hold is released (a fleet-wide barrier: control/cutover.h).
  virtual absl::StatusOr<std::unique_ptr<ExclusiveLock>> TryLockShared(const std::string& name) = 0;

  // False while the store cannot be reached (readiness reports it).
  virtual bool Healthy() const = 0;

  // Stops watcher threads; called before destruction.
  virtual void Stop() {}
};

}  // namespace turnout::control
