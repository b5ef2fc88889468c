#pragma once
// Where each Postgres route's change stream stands (DESIGN.md §6), shared by
// the sessions that wait on it and the control plane that feeds it. With
// dual-write carried by the stream, a session never writes to new itself;
// it only learns when new has what it committed on old:
//
//   session, sync    after a commit on old: t = RequestSample(with_fence),
//                    then Wait(t) holds the client's ReadyForQuery until new
//                    applied past a position of old taken after that commit
//   session, async   keeps t = RequestSample() of its last commit; a read
//                    sent to new first waits for Wait(t) (read-your-writes)
//   feeder           TakeSampleRequest() / SampleTaken(): one query of old's
//                    WAL position answers every request made before it
//                    started (group sampling: no query per commit)
//   session, sync,   knows its transaction's xid (asked for before it
//   here             commits: proxy/pg/pg_stream_wait.cc); Wait(0, xid)
//                    holds it until new applied past that commit's end,
//                    which this process's stream tells (Committed) as it
//                    decodes it: no sample, no fence
//   session, waiting Nudge() (an async read that must wait): the feeder
//                    writes a fence into old's WAL (TakeNudge()); one fence
//                    answers every nudge before it
//   applier/feeder   Applied(lsn): new has every transaction of old that
//                    committed before `lsn`; each report keeps the stream
//                    live a little longer (a stream that stops reporting,
//                    or was never live, is not waited for)
//
// Why a sample taken after the commit is enough: the client's COMMIT is
// answered only after its commit record is inserted into old's WAL, so
// old's insert position, read afterwards, is at or past that record.
//
// Why a nudge: a sample is a bare position (a read, no write on old), and
// it often lies past the last commit, in WAL that other transactions still
// in progress wrote. New reaches it when the next transaction that commits
// after it is applied; nothing says one will come soon (every other session
// may be waiting too, or old commits asynchronously and has not flushed).
// A fence (a logical message in a transaction that flushes) written after
// the sample brings the stream past it at once. A waiting session nudges as
// it starts to wait; the feeder writes one fence for every nudge made while
// the previous query ran, and whichever the applier reaches first, a later
// commit or the fence, releases the session. (Waiting 200 µs or 1 ms for a
// later commit before nudging wrote fewer fences, 0.4 per commit instead of
// 0.8 under pgbench -c 8, but cost 7 to 11 % of sync throughput.)
//
// Why an xid: a sample is a bound past the commit, the commit's own end is
// exact. The stream that runs in this process decodes every transaction's
// xid (pgoutput's Begin) and its end (Commit) and hands them here; a session
// that learnt its xid waits for exactly that position, and a sync commit
// costs old neither a sample nor a fence (the fence was most of a sync
// commit's extra work: a transaction on old, its decoding, a group on new).
// A transaction whose xid never shows (it changed only tables outside the
// publication, or temporary ones; the stream moved to another sidecar)
// falls back to a sample with a fence after a short grace (the session's).
//
// Sessions, the feeder and the applier run on different threads. A mutex
// guards the waiters and samples; waits and samples happen once per commit
// of a session under stream dual-write, never per message.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace turnout::routing {

class StreamPosition {
 public:
  // One session's wait. Wake() is called at most once per registration,
  // under the position's lock, from another thread: it must only hand the
  // news to the session's own thread and return.
  class Waiter {
   public:
    virtual ~Waiter() = default;
    virtual void Wake() noexcept = 0;

   private:
    friend class StreamPosition;
    std::uint64_t ticket_ = 0;  // 0: none
    std::uint32_t xid_ = 0;     // 0: none
    std::uint64_t target_ = 0;  // 0: neither the sample nor the xid's end known yet
    bool registered_ = false;
  };

  // A transaction of old as the stream decoded it: its xid (the low 32 bits
  // of an xid8) and the end of its commit record.
  struct DecodedCommit {
    std::uint32_t xid = 0;
    std::uint64_t end_lsn = 0;
  };

  enum class WaitState {
    kReached,   // new applied past the sample of the ticket
    kWaiting,   // registered: Wake() follows (or Cancel())
    kNotLive,   // the stream does not report: nothing to wait for
  };

  // A ticket for a sample of old's position taken after this call.
  // `with_fence`: the caller waits for it at once, so the feeder writes a
  // fence (which answers the sample too) instead of a read and then a fence.
  std::uint64_t RequestSample(bool with_fence = false);
  // Where the wait for a commit stands; registers `w` when it must wait.
  // The commit is named by a ticket (its sample), by its xid, or both
  // (whichever position is known first and reached releases it); 0: none.
  WaitState Wait(std::uint64_t ticket, std::uint32_t xid, Waiter* w, absl::Time now);
  WaitState Wait(std::uint64_t ticket, Waiter* w, absl::Time now) { return Wait(ticket, 0, w, now); }
  // Unregisters `w` (no Wake() after this returns). Idempotent.
  void Cancel(Waiter* w);
  bool live(absl::Time now) const;
  absl::Time live_until() const;
  std::uint64_t applied() const;

  // ---- the feeder
  // Called (outside the lock) when a sample is requested and none is being
  // taken: the feeder wakes up and calls TakeSampleRequest().
  void SetSampleListener(std::function<void()> listener);
  // The ticket a sample started now answers (every request up to it), or 0
  // when none is wanted or one is being taken.
  std::uint64_t TakeSampleRequest();
  // The sample for `ticket`: old's position `lsn`. `lsn` 0: the sample
  // failed (old unreachable): waiters of those tickets are released.
  void SampleTaken(std::uint64_t ticket, std::uint64_t lsn);
  // A waiting session asks for a fence after its sample (see above); the
  // listener is called as for a sample request.
  void Nudge();
  // Whether a fence is wanted now (clears the wish: one fence answers
  // every nudge made before it is sent).
  bool TakeNudge();

  // ---- a cutover's write window (control/cutover.h)
  // Sessions of this process inside a transaction that wrote to old under
  // the stream, counted from its first write to its end: the window waits
  // for none to be left before the flip.
  void AddOpenWriter() noexcept { open_writers_.fetch_add(1, std::memory_order_acq_rel); }
  void RemoveOpenWriter() noexcept { open_writers_.fetch_sub(1, std::memory_order_acq_rel); }
  int open_writers() const noexcept { return open_writers_.load(std::memory_order_acquire); }

  // ---- the applier (in this process, or heard through the feeder)
  enum class Report {
    kHere,   // this process runs the stream: it reports directly
    kHeard,  // another sidecar's applier, through its NOTIFY
  };
  void Applied(std::uint64_t lsn, absl::Time live_until, Report from = Report::kHere);
  // This process's stream decoded these commits (in commit order): a
  // session waiting for one of their xids now waits for its end.
  void Committed(std::span<const DecodedCommit> commits);
  // Whether the stream runs in this process (it reported directly, and
  // that report still vouches for it): the feeder need not hurry to hear
  // the applier's notifications, which say nothing new then.
  bool reported_here(absl::Time now) const;
  // The stream stopped: every waiter is released.
  void Stopped();

 private:
  // The lsn of the first sample that answers `ticket`, 0 when not taken.
  std::uint64_t TargetLocked(std::uint64_t ticket) const;
  // The end of the commit of `xid` among the recent ones, 0 when not there.
  std::uint64_t CommitEndLocked(std::uint32_t xid) const;
  void WakeReachedLocked();
  void Unlink(Waiter* w);

  mutable std::mutex mu_;
  std::uint64_t requested_ = 0;     // the last ticket handed out
  std::uint64_t sampling_ = 0;      // the ticket being sampled, 0 when none
  bool nudged_ = false;             // a fence is wanted
  std::uint64_t failed_upto_ = 0;   // tickets whose sample failed
  // Recent samples by ticket; older tickets use the oldest kept (a later
  // position: waiting for it is safe, only longer).
  std::map<std::uint64_t, std::uint64_t> samples_;
  std::uint64_t applied_ = 0;
  absl::Time live_until_ = absl::InfinitePast();
  absl::Time here_until_ = absl::InfinitePast();  // of Report::kHere
  std::function<void()> listener_;
  // Registered waiters (few: one per session waiting right now; the
  // vector keeps its capacity, so registering does not allocate).
  std::vector<Waiter*> waiters_;
  // The last commits decoded, a ring: a session looks its xid up here when
  // the stream decoded its commit before the session came to wait (at
  // 2,000 commits a second this covers two seconds; an xid that fell out
  // waits for the session's fallback).
  static constexpr std::size_t kRecentCommits = 4096;
  std::vector<DecodedCommit> recent_;  // sized kRecentCommits on first use
  std::size_t recent_next_ = 0;
  std::atomic<int> open_writers_{0};
};

// The positions of every route, created on first use; entries live as long
// as this object (sessions keep the pointer).
class StreamPositions {
 public:
  StreamPosition& For(std::string_view route);

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<StreamPosition>, std::less<>> routes_;
};

}  // namespace turnout::routing
