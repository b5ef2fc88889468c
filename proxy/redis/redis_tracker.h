#pragma once
// What a Redis session knows about its client's commands, without any I/O:
// the counterpart of the Postgres RequestTracker (proxy/pg/request_tracker.h).
//
//   Classify(args)  a parsed command -> a Verdict: refused here (with Redis'
//                   own error text), answered or tracked by a local handler
//                   (which one), queued inside MULTI, or forwarded (class).
//   Push / Pop      the in-flight FIFO: one Entry per command sent upstream
//                   or answered here, in the order the client sent them.
//   OnReply         one reply for the FIFO head -> what to do with it, and
//                   the state it changes (SELECT, HELLO, RESET, pub/sub).
//   IsOutOfBand     pub/sub messages and RESP3 pushes that answer nothing.
//
// The state is kept twice where Redis keeps it per connection and turnout
// reads ahead: at dispatch time (the database and protocol the next command
// is sent under, as of the last command dispatched) and at reply time (as
// the server confirmed it: db(), writer_resp3(), the subscription counts).
// The session acts on verdicts and tells the tracker what it sent
// (MultiStarted, SubscribeSent, ...); nothing here calls back into it.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/command_table.h"
#include "proxy/redis/inflight_queue.h"
#include "proxy/redis/pubsub_frame.h"
#include "routing/plan.h"
#include "routing/request.h"

namespace turnout::proxy::redis {

struct BlockSelect;  // secondary_work.h

enum class EntryKind : std::uint8_t {
  kForward,  // the backend's reply goes to the client
  kSwallow,  // the backend's reply is turnout's business (state replay)
  kLocal,    // turnout answers: bytes in the session's local replies
};

enum EntryFlag : std::uint16_t {
  kFlagCloseAfter = 1u << 0,  // close the client once this reply is written
  kFlagSelect = 1u << 1,      // SELECT aux: record the db when it succeeds
  kFlagHello = 1u << 2,       // HELLO aux (2/3, 0 = unchanged): replies switch version
  kFlagReset = 1u << 3,       // RESET: subscriptions and protocol back to default
  kFlagPubSub = 1u << 4,      // (un)subscribe: aux confirmations expected, -1 = "all"
  kFlagLoginCheck = 1u << 5,  // swallowed re-login: an error ends the session
  kFlagSuppress = 1u << 6,    // CLIENT REPLY OFF/SKIP: nothing goes to the client
  kFlagBlocking = 1u << 7,    // may block upstream (BLPOP, XREAD BLOCK, WAIT ...)
  kFlagLinger = 1u << 8,      // protocol error: drain the client briefly before closing
  kFlagHeld = 1u << 9,        // sync dual-write: the reply waits in the op until the secondary applied
  kFlagExecSelect = 1u << 10, // EXEC of a block with SELECTs: its reply says the db (exec_selects_)
  kFlagClientKill = 1u << 11, // CLIENT KILL that may kill this very upstream connection (ProbeKilled)
};

// Stages of a FIFO entry linked to secondary work (Entry::op != 0).
enum class OpStage : std::uint8_t {
  kFirst,     // waiting for the primary's reply to the command
  kHeld,      // then (sync) for the secondary to apply it
};

struct Entry {
  EntryKind kind = EntryKind::kForward;
  routing::Side side = routing::Side::kOld;
  routing::RequestClass cls = routing::RequestClass::kWrite;
  PubSubKind pubsub = PubSubKind::kNotPubSub;
  std::uint16_t flags = 0;
  std::int32_t aux = 0;
  std::uint32_t local_len = 0;
  std::chrono::steady_clock::time_point start;
  // Secondary work linked to this reply (dual-write, copy, block, shadow).
  std::uint64_t op = 0;
  routing::Side op_side = routing::Side::kNew;
  OpStage stage = OpStage::kFirst;
};

// The commands a local handler answers or tracks (the session's table is
// indexed by this).
enum class LocalCommand : std::uint8_t {
  kQuit,
  kReset,
  kMonitor,
  kAuth,
  kHello,
  kClientGetname,
  kClientSetname,
  kClientReply,
  kClientKill,
  kClientTracking,
  kSelect,
  kMulti,
  kExec,
  kDiscard,
  kWatch,
  kUnwatch,
  kSubscribe,  // any of (P|S)(UN)SUBSCRIBE
};
inline constexpr int kLocalCommandCount = 17;

struct Verdict {
  enum class Action : std::uint8_t {
    kReject,       // answer `error` here (Redis' text); inside MULTI the block aborts at EXEC
    kPassthrough,  // unknown command under unknown_commands: passthrough (UnknownCommandInfo)
    kLocal,        // the handler for `local`
    kQueue,        // inside MULTI: forwarded (class `cls`) and added to the block
    kForward,      // forwarded, class `cls`
  };
  Action action = Action::kForward;
  const protocol::resp::CommandInfo* info = nullptr;
  routing::RequestClass cls = routing::RequestClass::kWrite;
  LocalCommand local = LocalCommand::kQuit;
  std::string error;  // kReject only (empty otherwise: no allocation)
};

struct TrackerOptions {
  bool trust = false;                // route auth: trust (authenticated from the start)
  std::optional<int> default_db;     // the old backend's redis_db (RESET returns to it)
  bool unknown_passthrough = false;  // routes[].unknown_commands: passthrough
  std::size_t max_inflight = 1024;   // FIFO capacity
};

// What the session does with one reply to the FIFO head (OnReply).
struct ReplyEffect {
  bool forward = false;       // write the frame to the client
  bool done = true;           // the head has all its replies: record it, then Pop
  bool login_failed = false;  // a re-login after RESET was refused: the session ends
  enum class Kill : std::uint8_t { kNone, kProbe, kRelease } kill = Kill::kNone;
};

class RedisTracker {
 public:
  explicit RedisTracker(const TrackerOptions& options);

  // ---- requests

  // The one decision per parsed command (Redis' checks in server.c
  // processCommand, in its order, then turnout's own refusals).
  Verdict Classify(std::span<const std::string_view> args) const;
  // A command too large for the receive buffer, by its first arguments:
  // kReject or kForward (never local: their state cannot be streamed).
  Verdict ClassifyLarge(std::span<const std::string_view> head) const;

  // A command answered with an error here: inside MULTI it aborts the
  // transaction at EXEC (multi.c flagTransaction).
  void NoteRejected() {
    if (in_multi_) multi_dirty_ = true;
  }
  // CLIENT REPLY OFF/SKIP for the reply about to be queued (uses up a SKIP).
  std::uint16_t SuppressFlag() {
    if (reply_off_) return kFlagSuppress;
    if (reply_skip_) {
      reply_skip_ = false;
      return kFlagSuppress;
    }
    return 0;
  }

  // What local handlers did (dispatch time).
  void Authenticate(std::string_view user);
  void SetClientName(std::string_view name) { client_name_.assign(name.data(), name.size()); }
  void SetProtocol(int version) {
    if (version != 0) resp3_ = version == 3;
  }
  // CLIENT REPLY ON|OFF|SKIP (networking.c clientCommand "reply"): true
  // when it answers +OK (ON), false for OFF and SKIP; nullopt: a bad mode.
  std::optional<bool> SetClientReply(std::string_view mode);
  void SelectSent(int db) { dispatch_db_ = db; }
  void MonitorStarted(routing::Side side);
  void TrackingSent(bool on, routing::Side side);
  void SubscribeSent(routing::Side side);
  void WatchSent(routing::Side side);
  void UnwatchSent();
  void MultiStarted(routing::Side side);
  // EXEC or DISCARD of a MULTI: the block is over.
  void TransactionEnded();
  // RESET: the state of a new connection. `answered_by_backend`: the RESET
  // went upstream (the subscriptions end when its reply is in).
  void Reset(bool answered_by_backend);
  void CloseReplyModes() { reply_off_ = reply_skip_ = false; }

  // ---- the in-flight FIFO

  InflightQueue<Entry>& fifo() { return fifo_; }
  const InflightQueue<Entry>& fifo() const { return fifo_; }
  // Precondition: !fifo().full().
  Entry& Push(const Entry& e) {
    if (e.flags & kFlagBlocking) ++blocking_inflight_;
    return fifo_.push_back(e);
  }
  // A blocking command's reply is in (it no longer blocks upstream).
  void Unblocked(Entry& e) {
    if (e.flags & kFlagBlocking) {
      --blocking_inflight_;
      e.flags &= ~kFlagBlocking;
    }
  }
  // The head has all its replies.
  void Pop();

  // ---- replies

  // Pub/sub messages and RESP3 pushes that answer no command (a MONITOR
  // line too). An unsolicited (un)subscribe confirmation updates the counts.
  bool IsOutOfBand(std::string_view frame, const Entry* head);
  // One complete reply for `head` (not linked to secondary work).
  ReplyEffect OnReply(Entry& head, std::string_view frame);
  // The primary's reply to an EXEC that ran SELECTs: the database its
  // connection is in now.
  int OnExecReply(std::string_view frame, const std::vector<BlockSelect>& selects, bool streamed);

  // ---- state

  bool authenticated() const { return authenticated_; }
  const std::string& user() const { return user_; }
  const std::string& client_name() const { return client_name_; }
  bool resp3() const { return resp3_; }                // dispatch time
  bool writer_resp3() const { return writer_resp3_; }  // reply time
  int db() const { return db_; }                       // reply time: as the server confirmed
  int dispatch_db() const { return dispatch_db_; }     // as of the last SELECT dispatched
  void set_dispatch_db(int db) { dispatch_db_ = db; }
  bool in_multi() const { return in_multi_; }
  bool multi_dirty() const { return multi_dirty_; }
  bool monitoring() const { return monitoring_; }
  const std::optional<routing::Side>& pinned() const { return pinned_; }
  // The upstream connection CLIENT TRACKING was turned on at (its server
  // keeps the tracking state and sends the invalidations).
  const std::optional<routing::Side>& tracking_side() const { return tracking_side_; }
  // The upstream connection the writer reads while nothing is in flight
  // (subscriptions, MONITOR, RESP3 tracking).
  const std::optional<routing::Side>& idle_read_side() const { return idle_read_side_; }
  int blocking_inflight() const { return blocking_inflight_; }
  // Subscribed, or a (un)subscribe still waiting for its confirmations.
  bool SubscribedView() const {
    return pubsub_pending_ > 0 || sub_channels_ + sub_patterns_ + sub_shard_ > 0;
  }
  std::int64_t subscriptions() const { return sub_channels_ + sub_patterns_ + sub_shard_; }

 private:
  void MaybeUnpin() {
    if (!in_multi_ && !watching_ && !SubscribedView()) pinned_.reset();
  }
  void UpdateSubscriptionCounts(const PubSubPeek& peek);
  std::int64_t CountOfKind(PubSubKind k) const;

  TrackerOptions options_;
  InflightQueue<Entry> fifo_;

  // Dispatch time.
  bool authenticated_ = false;
  std::string user_;
  std::string client_name_;
  bool resp3_ = false;
  int dispatch_db_ = 0;
  bool in_multi_ = false;
  bool multi_dirty_ = false;
  bool watching_ = false;
  std::optional<routing::Side> tracking_side_;  // CLIENT TRACKING on went there
  bool monitoring_ = false;  // MONITOR went to idle_read_side_
  bool reply_off_ = false;
  bool reply_skip_ = false;
  std::optional<routing::Side> pinned_;
  std::optional<routing::Side> idle_read_side_;
  int pubsub_pending_ = 0;
  int blocking_inflight_ = 0;

  // Reply time: as the server reports it.
  int db_ = 0;
  bool writer_resp3_ = false;
  std::int64_t sub_channels_ = 0, sub_patterns_ = 0, sub_shard_ = 0;
};

}  // namespace turnout::proxy::redis
