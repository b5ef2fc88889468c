#pragma once
// The secondary side of one Redis client session (DESIGN.md §2, §4): an
// ordered, bounded queue of work for one backend that is not the request's
// primary, applied on a connection of its own, off the client's reply path.
//
//   request loop ── Enqueue(op) ──► ops_ (seq order) ──► sender ──► backend
//   reply writer ── PrimaryReply / CopyReady ────┘        reader ◄──┘
//                                                          │
//        Finish: compare, journal, metrics, shadow samples ◄┘
//
// Kinds of work (SecondaryOp::kind):
//   kDualWrite  the client's deterministic write, byte for byte, sent once
//               the primary answered it without an error (a write the
//               authoritative side refused or never answered is not applied
//               here: issue 13 item 8)
//   kCopy       RESTORE … REPLACE / DEL of the keys a non-deterministic write
//               touched: once the primary answered the write, the channel
//               reads DUMP/PTTL on a connection of its own to the
//               authoritative side, named `turnout` (secondary_copy.cc says
//               why that read is exact), and restores that here
//   kBlock      a MULTI/EXEC block: MULTI, its deterministic writes, copies of
//               its non-deterministic ones (read the same way), EXEC; sent
//               only once the primary's EXEC committed (a WATCH abort sends
//               nothing)
//   kShadow     a mirrored read (or a write rewritten under the scratch key
//               prefix): the reply is compared with the primary's, then dropped
//   kState      SELECT / HELLO / CLIENT SETNAME / RESET, so this connection
//               sees the same session; reply ignored
//
// Order: ops are sent strictly in sequence; an op that is not ready (a copy
// waiting for the primary's reply) holds back the ones after it, so the secondary sees
// the session's writes in the order the authoritative side applied them.
// Which op goes next, which op a reply is for, and when an op is done on
// both sides is the sender both protocols share (proxy/secondary/sender.h);
// this channel supplies the connection, the wire, the digest of a reply
// (ProcessReplies) and the outcome (Finish).
// An op also waits until every primary request this session sent to the
// same backend before it was answered (`barrier`), so a canary read on that
// backend never observes a later write.
//
// Failure: the connection is opened lazily; when it cannot be opened or is
// lost, every write it carried or would carry is journaled (kFailed when it
// was sent and its outcome is unknown, kDropped when it never went out) and
// the backend is marked down process-wide (BackendHealth) so reconnects are
// rate-limited. The primary keeps serving.
//
// Crash-safe record (issue 14 item 2): a write (kDualWrite, kCopy, kBlock)
// claims a slot of the intent record (proxy/intent_ring.h) naming its keys
// when it is queued, which is before the session flushes the command to the
// primary; the slot is cleared once the write is finished here (applied, or
// not applied by the primary), or handed to the journal flusher when it was
// journaled. A write no slot can hold is journaled at once instead. So a
// process killed between the two sides leaves its keys to the next start.
//
// The queue is the one both protocols share (proxy/secondary/op_queue.h):
// numbered ops, bounded by the configured limits (ops and command bytes
// queued, shadow ops and bytes among them), and its admission decision
// (Admit). A dual-write that finds no room waits in the session (WantRoom,
// then on_progress): sync without a limit but a watchdog, async up to a
// second, then it is journaled (kDropped). A shadow request the queue sheds
// (its tighter bound, sampled as it fills) is counted in shadow_dropped.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/asio.h"
#include "proxy/redis/backend_connection.h"
#include "proxy/redis/secondary_work.h"
#include "proxy/secondary/key_order.h"
#include "proxy/secondary/op_queue.h"
#include "proxy/secondary/queue_limits.h"
#include "proxy/secondary/sender.h"
#include "proxy/session.h"
#include "proxy/session_context.h"
#include "routing/journal.h"
#include "routing/read_your_writes.h"

namespace turnout::proxy::redis {

enum class OpKind : std::uint8_t { kDualWrite, kCopy, kBlock, kShadow, kState };

// The queue's and the sender's part (seq, accounted bytes, shadow, sent,
// primary_done, secondary_done, finished, released) is secondary::QueuedOp;
// `released`: no reply-FIFO entry refers to it any more.
struct SecondaryOp : secondary::QueuedOp {
  using Clock = std::chrono::steady_clock;

  OpKind kind = OpKind::kDualWrite;
  routing::RequestClass cls = routing::RequestClass::kWrite;
  bool sync = false;            // the client's reply waits for this op
  CompareMode compare = CompareMode::kFull;

  // Lifecycle.
  bool ready = false;           // wire complete (copies and blocks wait for the primary)
  bool skipped = false;         // the primary did not apply it: nothing to do
  bool deferred = false;        // kCopy, kBlock with copies: DUMP/PTTL still to read (PrepareCopy)
  bool captured = false;        // ... read, or given up: the session's later writes of the keys may go
  bool nil_is_noop = false;     // a blocking pop: a nil reply (timed out) changed nothing

  // What the client sent (RESP): the journal's statement, the shadow
  // sample's request; and what goes to the secondary when it differs
  // (copies, blocks, rewritten shadow writes). Empty wire: `command`.
  std::string command;
  std::string wire;
  int replies_expected = 1;
  int replies_seen = 0;
  std::vector<std::string> keys;          // copies; journal targets (else from `command`)
  std::vector<std::uint32_t> positions;   // kBlock: block indices of the writes sent
  std::size_t copies = 0;                 // kBlock: trailing copy commands in the block
  std::size_t copy_keys = 0;              // kBlock: keys[0, copy_keys) are copied
  int copy_db = -1;                       // kBlock: ... read in this database (-1: the channel's)

  CapturedReply primary;
  CapturedReply secondary;
  std::string failure;                    // why the secondary did not apply it
  routing::JournalKind failure_kind = routing::JournalKind::kFailed;

  // kState: the upstream state after this op (for a reconnect).
  int state_db = -1;
  int state_protocol = 0;                 // 2 or 3; 0 unchanged
  std::optional<std::string> state_name;
  bool state_reset = false;

  Clock::time_point start;                // the request's dispatch
  std::uint64_t primary_us = 0;
  std::uint64_t secondary_us = 0;
  std::uint64_t barrier = 0;              // see the header comment
  // Key stripes held for this write (KeyOrder) until it is finished.
  secondary::KeyOrder::Stripes stripes;
  std::uint64_t stripe_owner = 0;
  // Its slot in the intent record (IntentRing::kNoSlot: none), and more
  // when its keys need several (MSET of thousands).
  std::uint32_t intent = UINT32_MAX;
  std::vector<std::uint32_t> more_intents;

  const std::string& Wire() const { return wire.empty() ? command : wire; }
  bool is_write() const { return kind == OpKind::kDualWrite || kind == OpKind::kCopy || kind == OpKind::kBlock; }
};

// Owned copy of the session state an upstream connection reproduces.
struct OwnedUpstreamState {
  int db = 0;
  bool resp3 = false;
  std::string client_name;
};

class SecondaryChannel {
 public:
  using Clock = std::chrono::steady_clock;
  // The default byte bound of the queue: a request or MULTI block over half
  // of it is journaled, never kept (kMaxCopiedRequest, FinishBlock).
  static constexpr std::size_t kMaxBytes = secondary::QueueLimits{}.max_bytes;
  // Replies kept for comparison; longer ones are compared by hash and length.
  static constexpr std::size_t kCompareCap = 1u << 20;
  // No reply byte for this long with work in flight: the connection is
  // given up (the work journaled), so a hung secondary cannot hold clients.
  static constexpr std::chrono::seconds kReplyTimeout{10};
  // DUMP payloads kept for a copy; a longer value is journaled for repair.
  static constexpr std::size_t kCopyCap = 64u << 20;

  struct Env {
    RouteRuntime* route = nullptr;
    std::shared_ptr<const ProxyServices> services;
    std::shared_ptr<const routing::Config> config;
    std::uint64_t session_id = 0;
    routing::ReadYourWritesFence* fence = nullptr;
    // Primary requests answered per side (see `barrier`).
    const std::array<std::uint64_t, 2>* main_answered = nullptr;
    // Wakes the session's reply writer (a sync reply may be waiting).
    std::function<void()> on_progress;
  };

  SecondaryChannel(asio::any_io_executor executor, routing::Side side, Env env);
  SecondaryChannel(const SecondaryChannel&) = delete;
  SecondaryChannel& operator=(const SecondaryChannel&) = delete;

  routing::Side side() const noexcept { return side_; }
  // The backend this channel talks to; set before the first op and changed
  // only while the channel is idle (Retarget).
  const routing::Backend* backend() const noexcept { return backend_; }
  void set_backend(const routing::Backend* b, const OwnedUpstreamState& state);
  // The authoritative side's backend, for copies.
  void set_source_backend(const routing::Backend* b) { source_backend_ = b; }
  // Drops the connection when nothing is queued, so the next op opens one to
  // `b` (the policy's new backend changed). False when busy.
  bool Retarget(const routing::Backend* b, const OwnedUpstreamState& state);
  void set_migration(std::string migration_id) { migration_id_ = std::move(migration_id); }

  // ---- request loop
  // The queue's decision for a new op of `bytes` command bytes (a shadow op
  // admitted is to be enqueued: the queue samples shadow work).
  secondary::Admission Admit(secondary::Work work, std::size_t bytes) noexcept { return ops_.Admit(work, bytes); }
  // Room for one more dual-write of `bytes` command bytes?
  bool HasRoom(std::size_t bytes) const noexcept { return ops_.HasRoom(bytes); }
  // The session waits for room for `bytes` more: on_progress() is called
  // once there is (back-pressure, issue 13 item 6).
  void WantRoom(std::size_t bytes) noexcept { room_wanted_ = bytes; }
  // Appends an op (seq assigned; admitted by Admit, or a session-state
  // op); ready ops wake the sender. A write is recorded in the intent
  // record first, named by op.keys or else `keys` (views the caller keeps
  // alive for this call only).
  SecondaryOp& Enqueue(SecondaryOp op, std::span<const std::string_view> keys = {});
  // A dual-write that was never queued (queue full, command too large to
  // keep): journaled as kDropped and counted.
  void JournalNotQueued(std::string_view command, std::vector<std::string> keys, std::string reason);
  // Dual-writes, copies and blocks not yet applied (or journaled).
  std::size_t unresolved_writes() const noexcept { return unresolved_writes_; }
  bool idle() const noexcept { return ops_.empty(); }
  // Ops resolved so far (applied, failed or dropped): a progress measure.
  std::uint64_t resolved() const noexcept { return resolved_; }
  // The connection failed recently and is in its back-off window.
  bool down() const;

  // ---- reply writer
  SecondaryOp* Find(std::uint64_t seq) noexcept { return ops_.Find(seq); }
  // The primary's reply (op.primary filled) is complete.
  void PrimaryReply(SecondaryOp& op);
  // The primary's reply to a kCopy/kBlock op is in: nothing to do when it
  // did not apply, else the op is sent (its copies read first, PrepareCopy).
  void CopyReady(SecondaryOp& op);
  // The reply FIFO entry let go of the op.
  void Release(SecondaryOp& op);
  // A primary request on this channel's side was answered (barrier).
  void MainAnswered() {
    if (waiting_on_main_) send_wake_.cancel();
  }

  // ---- session lifecycle
  awaitable<void> Run();
  // No more ops will come: ops still waiting for the primary are journaled,
  // the rest are applied, then Run() returns.
  void Stop();
  // Ends at once: the connection closes and Run() returns.
  void Abort();
  // After Run(): everything not applied is journaled.
  void AbandonAll(std::string_view reason);
  bool drained() const noexcept {
    return ops_.empty() || (sender_.all_sent() && sender_.in_flight() == 0 && AllNotReady());
  }

 private:
  // The protocol's part of the shared sender (proxy/secondary/sender.h).
  friend class secondary::Sender<SecondaryOp, SecondaryChannel>;
  bool Sendable(const SecondaryOp& op) const noexcept { return op.ready; }
  void SecondaryDone(SecondaryOp& op);
  void Finish(SecondaryOp& op);

  awaitable<void> SenderLoop();
  awaitable<void> ReaderLoop();
  bool HasSendable() const { return sender_.HasSendable(); }
  bool AllNotReady() const { return !HasSendable(); }
  std::uint64_t end_seq() const noexcept { return ops_.end_seq(); }
  SecondaryOp& At(std::uint64_t seq) noexcept { return ops_.At(seq); }
  void ApplyStateOp(const SecondaryOp& op);
  // Frames replies from the buffer and hands them to ops. False on a bad reply.
  bool ProcessReplies();
  void SecondaryFailed(SecondaryOp& op, routing::JournalKind kind, std::string reason);
  void DropSendable(const std::string& reason);
  void FailInFlight(const std::string& reason);
  void MaybeFinish(SecondaryOp& op);
  // Returns the journal entry's sequence number.
  std::uint64_t Journal(const SecondaryOp& op, routing::JournalKind kind, std::string secondary_outcome);
  routing::JournalEntry EntryOf(const SecondaryOp& op, routing::JournalKind kind, std::string secondary_outcome) const;
  // The intent record: claim a slot for a write (journaling it now when
  // none can hold it), and let go of it once `entry` (0: none) records it
  // or nothing needs to.
  void RecordIntent(SecondaryOp& op, std::span<const std::string_view> keys, bool journal_if_no_slot);
  void SettleIntent(SecondaryOp& op, std::uint64_t entry);
  void Trim();
  void ConnectionLost(const std::string& reason);
  awaitable<void> AbortWait();
  // secondary_copy.cc: stripes, DUMP/PTTL on the source connection, wire.
  awaitable<void> PrepareCopy(SecondaryOp& op);
  // Reads `n` replies on `conn` into `out` (large ones streamed, capped).
  awaitable<bool> ReadReplies(BackendConnection& conn, int n, std::vector<CapturedReply>& out, std::string& error);

  asio::any_io_executor executor_;
  const routing::Side side_;
  Env env_;
  const routing::Backend* backend_ = nullptr;
  std::string migration_id_;
  std::unique_ptr<BackendConnection> conn_;
  const routing::Backend* source_backend_ = nullptr;
  std::unique_ptr<BackendConnection> source_;  // copies read here (named `turnout`)
  const routing::Backend* source_open_ = nullptr;  // the backend source_ is connected to
  int source_db_ = -1;
  OwnedUpstreamState conn_state_;  // the state at the next op to send

  secondary::OpQueue<SecondaryOp> ops_;
  // Ops go out in sequence, pipelined; replies are matched to them in order.
  secondary::Sender<SecondaryOp, SecondaryChannel> sender_{
      ops_, *this, secondary::Sender<SecondaryOp, SecondaryChannel>::kUnbounded, env_.fence};
  std::size_t unresolved_writes_ = 0;
  std::uint64_t resolved_ = 0;

  Timer send_wake_;
  Timer reply_wake_;
  std::vector<asio::const_buffer> out_bufs_;
  Timer abort_wake_;
  bool waiting_on_main_ = false;
  bool sender_waiting_ = false;
  bool reader_waiting_ = false;
  bool retarget_ = false;
  int trim_blocked_ = 0;
  bool stop_ = false;
  bool aborted_ = false;
  bool lost_ = false;
  bool partial_active_ = false;
  std::string lost_reason_;
  std::optional<std::size_t> room_wanted_;  // WantRoom
  std::shared_ptr<secondary::KeyWaiter> key_waiter_;  // blocking pops' copies waiting for their keys
};

}  // namespace turnout::proxy::redis
