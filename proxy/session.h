#pragma once
// What the process lifecycle needs from a client session, whatever its
// protocol: a way to end it when the drain deadline passes, and a request to
// finish at the next safe boundary (protocol sessions close an idle client
// between transactions; the byte relay cannot tell and ignores it).

#include <array>
#include <atomic>
#include <optional>
#include <cstdint>
#include <memory>
#include <unordered_set>

#include "routing/config.h"
#include "routing/plan.h"
#include "routing/request.h"

namespace turnout::proxy {

class Session {
 public:
  virtual ~Session() = default;
  // Abort now: close both sides. Called on the session's own thread.
  virtual void Close() = 0;
  // Finish the current request, then close. Called on the session's own thread.
  virtual void RequestDrain() {}
};

// Per-route counters shared by every worker: relaxed atomics, no lock on the
// hot path. The metrics exporter (control plane) reads them at scrape time.
struct RouteRuntime {
  // Latency buckets (upper bounds, microseconds); the last is +Inf.
  static constexpr std::array<std::uint64_t, 14> kLatencyBoundsUs = {
      50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, UINT64_MAX};
  static constexpr int kSides = 2;  // routing::Side: old, new
  static constexpr int kClasses = routing::kRequestClassCount;

  struct SideCounters {
    std::array<std::atomic<std::uint64_t>, kClasses> requests{};
    std::atomic<std::uint64_t> upstream_errors{0};
    // Postgres server connections a session logged in with, or took from
    // the worker's pool (proxy/pg/server_pool.h).
    std::atomic<std::uint64_t> server_logins_opened{0};
    std::atomic<std::uint64_t> server_logins_reused{0};
    std::array<std::atomic<std::uint64_t>, kLatencyBoundsUs.size()> latency_buckets{};
    std::atomic<std::uint64_t> latency_sum_us{0};
  };

  // Outcomes of secondary work (DESIGN.md §7). DualWriteResult is the label
  // set of turnout_dualwrite_total: one per dual-write op, the outcome set
  // of proxy/secondary/outcome.h, which says what each means.
  enum class DualWriteResult { kApplied, kFailed, kDiverged, kDropped, kCount };
  enum class ShadowMismatch { kRowDescription, kRows, kCommandTag, kError, kType, kLength, kValue, kCount };
  static const char* DualWriteResultName(DualWriteResult r);
  static const char* ShadowMismatchName(ShadowMismatch k);

  explicit RouteRuntime(routing::Route r) : route(std::move(r)) {}
  const routing::Route route;
  std::atomic<int> active{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> bytes_from_clients{0};
  std::atomic<std::uint64_t> bytes_to_clients{0};
  std::array<SideCounters, kSides> sides;
  std::array<std::atomic<std::uint64_t>, static_cast<int>(DualWriteResult::kCount)> dual_writes{};
  std::atomic<std::uint64_t> shadow_compared{0};
  std::atomic<std::uint64_t> shadow_matched{0};
  std::atomic<std::uint64_t> shadow_dropped{0};  // shadow queue full: counted and dropped
  std::array<std::atomic<std::uint64_t>, static_cast<int>(ShadowMismatch::kCount)> shadow_mismatches{};
  // Sessions of this process with Postgres dual-write work in flight (an
  // op, or a transaction carried to the secondary), by authoritative side.
  // A session whose authoritative side is the other one waits for these to
  // finish before it starts dual-writing: two sessions writing the same
  // rows in opposite orders would wait on each other across the two
  // servers, where neither server can see the deadlock (a policy change
  // that flips authority is the one time both orders exist).
  std::array<std::atomic<int>, kSides> dual_writers{};
  // Postgres dual-write carried by the change stream (routing/
  // stream_positions.h): commits held until new applied them (sync), reads
  // on new that waited for the session's last commit (async), by outcome;
  // and how long commits were held.
  enum class StreamWaitKind { kCommit, kRead, kCount };
  enum class StreamWaitResult { kApplied, kTimeout, kNotLive, kCount };
  static const char* StreamWaitKindName(StreamWaitKind k);
  static const char* StreamWaitResultName(StreamWaitResult r);
  std::array<std::array<std::atomic<std::uint64_t>, static_cast<int>(StreamWaitResult::kCount)>,
             static_cast<int>(StreamWaitKind::kCount)>
      stream_waits{};
  std::array<std::atomic<std::uint64_t>, kLatencyBoundsUs.size()> commit_hold_buckets{};
  std::atomic<std::uint64_t> commit_hold_sum_us{0};
  // What a sync commit waited for: its own xid's end in the stream; its xid,
  // then a sample with a fence when the stream did not show it; a sample
  // with a fence (no xid asked: a COMMIT behind others, a batch that does
  // more than DML and reads, the stream runs elsewhere); nothing (the
  // transaction had no xid, or it rolled back).
  enum class CommitTarget { kXid, kXidThenFence, kFence, kNone, kCount };
  static const char* CommitTargetName(CommitTarget t);
  std::array<std::atomic<std::uint64_t>, static_cast<int>(CommitTarget::kCount)> commit_targets{};
  void RecordCommitTarget(CommitTarget t) noexcept {
    commit_targets[static_cast<int>(t)].fetch_add(1, std::memory_order_relaxed);
  }

  void RecordDualWrite(DualWriteResult r) noexcept {
    dual_writes[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  // One shadow comparison: a match, or a mismatch of `kind`.
  void RecordShadow(std::optional<ShadowMismatch> mismatch) noexcept {
    shadow_compared.fetch_add(1, std::memory_order_relaxed);
    if (!mismatch) shadow_matched.fetch_add(1, std::memory_order_relaxed);
    else shadow_mismatches[static_cast<int>(*mismatch)].fetch_add(1, std::memory_order_relaxed);
  }

  // One request answered by `side` after `latency_us`.
  void RecordRequest(routing::Side side, routing::RequestClass cls, std::uint64_t latency_us) noexcept {
    auto& s = sides[static_cast<int>(side)];
    s.requests[static_cast<int>(cls)].fetch_add(1, std::memory_order_relaxed);
    std::size_t b = 0;
    while (latency_us > kLatencyBoundsUs[b]) ++b;
    s.latency_buckets[b].fetch_add(1, std::memory_order_relaxed);
    s.latency_sum_us.fetch_add(latency_us, std::memory_order_relaxed);
  }
  void RecordStreamWait(StreamWaitKind kind, StreamWaitResult result, std::uint64_t waited_us) noexcept {
    stream_waits[static_cast<int>(kind)][static_cast<int>(result)].fetch_add(1, std::memory_order_relaxed);
    if (kind != StreamWaitKind::kCommit) return;
    std::size_t b = 0;
    while (waited_us > kLatencyBoundsUs[b]) ++b;
    commit_hold_buckets[b].fetch_add(1, std::memory_order_relaxed);
    commit_hold_sum_us.fetch_add(waited_us, std::memory_order_relaxed);
  }
  void RecordUpstreamError(routing::Side side) noexcept {
    sides[static_cast<int>(side)].upstream_errors.fetch_add(1, std::memory_order_relaxed);
  }
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
