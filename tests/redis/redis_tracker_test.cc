// RedisTracker (proxy/redis/redis_tracker.h) without sockets: the verdict
// for each command in each session state, the in-flight FIFO, and the
// state replies change. Request and reply streams are also framed split at
// every byte offset (RequestParser / ReplyParser, as the session frames
// them): the verdicts and effects must not depend on how bytes arrive.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/request_parser.h"
#include "proxy/redis/redis_tracker.h"
#include "proxy/redis/secondary_work.h"

// The tracker is sans-I/O: neither it nor what this test includes pulls in
// Asio (asio/version.hpp comes with every Asio header).
#ifdef BOOST_ASIO_VERSION
#error "redis_tracker.h must not depend on Asio"
#endif

namespace turnout::proxy::redis {
namespace {

using routing::RequestClass;
using routing::Side;
using Action = Verdict::Action;

TrackerOptions Trust() {
  TrackerOptions o;
  o.trust = true;
  o.default_db = 0;
  o.max_inflight = 8;
  return o;
}

TrackerOptions Password() {
  TrackerOptions o = Trust();
  o.trust = false;
  return o;
}

// Splits "GET k" into {"GET", "k"} (test inputs have no quoting).
std::vector<std::string_view> Args(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    const std::size_t j = std::min(line.find(' ', i), line.size());
    out.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// The session states the table puts a command in.
enum class State { kFresh, kNoAuth, kMulti, kSubscribedResp2, kSubscribedResp3, kMonitor, kPassthrough };

RedisTracker Make(State state) {
  TrackerOptions o = state == State::kNoAuth ? Password() : Trust();
  if (state == State::kPassthrough) o.unknown_passthrough = true;
  RedisTracker t(o);
  switch (state) {
    case State::kMulti: t.MultiStarted(Side::kOld); break;
    case State::kSubscribedResp3: t.SetProtocol(3); [[fallthrough]];
    case State::kSubscribedResp2: t.SubscribeSent(Side::kOld); break;
    case State::kMonitor: t.MonitorStarted(Side::kOld); break;
    default: break;
  }
  return t;
}

struct ClassifyCase {
  State state;
  std::string_view command;
  Action action;
  std::optional<LocalCommand> local = std::nullopt;  // kLocal
  std::optional<RequestClass> cls = std::nullopt;    // kForward / kQueue
  std::string_view error = {};                       // kReject
};

TEST(RedisTracker, ClassifyTable) {
  const std::vector<ClassifyCase> cases = {
      {State::kFresh, "GET k", Action::kForward, {}, RequestClass::kRead},
      {State::kFresh, "get k", Action::kForward, {}, RequestClass::kRead},
      {State::kFresh, "SET k v", Action::kForward, {}, RequestClass::kWrite},
      {State::kFresh, "CONFIG GET maxmemory", Action::kForward, {}, RequestClass::kAdmin},
      {State::kFresh, "PING", Action::kForward, {}, RequestClass::kSession},
      {State::kFresh, "BLPOP q 0", Action::kForward, {}, RequestClass::kWrite},
      {State::kFresh, "CLIENT ID", Action::kForward, {}, RequestClass::kSession},
      {State::kFresh, "NOSUCH a b", Action::kReject, {}, {},
       "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "},
      {State::kFresh, "CLIENT NOSUCH", Action::kReject, {}, {},
       "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."},
      {State::kFresh, "GET", Action::kReject, {}, {}, "ERR wrong number of arguments for 'get' command"},
      {State::kFresh, "QUIT", Action::kLocal, LocalCommand::kQuit},
      {State::kFresh, "RESET", Action::kLocal, LocalCommand::kReset},
      {State::kFresh, "MONITOR", Action::kLocal, LocalCommand::kMonitor},
      {State::kFresh, "AUTH u p", Action::kLocal, LocalCommand::kAuth},
      {State::kFresh, "HELLO 3", Action::kLocal, LocalCommand::kHello},
      {State::kFresh, "CLIENT GETNAME", Action::kLocal, LocalCommand::kClientGetname},
      {State::kFresh, "CLIENT SETNAME app", Action::kLocal, LocalCommand::kClientSetname},
      {State::kFresh, "CLIENT REPLY OFF", Action::kLocal, LocalCommand::kClientReply},
      {State::kFresh, "CLIENT KILL 1.2.3.4:5", Action::kLocal, LocalCommand::kClientKill},
      {State::kFresh, "CLIENT TRACKING ON", Action::kLocal, LocalCommand::kClientTracking},
      {State::kFresh, "SELECT 2", Action::kLocal, LocalCommand::kSelect},
      {State::kFresh, "MULTI", Action::kLocal, LocalCommand::kMulti},
      {State::kFresh, "EXEC", Action::kLocal, LocalCommand::kExec},
      {State::kFresh, "DISCARD", Action::kLocal, LocalCommand::kDiscard},
      {State::kFresh, "WATCH k", Action::kLocal, LocalCommand::kWatch},
      {State::kFresh, "UNWATCH", Action::kLocal, LocalCommand::kUnwatch},
      {State::kFresh, "SUBSCRIBE a b", Action::kLocal, LocalCommand::kSubscribe},
      {State::kFresh, "PUNSUBSCRIBE", Action::kLocal, LocalCommand::kSubscribe},
      {State::kFresh, "SSUBSCRIBE s", Action::kLocal, LocalCommand::kSubscribe},
      {State::kFresh, "REPLICAOF h 1", Action::kReject, {}, {},
       "ERR turnout: replication is not supported through the proxy; connect to the server directly"},
      {State::kFresh, "SYNC", Action::kReject, {}, {},
       "ERR turnout: replication is not supported through the proxy; connect to the server directly"},
      // Before AUTH: only commands flagged no-auth.
      {State::kNoAuth, "GET k", Action::kReject, {}, {}, "NOAUTH Authentication required."},
      {State::kNoAuth, "AUTH u p", Action::kLocal, LocalCommand::kAuth},
      {State::kNoAuth, "HELLO 3", Action::kLocal, LocalCommand::kHello},
      {State::kNoAuth, "QUIT", Action::kLocal, LocalCommand::kQuit},
      {State::kNoAuth, "NOSUCH", Action::kReject, {}, {}, "ERR unknown command 'NOSUCH', with args beginning with: "},
      // Inside MULTI: queued, except what turnout terminates.
      {State::kMulti, "SET k v", Action::kQueue, {}, RequestClass::kWrite},
      {State::kMulti, "SELECT 1", Action::kQueue, {}, RequestClass::kSession},
      {State::kMulti, "MONITOR", Action::kQueue, {}, RequestClass::kAdmin},
      {State::kMulti, "CLIENT SETNAME x", Action::kQueue, {}, RequestClass::kSession},
      {State::kMulti, "AUTH u p", Action::kReject, {}, {}, "ERR turnout: auth inside MULTI is not supported"},
      {State::kMulti, "HELLO 3", Action::kReject, {}, {}, "ERR turnout: hello inside MULTI is not supported"},
      {State::kMulti, "CLIENT REPLY ON", Action::kReject, {}, {},
       "ERR turnout: client|reply inside MULTI is not supported"},
      {State::kMulti, "SUBSCRIBE a", Action::kReject, {}, {},
       "ERR turnout: subscribe inside MULTI is not supported"},
      {State::kMulti, "EXEC", Action::kLocal, LocalCommand::kExec},
      {State::kMulti, "DISCARD", Action::kLocal, LocalCommand::kDiscard},
      {State::kMulti, "MULTI", Action::kLocal, LocalCommand::kMulti},
      {State::kMulti, "WATCH k", Action::kLocal, LocalCommand::kWatch},
      {State::kMulti, "QUIT", Action::kLocal, LocalCommand::kQuit},
      {State::kMulti, "RESET", Action::kLocal, LocalCommand::kReset},
      // A RESP2 subscriber (server.c processCommand).
      {State::kSubscribedResp2, "GET k", Action::kReject, {}, {},
       "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
       "this context"},
      {State::kSubscribedResp2, "PING", Action::kForward, {}, RequestClass::kSession},
      {State::kSubscribedResp2, "UNSUBSCRIBE", Action::kLocal, LocalCommand::kSubscribe},
      {State::kSubscribedResp2, "QUIT", Action::kLocal, LocalCommand::kQuit},
      {State::kSubscribedResp2, "RESET", Action::kLocal, LocalCommand::kReset},
      {State::kSubscribedResp3, "GET k", Action::kForward, {}, RequestClass::kRead},
      // A monitor accepts QUIT (and RESET, which ends it) only.
      {State::kMonitor, "GET k", Action::kReject, {}, {}, "ERR turnout: a MONITOR connection accepts only QUIT"},
      {State::kMonitor, "MONITOR", Action::kReject, {}, {}, "ERR turnout: a MONITOR connection accepts only QUIT"},
      {State::kMonitor, "QUIT", Action::kLocal, LocalCommand::kQuit},
      // routes[].unknown_commands: passthrough.
      {State::kPassthrough, "MODULE.CMD a", Action::kPassthrough, {}, RequestClass::kWrite},
      {State::kPassthrough, "GET k", Action::kForward, {}, RequestClass::kRead},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.command) + " in state " + std::to_string(static_cast<int>(c.state)));
    RedisTracker t = Make(c.state);
    const auto args = Args(c.command);
    const Verdict v = t.Classify(args);
    EXPECT_EQ(v.action, c.action);
    if (c.local) {
      EXPECT_EQ(v.local, *c.local);
    }
    if (c.cls) {
      EXPECT_EQ(v.cls, *c.cls);
    }
    EXPECT_EQ(v.error, c.error);
    if (v.action != Action::kReject) {
      EXPECT_NE(v.info, nullptr);
    }
  }
}

TEST(RedisTracker, ClassifyLargeTable) {
  struct Case {
    State state;
    std::string_view head;
    Action action;
    std::string_view error;
  };
  const std::vector<Case> cases = {
      {State::kFresh, "SET k", Action::kForward, ""},
      {State::kFresh, "UNLINK a b c", Action::kForward, ""},
      {State::kFresh, "", Action::kReject, "ERR unknown command"},
      {State::kFresh, "NOSUCH x", Action::kReject, "ERR unknown command 'NOSUCH', with args beginning with: 'x' "},
      {State::kNoAuth, "SET k", Action::kReject, "NOAUTH Authentication required."},
      {State::kFresh, "AUTH u", Action::kReject, "ERR turnout: 'auth' command too large"},
      {State::kFresh, "SELECT", Action::kReject, "ERR turnout: 'select' command too large"},
      {State::kFresh, "CLIENT SETNAME", Action::kReject, "ERR turnout: 'client|setname' command too large"},
      {State::kFresh, "SUBSCRIBE a", Action::kReject, "ERR turnout: 'subscribe' command too large"},
      {State::kSubscribedResp2, "SET k", Action::kReject, "ERR turnout: 'set' command too large"},
      {State::kSubscribedResp3, "SET k", Action::kForward, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.head));
    RedisTracker t = Make(c.state);
    const auto head = Args(c.head);
    const Verdict v = t.ClassifyLarge(head);
    EXPECT_EQ(v.action, c.action);
    EXPECT_EQ(v.error, c.error);
  }
}

// A pipeline framed as the session frames it, split at every offset: the
// same verdicts in the same order.
TEST(RedisTracker, VerdictsDoNotDependOnHowBytesArrive) {
  const std::string input =
      "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
      "PING\r\n"
      "*1\r\n$5\r\nMULTI\r\n"
      "*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n"
      "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n"
      "*1\r\n$6\r\nNOSUCH\r\n"
      "*1\r\n$4\r\nQUIT\r\n";
  auto run = [&](std::size_t split) {
    std::vector<std::string> out;
    RedisTracker t(Trust());
    protocol::resp::RequestParser parser;
    std::size_t start = 0;
    std::size_t received = std::min(split, input.size());
    for (;;) {
      const auto status = parser.Parse(std::string_view(input).substr(start, received - start));
      if (status == protocol::resp::ParseStatus::kError) {
        ADD_FAILURE() << "parse error at split " << split;
        break;
      }
      if (status == protocol::resp::ParseStatus::kNeedMore) {
        if (received == input.size()) break;
        received = input.size();
        continue;
      }
      const Verdict v = t.Classify(parser.command().args);
      out.push_back(std::to_string(static_cast<int>(v.action)) + "/" +
                    std::to_string(static_cast<int>(v.local)) + "/" + std::to_string(static_cast<int>(v.cls)) +
                    "/" + v.error);
      if (v.action == Action::kLocal && v.local == LocalCommand::kMulti) t.MultiStarted(Side::kOld);
      start += parser.command().frame_length;
    }
    return out;
  };
  const auto whole = run(input.size());
  ASSERT_EQ(whole.size(), 8u);
  EXPECT_EQ(whole[5], std::to_string(static_cast<int>(Action::kQueue)) + "/0/" +
                          std::to_string(static_cast<int>(RequestClass::kSession)) + "/");
  for (std::size_t split = 0; split < input.size(); ++split) EXPECT_EQ(run(split), whole) << "split " << split;
}

Entry PubSubEntry(std::int32_t aux, PubSubKind kind) {
  Entry e;
  e.kind = EntryKind::kForward;
  e.cls = RequestClass::kSession;
  e.flags = kFlagPubSub;
  e.aux = aux;
  e.pubsub = kind;
  return e;
}

// SUBSCRIBE a b (two confirmations), a message, then UNSUBSCRIBE with no
// channel (one confirmation per subscription held), framed from one reply
// stream split at every offset.
TEST(RedisTracker, SubscriptionsCountedFromConfirmationsSplitAtEveryOffset) {
  const std::string stream =
      "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
      "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
      "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
      "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n"
      "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n";
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    SCOPED_TRACE(split);
    RedisTracker t(Trust());
    t.SubscribeSent(Side::kOld);
    t.Push(PubSubEntry(2, PubSubKind::kSubscribe));
    EXPECT_TRUE(t.SubscribedView());
    EXPECT_EQ(t.pinned(), Side::kOld);
    EXPECT_EQ(t.idle_read_side(), Side::kOld);
    protocol::resp::ReplyParser parser;
    std::size_t start = 0, received = split;
    int frames = 0, out_of_band = 0, forwarded = 0;
    for (;;) {
      const auto status = parser.Parse(std::string_view(stream).substr(start, received - start));
      ASSERT_NE(status, protocol::resp::ParseStatus::kError);
      if (status == protocol::resp::ParseStatus::kNeedMore) {
        if (received == stream.size()) break;
        received = stream.size();
        continue;
      }
      const std::string_view frame = std::string_view(stream).substr(start, parser.frame().length);
      start += parser.frame().length;
      ++frames;
      Entry* head = t.fifo().empty() ? nullptr : &t.fifo().front();
      if (t.IsOutOfBand(frame, head)) {
        ++out_of_band;
        continue;
      }
      ASSERT_NE(head, nullptr);
      const ReplyEffect r = t.OnReply(*head, frame);
      forwarded += r.forward;
      if (r.done) {
        t.Pop();
        if (frames == 2) {
          // Subscribed to both; the client unsubscribes from all.
          EXPECT_EQ(t.subscriptions(), 2);
          t.SubscribeSent(Side::kOld);
          t.Push(PubSubEntry(-1, PubSubKind::kUnsubscribe));
        }
      }
    }
    EXPECT_EQ(frames, 5);
    EXPECT_EQ(out_of_band, 1);
    EXPECT_EQ(forwarded, 4);
    EXPECT_TRUE(t.fifo().empty());
    EXPECT_FALSE(t.SubscribedView());
    EXPECT_EQ(t.subscriptions(), 0);
    EXPECT_EQ(t.pinned(), std::nullopt);
    EXPECT_EQ(t.idle_read_side(), std::nullopt);
  }
}

TEST(RedisTracker, OutOfBandFrames) {
  RedisTracker t(Trust());
  // Not subscribed: an array reply is a reply.
  EXPECT_FALSE(t.IsOutOfBand("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n", nullptr));
  EXPECT_FALSE(t.IsOutOfBand("+OK\r\n", nullptr));
  EXPECT_FALSE(t.IsOutOfBand("", nullptr));
  // RESP3 pushes are always out of band, readable or not.
  EXPECT_TRUE(t.IsOutOfBand(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", nullptr));
  EXPECT_TRUE(t.IsOutOfBand(">1\r\n:1\r\n", nullptr));
  // An unsolicited confirmation (sunsubscribe after a slot moved) updates the counts.
  t.SubscribeSent(Side::kOld);
  t.Push(PubSubEntry(1, PubSubKind::kSSubscribe));
  Entry& head = t.fifo().front();
  EXPECT_FALSE(t.IsOutOfBand("*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n", &head));
  EXPECT_TRUE(t.OnReply(head, "*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n").done);
  t.Pop();
  EXPECT_EQ(t.subscriptions(), 1);
  EXPECT_TRUE(t.IsOutOfBand("*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n", nullptr));
  EXPECT_EQ(t.subscriptions(), 0);
  // A MONITOR line answers nothing.
  RedisTracker m(Trust());
  m.MonitorStarted(Side::kNew);
  EXPECT_TRUE(m.IsOutOfBand("+1700000000.1 [0 127.0.0.1:1] \"GET\" \"k\"\r\n", nullptr));
}

Entry ForwardEntry(std::uint16_t flags = 0, std::int32_t aux = 0) {
  Entry e;
  e.kind = EntryKind::kForward;
  e.cls = RequestClass::kSession;
  e.flags = flags;
  e.aux = aux;
  return e;
}

TEST(RedisTracker, RepliesChangeStateOnlyWhenTheServerAccepts) {
  RedisTracker t(Trust());
  // SELECT: the database as the server confirmed it.
  t.SelectSent(4);
  EXPECT_EQ(t.dispatch_db(), 4);
  EXPECT_EQ(t.db(), 0);
  Entry& sel = t.Push(ForwardEntry(kFlagSelect, 4));
  EXPECT_TRUE(t.OnReply(sel, "-ERR DB index is out of range\r\n").done);
  EXPECT_EQ(t.db(), 0);
  t.Pop();
  Entry& sel2 = t.Push(ForwardEntry(kFlagSelect, 4));
  t.OnReply(sel2, "+OK\r\n");
  t.Pop();
  EXPECT_EQ(t.db(), 4);
  // HELLO 3: replies switch to RESP3 when it is answered, requests at once.
  t.SetProtocol(3);
  EXPECT_TRUE(t.resp3());
  EXPECT_FALSE(t.writer_resp3());
  Entry& hello = t.Push(ForwardEntry(kFlagHello, 3));
  t.OnReply(hello, "%1\r\n+proto\r\n:3\r\n");
  t.Pop();
  EXPECT_TRUE(t.writer_resp3());
  // A swallowed copy (another backend's HELLO) does not change the writer.
  Entry swallowed = ForwardEntry(kFlagHello, 2);
  swallowed.kind = EntryKind::kSwallow;
  Entry& sw = t.Push(swallowed);
  const ReplyEffect r = t.OnReply(sw, "%1\r\n+proto\r\n:2\r\n");
  EXPECT_FALSE(r.forward);
  t.Pop();
  EXPECT_TRUE(t.writer_resp3());
  // RESET's forwarded reply: RESP2 again.
  Entry& reset = t.Push(ForwardEntry(kFlagReset));
  t.OnReply(reset, "+RESET\r\n");
  t.Pop();
  EXPECT_FALSE(t.writer_resp3());
}

TEST(RedisTracker, ClientKillAndReloginReplies) {
  struct Case {
    std::string_view reply;
    ReplyEffect::Kill kill;
  };
  for (const auto& c : std::vector<Case>{{":0\r\n", ReplyEffect::Kill::kRelease},
                                         {":1\r\n", ReplyEffect::Kill::kProbe},
                                         {"+OK\r\n", ReplyEffect::Kill::kProbe},
                                         {"-ERR No such client\r\n", ReplyEffect::Kill::kRelease}}) {
    RedisTracker t(Trust());
    Entry& e = t.Push(ForwardEntry(kFlagClientKill));
    EXPECT_EQ(t.OnReply(e, c.reply).kill, c.kill) << c.reply;
  }
  RedisTracker t(Trust());
  Entry login = ForwardEntry(kFlagLoginCheck);
  login.kind = EntryKind::kSwallow;
  Entry& e = t.Push(login);
  EXPECT_FALSE(t.OnReply(e, "+OK\r\n").login_failed);
  t.Pop();
  Entry& e2 = t.Push(login);
  const ReplyEffect r = t.OnReply(e2, "-WRONGPASS invalid username-password pair\r\n");
  EXPECT_TRUE(r.login_failed);
  EXPECT_FALSE(r.forward);
}

TEST(RedisTracker, ClientReplyModes) {
  RedisTracker t(Trust());
  EXPECT_EQ(t.SuppressFlag(), 0);
  EXPECT_EQ(t.SetClientReply("skip"), false);
  EXPECT_EQ(t.SuppressFlag(), kFlagSuppress);  // the next reply only
  EXPECT_EQ(t.SuppressFlag(), 0);
  EXPECT_EQ(t.SetClientReply("OFF"), false);
  EXPECT_EQ(t.SetClientReply("SKIP"), false);  // no effect while OFF
  EXPECT_EQ(t.SuppressFlag(), kFlagSuppress);
  EXPECT_EQ(t.SuppressFlag(), kFlagSuppress);
  EXPECT_EQ(t.SetClientReply("On"), true);  // answered +OK
  EXPECT_EQ(t.SuppressFlag(), 0);
  EXPECT_EQ(t.SetClientReply("maybe"), std::nullopt);
  // A suppressed reply is not forwarded.
  Entry e = ForwardEntry();
  e.flags = kFlagSuppress;
  Entry& pushed = t.Push(e);
  EXPECT_FALSE(t.OnReply(pushed, "+OK\r\n").forward);
}

TEST(RedisTracker, MultiWatchAndPinning) {
  RedisTracker t(Trust());
  t.WatchSent(Side::kNew);
  EXPECT_EQ(t.pinned(), Side::kNew);
  t.MultiStarted(Side::kNew);
  EXPECT_TRUE(t.in_multi());
  EXPECT_FALSE(t.multi_dirty());
  // A command refused inside MULTI aborts it at EXEC (multi.c flagTransaction).
  const auto auth = Args("AUTH u p");
  EXPECT_EQ(t.Classify(auth).action, Action::kReject);
  t.NoteRejected();
  EXPECT_TRUE(t.multi_dirty());
  t.WatchSent(Side::kOld);  // WATCH inside MULTI is the server's error; no new pin
  EXPECT_EQ(t.pinned(), Side::kNew);
  t.TransactionEnded();
  EXPECT_FALSE(t.in_multi());
  EXPECT_FALSE(t.multi_dirty());
  EXPECT_EQ(t.pinned(), std::nullopt);  // EXEC also ends the WATCH
  // Outside MULTI a refusal changes nothing.
  t.NoteRejected();
  EXPECT_FALSE(t.multi_dirty());
  t.WatchSent(Side::kOld);
  t.UnwatchSent();
  EXPECT_EQ(t.pinned(), std::nullopt);
}

TEST(RedisTracker, ExecReplyMovesTheDatabase) {
  RedisTracker t(Trust());
  const std::vector<BlockSelect> selects = {{1, 5}};
  // MULTI; SET; SELECT 5; EXEC -> [+OK, +OK]
  EXPECT_EQ(t.OnExecReply("*2\r\n+OK\r\n+OK\r\n", selects, false), 5);
  EXPECT_EQ(t.db(), 5);
  // An aborted EXEC leaves it.
  EXPECT_EQ(t.OnExecReply("*-1\r\n", {{0, 7}}, false), 5);
}

TEST(RedisTracker, BlockingCommandsCountedOnce) {
  RedisTracker t(Trust());
  Entry& e = t.Push(ForwardEntry(kFlagBlocking));
  EXPECT_EQ(t.blocking_inflight(), 1);
  t.Unblocked(e);  // its reply is in (the entry waits for secondary work)
  EXPECT_EQ(t.blocking_inflight(), 0);
  t.Pop();
  EXPECT_EQ(t.blocking_inflight(), 0);
  t.Push(ForwardEntry(kFlagBlocking));
  t.Pop();
  EXPECT_EQ(t.blocking_inflight(), 0);
}

TEST(RedisTracker, ResetReturnsToANewConnection) {
  TrackerOptions o = Password();
  o.default_db = 3;
  RedisTracker t(o);
  EXPECT_FALSE(t.authenticated());
  EXPECT_EQ(t.db(), 3);
  EXPECT_EQ(t.dispatch_db(), 3);
  t.Authenticate("alice");
  t.SetClientName("app");
  t.SetProtocol(3);
  t.SelectSent(7);
  t.SetClientReply("OFF");
  t.MultiStarted(Side::kNew);
  t.Reset(false);
  EXPECT_FALSE(t.authenticated());
  EXPECT_EQ(t.user(), "");
  EXPECT_EQ(t.client_name(), "");
  EXPECT_FALSE(t.resp3());
  EXPECT_EQ(t.dispatch_db(), 3);
  EXPECT_FALSE(t.in_multi());
  EXPECT_EQ(t.pinned(), std::nullopt);
  EXPECT_EQ(t.SuppressFlag(), 0);
  // Subscribed, with the RESET sent upstream: its reply ends the subscriptions.
  RedisTracker s(Trust());
  s.SubscribeSent(Side::kOld);
  Entry& sub = s.Push(PubSubEntry(1, PubSubKind::kSubscribe));
  s.OnReply(sub, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
  s.Pop();
  s.Reset(true);
  EXPECT_TRUE(s.SubscribedView());
  EXPECT_EQ(s.pinned(), Side::kOld);
  Entry& reset = s.Push(ForwardEntry(kFlagReset));
  s.OnReply(reset, "+RESET\r\n");
  s.Pop();
  EXPECT_FALSE(s.SubscribedView());
  EXPECT_EQ(s.pinned(), std::nullopt);
  EXPECT_EQ(s.idle_read_side(), std::nullopt);
}

}  // namespace
}  // namespace turnout::proxy::redis
