#pragma once
// Publication of policies from the control plane to the data plane
// (STYLE.md "they meet through an immutable routing table published
// atomically").
//
//   control plane                       sessions (any thread)
//   -------------                       ---------------------
//   publisher.Update(route, policy) ──► RouteTableReader::Refresh() at a
//   publisher.Publish(map)              request boundary; Decide() against
//                                       the policy it holds
//
// A RouteTable is immutable: an update builds a new table (copy-on-write of a
// map of shared_ptrs, a few routes at most) and swaps it in. Versions assigned
// by the publisher increase by one per publication.
//
// Pinning (DESIGN.md §2 "a transaction finishes under the policy it started
// with"): a session holds the std::shared_ptr<const Policy> (or the whole
// table) it started a transaction, Redis MULTI block or pipeline with, and
// refreshes only at the next boundary. Holding the shared_ptr is all it
// takes: a published update never mutates a Policy, and the old one lives
// until its last holder lets go.
//
// Why not std::atomic<std::shared_ptr<const RouteTable>> (STYLE.md's
// suggestion): libstdc++ 12 implements it as a spinlock in the low bit of the
// control-block pointer (is_always_lock_free is false), and its load()
// releases that bit with a relaxed RMW, so a reader's read of the stored
// pointer is not ordered before the next store's write: a data race under
// the C++ memory model that ThreadSanitizer reports
// (google/sanitizers#1558). The slot here is a shared_ptr under a mutex that
// only the control plane and version changes touch, plus an atomic version
// number:
//   - RouteTableReader::Refresh(), the per-request hot path, is one acquire
//     load of that number when nothing changed: wait-free, no shared writes.
//   - Load() (mutex, copy, unlock) runs once per reader per publication, and
//     for callers that want the whole table.
// The interface is the one atomic<shared_ptr> would give, so the slot can
// switch back once the toolchain's implementation is sound.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "routing/policy.h"

namespace turnout::routing {

class RouteTable {
 public:
  using Map = absl::flat_hash_map<std::string, std::shared_ptr<const Policy>>;

  RouteTable() = default;
  RouteTable(std::uint64_t version, Map routes) : version_(version), routes_(std::move(routes)) {}

  std::uint64_t version() const noexcept { return version_; }
  const Map& routes() const noexcept { return routes_; }
  std::size_t size() const noexcept { return routes_.size(); }

  // The policy of `route`, or nullptr when the table has none (the route is
  // in no migration: the session relays to old, or uses Policy::Passthrough).
  // The pointer lives as long as this table.
  const Policy* Find(std::string_view route) const noexcept;
  std::shared_ptr<const Policy> FindShared(std::string_view route) const;

 private:
  std::uint64_t version_ = 0;
  Map routes_;
};

class RouteTablePublisher {
 public:
  RouteTablePublisher();
  RouteTablePublisher(const RouteTablePublisher&) = delete;
  RouteTablePublisher& operator=(const RouteTablePublisher&) = delete;

  // The current table; never null (version 0 is empty). Takes a mutex for
  // the copy: sessions should refresh through a RouteTableReader.
  std::shared_ptr<const RouteTable> Load() const noexcept;
  // Version of the latest publication; one acquire load, lock-free.
  std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }

  // Control plane. Each call publishes a new table and returns its version.
  // Calls are serialised among themselves; a reader waits at most for a
  // pointer swap, never for a table to be built.
  std::uint64_t Publish(RouteTable::Map routes);
  // Replaces (or adds) one route's policy; a null policy removes the route.
  std::uint64_t Update(const std::string& route, std::shared_ptr<const Policy> policy);
  std::uint64_t Remove(const std::string& route) { return Update(route, nullptr); }

 private:
  std::uint64_t PublishLocked(RouteTable::Map routes);

  std::mutex publish_mu_;        // serialises publications (control plane)
  mutable std::mutex table_mu_;  // guards table_; held only to copy or swap it
  std::shared_ptr<const RouteTable> table_;
  // Stored after table_ is swapped, so a reader that sees version v then
  // loads a table of version >= v.
  std::atomic<std::uint64_t> version_{0};
};

// A per-session (or per-thread) cached view of one route's policy. Not
// thread-safe itself; one per session. Refresh() at request boundaries only
// (not inside a transaction, MULTI block or pipeline): that is the pin.
class RouteTableReader {
 public:
  RouteTableReader(const RouteTablePublisher& publisher, std::string route,
                   Protocol protocol = Protocol::kPostgres);

  // Picks up a newer publication, if any. Returns true when the policy
  // object changed. Cheap when nothing changed: one atomic load.
  bool Refresh() noexcept;

  // The pinned policy; Policy::Passthrough when the table has no entry.
  const Policy& policy() const noexcept { return *policy_; }
  const std::shared_ptr<const Policy>& shared_policy() const noexcept { return policy_; }
  const std::shared_ptr<const RouteTable>& table() const noexcept { return table_; }

 private:
  const RouteTablePublisher* publisher_;
  std::string route_;
  std::shared_ptr<const RouteTable> table_;
  std::shared_ptr<const Policy> policy_;
  std::shared_ptr<const Policy> passthrough_;
};

}  // namespace turnout::routing
