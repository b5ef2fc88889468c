#include "proxy/redis/redis_tracker.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/redis/redis_commands.h"
#include "proxy/redis/secondary_work.h"

namespace turnout::proxy::redis {

namespace resp = protocol::resp;
using routing::RequestClass;
using routing::Side;

namespace {

// The commands a local handler owns, sorted by CommandInfo address once so
// a command that is none of them (most traffic) costs a binary search.
// Immutable after its first use.
const std::vector<std::pair<const resp::CommandInfo*, LocalCommand>>& LocalTable() {
  static const auto table = [] {
    const Specials& sp = Special();
    std::vector<std::pair<const resp::CommandInfo*, LocalCommand>> rows = {
        {sp.quit, LocalCommand::kQuit},
        {sp.reset, LocalCommand::kReset},
        {sp.monitor, LocalCommand::kMonitor},
        {sp.auth, LocalCommand::kAuth},
        {sp.hello, LocalCommand::kHello},
        {sp.client_getname, LocalCommand::kClientGetname},
        {sp.client_setname, LocalCommand::kClientSetname},
        {sp.client_reply, LocalCommand::kClientReply},
        {sp.client_kill, LocalCommand::kClientKill},
        {sp.client_tracking, LocalCommand::kClientTracking},
        {sp.select, LocalCommand::kSelect},
        {sp.multi, LocalCommand::kMulti},
        {sp.exec, LocalCommand::kExec},
        {sp.discard, LocalCommand::kDiscard},
        {sp.watch, LocalCommand::kWatch},
        {sp.unwatch, LocalCommand::kUnwatch},
        {sp.subscribe, LocalCommand::kSubscribe},
        {sp.unsubscribe, LocalCommand::kSubscribe},
        {sp.psubscribe, LocalCommand::kSubscribe},
        {sp.punsubscribe, LocalCommand::kSubscribe},
        {sp.ssubscribe, LocalCommand::kSubscribe},
        {sp.sunsubscribe, LocalCommand::kSubscribe},
    };
    std::erase_if(rows, [](const auto& r) { return r.first == nullptr; });
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return std::less<>()(a.first, b.first); });
    return rows;
  }();
  return table;
}

std::optional<LocalCommand> LocalOf(const resp::CommandInfo* info) {
  const auto& table = LocalTable();
  const auto it = std::lower_bound(table.begin(), table.end(), info,
                                   [](const auto& r, const resp::CommandInfo* i) { return std::less<>()(r.first, i); });
  if (it == table.end() || it->first != info) return std::nullopt;
  return it->second;
}

Verdict Reject(const resp::CommandInfo* info, std::string error) {
  Verdict v;
  v.action = Verdict::Action::kReject;
  v.info = info;
  v.error = std::move(error);
  return v;
}

Verdict Act(Verdict::Action action, const resp::CommandInfo* info, RequestClass cls) {
  Verdict v;
  v.action = action;
  v.info = info;
  v.cls = cls;
  return v;
}

// Unknown command, or unknown subcommand of a known container.
std::string UnknownMessage(std::span<const std::string_view> args) {
  if (args.size() >= 2 && resp::FindCommand(args[0]) != nullptr) return UnknownSubcommandMessage(args);
  return UnknownCommandMessage(args);
}

}  // namespace

RedisTracker::RedisTracker(const TrackerOptions& options) : options_(options), fifo_(options.max_inflight) {
  authenticated_ = options_.trust;
  db_ = options_.default_db.value_or(0);
  dispatch_db_ = db_;
}

Verdict RedisTracker::Classify(std::span<const std::string_view> args) const {
  const Specials& sp = Special();
  const resp::CommandInfo* info = resp::LookupCommand(args);
  if (info == nullptr) {
    // routes[].unknown_commands: passthrough (modules, newer servers): to
    // the authoritative side as a write touching no known key, never
    // mirrored (its effect cannot be known, so not copied either).
    if (options_.unknown_passthrough && authenticated_ && (resp3_ || !SubscribedView()))
      return Act(Verdict::Action::kPassthrough, &UnknownCommandInfo(), RequestClass::kWrite);
    return Reject(nullptr, UnknownMessage(args));
  }
  if (!resp::ArityOk(*info, args.size()))
    return Reject(info, absl::StrCat("ERR wrong number of arguments for '", LowerFullName(*info), "' command"));
  if (!authenticated_ && !info->has(resp::cmd_flag::kNoAuth)) return Reject(info, std::string(kNoAuth));
  const PubSubKind pubsub = sp.PubSubOf(info);
  // server.c processCommand: RESP2 subscribers may only (un)subscribe, PING, QUIT, RESET.
  if (!resp3_ && SubscribedView() && pubsub == PubSubKind::kNotPubSub && info != sp.ping && info != sp.quit &&
      info != sp.reset) {
    return Reject(info, absl::StrCat("ERR Can't execute '", LowerFullName(*info),
                                     "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                                     "allowed in this context"));
  }
  Verdict local = Act(Verdict::Action::kLocal, info, RequestClass::kSession);
  if (info == sp.quit) {
    // Redis answers +OK and closes after the reply, even inside MULTI.
    local.local = LocalCommand::kQuit;
    return local;
  }
  if (monitoring_) {
    // The upstream connection is a monitor now: its output is the command
    // feed, so nothing else can be paired with a reply there.
    return Reject(info, "ERR turnout: a MONITOR connection accepts only QUIT");
  }
  if (info == sp.reset) {
    local.local = LocalCommand::kReset;
    return local;
  }
  if (info == sp.monitor && !in_multi_) {
    local.local = LocalCommand::kMonitor;
    return local;
  }
  if (info == sp.sync || info == sp.psync || info == sp.replconf || info == sp.replicaof || info == sp.slaveof) {
    // Replication is refused (docs/redis-data-integrity.md): a
    // replica of the proxy would see one side only, and its stream is not
    // RESP replies turnout can pair; REPLICAOF would turn the authoritative
    // side into a replica (flushing it) behind the migration's back.
    return Reject(info, "ERR turnout: replication is not supported through the proxy; connect to the server directly");
  }
  if (in_multi_ && info != sp.exec && info != sp.discard && info != sp.multi && info != sp.watch) {
    // Inside MULTI the server queues commands; state-changing ones that
    // turnout terminates cannot be queued upstream, so they are refused
    // and the transaction aborts at EXEC, as for any rejected command.
    if (info == sp.auth || info == sp.hello || info == sp.client_reply || info == sp.client_tracking ||
        pubsub != PubSubKind::kNotPubSub) {
      return Reject(info, absl::StrCat("ERR turnout: ", LowerFullName(*info), " inside MULTI is not supported"));
    }
    return Act(Verdict::Action::kQueue, info, ClassOf(*info));
  }
  if (const auto which = LocalOf(info)) {
    local.local = *which;
    return local;
  }
  return Act(Verdict::Action::kForward, info, ClassOf(*info));
}

Verdict RedisTracker::ClassifyLarge(std::span<const std::string_view> head) const {
  const Specials& sp = Special();
  const resp::CommandInfo* info = head.empty() ? nullptr : resp::LookupCommand(head);
  if (info == nullptr) return Reject(nullptr, head.empty() ? std::string("ERR unknown command") : UnknownMessage(head));
  if (!authenticated_ && !info->has(resp::cmd_flag::kNoAuth)) return Reject(info, std::string(kNoAuth));
  // Commands whose state turnout keeps are parsed whole; one that does not
  // fit the buffer is refused rather than half understood.
  if (info == sp.auth || info == sp.hello || info == sp.quit || info == sp.reset || info == sp.monitor ||
      info == sp.client_setname || info == sp.client_reply || sp.PubSubOf(info) != PubSubKind::kNotPubSub ||
      info == sp.select || info == sp.multi || info == sp.exec || info == sp.discard || info == sp.watch ||
      (!resp3_ && SubscribedView())) {
    return Reject(info, absl::StrCat("ERR turnout: '", LowerFullName(*info), "' command too large"));
  }
  return Act(Verdict::Action::kForward, info, ClassOf(*info));
}

void RedisTracker::Authenticate(std::string_view user) {
  authenticated_ = true;
  user_.assign(user.data(), user.size());
}

std::optional<bool> RedisTracker::SetClientReply(std::string_view mode) {
  if (EqualsIgnoreCase(mode, "ON")) {
    reply_off_ = false;
    reply_skip_ = false;
    return true;
  }
  if (EqualsIgnoreCase(mode, "OFF")) {
    reply_off_ = true;
    return false;
  }
  if (EqualsIgnoreCase(mode, "SKIP")) {
    if (!reply_off_) reply_skip_ = true;
    return false;
  }
  return std::nullopt;
}

void RedisTracker::MonitorStarted(Side side) {
  monitoring_ = true;
  pinned_ = side;
  idle_read_side_ = side;
}

void RedisTracker::TrackingSent(bool on, Side side) {
  if (on) {
    tracking_side_ = side;
  } else {
    tracking_side_.reset();
  }
  // RESP3 invalidations arrive as pushes on this very connection.
  if (on && resp3_) idle_read_side_ = side;
}

void RedisTracker::SubscribeSent(Side side) {
  ++pubsub_pending_;
  pinned_ = side;
  idle_read_side_ = side;
}

void RedisTracker::WatchSent(Side side) {
  if (!in_multi_) {
    watching_ = true;
    pinned_ = side;
  }
}

void RedisTracker::UnwatchSent() {
  watching_ = false;
  MaybeUnpin();
}

void RedisTracker::MultiStarted(Side side) {
  in_multi_ = true;
  multi_dirty_ = false;
  pinned_ = side;
}

void RedisTracker::TransactionEnded() {
  in_multi_ = false;
  multi_dirty_ = false;
  watching_ = false;
  MaybeUnpin();
}

void RedisTracker::Reset(bool answered_by_backend) {
  reply_off_ = false;
  reply_skip_ = false;
  authenticated_ = options_.trust;
  user_.clear();
  client_name_.clear();
  resp3_ = false;
  in_multi_ = multi_dirty_ = watching_ = false;
  tracking_side_.reset();
  if (options_.default_db) db_ = *options_.default_db;
  dispatch_db_ = db_;
  // With a RESET upstream, its reply ends the subscriptions (OnReply).
  if (pubsub_pending_ == 0 && !answered_by_backend) {
    sub_channels_ = sub_patterns_ = sub_shard_ = 0;
    idle_read_side_.reset();
  }
  MaybeUnpin();
}

void RedisTracker::Pop() {
  const Entry& head = fifo_.front();
  if (head.flags & kFlagBlocking) --blocking_inflight_;
  if (head.flags & kFlagPubSub) --pubsub_pending_;
  const bool was_pubsub_or_reset = (head.flags & (kFlagPubSub | kFlagReset)) != 0;
  fifo_.pop_front();
  if (was_pubsub_or_reset && !SubscribedView()) {
    if (!(tracking_side_ && resp3_)) idle_read_side_.reset();
    MaybeUnpin();
  }
}

bool RedisTracker::IsOutOfBand(std::string_view frame, const Entry* head) {
  if (frame.empty()) return false;
  if (monitoring_ && head == nullptr) return true;  // a MONITOR feed line
  const bool push = frame[0] == '>';
  if (!push && !(frame[0] == '*' && !writer_resp3_ && (SubscribedView() || (head && (head->flags & kFlagPubSub)))))
    return false;
  PubSubPeek peek;
  if (!PeekPubSub(frame, peek)) return push;  // an unreadable push is still out of band
  if (peek.kind == PubSubKind::kMessage || peek.kind == PubSubKind::kInvalidate) return true;
  if (IsConfirmation(peek.kind)) {
    if (head != nullptr && (head->flags & kFlagPubSub)) return false;
    // An unsolicited confirmation (e.g. sunsubscribe after a slot moved).
    UpdateSubscriptionCounts(peek);
    return true;
  }
  return push;
}

ReplyEffect RedisTracker::OnReply(Entry& head, std::string_view frame) {
  ReplyEffect r;
  const bool is_error = !frame.empty() && (frame[0] == '-' || frame[0] == '!');
  r.forward = head.kind == EntryKind::kForward && !(head.flags & kFlagSuppress);
  if (head.flags & kFlagClientKill) {
    // ":0": nobody was killed; otherwise this upstream may be among them.
    r.kill = !is_error && frame != ":0\r\n" ? ReplyEffect::Kill::kProbe : ReplyEffect::Kill::kRelease;
  }
  if (head.flags & kFlagPubSub) {
    PubSubPeek peek;
    if (!is_error && PeekPubSub(frame, peek) && IsConfirmation(peek.kind)) {
      if (head.aux == -1) head.aux = static_cast<std::int32_t>(std::max<std::int64_t>(CountOfKind(head.pubsub), 1));
      UpdateSubscriptionCounts(peek);
      r.done = --head.aux <= 0;
    }
  }
  if (is_error && (head.flags & kFlagLoginCheck)) {
    r.login_failed = true;
    r.done = false;
    return r;
  }
  if (!is_error) {
    if (head.flags & kFlagSelect) db_ = head.aux;
    if ((head.flags & kFlagHello) && head.aux != 0 && head.kind == EntryKind::kForward) writer_resp3_ = head.aux == 3;
    if ((head.flags & kFlagReset) && head.kind == EntryKind::kForward) {
      writer_resp3_ = false;
      sub_channels_ = sub_patterns_ = sub_shard_ = 0;
    }
  }
  return r;
}

int RedisTracker::OnExecReply(std::string_view frame, const std::vector<BlockSelect>& selects, bool streamed) {
  db_ = DbAfterExec(frame, selects, db_, streamed);
  return db_;
}

void RedisTracker::UpdateSubscriptionCounts(const PubSubPeek& peek) {
  const std::int64_t c = std::max<std::int64_t>(peek.count, 0);
  switch (peek.kind) {
    case PubSubKind::kSubscribe:
    case PubSubKind::kUnsubscribe: sub_channels_ = std::max<std::int64_t>(c - sub_patterns_, 0); break;
    case PubSubKind::kPSubscribe:
    case PubSubKind::kPUnsubscribe: sub_patterns_ = std::max<std::int64_t>(c - sub_channels_, 0); break;
    case PubSubKind::kSSubscribe:
    case PubSubKind::kSUnsubscribe: sub_shard_ = c; break;
    default: break;
  }
}

std::int64_t RedisTracker::CountOfKind(PubSubKind k) const {
  switch (k) {
    case PubSubKind::kUnsubscribe: return sub_channels_;
    case PubSubKind::kPUnsubscribe: return sub_patterns_;
    case PubSubKind::kSUnsubscribe: return sub_shard_;
    default: return 0;
  }
}

}  // namespace turnout::proxy::redis
