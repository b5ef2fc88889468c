// What an application sees through turnout is what it sees directly, with or
// without a migration (issue 13, Redis items 9, 12, 14, 15, 16): MONITOR,
// deep script replies, CLIENT KILL of one's own connection, slow and idle
// clients, replication commands. Against the harness' servers; passthrough
// (no migration) and sync dual-write where the item applies.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class RedisTransparencyTest : public RedisMigrationTest, public ::testing::WithParamInterface<const char*> {
 protected:
  void StartMode(const std::string& limits = "") {
    Start("", limits);
    if (HasFatalFailure()) return;
    if (std::string(GetParam()) == "sync") Migrate(kSync);
  }
};

// Item 9: MONITOR reaches the authoritative side; its feed shows another
// client's commands, once each (old's feed only, not new's).
TEST_P(RedisTransparencyTest, MonitorRelaysTheAuthoritativeFeed) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = Prefix(std::string("monitor-") + GetParam());
  RespConn mon(port_);
  EXPECT_EQ(mon.Call({"MONITOR"}), "+OK\r\n");
  RespConn c(port_);
  const std::string value = "seen-by-monitor-" + prefix;  // the server's feed shows every client's commands
  EXPECT_EQ(c.Call({"SET", prefix + "k", value}), "+OK\r\n");
  std::string feed;
  for (int i = 0; i < 20 && feed.find(value) == std::string::npos; ++i) feed += mon.Drain(250);
  EXPECT_THAT(feed, HasSubstr("\"SET\" \"" + prefix + "k\" \"" + value + "\"")) << feed;
  feed += mon.Drain(500);
  std::size_t n = 0;
  for (std::size_t p = feed.find(value); p != std::string::npos; p = feed.find(value, p + 1)) ++n;
  EXPECT_EQ(n, 1u) << feed;  // once: from the authoritative side only
  // Only QUIT is taken on a monitor connection.
  mon.Send(Cmd({"GET", prefix + "k"}));
  EXPECT_THAT(mon.Drain(500), HasSubstr("accepts only QUIT"));
  mon.Send(Cmd({"QUIT"}));
  auto [rest, closed] = mon.ReadToClose(3000);
  EXPECT_TRUE(closed);
  EXPECT_THAT(rest, HasSubstr("+OK\r\n"));
  Cleanup(prefix + "*");
}

// Item 12: a script reply nested far deeper than any request is relayed, and
// the connection stays in step.
TEST_P(RedisTransparencyTest, DeepServerRepliesAreRelayed) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  // 500 levels (the framing parser once stopped at 128), read as raw bytes:
  // "*1" 500 times around the innermost empty table.
  const std::string script =
      "local t = {} local c = t for i = 1, tonumber(ARGV[1]) do local n = {} c[1] = n c = n end return t";
  std::string expected;
  for (int i = 0; i < 500; ++i) expected += "*1\r\n";
  expected += "*0\r\n";
  RespConn c(port_);
  c.Send(Cmd({"EVAL", script, "0", "500"}));
  std::string got;
  for (int i = 0; i < 20 && got.size() < expected.size(); ++i) got += c.Drain(100);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
}

// Item 14: CLIENT KILL of one's own connection closes it after the reply,
// as the server does; a kill of nobody changes nothing.
TEST_P(RedisTransparencyTest, ClientKillSkipmeNoClosesTheClient) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  RespConn c(port_);
  const std::string id = c.Call({"CLIENT", "ID"});
  ASSERT_THAT(id, StartsWith(":"));
  const std::string own = id.substr(1, id.size() - 3);
  EXPECT_EQ(c.Call({"CLIENT", "KILL", "ID", "999999999", "SKIPME", "no"}), ":0\r\n");
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  c.Send(Cmd({"CLIENT", "KILL", "ID", own, "SKIPME", "no"}) + Cmd({"PING"}));
  auto [bytes, closed] = c.ReadToClose(3000);
  EXPECT_TRUE(closed);
  EXPECT_EQ(bytes, ":1\r\n");  // nothing after it: no "connection lost", no PONG
}

// Item 15: a client trickling a command one byte at a time is closed after
// limits.idle_timeout, although bytes keep coming; an idle one too.
TEST_P(RedisTransparencyTest, SlowAndIdleClientsTimeOut) {
  StartMode("  idle_timeout: 2s\n");
  ASSERT_FALSE(HasFatalFailure());
  RespConn slow(port_, 15000);
  const std::string cmd = Cmd({"SET", "ri:slow", "a value sent one byte at a time, far too slowly"});
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (std::size_t i = 0; i < cmd.size() && !closed; ++i) {
    slow.Send(cmd.substr(i, 1));
    closed = slow.ReadToClose(300).second;
  }
  if (!closed) closed = slow.ReadToClose(6000).second;
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  RespConn idle(port_);
  EXPECT_EQ(idle.Call({"PING"}), "+PONG\r\n");
  EXPECT_TRUE(idle.ReadToClose(8000).second);
  // A client that keeps talking stays.
  RespConn busy(port_);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(busy.Call({"PING"}), "+PONG\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  }
}

// Item 16: replication through the proxy is refused with one clear error
// each, and the connection goes on.
TEST_P(RedisTransparencyTest, ReplicationCommandsAreRefusedWithOneError) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  RespConn c(port_);
  const std::vector<std::vector<std::string>> commands = {{"SYNC"},
                                                          {"PSYNC", "?", "-1"},
                                                          {"REPLICAOF", "127.0.0.1", "1"},
                                                          {"SLAVEOF", "127.0.0.1", "1"},
                                                          {"REPLCONF", "listening-port", "1"}};
  for (const auto& args : commands) {
    c.Send(Cmd(args));
    auto r = c.Read(1);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0], "-ERR turnout: replication is not supported through the proxy; connect to the server directly\r\n");
    EXPECT_EQ(c.Drain(200), "");
  }
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  const auto& b = TestBackends::Get();
  RespConn old_side(b.redis_old_port);
  LoggedIn(old_side);
  EXPECT_THAT(old_side.Call({"INFO", "replication"}), HasSubstr("role:master"));
}

// Item 13: malformed requests get exactly the server's answer (text, count,
// close or not), including header lines longer than any buffer.
TEST_P(RedisTransparencyTest, ProtocolErrorsMatchTheServer) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::vector<std::string> cases = {
      "*x\r\n",
      "*1\r\n$x\r\n",
      "*" + std::string(70000, '1'),
      "*1\r\n$" + std::string(70000, '9'),
      "*1\r\n$600000000\r\n",
      "\r\n*1\r\n$4\r\nPING\r\n*x\r\n",
      "*3000000\r\n",  // a count Redis accepts: it waits for the arguments
      "$3\r\nfoo\r\n",
  };
  // Sent raw, ignoring a send that fails because the peer closed already.
  auto exchange = [](RespConn& c, const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(c.fd(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    return c.ReadToClose(1500);
  };
  for (const auto& input : cases) {
    RespConn direct(b.redis_old_port);
    LoggedIn(direct);
    RespConn c(port_);
    EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");  // turnout has its upstream ready
    const auto want = exchange(direct, input);
    const auto got = exchange(c, input);
    EXPECT_EQ(got.first, want.first) << input.substr(0, 40);
    EXPECT_EQ(got.second, want.second) << input.substr(0, 40);
  }
}

// Items 10 and 11: push messages are not replies. With CLIENT REPLY OFF
// the server still sends tracking invalidations and (un)subscribe
// confirmations and messages (RESP3 and RESP2); through turnout they arrive
// exactly as directly, once each (from the authoritative side only, under
// dual-write too).
TEST_P(RedisTransparencyTest, PushMessagesArriveWithClientReplyOff) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix(std::string("push-") + GetParam());
  auto run = [&](int port, bool auth) {
    std::vector<std::string> seen;
    RespConn a(port), w(port);
    if (auth) {
      LoggedIn(a);
      LoggedIn(w);
    }
    a.Send(Cmd({"HELLO", "3"}));
    a.Drain(300);
    EXPECT_EQ(a.Call({"CLIENT", "TRACKING", "on"}), "+OK\r\n");
    a.Call({"GET", prefix + "k"});
    a.Send(Cmd({"CLIENT", "REPLY", "OFF"}));
    seen.push_back(a.Drain(200));  // nothing
    w.Call({"SET", prefix + "k", "x"});
    seen.push_back(a.Drain(500));  // the invalidation
    a.Send(Cmd({"SUBSCRIBE", prefix + "ch"}));
    seen.push_back(a.Drain(300));  // the confirmation
    w.Call({"PUBLISH", prefix + "ch", "hello"});
    seen.push_back(a.Drain(300));  // the message
    RespConn r2(port), w2(port);
    if (auth) {
      LoggedIn(r2);
      LoggedIn(w2);
    }
    r2.Send(Cmd({"CLIENT", "REPLY", "OFF"}) + Cmd({"SUBSCRIBE", prefix + "ch2"}));
    seen.push_back(r2.Drain(300));
    w2.Call({"PUBLISH", prefix + "ch2", "hello"});
    seen.push_back(r2.Drain(300));
    return seen;
  };
  const auto direct = run(b.redis_old_port, true);
  Cleanup(prefix + "*");
  const auto through = run(port_, false);
  ASSERT_EQ(direct.size(), through.size());
  EXPECT_THAT(direct[1], HasSubstr("invalidate"));
  for (std::size_t i = 0; i < direct.size(); ++i) EXPECT_EQ(through[i], direct[i]) << i;
  Cleanup(prefix + "*");
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisTransparencyTest, ::testing::Values("passthrough", "sync"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace turnout::testing
