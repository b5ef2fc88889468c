#pragma once
// What the process lifecycle needs from a client session, whatever its
// protocol: a way to end it when the drain deadline passes, and a request to
// finish at the next safe boundary (protocol sessions close an idle client
// between transactions; the byte relay cannot tell and ignores it).

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_set>

#include "routing/config.h"

namespace turnout::proxy {

class Session {
 public:
  virtual ~Session() = default;
  // Abort now: close both sides. Called on the session's own thread.
  virtual void Close() = 0;
  // Finish the current request, then close. Called on the session's own thread.
  virtual void RequestDrain() {}
};

// Per-route counters shared by every worker.
struct RouteRuntime {
  explicit RouteRuntime(routing::Route r) : route(std::move(r)) {}
  const routing::Route route;
  std::atomic<int> active{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> bytes_from_clients{0};
  std::atomic<std::uint64_t> bytes_to_clients{0};
};

// The sessions living on one worker thread. Touched only from that thread,
// so it needs no lock.
class SessionSet {
 public:
  void Add(Session* s) { sessions_.insert(s); }
  void Remove(Session* s) { sessions_.erase(s); }
  std::size_t size() const { return sessions_.size(); }
  void CloseAll();
  void RequestDrainAll();

 private:
  std::unordered_set<Session*> sessions_;
};

// Registers a session with its worker and route for exactly its lifetime.
class SessionRegistration {
 public:
  SessionRegistration(SessionSet& set, Session* s, RouteRuntime& route, std::atomic<int>& process_active)
      : set_(set), session_(s), route_(route), process_active_(process_active) {
    set_.Add(session_);
  }
  ~SessionRegistration() {
    set_.Remove(session_);
    route_.active.fetch_sub(1, std::memory_order_relaxed);
    process_active_.fetch_sub(1, std::memory_order_relaxed);
  }
  SessionRegistration(const SessionRegistration&) = delete;
  SessionRegistration& operator=(const SessionRegistration&) = delete;

 private:
  SessionSet& set_;
  Session* session_;
  RouteRuntime& route_;
  std::atomic<int>& process_active_;
};

}  // namespace turnout::proxy
