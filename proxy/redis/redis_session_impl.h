#pragma once
// The Redis session (redis_session.h), shared by its translation units;
// nothing outside proxy/redis includes this.
//
//   client ──► RequestLoop ──► Dispatch ──segments──► BackendConnection(s)
//                                 │ RedisTracker::Classify: the verdict,
//                                 ▼ then one Entry per command
//                         in-flight FIFO (RedisTracker::fifo)
//                                 │
//   client ◄── WriterLoop ◄── Collect: the head's reply, from that
//                             backend's buffer or local_out_
//
// The tracker decides (pure, unit-tested); the session does the I/O.
//
// Where the code lives:
//   redis_tracker.cc         command -> verdict, the FIFO, session state
//   redis_session.cc         lifecycle: Run, TLS sniffing, the request loop,
//                            upstream flushes, drain, idle timeout
//   redis_dispatch.cc        per command: the verdict acted on, routing
//                            plan, forwarding, FIFO entries, backends
//   redis_local_commands.cc  the handler table: AUTH, HELLO, RESET, QUIT,
//                            CLIENT *, SELECT, WATCH, MONITOR, (un)subscribe
//   redis_multi.cc           MULTI/EXEC/DISCARD, the dual-written block,
//                            SELECT inside a transaction
//   redis_large_request.cc   commands larger than the receive buffer
//   redis_reply_writer.cc    the writer loop, reply framing, pub/sub
//   redis_secondary.cc       linking commands and replies to secondary work
//                            (secondary_channel.h runs that work)

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

#include "absl/time/time.h"
#include "protocol/io_buffer.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/request_parser.h"
#include "proxy/asio.h"
#include "proxy/redis/backend_connection.h"
#include "proxy/secondary/key_order.h"
#include "proxy/redis/large_request.h"
#include "proxy/redis/pubsub_frame.h"
#include "proxy/redis/redis_tracker.h"
#include "proxy/redis/secondary_channel.h"
#include "proxy/redis/secondary_work.h"
#include "proxy/session.h"
#include "proxy/session_context.h"
#include "proxy/stream.h"
#include "routing/policy_table.h"
#include "routing/read_your_writes.h"

namespace turnout::proxy::redis {

namespace resp = protocol::resp;
using Clock = std::chrono::steady_clock;
using routing::RequestClass;
using routing::Side;

// The pipelining window: commands in flight per session. 1024 keeps
// redis-benchmark -P 16 -c 50 and redis-cli --pipe at full speed while a
// client that never reads can pin at most this many replies upstream.
constexpr std::size_t kMaxInflight = 1024;
// Local replies (errors, AUTH/GETNAME answers) waiting for their turn.
constexpr std::size_t kMaxLocalBytes = 256 * 1024;
// Segments gathered into one client write.
constexpr std::size_t kMaxWriteSegments = 256;

// The secondary work one request gets (from its plan's secondaries and the
// command table).
struct SecondaryChoice {
  enum Kind : std::uint8_t { kNone, kDualWrite, kCopy, kShadow, kShadowWrite } kind = kNone;
  Side side = Side::kNew;
  bool sync = false;
};

// A piece of an upstream write: bytes of the client's receive buffer (by
// pointer: the buffer is not moved until the write completes) or of the
// side's synthesized commands (by offset: that string may still grow).
struct UpstreamSegment {
  const std::uint8_t* data = nullptr;  // null: synth_ offset
  std::size_t offset = 0;
  std::size_t size = 0;
};

// A piece of a client write: a backend receive buffer range or scratch.
struct ClientSegment {
  const std::uint8_t* data = nullptr;  // null: write_scratch_ offset
  std::size_t offset = 0;
  std::size_t size = 0;
};


class RedisSession final : public Session {
 public:
  RedisSession(Socket client, SessionContext ctx);

  void Close() override;
  void RequestDrain() override;
  awaitable<void> Run();

 private:
  // A local command's handler (redis_local_commands.cc, redis_multi.cc),
  // looked up by the tracker's verdict.
  using LocalHandler = awaitable<void> (RedisSession::*)(const resp::Command& cmd, const std::uint8_t* input,
                                                         const resp::CommandInfo& info);

  // A finished session keeps applying its queued secondary work while the
  // channels make progress; after this long without any, the rest is
  // journaled.
  static constexpr auto kChannelDrain = std::chrono::seconds(2);
  // Per-key order wait bound (AcquireStripes).
  static constexpr auto kKeyOrderWait = std::chrono::seconds(30);
  // Back-pressure bounds on dual-write (WaitForRoom).
  static constexpr auto kSyncRoomWait = std::chrono::seconds(60);
  // A large dual-written command is copied whole up to this size.
  static constexpr std::size_t kMaxCopiedRequest = SecondaryChannel::kMaxBytes / 2;
  enum class Buffered : std::uint8_t { kWhole, kTooLarge, kFailed };
  // How long an end of stream after CLIENT KILL counts as this one (ProbeKilled).
  static constexpr auto kKillProbe = std::chrono::milliseconds(200);
  // IdleWatch: an unfinished command's bound, and the read size that counts
  // as progress for a large command being streamed.
  static constexpr auto kPartialCommandTimeout = std::chrono::seconds(60);
  static constexpr std::size_t kLargeProgressBytes = 4096;
  // Keys of a non-deterministic write copied inline at most.
  static constexpr std::size_t kMaxCopyKeys = 1024;

  // ---- redis_session.cc: lifecycle and the request loop
  awaitable<void> MainLoops();
  std::uint64_t ChannelProgress() const;
  awaitable<void> ChannelLoop(int s);
  // Both ChannelLoops, started once the request loop creates the first
  // channel: a session without secondary work never does, and the two
  // waiting would cost it their frames for its whole life.
  awaitable<void> ChannelLoops();
  static resp::RequestLimits MakeRequestLimits(const routing::Config& cfg);
  static TrackerOptions MakeTrackerOptions(const SessionContext& ctx);
  awaitable<bool> StartClientTls();
  awaitable<void> RequestLoop();
  awaitable<void> WaitForSpace();
  awaitable<void> ProcessInput();
  awaitable<void> FlushUpstream();
  void WakeWriter() { wake_.cancel(); }
  bool AtBoundary() const;
  awaitable<void> IdleWatch(absl::Duration idle);

  // ---- redis_dispatch.cc: per command
  awaitable<void> Dispatch(const resp::Command& cmd, const std::uint8_t* input);
  awaitable<Side> ForwardCommand(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info,
                                 RequestClass cls, std::uint16_t flags = 0, std::int32_t aux = 0,
                                 bool mirror = false);
  void PushLocal(std::size_t before, std::uint16_t flags = 0);
  void PushLocalError(std::string_view message);
  void BarrierIfIdleReading();
  void ForwardRaw(Side side, const std::uint8_t* data, std::size_t size) {
    auto& segs = upstream_segs_[static_cast<int>(side)];
    if (!segs.empty() && segs.back().data != nullptr && segs.back().data + segs.back().size == data) {
      segs.back().size += size;
    } else {
      segs.push_back({data, 0, size});
    }
  }
  void ForwardPair(Side side, std::string_view a, std::string_view b);
  void ForwardArgs(Side side, std::span<const std::string_view> args);
  Entry& PushBackendEntry(EntryKind kind, Side side, RequestClass cls, std::uint16_t flags = 0,
                          std::int32_t aux = 0);
  routing::Plan RoutePlan(const resp::CommandInfo& info, std::span<const std::string_view> args,
                          RequestClass cls);
  std::string NewBackendName() const;
  void OnPolicyChanged();
  Side PickSide(const resp::CommandInfo& info, std::span<const std::string_view> args, RequestClass cls);
  const routing::Backend* BackendFor(Side side) const;
  bool SideDown(Side side) const;
  awaitable<BackendConnection*> EnsureBackend(Side side);
  void MirrorToOthers(Side primary, std::span<const std::string_view> args, std::uint16_t flags,
                      std::int32_t aux = 0);

  // ---- redis_local_commands.cc: the handler table and its handlers
  static LocalHandler HandlerFor(LocalCommand command);
  awaitable<void> HandleQuit(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleReset(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleMonitor(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleAuth(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleHello(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleClientGetname(const resp::Command& cmd, const std::uint8_t* input,
                                      const resp::CommandInfo& info);
  awaitable<void> HandleClientSetname(const resp::Command& cmd, const std::uint8_t* input,
                                      const resp::CommandInfo& info);
  awaitable<void> HandleClientReply(const resp::Command& cmd, const std::uint8_t* input,
                                    const resp::CommandInfo& info);
  awaitable<void> HandleClientKill(const resp::Command& cmd, const std::uint8_t* input,
                                   const resp::CommandInfo& info);
  awaitable<void> HandleClientTracking(const resp::Command& cmd, const std::uint8_t* input,
                                       const resp::CommandInfo& info);
  awaitable<void> HandleSelect(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleWatch(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleUnwatch(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleSubscribe(const resp::Command& cmd, const std::uint8_t* input,
                                  const resp::CommandInfo& info);
  bool CheckPassword(std::string_view user, std::string_view password) const;
  void SetAuthenticated(std::string_view user);

  // ---- redis_multi.cc: transactions
  awaitable<void> HandleMulti(const resp::Command& cmd, const std::uint8_t* input, const resp::CommandInfo& info);
  awaitable<void> HandleExecOrDiscard(const resp::Command& cmd, const std::uint8_t* input,
                                      const resp::CommandInfo& info);
  void BeginBlock(const routing::Plan& plan);
  void AddToBlock(const resp::CommandInfo& info, const resp::Command& cmd, const std::uint8_t* input);
  void FinishBlock(Entry& e, secondary::KeyOrder::Stripes& stripes);
  awaitable<void> FollowExecSelect(Side primary);
  void NoteExecReply(Entry& head, std::string_view frame, bool streamed);

  // ---- redis_large_request.cc
  awaitable<void> StreamLargeRequest();
  awaitable<Buffered> BufferLargeRequest(LargeRequestWalker::Status status, std::size_t used);
  awaitable<void> DispatchBuffered();
  void ReleaseLargeFrame();

  // ---- redis_reply_writer.cc
  awaitable<void> WriterLoop();
  BackendConnection* Backend(Side side) { return backends_[static_cast<int>(side)].get(); }
  awaitable<bool> ProbeKilled();
  void ReleaseKillBarrier();
  awaitable<bool> ReadBackend(BackendConnection& conn);
  void UpstreamLost(BackendConnection* conn);
  bool Collect();
  void HandleReply(Entry& head, BackendConnection& conn, std::string_view frame, const std::uint8_t* data,
                   Clock::time_point now);
  awaitable<bool> FlushClient();
  void FinishPartials();
  awaitable<void> Linger();

  // ---- redis_secondary.cc: commands and replies linked to secondary work
  OwnedUpstreamState DispatchState() const {
    return OwnedUpstreamState{tracker_.dispatch_db(), tracker_.resp3(), tracker_.client_name()};
  }
  SecondaryChannel* ChannelFor(Side side);
  void MirrorStateToChannels(SecondaryOp op);
  SecondaryChoice ChooseSecondary(const routing::Plan& plan, const resp::CommandInfo& info,
                                  std::span<const std::string_view> args, RequestClass cls) const;
  static std::string FrameOf(const resp::Command& cmd, const std::uint8_t* input);
  void JournalNotQueued(Side side, std::string_view command_frame, std::vector<std::string> keys,
                        std::string reason);
  void AttachSecondary(const SecondaryChoice& c, Entry& e, const resp::CommandInfo& info, const resp::Command& cmd,
                       const std::uint8_t* input, RequestClass cls, std::vector<std::string> copy_keys,
                       secondary::KeyOrder::Stripes& stripes);
  awaitable<bool> AcquireStripes(const secondary::KeyOrder::Stripes& stripes);
  awaitable<void> WaitForRoom(Side side, bool sync, std::size_t bytes);
  void ReleaseStripes(secondary::KeyOrder::Stripes& stripes);
  std::uint64_t StripeOwner() const { return ctx_.connection_id + 1; }
  awaitable<void> WaitForChannelWrites(Side side);
  // Copies whose keys the channel has not read yet (secondary_copy.cc).
  void NoteCopy(Side side, std::uint64_t seq) { pending_copies_.push_back({side, seq}); }
  bool CopyPending(const std::pair<Side, std::uint64_t>& copy, bool only_targets);
  awaitable<void> WaitForCopies(bool only_targets);
  static bool HasOpWork(const Entry& e) { return e.op != 0; }
  SecondaryOp* OpOf(const Entry& e);
  void FeedOp(Entry& head, std::string_view bytes, bool first, bool held);
  void HandleOpReply(Entry& head, std::string_view frame, const std::uint8_t* data, Clock::time_point now,
                     bool streamed);
  void EmitHeld(Entry& head);
  void FinishOpEntry(Entry& head);
  void NoteAnswered(Side side);

  // ------------------------------------------------------------------ state

  std::optional<Socket> raw_;     // until the first-byte peek; then client_
  std::optional<Stream> client_;
  tcp::socket::executor_type executor_;
  SessionContext ctx_;
  SessionRegistration registration_;
  const routing::Route& route_;
  const UserList* users_ = nullptr;
  std::string address_;

  protocol::IoBuffer client_in_;
  resp::RequestParser parser_;
  LargeRequestWalker walker_;
  std::string large_frame_;  // a large dual-written command, copied whole
  std::shared_ptr<secondary::KeyWaiter> key_waiter_;  // made on the first wait for a key (KeyOrder)
  RedisTracker tracker_;  // verdicts, the in-flight FIFO, session state
  std::string local_out_;        // local replies not yet written, in FIFO order
  std::size_t local_consumed_ = 0;
  std::array<std::unique_ptr<BackendConnection>, 2> backends_;
  std::array<std::vector<UpstreamSegment>, 2> upstream_segs_;
  std::array<std::string, 2> synth_;  // commands turnout writes itself
  std::vector<asio::const_buffer> upstream_bufs_;
  std::vector<ClientSegment> client_segs_;
  std::vector<asio::const_buffer> client_bufs_;
  std::string write_scratch_;
  std::array<std::size_t, 2> partial_take_{};
  std::array<bool, 2> partial_active_{};
  std::array<bool, 2> partial_oob_{};

  Timer wake_;   // the writer waits here for new entries
  Timer space_;  // the request loop waits here for FIFO room
  bool waiting_space_ = false;
  Timer room_;   // ... and here for room in a secondary queue (WaitForRoom)
  bool waiting_room_ = false;

  routing::RouteTableReader reader_;
  bool has_policy_ = false;
  std::string new_backend_name_;  // what Side::kNew stands for (policy, else route)
  std::vector<std::string_view> targets_;
  resp::KeyIndices key_indices_;

  // Secondary work (issue 5): one channel per side, created on first use.
  std::array<std::unique_ptr<SecondaryChannel>, 2> channels_;
  routing::ReadYourWritesFence fence_;
  std::vector<std::pair<Side, std::uint64_t>> pending_copies_;  // NoteCopy
  std::array<std::uint64_t, 2> main_dispatched_{};  // backend entries pushed, per side
  std::array<std::uint64_t, 2> main_answered_{};    // ... and answered
  Timer channel_created_;  // ChannelLoops and ChannelLoop wait here for a channel
  Timer drain_timer_;      // MainLoops waits here for the channels to drain
  int channels_running_ = 0;
  bool main_done_ = false;
  routing::Plan last_plan_;      // of the last ForwardCommand
  Entry* last_entry_ = nullptr;  // its FIFO entry (valid until the next await)
  struct Block {
    bool active = false;
    Side side = Side::kNew;
    bool sync = false;
    std::string wire;                      // MULTI, the deterministic writes and SELECTs
    std::uint32_t index = 0;               // commands queued on the primary so far
    std::vector<std::uint32_t> positions;  // their indices among the primary's
    std::size_t writes = 0;                // deterministic writes in `wire`
    std::vector<std::pair<std::string, int>> copy_keys;  // keys of non-deterministic writes, their db
    std::vector<std::string> keys;         // every key written (journal)
    std::vector<BlockSelect> selects;      // SELECTs queued (tracked with or without a secondary)
    int db = 0;                            // the database as of the last valid SELECT queued
  } block_;
  // EXEC of a block with SELECTs, until its reply is in (FollowExecSelect).
  std::vector<BlockSelect> exec_selects_;
  bool exec_pending_ = false;
  int exec_db_ = 0;
  Timer exec_wake_;

  // Session state that is I/O: a CLIENT KILL that may kill this upstream
  // is in flight, and the side to probe once its reply is written.
  bool kill_barrier_ = false;
  // The policy moved the authoritative side away from the tracking side
  // (OnPolicyChanged): the client is closed before its next command.
  bool tracking_moved_ = false;
  std::optional<Side> kill_probe_side_;

  Clock::time_point batch_start_ = Clock::now();
  Clock::time_point last_activity_ = Clock::now();
  bool idle_pages_released_ = false;  // since the last read from the client (idle_pages.h)
  Timer idle_timer_;                  // IdleWatch's; a read after a release wakes it
  std::optional<Clock::time_point> partial_since_;  // first byte of an unfinished command
  bool closed_ = false;
  bool draining_ = false;
  bool stop_reading_ = false;
  bool input_done_ = false;
  bool writer_idle_reading_ = false;
  bool barrier_pending_ = false;
  bool close_after_write_ = false;
  bool linger_ = false;
  bool fatal_ = false;
};

}  // namespace turnout::proxy::redis
