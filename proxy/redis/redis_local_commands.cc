// The commands turnout answers or tracks itself: one handler each, in a
// table indexed by the tracker's verdict (HandlerFor). Their effect on the
// session state goes through the tracker.
#include <iterator>

#include "absl/strings/str_cat.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/logging.h"
#include "proxy/redis/client_auth.h"
#include "proxy/redis/redis_commands.h"
#include "proxy/redis/redis_session_impl.h"

namespace turnout::proxy::redis {

namespace {

// CLIENT KILL addr:port (the old form never skips the caller) or a filter
// with SKIPME no (networking.c clientKillCommand).
bool MayKillItself(std::span<const std::string_view> args) {
  if (args.size() == 3) return true;
  for (std::size_t i = 2; i + 1 < args.size(); i += 2)
    if (EqualsIgnoreCase(args[i], "SKIPME") && EqualsIgnoreCase(args[i + 1], "no")) return true;
  return false;
}

}  // namespace

awaitable<void> RedisSession::HandleAuth(const resp::Command& cmd, const std::uint8_t*, const resp::CommandInfo&) {
  const auto args = cmd.args;
  if (args.size() > 3) {
    PushLocalError("ERR syntax error");
    co_return;
  }
  const bool has_user = args.size() == 3;
  const std::string_view user = has_user ? args[1] : std::string_view("default");
  const std::string_view password = args.back();
  if (users_ == nullptr && route_.auth == routing::ClientAuth::kTrust) {
    // Trust: like a Redis whose default user is "nopass" (acl.c): any
    // AUTH <user> <pass> works, AUTH <pass> alone is a likely mistake.
    if (!has_user) {
      PushLocalError(
          "ERR AUTH <password> called without any password configured for the default user. Are you sure "
          "your configuration is correct?");
      co_return;
    }
    SetAuthenticated(user);
  } else if (!CheckPassword(user, password)) {
    LogInfo("redis client authentication failed", {{"route", route_.name}, {"user", user}});
    PushLocalError(kWrongPass);
    co_return;
  } else {
    SetAuthenticated(user);
  }
  const std::size_t before = local_out_.size();
  resp::AppendSimpleString(local_out_, "OK");
  PushLocal(before);
}

bool RedisSession::CheckPassword(std::string_view user, std::string_view password) const {
  return users_ != nullptr && CheckClientPassword(*users_, user, password, *ctx_.services->scram_keys);
}

void RedisSession::SetAuthenticated(std::string_view user) {
  tracker_.Authenticate(user);
  parser_.set_authenticated(true);
}

// networking.c helloCommand, with AUTH checked against turnout's users;
// the upstream connection gets HELLO <ver> [SETNAME name] without AUTH.
awaitable<void> RedisSession::HandleHello(const resp::Command& cmd, const std::uint8_t*, const resp::CommandInfo&) {
  const auto args = cmd.args;
  std::int64_t ver = 0;
  std::size_t next = 1;
  if (args.size() >= 2) {
    if (!resp::ParseRedisInt64(args[1], ver)) {
      PushLocalError("ERR Protocol version is not an integer or out of range");
      co_return;
    }
    ++next;
    if (ver < 2 || ver > 3) {
      PushLocalError("NOPROTO unsupported protocol version");
      co_return;
    }
  }
  std::string_view auth_user, auth_pass, name;
  bool has_auth = false, has_name = false;
  for (std::size_t j = next; j < args.size(); ++j) {
    const std::size_t more = args.size() - 1 - j;
    if (EqualsIgnoreCase(args[j], "AUTH") && more >= 2) {
      auth_user = args[j + 1];
      auth_pass = args[j + 2];
      has_auth = true;
      j += 2;
    } else if (EqualsIgnoreCase(args[j], "SETNAME") && more >= 1) {
      name = args[j + 1];
      has_name = true;
      j += 1;
    } else {
      PushLocalError(absl::StrCat("ERR Syntax error in HELLO option '", std::string(args[j]), "'"));
      co_return;
    }
  }
  if (has_auth) {
    const bool trust_any = users_ == nullptr && route_.auth == routing::ClientAuth::kTrust;
    if (!trust_any && !CheckPassword(auth_user, auth_pass)) {
      LogInfo("redis client authentication failed", {{"route", route_.name}, {"user", auth_user}});
      PushLocalError(kWrongPass);
      co_return;
    }
    SetAuthenticated(auth_user);
  }
  if (!tracker_.authenticated()) {
    PushLocalError(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
        "<user> <pass> option can be used to authenticate the client and select the RESP protocol "
        "version at the same time");
    co_return;
  }
  if (has_name && !ValidClientName(name)) {
    PushLocalError(kBadName);
    co_return;
  }
  const Side side = PickSide(*Special().hello, args, RequestClass::kSession);
  BackendConnection* conn = co_await EnsureBackend(side);
  if (conn == nullptr) co_return;
  if (has_name) tracker_.SetClientName(name);
  tracker_.SetProtocol(static_cast<int>(ver));
  std::array<std::string_view, 4> up{};
  std::size_t n = 0;
  up[n++] = "HELLO";
  if (ver != 0) up[n++] = ver == 3 ? std::string_view("3") : std::string_view("2");
  if (has_name) {
    up[n++] = "SETNAME";
    up[n++] = name;
  }
  const std::span<const std::string_view> up_args(up.data(), n);
  ForwardArgs(side, up_args);
  PushBackendEntry(EntryKind::kForward, side, RequestClass::kSession, kFlagHello, static_cast<std::int32_t>(ver));
  MirrorToOthers(side, up_args, kFlagHello, static_cast<std::int32_t>(ver));
  if (ver != 0 || has_name) {
    SecondaryOp op;
    resp::AppendCommand(op.command, up_args);
    if (ver != 0) op.state_protocol = static_cast<int>(ver);
    if (has_name) op.state_name = tracker_.client_name();
    MirrorStateToChannels(std::move(op));
  }
}

awaitable<void> RedisSession::HandleClientReply(const resp::Command& cmd, const std::uint8_t*,
                                                const resp::CommandInfo&) {
  // networking.c clientCommand "reply": OFF and SKIP are not answered.
  const std::optional<bool> answer = tracker_.SetClientReply(cmd.args[2]);
  if (!answer) {
    PushLocalError("ERR syntax error");
  } else if (*answer) {
    const std::size_t before = local_out_.size();
    resp::AppendSimpleString(local_out_, "OK");
    PushLocal(before);
  }
  co_return;
}

// RESET goes to every open backend (then re-login there, since RESET
// logs the connection out to the default user); the session's own state
// returns to that of a new connection.
awaitable<void> RedisSession::HandleReset(const resp::Command&, const std::uint8_t*, const resp::CommandInfo&) {
  bool any = false;
  const std::string_view reset[] = {"RESET"};
  for (int s = 0; s < 2; ++s) {
    BackendConnection* conn = backends_[s].get();
    if (conn == nullptr || !conn->is_open()) continue;
    const Side side = static_cast<Side>(s);
    ForwardArgs(side, reset);
    tracker_.CloseReplyModes();  // RESET's own reply is never suppressed
    PushBackendEntry(any ? EntryKind::kSwallow : EntryKind::kForward, side, RequestClass::kSession,
                     kFlagReset);
    std::string& synth = synth_[s];
    const std::size_t off = synth.size();
    const int logins = conn->AppendLogin(synth, conn->backend().redis_db);
    if (logins > 0) upstream_segs_[s].push_back({nullptr, off, synth.size() - off});
    for (int i = 0; i < logins; ++i)
      PushBackendEntry(EntryKind::kSwallow, side, RequestClass::kSession, kFlagLoginCheck);
    any = true;
  }
  tracker_.CloseReplyModes();
  if (!any) {
    const std::size_t before = local_out_.size();
    resp::AppendSimpleString(local_out_, "RESET");
    PushLocal(before);
  }
  tracker_.Reset(any);
  parser_.set_authenticated(tracker_.authenticated());
  block_ = Block{};
  {
    // The channels' connections are reset too (and log in again).
    SecondaryOp op;
    resp::AppendCommand(op.wire, {"RESET"});
    op.state_reset = true;
    MirrorStateToChannels(std::move(op));
  }
  co_return;
}

// The table: one handler per command turnout answers or tracks itself,
// indexed by the tracker's verdict (RedisTracker::Classify decides which).
RedisSession::LocalHandler RedisSession::HandlerFor(LocalCommand command) {
  static constexpr LocalHandler kHandlers[] = {
      &RedisSession::HandleQuit,           // kQuit
      &RedisSession::HandleReset,          // kReset
      &RedisSession::HandleMonitor,        // kMonitor
      &RedisSession::HandleAuth,           // kAuth
      &RedisSession::HandleHello,          // kHello
      &RedisSession::HandleClientGetname,  // kClientGetname
      &RedisSession::HandleClientSetname,  // kClientSetname
      &RedisSession::HandleClientReply,    // kClientReply
      &RedisSession::HandleClientKill,     // kClientKill
      &RedisSession::HandleClientTracking, // kClientTracking
      &RedisSession::HandleSelect,         // kSelect
      &RedisSession::HandleMulti,          // kMulti
      &RedisSession::HandleExecOrDiscard,  // kExec
      &RedisSession::HandleExecOrDiscard,  // kDiscard
      &RedisSession::HandleWatch,          // kWatch
      &RedisSession::HandleUnwatch,        // kUnwatch
      &RedisSession::HandleSubscribe,      // kSubscribe
  };
  static_assert(std::size(kHandlers) == kLocalCommandCount);
  return kHandlers[static_cast<int>(command)];
}

// Redis answers +OK and closes after the reply, even inside MULTI.
awaitable<void> RedisSession::HandleQuit(const resp::Command&, const std::uint8_t*, const resp::CommandInfo&) {
  const std::size_t before = local_out_.size();
  resp::AppendSimpleString(local_out_, "OK");
  PushLocal(before, kFlagCloseAfter);
  stop_reading_ = true;
  co_return;
}

// Issue 13 item 9: the authoritative side's feed, relayed line by line
// (IsOutOfBand) until the client leaves. MONITOR on a monitor is
// ignored without a reply, as the server does (monitorCommand).
awaitable<void> RedisSession::HandleMonitor(const resp::Command& cmd, const std::uint8_t* input,
                                            const resp::CommandInfo& info) {
  const Side side = co_await ForwardCommand(cmd, input, info, RequestClass::kSession);
  if (closed_ || stop_reading_ || last_entry_ == nullptr) co_return;
  tracker_.MonitorStarted(side);
}

awaitable<void> RedisSession::HandleClientGetname(const resp::Command&, const std::uint8_t*,
                                                  const resp::CommandInfo&) {
  const std::size_t before = local_out_.size();
  if (tracker_.client_name().empty()) {
    resp::AppendNull(local_out_, tracker_.resp3());
  } else {
    resp::AppendBulkString(local_out_, tracker_.client_name());
  }
  PushLocal(before);
  co_return;
}

awaitable<void> RedisSession::HandleClientSetname(const resp::Command& cmd, const std::uint8_t* input,
                                                  const resp::CommandInfo& info) {
  const auto args = cmd.args;
  if (!ValidClientName(args[2])) {
    PushLocalError(kBadName);
    co_return;
  }
  tracker_.SetClientName(args[2]);
  // Forwarded too, so the server's CLIENT LIST shows the application.
  co_await ForwardCommand(cmd, input, info, RequestClass::kSession, 0, 0, true);
  SecondaryOp op;
  resp::AppendCommand(op.command, args);
  op.state_name = tracker_.client_name();
  MirrorStateToChannels(std::move(op));
}

// Issue 13 item 14: the server answers and then closes the killed
// connection; when that is this client's upstream, the client is closed
// after the reply as the server closes it. Nothing after it is dispatched
// until the writer knows (ProbeKilled). A kill that skips the caller is
// forwarded like any command.
awaitable<void> RedisSession::HandleClientKill(const resp::Command& cmd, const std::uint8_t* input,
                                               const resp::CommandInfo& info) {
  if (!MayKillItself(cmd.args)) {
    co_await ForwardCommand(cmd, input, info, ClassOf(info));
    co_return;
  }
  co_await ForwardCommand(cmd, input, info, RequestClass::kSession, kFlagClientKill);
  if (last_entry_ != nullptr) kill_barrier_ = true;
}

awaitable<void> RedisSession::HandleClientTracking(const resp::Command& cmd, const std::uint8_t* input,
                                                   const resp::CommandInfo& info) {
  const bool on = EqualsIgnoreCase(cmd.args[2], "ON");
  const Side side = co_await ForwardCommand(cmd, input, info, RequestClass::kSession);
  tracker_.TrackingSent(on, side);
}

// The database is recorded when the server accepts it (kFlagSelect, at
// reply time); the other connections follow at once, in order.
awaitable<void> RedisSession::HandleSelect(const resp::Command& cmd, const std::uint8_t* input,
                                           const resp::CommandInfo& info) {
  const auto args = cmd.args;
  std::int64_t db = 0;
  const bool numeric = resp::ParseRedisInt64(args[1], db) && db >= 0 && db <= INT32_MAX;
  co_await ForwardCommand(cmd, input, info, RequestClass::kSession, numeric ? kFlagSelect : 0,
                          static_cast<std::int32_t>(db), numeric);
  if (numeric && last_entry_ != nullptr) {
    tracker_.SelectSent(static_cast<int>(db));
    SecondaryOp op;
    resp::AppendCommand(op.command, args);
    op.state_db = tracker_.dispatch_db();
    MirrorStateToChannels(std::move(op));
  }
}

// WATCH pins the connection the watched keys live on until EXEC, DISCARD
// or UNWATCH.
awaitable<void> RedisSession::HandleWatch(const resp::Command& cmd, const std::uint8_t* input,
                                          const resp::CommandInfo& info) {
  const Side side = co_await ForwardCommand(cmd, input, info, RequestClass::kTxnControl);
  tracker_.WatchSent(side);
}

awaitable<void> RedisSession::HandleUnwatch(const resp::Command& cmd, const std::uint8_t* input,
                                            const resp::CommandInfo& info) {
  co_await ForwardCommand(cmd, input, info, RequestClass::kTxnControl);
  tracker_.UnwatchSent();
}

// (P|S)(UN)SUBSCRIBE: one confirmation per channel named (aux), or, with
// none named, one per subscription held (-1: counted at reply time).
awaitable<void> RedisSession::HandleSubscribe(const resp::Command& cmd, const std::uint8_t* input,
                                              const resp::CommandInfo& info) {
  const bool all = cmd.args.size() == 1;
  const Side side = co_await ForwardCommand(cmd, input, info, RequestClass::kSession, kFlagPubSub,
                                            all ? -1 : static_cast<std::int32_t>(cmd.args.size() - 1));
  if (closed_ || stop_reading_) co_return;
  tracker_.SubscribeSent(side);
}

}  // namespace turnout::proxy::redis
