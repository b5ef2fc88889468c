#pragma once
// turnout's own cancel keys (DESIGN.md §3 "CancelRequest"). Each client
// session is handed a (process id, secret) pair that no backend issued; a
// CancelRequest carrying it is turned into one CancelRequest per backend
// connection of that session that has a query in flight, with that
// backend's own key. A CancelRequest arrives on a fresh connection, usually
// on another worker thread than the session's, hence the lock: it is taken
// when a session starts, ends or opens a backend, and once per cancel; the
// per-request "busy" marks are relaxed atomics.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "routing/config.h"

namespace turnout::proxy::pg {

// One backend connection that a cancel may have to reach.
struct CancelTarget {
  routing::HostPort address;
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
};

// What a session publishes: up to one connection per side (old, new).
class CancelSlots {
 public:
  void Set(int side, CancelTarget target);
  void Clear(int side);
  // Marks whether `side` is running a request (set when one is sent,
  // cleared at its ReadyForQuery).
  void SetBusy(int side, bool busy) noexcept { busy_[side].store(busy, std::memory_order_relaxed); }
  // Targets that are busy now; when none is marked busy, every open one
  // (a cancel that races a ReadyForQuery is harmless, as with the server).
  std::vector<CancelTarget> Targets() const;

 private:
  mutable std::mutex mu_;
  std::array<std::optional<CancelTarget>, 2> slots_;
  std::array<std::atomic<bool>, 2> busy_{};
};

class CancelRegistry {
 public:
  struct Key {
    std::int32_t process_id = 0;
    std::int32_t secret_key = 0;
  };

  // A fresh key for a new session; the entry lives until Unregister.
  Key Register(std::shared_ptr<CancelSlots> slots);
  void Unregister(std::int32_t process_id);
  // The slots of the session holding exactly this key, or nullptr (wrong
  // secret or ended session: silently ignored, as the server does).
  std::shared_ptr<CancelSlots> Find(std::int32_t process_id, std::int32_t secret_key) const;
  std::size_t size() const;

 private:
  struct Entry {
    std::int32_t secret_key;
    std::shared_ptr<CancelSlots> slots;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::int32_t, Entry> entries_;
  std::int32_t next_pid_ = 0;
};

}  // namespace turnout::proxy::pg
