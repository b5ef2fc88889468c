// The protocol-aware Redis session against the harness' redis-server 7.0,
// over raw sockets: pipelining and reply order, auth at turnout, HELLO and
// RESP3, transactions, pub/sub in both protocol versions, blocking
// commands, refusals with Redis' own texts, and bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>

#include <atomic>

#include <chrono>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/redis/redis_itest_support.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class RedisSessionTest : public ::testing::Test {
 protected:
  void Start(const RedisRouteOptions& options = {}) {
    t_.Start(options);
    ASSERT_FALSE(HasFatalFailure());
  }
  int direct_port() const { return TestBackends::Get().redis_old_port; }
  RedisTurnout t_;
};

TEST_F(RedisSessionTest, PingSetGetReachTheOldServer) {
  Start();
  RespConn c(t_.port);
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  EXPECT_EQ(c.Call({"SET", "rs:basic", "v1"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:basic"}), "$2\r\nv1\r\n");
  RespConn direct(direct_port());
  EXPECT_EQ(direct.Call({"GET", "rs:basic"}), "$2\r\nv1\r\n");
  // turnout logged in upstream as the backend's ACL user.
  EXPECT_THAT(c.Call({"ACL", "WHOAMI"}), HasSubstr("turnout"));
  // Inline commands work too (re-encoded upstream).
  c.Send("ECHO \"two words\"\r\n");
  EXPECT_EQ(c.ReadOne(), "$9\r\ntwo words\r\n");
}

TEST_F(RedisSessionTest, PipelinedRepliesComeBackInOrder) {
  Start();
  RespConn c(t_.port);
  std::string batch;
  for (int i = 0; i < 3000; ++i) {
    batch += Cmd({"SET", "rs:pipe:" + std::to_string(i), std::to_string(i)});
    batch += Cmd({"GET", "rs:pipe:" + std::to_string(i)});
    if (i % 100 == 0) batch += Cmd({"NOSUCHCMD", std::to_string(i)});  // answered by turnout, in place
  }
  c.Send(batch);
  auto replies = c.Read(6030, 20000);
  ASSERT_EQ(replies.size(), 6030u);
  std::size_t k = 0;
  for (int i = 0; i < 3000; ++i) {
    EXPECT_EQ(replies[k++], "+OK\r\n");
    const std::string v = std::to_string(i);
    EXPECT_EQ(replies[k++], "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n");
    if (i % 100 == 0) {
      EXPECT_EQ(replies[k++], "-ERR unknown command 'NOSUCHCMD', with args beginning with: '" + v + "' \r\n");
    }
  }
}

// Builds a deterministic mixed workload; `db` selects a database of its own.
std::vector<std::string> MixedWorkload(int db) {
  std::vector<std::string> cmds;
  std::mt19937 rng(12345);
  auto key = [&](const char* type, int n) { return std::string("mix:") + type + ":" + std::to_string(n); };
  cmds.push_back(Cmd({"SELECT", std::to_string(db)}));
  cmds.push_back(Cmd({"FLUSHDB"}));
  const std::string big(100 * 1024, 'b');    // replies larger than half a buffer
  const std::string huge(300 * 1024, 'h');   // a request larger than the buffer
  for (int i = 0; cmds.size() < 10000; ++i) {
    const int k = static_cast<int>(rng() % 50);
    switch (rng() % 24) {
      case 0: cmds.push_back(Cmd({"SET", key("s", k), std::to_string(rng())})); break;
      case 1: cmds.push_back(Cmd({"GET", key("s", k)})); break;
      case 2: cmds.push_back(Cmd({"INCR", key("n", k)})); break;
      case 3: cmds.push_back(Cmd({"INCRBY", key("n", k), std::to_string(static_cast<int>(rng() % 100) - 50)})); break;
      case 4: cmds.push_back(Cmd({"APPEND", key("s", k), "xy\r\nz"})); break;
      case 5: cmds.push_back(Cmd({"LPUSH", key("l", k), std::to_string(i), "a"})); break;
      case 6: cmds.push_back(Cmd({"LRANGE", key("l", k), "0", "10"})); break;
      case 7: cmds.push_back(Cmd({"RPOP", key("l", k)})); break;
      case 8: cmds.push_back(Cmd({"HSET", key("h", k), "f" + std::to_string(k % 5), std::to_string(i)})); break;
      case 9: cmds.push_back(Cmd({"HGET", key("h", k), "f1"})); break;
      case 10: cmds.push_back(Cmd({"SADD", key("set", k), std::to_string(k % 7)})); break;
      case 11: cmds.push_back(Cmd({"SCARD", key("set", k)})); break;
      case 12: cmds.push_back(Cmd({"ZADD", key("z", k), std::to_string(rng() % 1000), "m" + std::to_string(k % 9)})); break;
      case 13: cmds.push_back(Cmd({"ZRANGE", key("z", k), "0", "-1", "WITHSCORES"})); break;
      case 14: cmds.push_back(Cmd({"EXISTS", key("s", k), key("n", k)})); break;
      case 15: cmds.push_back(Cmd({"DEL", key("l", k)})); break;
      case 16: cmds.push_back(Cmd({"TYPE", key("h", k)})); break;
      case 17: cmds.push_back(Cmd({"INCR", key("s", k)})); break;  // often WRONGTYPE / not an integer
      case 18: cmds.push_back(Cmd({"GET"})); break;                  // arity error
      case 19: cmds.push_back(Cmd({"MGET", key("s", k), key("s", k + 1), key("n", k)})); break;
      case 20:
        cmds.push_back(Cmd({"MULTI"}));
        cmds.push_back(Cmd({"INCR", key("n", k)}));
        cmds.push_back(Cmd({"LPUSH", key("l", k), "t"}));
        cmds.push_back(Cmd({"EXEC"}));
        break;
      case 21:
        if (i % 40 == 0) {
          cmds.push_back(Cmd({"SET", key("big", k), big}));
          cmds.push_back(Cmd({"GET", key("big", k)}));
        } else {
          cmds.push_back(Cmd({"ECHO", std::string(static_cast<std::size_t>(rng() % 300), 'e')}));
        }
        break;
      case 22:
        if (i % 200 == 0) {
          cmds.push_back(Cmd({"SET", key("huge", k), huge}));
          cmds.push_back(Cmd({"STRLEN", key("huge", k)}));
        } else {
          cmds.push_back("PING\r\n");  // inline
        }
        break;
      case 23: cmds.push_back(Cmd({"GETRANGE", key("s", k), "1", "3"})); break;
    }
  }
  cmds.resize(10000);
  return cmds;
}

TEST_F(RedisSessionTest, TenThousandPipelinedMixedCommandsMatchTheServerByteForByte) {
  Start();
  // Same workload, its own database on each path, replies compared exactly.
  auto run = [](int port, int db) {
    const auto cmds = MixedWorkload(db);
    std::string all;
    for (const auto& c : cmds) all += c;
    RespConn c(port);
    std::thread sender([&] { c.Send(all); });
    auto replies = c.Read(cmds.size(), 30000);
    sender.join();
    return replies;
  };
  const auto direct = run(direct_port(), 11);
  const auto through = run(t_.port, 12);
  ASSERT_EQ(direct.size(), 10000u);
  if (through.size() != 10000u) {
    const auto cmds = MixedWorkload(12);
    for (std::size_t i = through.size() > 3 ? through.size() - 3 : 0; i < std::min<std::size_t>(through.size() + 3, cmds.size()); ++i)
      ADD_FAILURE() << "command " << i << ": " << cmds[i].substr(0, 120);
  }
  ASSERT_EQ(through.size(), 10000u);
  int errors = 0, big = 0;
  for (std::size_t i = 0; i < direct.size(); ++i) {
    EXPECT_EQ(through[i], direct[i]) << "reply " << i;
    if (through[i][0] == '-') ++errors;
    if (through[i].size() > 50000) ++big;
  }
  // The workload really covers errors and large replies.
  EXPECT_GT(errors, 10);
  EXPECT_GT(big, 0);
  RespConn cleanup(direct_port());
  for (const char* db : {"11", "12"}) {
    cleanup.Call({"SELECT", db});
    cleanup.Call({"FLUSHDB"});
  }
}

TEST_F(RedisSessionTest, UnknownCommandAndArityErrorsMatchRedis) {
  Start();
  RespConn c(t_.port);
  RespConn d(direct_port());
  for (auto cmd : {Cmd({"FOO", "bar", "baz"}), Cmd({"CLIENT", "FOO"}), Cmd({"GET"}), Cmd({"CLIENT", "SETNAME"}),
                   Cmd({"FOO", std::string(300, 'a'), "b"}), Cmd({"CLIENT", "SETNAME", "a b"})}) {
    c.Send(cmd);
    d.Send(cmd);
    EXPECT_EQ(c.ReadOne(), d.ReadOne());
  }
}

// MONITOR goes to the server (issue 13 item 9); replication is refused.
TEST_F(RedisSessionTest, MonitorIsRelayedAndReplicationIsRefused) {
  Start();
  RespConn c(t_.port);
  EXPECT_THAT(c.Call({"SYNC"}), StartsWith("-ERR turnout: replication is not supported"));
  // The session goes on.
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  EXPECT_EQ(c.Call({"MONITOR"}), "+OK\r\n");
  auto cli = RunProgram({"redis-cli", "-p", std::to_string(t_.port), "monitor"}, "", {}, 2000);
  EXPECT_THAT(cli.out, HasSubstr("OK"));
  EXPECT_THAT(cli.out + cli.err, ::testing::Not(HasSubstr("ERR")));
}

TEST_F(RedisSessionTest, SelectClientNameAndReset) {
  Start();
  RespConn c(t_.port);
  EXPECT_EQ(c.Call({"SELECT", "3"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"SET", "rs:db3", "x"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}), "$-1\r\n");
  EXPECT_EQ(c.Call({"CLIENT", "SETNAME", "billing-api"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}), "$11\r\nbilling-api\r\n");
  // The server sees the name and the database too.
  const std::string info = c.Call({"CLIENT", "INFO"});
  EXPECT_THAT(info, HasSubstr("name=billing-api"));
  EXPECT_THAT(info, HasSubstr("db=3"));
  EXPECT_THAT(c.Call({"CLIENT", "ID"}), StartsWith(":"));
  EXPECT_EQ(c.Call({"SELECT", "99"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ(c.Call({"RESET"}), "+RESET\r\n");
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}), "$-1\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:db3"}), "$-1\r\n");  // back in db 0
  // Still logged in upstream as the backend user after RESET.
  EXPECT_THAT(c.Call({"ACL", "WHOAMI"}), HasSubstr("turnout"));
  EXPECT_EQ(c.Call({"SELECT", "3"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:db3"}), "$1\r\nx\r\n");
}

TEST_F(RedisSessionTest, QuitRepliesThenCloses) {
  Start();
  RespConn c(t_.port);
  c.Send(Cmd({"PING"}) + Cmd({"QUIT"}) + Cmd({"PING"}));
  auto [bytes, closed] = c.ReadToClose(3000);
  EXPECT_EQ(bytes, "+PONG\r\n+OK\r\n");
  EXPECT_TRUE(closed);
}

TEST_F(RedisSessionTest, ClientReplyOffAndSkip) {
  Start();
  RespConn c(t_.port);
  c.Send(Cmd({"CLIENT", "REPLY", "OFF"}) + Cmd({"SET", "rs:quiet", "1"}) + Cmd({"PING"}) +
         Cmd({"CLIENT", "REPLY", "ON"}) + Cmd({"CLIENT", "REPLY", "SKIP"}) + Cmd({"PING"}) + Cmd({"GET", "rs:quiet"}));
  auto r = c.Read(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], "+OK\r\n");
  EXPECT_EQ(r[1], "$1\r\n1\r\n");
  EXPECT_EQ(c.Drain(200), "");
}

TEST_F(RedisSessionTest, Resp3HelloAndTypes) {
  Start();
  RespConn c(t_.port);
  const std::string hello = c.Call({"HELLO", "3"});
  EXPECT_THAT(hello, StartsWith("%7\r\n"));
  EXPECT_THAT(hello, HasSubstr("$5\r\nproto\r\n:3\r\n"));
  c.Call({"DEL", "rs:r3:h", "rs:r3:s", "rs:r3:z"});
  c.Call({"HSET", "rs:r3:h", "a", "1"});
  EXPECT_EQ(c.Call({"HGETALL", "rs:r3:h"}), "%1\r\n$1\r\na\r\n$1\r\n1\r\n");
  c.Call({"SADD", "rs:r3:s", "x"});
  EXPECT_EQ(c.Call({"SMEMBERS", "rs:r3:s"}), "~1\r\n$1\r\nx\r\n");
  c.Call({"ZADD", "rs:r3:z", "1.5", "m"});
  EXPECT_EQ(c.Call({"ZSCORE", "rs:r3:z", "m"}), ",1.5\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:r3:none"}), "_\r\n");
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}), "_\r\n");  // answered by turnout, in RESP3
  EXPECT_THAT(c.Call({"HELLO", "4"}), StartsWith("-NOPROTO"));
  EXPECT_THAT(c.Call({"HELLO", "x"}), StartsWith("-ERR Protocol version is not an integer"));
  // Back to RESP2.
  EXPECT_THAT(c.Call({"HELLO", "2"}), StartsWith("*14\r\n"));
  EXPECT_EQ(c.Call({"GET", "rs:r3:none"}), "$-1\r\n");
  auto cli = RunProgram({"redis-cli", "-3", "-p", std::to_string(t_.port), "hello", "3"});
  EXPECT_THAT(cli.out, HasSubstr("proto"));
  EXPECT_THAT(cli.out, HasSubstr("3"));
}

class RedisAuthTest : public RedisSessionTest {
 protected:
  void StartWithUsers() {
    const std::string users = t_.process.dir() + "/redis-users.txt";
    std::ofstream(users) << "\"alice\" \"wonderland\"\n"
                         << "default defaultpw\n"
                         // md5("hatter" + "madhatter"), as a PgBouncer list may hold it
                         << "madhatter md5" << Md5Secret() << "\n";
    RedisRouteOptions o;
    o.auth = "password";
    o.users_file = users;
    Start(o);
  }
  static std::string Md5Secret() {
    auto r = RunProgram({"sh", "-c", "printf '%s' hattermadhatter | md5sum | cut -c1-32"});
    std::string s = r.out;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
};

TEST_F(RedisAuthTest, CommandsNeedAuthAndErrorsAreRedis) {
  StartWithUsers();
  RespConn c(t_.port);
  EXPECT_EQ(c.Call({"GET", "x"}), "-NOAUTH Authentication required.\r\n");
  EXPECT_EQ(c.Call({"PING"}), "-NOAUTH Authentication required.\r\n");
  EXPECT_EQ(c.Call({"AUTH", "alice", "wrong"}), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ(c.Call({"AUTH", "nobody", "x"}), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ(c.Call({"HELLO", "3"}),
            "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
            "<user> <pass> option can be used to authenticate the client and select the RESP protocol version "
            "at the same time\r\n");
  EXPECT_EQ(c.Call({"HELLO", "3", "AUTH", "alice", "bad"}),
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ(c.Call({"AUTH", "alice", "wonderland"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  // RESET logs the client out again.
  EXPECT_EQ(c.Call({"RESET"}), "+RESET\r\n");
  EXPECT_EQ(c.Call({"GET", "x"}), "-NOAUTH Authentication required.\r\n");
  // AUTH <password> is the default user.
  EXPECT_EQ(c.Call({"AUTH", "defaultpw"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
}

TEST_F(RedisAuthTest, HelloAuthSetnameAndMd5Secrets) {
  StartWithUsers();
  RespConn c(t_.port);
  const std::string hello = c.Call({"HELLO", "3", "AUTH", "alice", "wonderland", "SETNAME", "checkout"});
  EXPECT_THAT(hello, StartsWith("%7\r\n"));
  EXPECT_EQ(c.Call({"CLIENT", "GETNAME"}), "$8\r\ncheckout\r\n");
  EXPECT_THAT(c.Call({"CLIENT", "INFO"}), HasSubstr("name=checkout"));
  RespConn m(t_.port);
  EXPECT_EQ(m.Call({"AUTH", "madhatter", "hatter"}), "+OK\r\n");
  auto cli = RunProgram({"redis-cli", "-p", std::to_string(t_.port), "--user", "alice", "--pass", "wonderland",
                         "--no-auth-warning", "ping"});
  EXPECT_EQ(cli.out, "PONG\n") << cli.err;
  auto bad = RunProgram({"redis-cli", "-p", std::to_string(t_.port), "--user", "alice", "--pass", "nope",
                         "--no-auth-warning", "ping"});
  EXPECT_THAT(bad.out + bad.err, HasSubstr("WRONGPASS"));
  // Pre-auth limits as Redis: a big unauthenticated request is a protocol error.
  RespConn big(t_.port);
  big.Send("*3\r\n$3\r\nSET\r\n$1\r\na\r\n$20000\r\n");
  auto [bytes, closed] = big.ReadToClose(3000);
  EXPECT_EQ(bytes, "-ERR Protocol error: unauthenticated bulk length\r\n");
  EXPECT_TRUE(closed);
}

TEST_F(RedisSessionTest, TrustRouteAcceptsAuthWithAUser) {
  Start();
  RespConn c(t_.port);
  EXPECT_EQ(c.Call({"AUTH", "anyone", "anything"}), "+OK\r\n");
  EXPECT_THAT(c.Call({"AUTH", "pw"}), StartsWith("-ERR AUTH <password> called without any password configured"));
}

TEST_F(RedisSessionTest, MultiExecDiscardWatch) {
  Start();
  RespConn c(t_.port);
  c.Call({"DEL", "rs:tx:n", "rs:tx:w"});
  EXPECT_EQ(c.Call({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"INCR", "rs:tx:n"}), "+QUEUED\r\n");
  EXPECT_EQ(c.Call({"INCR", "rs:tx:n"}), "+QUEUED\r\n");
  EXPECT_EQ(c.Call({"EXEC"}), "*2\r\n:1\r\n:2\r\n");
  EXPECT_EQ(c.Call({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"INCR", "rs:tx:n"}), "+QUEUED\r\n");
  EXPECT_EQ(c.Call({"DISCARD"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:tx:n"}), "$1\r\n2\r\n");
  // A command refused by turnout inside MULTI aborts the transaction, as Redis.
  EXPECT_EQ(c.Call({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"INCR", "rs:tx:n"}), "+QUEUED\r\n");
  EXPECT_THAT(c.Call({"NOSUCH"}), StartsWith("-ERR unknown command"));
  EXPECT_THAT(c.Call({"SUBSCRIBE", "x"}), StartsWith("-ERR turnout: subscribe inside MULTI"));
  EXPECT_EQ(c.Call({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:tx:n"}), "$1\r\n2\r\n");
  EXPECT_EQ(c.Call({"EXEC"}), "-ERR EXEC without MULTI\r\n");
  // WATCH: another client's write makes EXEC return a null array.
  EXPECT_EQ(c.Call({"WATCH", "rs:tx:w"}), "+OK\r\n");
  RespConn other(t_.port);
  EXPECT_EQ(other.Call({"SET", "rs:tx:w", "theirs"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"SET", "rs:tx:w", "mine"}), "+QUEUED\r\n");
  EXPECT_EQ(c.Call({"EXEC"}), "*-1\r\n");
  EXPECT_EQ(c.Call({"GET", "rs:tx:w"}), "$6\r\ntheirs\r\n");
  // Without interference it commits.
  EXPECT_EQ(c.Call({"WATCH", "rs:tx:w"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"MULTI"}), "+OK\r\n");
  EXPECT_EQ(c.Call({"SET", "rs:tx:w", "mine"}), "+QUEUED\r\n");
  EXPECT_EQ(c.Call({"EXEC"}), "*1\r\n+OK\r\n");
}

TEST_F(RedisSessionTest, SubscribeResp2) {
  Start();
  RespConn sub(t_.port);
  sub.Send(Cmd({"SUBSCRIBE", "rs:ch1", "rs:ch2"}) + Cmd({"PSUBSCRIBE", "rs:p*"}));
  auto conf = sub.Read(3);
  ASSERT_EQ(conf.size(), 3u);
  EXPECT_EQ(conf[0], "*3\r\n$9\r\nsubscribe\r\n$6\r\nrs:ch1\r\n:1\r\n");
  EXPECT_EQ(conf[1], "*3\r\n$9\r\nsubscribe\r\n$6\r\nrs:ch2\r\n:2\r\n");
  EXPECT_EQ(conf[2], "*3\r\n$10\r\npsubscribe\r\n$5\r\nrs:p*\r\n:3\r\n");
  RespConn pub(t_.port);
  EXPECT_EQ(pub.Call({"PUBLISH", "rs:ch1", "hello"}), ":1\r\n");
  EXPECT_EQ(sub.ReadOne(), "*3\r\n$7\r\nmessage\r\n$6\r\nrs:ch1\r\n$5\r\nhello\r\n");
  EXPECT_EQ(pub.Call({"PUBLISH", "rs:pq", "pat"}), ":1\r\n");
  EXPECT_EQ(sub.ReadOne(), "*4\r\n$8\r\npmessage\r\n$5\r\nrs:p*\r\n$5\r\nrs:pq\r\n$3\r\npat\r\n");
  // Only pub/sub commands, PING, QUIT and RESET in RESP2 subscribed mode.
  EXPECT_EQ(sub.Call({"GET", "x"}),
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed "
            "in this context\r\n");
  EXPECT_EQ(sub.Call({"CLIENT", "GETNAME"}),
            "-ERR Can't execute 'client|getname': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
            "are allowed in this context\r\n");
  EXPECT_EQ(sub.Call({"PING"}), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  // A local reply while the session waits for messages (turnout's barrier).
  EXPECT_THAT(sub.Call({"NOSUCH"}), StartsWith("-ERR unknown command"));
  sub.Send(Cmd({"UNSUBSCRIBE"}));
  auto un = sub.Read(2);
  ASSERT_EQ(un.size(), 2u);
  EXPECT_THAT(un[0], StartsWith("*3\r\n$11\r\nunsubscribe\r\n"));
  EXPECT_THAT(un[1], HasSubstr(":1\r\n"));
  EXPECT_EQ(sub.Call({"PUNSUBSCRIBE"}), "*3\r\n$12\r\npunsubscribe\r\n$5\r\nrs:p*\r\n:0\r\n");
  // Out of subscribed mode: ordinary commands again.
  EXPECT_EQ(sub.Call({"GET", "rs:none"}), "$-1\r\n");
  EXPECT_EQ(pub.Call({"PUBLISH", "rs:ch1", "nobody"}), ":0\r\n");
}

TEST_F(RedisSessionTest, SubscriberThatDisconnectsReleasesItsUpstreamConnection) {
  Start();
  auto upstream_named = [&] {
    RespConn direct(direct_port());
    return direct.Call({"CLIENT", "LIST"}).find("name=rs-gone-sub") != std::string::npos;
  };
  {
    RespConn sub(t_.port);
    EXPECT_EQ(sub.Call({"CLIENT", "SETNAME", "rs-gone-sub"}), "+OK\r\n");
    EXPECT_THAT(sub.Call({"SUBSCRIBE", "rs:gone"}), StartsWith("*3\r\n$9\r\nsubscribe"));
    EXPECT_TRUE(upstream_named());
  }
  // No message ever arrives on the channel: the session must still notice.
  bool gone = false;
  for (int i = 0; i < 40 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gone = !upstream_named();
  }
  EXPECT_TRUE(gone);
}

TEST_F(RedisSessionTest, SubscribeResp3PushesAndCommands) {
  Start();
  RespConn sub(t_.port);
  EXPECT_THAT(sub.Call({"HELLO", "3"}), StartsWith("%7"));
  EXPECT_EQ(sub.Call({"SUBSCRIBE", "rs:r3ch"}), ">3\r\n$9\r\nsubscribe\r\n$7\r\nrs:r3ch\r\n:1\r\n");
  RespConn pub(t_.port);
  EXPECT_EQ(pub.Call({"PUBLISH", "rs:r3ch", "m1"}), ":1\r\n");
  EXPECT_EQ(sub.ReadOne(), ">3\r\n$7\r\nmessage\r\n$7\r\nrs:r3ch\r\n$2\r\nm1\r\n");
  // RESP3 allows ordinary commands while subscribed; the push may come
  // before or after the reply, whichever the server sent first.
  sub.Send(Cmd({"SET", "rs:r3k", "v"}));
  EXPECT_EQ(pub.Call({"PUBLISH", "rs:r3ch", "m2"}), ":1\r\n");
  auto r = sub.Read(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_THAT(r, ::testing::UnorderedElementsAre("+OK\r\n", ">3\r\n$7\r\nmessage\r\n$7\r\nrs:r3ch\r\n$2\r\nm2\r\n"));
  EXPECT_EQ(sub.Call({"GET", "rs:r3k"}), "$1\r\nv\r\n");
  EXPECT_EQ(sub.Call({"CLIENT", "GETNAME"}), "_\r\n");
  EXPECT_EQ(sub.Call({"UNSUBSCRIBE"}), ">3\r\n$11\r\nunsubscribe\r\n$7\r\nrs:r3ch\r\n:0\r\n");
  EXPECT_EQ(sub.Call({"SSUBSCRIBE", "rs:shard"}), ">3\r\n$10\r\nssubscribe\r\n$8\r\nrs:shard\r\n:1\r\n");
  EXPECT_EQ(pub.Call({"SPUBLISH", "rs:shard", "s1"}), ":1\r\n");
  EXPECT_EQ(sub.ReadOne(), ">3\r\n$8\r\nsmessage\r\n$8\r\nrs:shard\r\n$2\r\ns1\r\n");
  EXPECT_EQ(sub.Call({"RESET"}), "+RESET\r\n");
  EXPECT_EQ(pub.Call({"SPUBLISH", "rs:shard", "s2"}), ":0\r\n");
}

TEST_F(RedisSessionTest, BlockingPopDoesNotBlockOtherClients) {
  Start();
  RespConn a(t_.port);
  a.Call({"DEL", "rs:blist"});
  a.Send(Cmd({"BLPOP", "rs:blist", "5"}));
  RespConn b(t_.port);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b.Call({"PING"}), "+PONG\r\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(b.Call({"RPUSH", "rs:blist", "item"}), ":1\r\n");
  EXPECT_EQ(a.ReadOne(), "*2\r\n$8\r\nrs:blist\r\n$4\r\nitem\r\n");
  // XREAD BLOCK and WAIT are blocking too.
  a.Send(Cmd({"XREAD", "BLOCK", "3000", "STREAMS", "rs:stream", "$"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_THAT(b.Call({"XADD", "rs:stream", "*", "f", "v"}), StartsWith("$"));
  EXPECT_THAT(a.ReadOne(), StartsWith("*1\r\n*2\r\n$9\r\nrs:stream\r\n"));
  EXPECT_EQ(a.Call({"WAIT", "0", "100"}), ":0\r\n");
}

TEST_F(RedisSessionTest, ProtocolErrorsGetRedisTextThenClose) {
  Start();
  struct Case {
    std::string input;
    std::string reply;
  };
  const std::vector<Case> cases = {
      {"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*1\r\n$99999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"*99999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*-x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"*1\r\n*1\r\n*1\r\n*1\r\n", "-ERR Protocol error: expected '$', got '*'\r\n"},
      {"SET \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
  };
  for (const auto& c : cases) {
    RespConn conn(t_.port);
    conn.Send(Cmd({"PING"}) + c.input);
    auto [bytes, closed] = conn.ReadToClose(3000);
    EXPECT_EQ(bytes, "+PONG\r\n" + c.reply) << c.input;
    EXPECT_TRUE(closed) << c.input;
    // The same bytes sent directly give the same answer.
    RespConn direct(direct_port());
    direct.Send(Cmd({"PING"}) + c.input);
    EXPECT_EQ(direct.ReadToClose(3000).first, bytes) << c.input;
  }
  // A truncated frame just waits; closing it disturbs nobody.
  {
    RespConn conn(t_.port);
    conn.Send("*2\r\n$3\r\nGET\r\n$10\r\nabc");
    EXPECT_EQ(conn.Drain(200), "");
  }
  // Binary garbage.
  {
    RespConn conn(t_.port);
    std::string garbage;
    std::mt19937 rng(7);
    for (int i = 0; i < 200000; ++i) garbage.push_back(static_cast<char>(rng()));
    garbage[0] = '*';
    conn.Send(garbage);
    auto [bytes, closed] = conn.ReadToClose(3000);
    EXPECT_THAT(bytes, StartsWith("-ERR Protocol error"));
    EXPECT_TRUE(closed);
  }
  RespConn after(t_.port);
  EXPECT_EQ(after.Call({"PING"}), "+PONG\r\n");
}

TEST_F(RedisSessionTest, LargeValuesStreamBothWays) {
  Start();
  RespConn c(t_.port);
  std::string value(3 * 1024 * 1024, 'v');
  for (std::size_t i = 0; i < value.size(); i += 4096) value[i] = static_cast<char>('a' + (i / 4096) % 26);
  EXPECT_EQ(c.Call({"SET", "rs:large", value}, 20000), "+OK\r\n");
  const std::string got = c.Call({"GET", "rs:large"}, 20000);
  EXPECT_EQ(got, "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n");
  EXPECT_EQ(c.Call({"STRLEN", "rs:large"}), ":3145728\r\n");
  // An oversized unknown command is refused without being forwarded.
  EXPECT_THAT(c.Call({"NOSUCH", value}, 20000), StartsWith("-ERR unknown command 'NOSUCH'"));
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  c.Call({"DEL", "rs:large"});  // the harness server is shared
}

TEST_F(RedisSessionTest, ClientThatNeverReadsIsBoundedAndAlone) {
  Start();
  RespConn setup(t_.port);
  EXPECT_EQ(setup.Call({"SET", "rs:fat", std::string(64 * 1024, 'f')}), "+OK\r\n");
  const long rss_before = t_.RssKiB();
  ASSERT_GT(rss_before, 0);
  // 20000 GETs of 64 KiB (1.3 GB of replies) from a client that never reads.
  RespConn greedy(t_.port);
  int flags = 0;
  (void)flags;
  std::string batch;
  for (int i = 0; i < 500; ++i) batch += Cmd({"GET", "rs:fat"});
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 40 && !stop; ++i) {
      // send() blocks once turnout stops reading: that is the point.
      ::send(greedy.fd(), batch.data(), batch.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // Others are served meanwhile.
  RespConn other(t_.port);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(other.Call({"PING"}), "+PONG\r\n");
  const long rss_after = t_.RssKiB();
  stop = true;
  writer.join();
  EXPECT_LT(rss_after - rss_before, 64 * 1024) << "RSS grew from " << rss_before << " to " << rss_after << " KiB";
  EXPECT_EQ(other.Call({"PING"}), "+PONG\r\n");
  other.Call({"DEL", "rs:fat"});
}

TEST_F(RedisSessionTest, DrainClosesIdleSessionsAndFinishesBusyOnes) {
  Start();
  RespConn idle(t_.port);
  EXPECT_EQ(idle.Call({"PING"}), "+PONG\r\n");
  RespConn busy(t_.port);
  busy.Call({"DEL", "rs:drain"});
  busy.Send(Cmd({"BLPOP", "rs:drain", "1"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  t_.process.Signal(SIGTERM);
  // The idle one is closed promptly.
  auto [idle_bytes, idle_closed] = idle.ReadToClose(2000);
  EXPECT_TRUE(idle_closed);
  EXPECT_EQ(idle_bytes, "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  // The busy one gets its reply (a timeout: null array), then is closed.
  auto [busy_bytes, busy_closed] = busy.ReadToClose(3000);
  EXPECT_EQ(busy_bytes, "*-1\r\n");
  EXPECT_TRUE(busy_closed);
  EXPECT_EQ(t_.process.Wait(5000), 0);
}

}  // namespace
}  // namespace turnout::testing
