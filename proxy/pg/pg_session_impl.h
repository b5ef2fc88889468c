#pragma once
// The protocol-aware PostgreSQL session (DESIGN.md §3), shared by its
// translation units; nothing outside proxy/pg includes this.
//
//   client ──► ClientLoop ──frames──► primary BackendConnection
//   client ◄── BackendLoop(old) ◄──── old backend   (always read: NOTIFY)
//   client ◄── BackendLoop(new) ◄──── new backend   (once opened)
//              SecondarySender ─────► the other backend (dual-write, shadow)
//
// The loops run side by side until one ends (FirstOf); the last two start
// only when the session first needs them (NewSideLoops).
//
// Both directions relay by frame header and length out of one bounded
// buffer each: complete frames are inspected in place by the RequestTracker
// (request_tracker.h: accounting, classification, session state), runs of
// frames are forwarded with one (gather) write, and a frame larger than the
// buffer is streamed through by its remaining length. Nothing is allocated
// per message on a route without secondary work; state changes are copied
// once, for replay.
//
// A request's first frame comes back from the tracker as kRoute with what
// routing needs (RequestTracker::RequestStart); the session decides its
// RequestPlan (pg_routing.cc: primary, secondary work), waits at a barrier
// if the plan needs a quiet session, and only then answers the tracker
// (Routed) and relays the frame. The plan is carried through the barrier;
// the frame is neither decoded nor classified again.
//
// Where the code lives:
//   pg_session.cc    lifecycle: Run, client writer, drain, idle timeout, stall watchdog
//   pg_startup.cc    startup, authentication at turnout, cancel, opening backends
//   pg_relay.cc      ClientLoop, BackendLoop (NewSideLoops) and the frames each side sends
//   pg_routing.cc    the routing decision per request, switching the primary
//   pg_secondary.cc  secondary work: dual-write, shadow; planning an op, capturing its request
//   pg_secondary_queue.cc    the op queue: sending to the secondary, matching replies
//   pg_secondary_outcome.cc  an op's outcome: comparison, the journal, the intent record
//   pg_transactions.cc  the carried transaction (pg_transactions.h): two-phase commit;
//                    dual-writers of opposite authority
//   pg_stream_wait.cc   dual-write carried by the change stream: commits held
//                    until new applied them, reads on new after them
//
// Debug hooks (tests and operators only; off unless the environment has
// TURNOUT_PG_DEBUG_HOOKS=1): a simple Query "TURNOUT DEBUG USE NEW" (or OLD)
// makes that backend the session's primary at the next idle point outside
// a transaction, opening it and replaying the session state on it.

#include <boost/asio/post.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/io_buffer.h"
#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/messages.h"
#include "proxy/asio.h"
#include "proxy/pg/backend_connection.h"
#include "proxy/pg/cancel_registry.h"
#include "proxy/pg/pg_transactions.h"
#include "proxy/pg/reply_digest.h"
#include "proxy/pg/request_tracker.h"
#include "proxy/pg/scram.h"
#include "proxy/secondary/op_queue.h"
#include "proxy/secondary/sender.h"
#include "proxy/session.h"
#include "proxy/session_context.h"
#include "proxy/stream.h"
#include "routing/journal.h"
#include "routing/policy_table.h"
#include "routing/read_your_writes.h"
#include "routing/stream_positions.h"

namespace turnout::proxy::pg::detail {

// GCC 12 may destroy a temporary twice when it lives across a co_await in
// a conditional expression (seen here as a double free): arguments that
// own memory are built into locals before the co_await, never inline.

using Clock = std::chrono::steady_clock;

// Session-local wake-up for coroutines of one session (one thread): waiters
// re-check their condition after every wake, so spurious wakes are harmless.
class Event {
 public:
  explicit Event(const asio::any_io_executor& ex) : timer_(ex) { timer_.expires_at(Clock::time_point::max()); }
  awaitable<void> Wait() { co_await timer_.async_wait(); }
  void Notify() { timer_.cancel(); }

 private:
  Timer timer_;
};

// TURNOUT_PG_DEBUG_HOOKS=1 (see the file comment).
bool DebugHooksEnabled();

// One request (a simple Query, or an extended batch up to its Sync) that
// also goes to the backend that is not the primary (DESIGN.md §2):
//
//   dual-write  must be applied there; applied once the primary answered, so
//               row locks are taken on the secondary in the order the
//               primary granted them; a failure or a different outcome is
//               journaled. Sync: the client's ReadyForQuery waits for both.
//   shadow      compared with the primary's reply, then dropped; a shadow
//               write runs inside a transaction that is always rolled back.
//
// What goes out is `prefix` (session state replayed since the secondary was
// last brought up to date), `begin` (the lazy BEGIN of the client's
// transaction, or of a shadow write), `main` (the client's frames, byte for
// byte) and `suffix` (the ROLLBACK of a shadow write).
//
// The queue's and the sender's part (its number, accounted bytes, shadow,
// sent, primary_done, secondary_done, finished, released) is
// secondary::QueuedOp: the ops live in the queue both protocols share
// (proxy/secondary/op_queue.h); an op is `released` once the request it
// captures is complete (an extended batch: at its Sync, or abandoned).
struct SecondaryOp : secondary::QueuedOp {
  std::uint64_t request_seq = 0;  // the tracker's number of the request on the primary
  routing::SecondaryRole role = routing::SecondaryRole::kDualWrite;
  routing::RequestClass cls = routing::RequestClass::kWrite;
  bool sync = false;
  bool shadow_write = false;
  bool begins_txn = false;        // prefix holds the lazy BEGIN of the client's transaction
  bool opens_txn_only = false;    // a batch opening a transaction, no write in it (yet)
  bool in_txn = false;            // runs inside the secondary's copy of the client's transaction
  bool complete = false;          // `main` holds the whole request
  bool skipped = false;           // the primary did not apply it: nothing to do
  bool send_main = true;          // false: the primary failed it, only `prefix` goes out
  bool large_reply = false;       // a reply frame too large to see: not compared
  // Two-phase commit (`atomic: true`): the client's COMMIT, held back from
  // the primary until the secondary prepared (see AtomicCommit).
  bool atomic = false;
  std::string gid;

  routing::Side side = routing::Side::kNew;
  std::string prefix, begin, main, suffix;
  int prefix_replies = 0;         // ReadyForQuery of `prefix` and `begin`, swallowed
  int suffix_replies = 0;
  int replies_seen = 0;           // ReadyForQuery seen from the secondary
  std::string prefix_errors;

  std::vector<std::string> tables;
  protocol::pg::TransactionStatus primary_status = protocol::pg::TransactionStatus::kIdle;
  ReplyDigest primary, secondary;
  std::string failure;            // why the secondary did not apply it
  routing::JournalKind failure_kind = routing::JournalKind::kDropped;
  Clock::time_point start, sent_at;
  std::uint64_t primary_us = 0, secondary_us = 0;
  std::uint32_t intent = UINT32_MAX;  // its slot in the intent record (proxy/intent_ring.h)
};

class PgSession final : public Session, private RequestTracker::Hooks {
 public:
  PgSession(Socket client, SessionContext ctx);
  ~PgSession() override;

  void Close() override;
  void RequestDrain() override;
  awaitable<void> Run();

 private:
  using Verdict = RequestTracker::Verdict;
  using RequestStart = RequestTracker::RequestStart;
  using Side = routing::Side;

  static protocol::pg::FrameLimits ClientLimits(const routing::Config& cfg);
  const routing::Route& route() const { return ctx_.route.route; }
  BackendConnection* primary() { return backends_[static_cast<int>(primary_side_)].get(); }
  BackendConnection* backend(Side side) { return backends_[static_cast<int>(side)].get(); }

  // ---------------------------------------------------------------- pg_session.cc
  awaitable<bool> WriteToClient(std::string_view bytes);
  awaitable<void> LockClient();
  void UnlockClient();
  awaitable<void> SendFatal(std::string_view sqlstate, std::string_view message);
  awaitable<void> WaitBackendIdle();
  awaitable<bool> ReadClient();
  // ReadClient without a coroutine: the buffer to read into, then what was
  // read (false: the client is gone).
  asio::mutable_buffer ClientReadBuffer();
  bool ClientReadDone(std::error_code ec, std::size_t n);
  awaitable<bool> WriteRelease();
  // The session's three watchers on one timer (watch_timer_; a coroutine
  // each cost every session a few kB of frames for its whole life):
  //   drain  an idle session closes at once when drained (RequestDrain
  //          wakes the timer); a busy one at its ReadyForQuery (BackendLoop);
  //   idle   (zero: none) closes a session with no activity for that long
  //          (limits.idle_timeout);
  //   stall  (zero: none), the watchdog, closes it when the client loop has
  //          been held inside turnout (not reading the client) with no byte
  //          read from any connection for that long (see StallTimeout in
  //          pg_session.cc).
  awaitable<void> Watch(std::chrono::microseconds idle, std::chrono::microseconds stall);

  // ---------------------------------------------------------------- pg_startup.cc
  awaitable<bool> Startup();
  awaitable<bool> StartupInTime();  // Startup, bounded by kStartupTimeout
  awaitable<bool> ReadStartupFrame(protocol::pg::Frame* frame);
  awaitable<bool> Authenticate();
  awaitable<bool> ReadPasswordFrame(protocol::pg::Frame* frame);
  awaitable<bool> ExchangePassword(const std::string& challenge, std::string* password);
  awaitable<bool> AuthenticateScram(const std::optional<StoredSecret>& secret, bool* accepted);
  awaitable<void> HandleCancel(const protocol::pg::Frame& frame);
  awaitable<bool> OpenBackend(Side side, OpenFailure* failure);
  // At the session's end: `b` goes back to the worker's pool (server_pool.h).
  bool MayParkBackend(const BackendConnection& b, bool secondary_quiet) const;
  // The free pages of the session's receive buffers back to the kernel.
  void ReleaseIdlePages();
  LoginParams MakeLogin(const routing::Backend& backend) const;

  // ---------------------------------------------------------------- pg_relay.cc
  awaitable<void> ClientLoop();
  awaitable<bool> FlushClientParsed();
  awaitable<bool> StreamLargeClientFrame();
  awaitable<bool> HandleRefusal(std::string_view message);
  awaitable<bool> SendRefusalParse();
  awaitable<bool> HandleDebugUse(Side side);
  awaitable<void> BackendLoop(Side side);
  // BackendLoop(new) and SecondarySender, started once the session first
  // opens new or queues secondary work: a session without a migration
  // never does, and the two waiting would cost it their frames for its
  // whole life.
  awaitable<void> NewSideLoops();
  // false: the loop was cancelled (the session is ending)
  awaitable<bool> RelayBackend(Side side);
  bool OnBackendFrame(Side side, const protocol::pg::Frame& f);  // true: forward to the client
  bool BackendIdle() const noexcept { return tracker_.BackendIdle(); }
  bool AtBoundary() const noexcept { return tracker_.AtBoundary(); }

  // ---------------------------------------------------------------- pg_routing.cc
  // What the session plans on the secondary for a request (PlanSecondary).
  struct PlannedWork {
    bool any = false;
    routing::SecondaryRole role = routing::SecondaryRole::kDualWrite;
    bool sync = true;
    bool shadow_write = false;
    bool atomic_commit = false;  // the COMMIT of an atomic carried transaction
    bool async_txn_end = false;  // the end of a transaction carried asynchronously
    bool opens_txn = false;      // an extended batch that opens a transaction (BatchOpensTransactionForWrites)
    bool copy_journaled = false;  // a dual-written COPY FROM: journaled instead (CommitPlan)
    std::uint64_t request_seq = 0;  // the tracker's number of the request (CommitPlan)
    std::vector<std::string> tables;
  };
  // The session's decision for a request, from its first frame
  // (RequestStart): the policy's plan with the side it goes to, and the
  // work planned on the other side. `wait` says what must happen before
  // the request may go; the barrier (AwaitPlan) does it and carries the
  // plan through.
  struct RequestPlan {
    routing::Plan plan;  // refused(), or its primary is where the request goes
    PlannedWork work;
    enum class Wait : std::uint8_t {
      kNone,
      kQuiet,        // switch the primary to plan.primary() and/or prepare the secondary, once nothing is in flight
      kCutoverHold,  // a cutover's write window: decided again under the policy that ends it
      kStreamRead,   // a read on new waits for the session's last commit there: decided again after
    };
    Wait wait = Wait::kNone;
  };
  // Decides for a request; no I/O, and nothing that must happen only once
  // (that is CommitPlan). `stream_waited`: the read already waited for the
  // stream (FenceStreamRead).
  RequestPlan PlanRequest(const RequestStart& start, bool stream_waited);
  // The barrier before a request whose plan waits: everything before it goes
  // out and is answered, then the plan's wait. False when the session ends.
  awaitable<bool> AwaitPlan(const RequestStart& start, RequestPlan* p);
  // The plan is final and the request goes: what it marks in the session.
  void CommitPlan(const RequestStart& start, RequestPlan& p);
  // An Execute later in an extended batch: true when refused.
  bool RouteLaterExecute(const RequestStart& start);
  routing::Request MakeRequest(routing::RequestClass cls, routing::DdlRisk risk,
                               std::span<const std::string_view> targets) const;
  // RequestTracker::Hooks
  void Answered(const RequestTracker::Record& r, std::chrono::microseconds latency) override;
  void InFlight(bool busy) override;
  awaitable<bool> SwitchPrimary(Side side, std::string* notice, std::string* error);
  awaitable<bool> EnsureSynced(Side side, std::string* notice, std::string* error);
  const std::string& BackendName(Side side) const;
  // In the process-wide back-off both protocols share
  // (proxy/secondary/backend_health.h).
  bool SideDown(Side side) const {
    return ctx_.services->backend_health->IsDown(BackendName(side), Clock::now());
  }

  // ---------------------------------------------------------------- pg_secondary*.cc, pg_transactions.cc
  PlannedWork PlanSecondary(const routing::Plan& plan, const RequestStart& start);
  // An Execute later in an extended batch: a write the batch's plan did not
  // foresee is journaled at the Sync (uncaptured_write_).
  void NoteLaterExecute(const routing::Plan& plan, routing::RequestClass cls,
                        std::span<const std::string_view> targets);
  // Would a write starting now be dual-written?
  bool WritesAreDualWritten();
  // The plan the policy gives a write starting now in this session.
  routing::Plan PlanOfAWrite();
  // How writes are dual-written, when this request is an extended batch
  // that opens a transaction with BEGIN (PlanSecondary carries it whole).
  struct CarriedWrites {
    routing::Apply apply;
    bool atomic = false;
  };
  std::optional<CarriedWrites> BatchOpensTransactionForWrites(const RequestStart& start);
  // At the barrier before a request with secondary work: the secondary
  // connection is opened (state replayed) when it is not.
  awaitable<void> PrepareSecondary();
  // The client frame `f` starts the request with planned work `w`; true
  // when it is also its last (a simple Query).
  bool StartOp(const protocol::pg::Frame& f, PlannedWork& w);
  // A later frame of the extended batch being captured; true at its Sync.
  bool CaptureFrame(const protocol::pg::Frame& f);
  void AbandonCapture(std::string_view why);
  // The batch being captured is complete (or given up): its op may be trimmed once finished.
  void EndCapture() noexcept;
  // The request's last frame was captured; a sync op makes the client wait
  // for both sides. False when the primary is gone.
  awaitable<bool> OpComplete();
  // PREPARE TRANSACTION on the secondary, then the client's COMMIT on the
  // primary, then COMMIT (or ROLLBACK) PREPARED on the secondary.
  awaitable<bool> AtomicCommit(SecondaryOp& op);
  void PrimaryOpDone(SecondaryOp& op);
  bool OnSecondaryFrame(Side side, const protocol::pg::Frame& f);
  // A frame larger than the buffer went past `side`'s op unseen.
  void NoteLargeReply(Side side);
  awaitable<void> SecondarySender();
  void MaybeFinish(SecondaryOp& op) { sec_sender_.MaybeFinish(op); }
  void FinishOp(SecondaryOp& op);
  // The protocol's part of the shared sender (proxy/secondary/sender.h):
  // an op goes out once captured whole and answered by the primary.
  friend class secondary::Sender<SecondaryOp, PgSession>;
  bool Sendable(const SecondaryOp& op) const noexcept { return op.complete && op.primary_done; }
  void SecondaryDone(SecondaryOp& op);
  void Finish(SecondaryOp& op) { FinishOp(op); }
  void TrimOps();
  std::uint64_t JournalOp(const SecondaryOp& op, routing::JournalKind kind, std::string primary_outcome,
                          std::string secondary_outcome);
  // The intent record (pg_secondary_outcome.cc): a dual-write's tables, kept until it is applied or journaled.
  std::uint32_t RecordIntent(std::span<const std::string> tables, Side side);
  void SettleIntent(SecondaryOp& op, std::uint64_t entry);
  void JournalUncaptured(std::string_view why, std::span<const std::string_view> tables = {});
  std::string SecondaryDatabase(Side side) const;
  void SecondaryLost(Side side);
  // Journals every op not yet applied (the secondary is gone, or the session ends).
  void AbandonSecondaryWork(std::string_view why, bool session_ending);
  // After the client left: lets queued work reach the secondary (bounded).
  awaitable<void> FinishSecondaryWork();
  // Counts this session in RouteRuntime::dual_writers while it has
  // dual-write work in flight; and waits, before the first, for sessions
  // writing the other way round to finish (bounded).
  void UpdateWriterHold();
  awaitable<void> WaitForOppositeWriters();
  SecondaryOp* OpAnswering(std::uint64_t seq);
  bool SecondaryBusy() const noexcept { return !sec_ops_.empty(); }
  // Until every op that can progress has finished.
  awaitable<void> WaitSecondaryIdle();
  // At the barrier before a dual-write: until the queue has room for it.
  // Sync waits as long as it takes (back-pressure: a sync write is never
  // shed to the journal); async at most secondary::kAsyncRoomWait, then
  // StartOp journals it `dropped` (docs/secondary-work.md, Limits).
  awaitable<void> WaitForRoom(bool sync);

  // ---------------------------------------------------------------- pg_stream_wait.cc
  // Dual-write carried by the change stream (routing/stream_positions.h):
  // the session sends nothing to new; it learns when new has its commits.
  class StreamWake;
  using StreamWaitResult = RouteRuntime::StreamWaitResult;
  // CommitPlan: a write sent to old under a stream plan marks the transaction.
  void NoteStreamWrite(const routing::Plan& plan, routing::RequestClass cls, Side side);
  // PlanRequest: a read that would go to new while the session's last async
  // commit may not be there yet: waits at the barrier (`*wait`, when
  // `may_wait`), then goes to the authoritative side if new still lacks it.
  routing::Plan FenceStreamRead(routing::Plan plan, bool may_wait, bool* wait);
  // Each ReadyForQuery `f` of the primary while the session is in a
  // transaction (or wrote) under the stream; `forward`: it goes to the
  // client. At the end of a transaction that wrote, true when `f` is held
  // (sync): ReleaseStreamHold() sends it.
  // `xid_state`: what the xid query before it said (WantsCommitXid).
  enum class CommitXid : std::uint8_t { kNotAsked, kAsked, kKnown, kFailed };
  bool HoldForStream(const protocol::pg::Frame& f, bool forward, CommitXid xid_state);
  // Holds the ReadyForQuery `f` until new applied the commit named by
  // `ticket` or `xid` (ReleaseStreamHold); true.
  bool HoldCommit(const protocol::pg::Frame& f, std::uint64_t ticket, std::uint32_t xid);
  awaitable<void> ReleaseStreamHold();
  // Until new applied the commit named by `ticket` (its sample) or `xid`
  // (0: none). `nudge`: ask for a fence if the position is not there yet
  // (an async commit's sample, which came without one). A wait by xid
  // alone that the stream does not answer within kCommitXidGrace takes a
  // sample with a fence too (`*fenced` says so).
  awaitable<StreamWaitResult> WaitStreamApplied(std::uint64_t ticket, std::uint32_t xid, bool nudge,
                                                bool* fenced = nullptr);
  // A sync transaction's COMMIT while this process runs the route's stream
  // (a simple Query, or an extended batch that starts with it; nothing else
  // in flight): the session first asks old
  // for the transaction's xid, with a Query of its own sent in the same
  // write as the COMMIT, so that the commit waits for exactly its own end
  // in the stream (routing/stream_positions.h) rather than for a sample and
  // a fence. Decided before the tracker records the COMMIT (Routed).
  bool WantsCommitXid(const RequestStart& start, const RequestPlan& p);
  // What every xid question needs of the session (WantsCommitXid,
  // WantsWriteXid, WantsBatchXid): XidQueryFits, nothing in flight, no
  // secondary work, and the stream reporting in this process.
  bool MayAskXid(const RequestPlan& p);
  // The write went to old under sync, with no secondary work around it.
  bool XidQueryFits() const;
  // An autocommit INSERT, UPDATE, DELETE or MERGE, and MayAskXid.
  bool AutocommitDml(const RequestStart& start, const RequestPlan& p);
  // The xid query goes out ahead of the frames parsed from now on.
  void QueueCommitXidQuery();
  // An autocommit write under sync (a simple Query of one INSERT, UPDATE,
  // DELETE or MERGE, outside a transaction, while this process runs the
  // stream): the same query is appended to it, so the one implicit
  // transaction answers with its own xid (WantsWriteXid), and the session
  // sends that Query in place of the client's (QueueWriteWithXid).
  bool WantsWriteXid(const RequestStart& start, const RequestPlan& p);
  void QueueWriteWithXid(const protocol::pg::Frame& f);
  // The same for an autocommit write in an extended batch (pgjdbc, node-pg:
  // Parse/Bind/Execute of one INSERT, UPDATE, DELETE or MERGE, then Sync,
  // outside a transaction, nothing else in flight): the batch is armed at
  // its first message (WantsBatchXid), each of its frames is counted
  // (NoteBatchXidFrame: how many replies are the client's, and whether it
  // still only writes by DML and reads), and at its Sync the xid query goes
  // ahead of the Sync as Close/Parse/Bind/Execute/Close of a statement of
  // turnout's (QueueBatchXid), in the batch's implicit transaction.
  bool WantsBatchXid(const RequestStart& start, const RequestPlan& p);
  // `execute`: what routing was told of an Execute (null: not routed).
  void NoteBatchXidFrame(const protocol::pg::Frame& f, const RequestStart* execute);
  void QueueBatchXid();
  struct BatchXid {
    bool armed = false;
    bool executed = false;              // any Execute in the batch
    bool wrote = false;                 // a DML Execute in the batch
    std::uint32_t client_replies = 0;   // replies that end one client message
  };
  BatchXid batch_xid_;
  std::uint32_t xid_client_replies_ = 0;  // kClientBatch: client replies still to come
  // A reply frame while an xid query's answer is expected: true or false
  // when the frame is the xid query's (whether the client sees it: only an
  // error, which failed the client's transaction too), nullopt when it is
  // the client's and is relayed as usual.
  std::optional<bool> OnXidReply(const protocol::pg::Frame& f);
  void TakeXid(const protocol::pg::Frame& data_row);
  routing::StreamPosition& stream_position();
  // A cutover's write window (plan kPlanHoldWrites): a transaction about to
  // start waits at the barrier until the policy without the hold arrives.
  awaitable<void> HoldForCutover();
  void CountOpenWriter(bool open);

  // ---------------------------------------------------------------- members
  SessionContext ctx_;
  SessionRegistration registration_;
  Stream client_;
  protocol::IoBuffer client_in_;
  protocol::pg::FrameDecoder client_decoder_;
  asio::any_io_executor ex_;
  std::array<std::unique_ptr<BackendConnection>, 2> backends_;
  Side primary_side_ = Side::kOld;

  Event backend_ready_;  // a backend finished opening, or secondary work was first queued
  Event idle_;           // a ReadyForQuery left nothing in flight
  Event client_lock_;    // the client writer was released
  Timer watch_timer_;    // Watch's; RequestDrain wakes it
  Event sec_progress_;   // secondary work moved on (sent, answered, finished)
  bool client_locked_ = false;
  bool draining_ = false;
  bool closing_ = false;
  Clock::time_point last_activity_ = Clock::now();  // a read from the client or a backend
  bool reading_client_ = false;                     // ClientLoop waits for the client
  bool idle_pages_released_ = false;                // since the last read from the client (idle_pages.h)

  // Client identity (routing::ClientIdentity views these).
  std::string user_, database_, application_name_, address_;
  std::vector<std::pair<std::string, std::string>> startup_options_;
  std::optional<std::string> client_cleartext_;  // only with auth `password`
  std::string auth_reply_;                       // SASLFinal/AuthenticationOk, sent with the welcome

  std::shared_ptr<CancelSlots> cancel_slots_ = std::make_shared<CancelSlots>();
  std::optional<CancelRegistry::Key> cancel_key_;
  std::optional<routing::RouteTableReader> reader_;

  std::vector<std::unique_ptr<BackendConnection>> dead_backends_;  // lost secondaries, closed
  bool debug_pinned_ = false;            // a debug hook chose the primary

  // Secondary work, in request order (pg_secondary*.cc).
  SecondaryOp* capturing_ = nullptr;     // the extended batch being captured
  bool uncaptured_write_ = false;        // a write in a batch that is not captured
  std::vector<std::string> uncaptured_tables_;
  Clock::time_point sec_last_reply_;     // the secondary last answered
  // The queue both protocols share: bounds from the configuration, shadow
  // work sampled per session.
  secondary::OpQueue<SecondaryOp> sec_ops_{secondary::QueueLimits::Of(ctx_.config->limits), ctx_.connection_id};
  // Ops go out in sequence on the secondary's connection (pipelined);
  // replies are matched to them in that order (Head); an async write stops
  // fencing reads (fence_) once its secondary side is done.
  secondary::Sender<SecondaryOp, PgSession> sec_sender_{
      sec_ops_, *this, secondary::Sender<SecondaryOp, PgSession>::kUnbounded, &fence_};
  // The lookup cached for the primary's reply path (OpAnswering), by the
  // op's number in sec_ops_ (0: none; a trimmed op is not found).
  static constexpr std::uint64_t kNoRequest = ~std::uint64_t{0};
  std::uint64_t answering_for_ = kNoRequest;
  std::uint64_t answering_op_ = 0;
  CarriedTransaction carried_;           // the secondary's copy of the client's transaction
  routing::ReadYourWritesFence fence_;
  std::string release_;                  // bytes a backend loop must write to the client next
  // Sync dual-write: the primary's ReadyForQuery, held by the session until
  // the op numbered held_z_op_ (in sec_ops_) finished; FinishOp moves it to
  // release_. One at a time: a sync client's next request waits for its op
  // (OpComplete).
  std::string held_z_;
  std::uint64_t held_z_op_ = 0;

  // Dual-write carried by the change stream (pg_stream_wait.cc).
  routing::StreamPosition* stream_pos_ = nullptr;
  std::unique_ptr<StreamWake> stream_wake_;
  std::shared_ptr<Timer> stream_timer_;  // shared with StreamWake's wake-ups
  bool stream_wrote_ = false;            // the open transaction wrote to old under a stream plan
  bool stream_wrote_sync_ = false;       // ... and its commit waits for new
  bool stream_hold_ = false;             // stream_held_z_ waits for new
  std::string stream_held_z_;            // the primary's ReadyForQuery, held back
  std::uint64_t stream_ticket_ = 0;      // async: the last commit new may not have yet
  std::uint32_t stream_xid_ = 0;         // sync: the held commit's xid (0: waited for by ticket)
  // The xid query (WantsCommitXid): its bytes, until FlushClientParsed sends
  // them; its ReadyForQuery still to come; what it said.
  std::string_view own_request_;
  std::string write_with_xid_;           // QueueWriteWithXid's Query (capacity kept)
  enum class XidReply : std::uint8_t {
    kNone,
    kOwnQuery,     // the xid query's own request (before a COMMIT): all of it is turnout's
    kClientFirst,  // a write with the query appended: the client's replies, to its CommandComplete
    kClientBatch,  // an extended batch with the query before its Sync: the client's replies
    kAppended,     // ... then the appended query's, to the ReadyForQuery (the client's)
  };
  XidReply xid_reply_ = XidReply::kNone;
  CommitXid commit_xid_state_ = CommitXid::kNotAsked;
  std::uint32_t commit_xid_ = 0;         // kKnown: the xid, 0 when none was assigned
  bool open_writer_ = false;             // counted in StreamPosition::open_writers

  RequestTracker tracker_;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

// Wakes a session waiting on its route's StreamPosition: the position calls
// Wake() from the applier's or feeder's thread; the session's timer is
// cancelled on the session's own thread (the session re-checks why).
class PgSession::StreamWake final : public routing::StreamPosition::Waiter {
 public:
  StreamWake(asio::any_io_executor ex, std::weak_ptr<Timer> timer) : ex_(std::move(ex)), timer_(std::move(timer)) {}
  void Wake() noexcept override {
    asio::post(ex_, [timer = timer_] {
      if (auto t = timer.lock()) t->cancel();
    });
  }

 private:
  asio::any_io_executor ex_;
  std::weak_ptr<Timer> timer_;
};

}  // namespace turnout::proxy::pg::detail
