// The byte relay with real clients: psql and redis-cli through turnout to the
// harness backends, connection limits, unreachable backends, idle timeouts,
// large transfers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;

class RelayTest : public ::testing::Test {
 protected:
  void StartTurnout(const std::string& limits = "") {
    pg_port_ = FreePort();
    redis_port_ = FreePort();
    ASSERT_TRUE(turnout_.Start(RelayConfig(pg_port_, redis_port_, limits), {pg_port_, redis_port_}))
        << turnout_.Log();
  }

  RunResult Psql(const std::string& sql, int port = 0) {
    const auto& b = TestBackends::Get();
    const std::string url = "postgres://" + b.pg_user + "@127.0.0.1:" +
                            std::to_string(port ? port : pg_port_) + "/postgres?sslmode=disable";
    return RunProgram({"psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql}, "",
               {{"PGPASSWORD", b.pg_password}, {"PGCONNECT_TIMEOUT", "10"}});
  }

  RunResult RedisCli(const std::vector<std::string>& args, const std::string& input = "") {
    std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(redis_port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, input);
  }

  TurnoutProcess turnout_;
  int pg_port_ = 0;
  int redis_port_ = 0;
};

TEST_F(RelayTest, PsqlSelectOneThroughTurnout) {
  StartTurnout();
  auto r = Psql("select 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
}

TEST_F(RelayTest, PsqlSeesTheOldBackendsData) {
  StartTurnout();
  const auto& b = TestBackends::Get();
  // Written directly to the old cluster, read back through turnout.
  auto direct = RunProgram({"psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1",
                     b.PgConnString(b.pg_old_port),
                     "-c", "drop table if exists relay_probe; create table relay_probe(v text); "
                           "insert into relay_probe values ('through-the-relay')"});
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  auto r = Psql("select v from relay_probe");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "through-the-relay\n");
}

TEST_F(RelayTest, PsqlCopyRoundTripsManyRows) {
  StartTurnout();
  // 200k rows each way: more than any buffer, so backpressure is exercised.
  auto r = Psql("create temp table t(i int, s text); "
                "insert into t select g, repeat('x', 50) from generate_series(1,200000) g; "
                "copy (select count(*), sum(i), sum(length(s)) from t) to stdout");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("200000\t20000100000\t10000000"));
  auto big = Psql("select string_agg(md5(g::text), '') from generate_series(1, 200000) g");
  EXPECT_EQ(big.exit_code, 0) << big.err;
  EXPECT_EQ(big.out.size(), 200000u * 32 + 1);
}

TEST_F(RelayTest, RedisCliPingSetGet) {
  StartTurnout();
  EXPECT_EQ(RedisCli({"ping"}).out, "PONG\n");
  EXPECT_EQ(RedisCli({"set", "relay:key", "value-1"}).out, "OK\n");
  EXPECT_EQ(RedisCli({"get", "relay:key"}).out, "value-1\n");
  // And the value really lives on the old server.
  const auto& b = TestBackends::Get();
  auto direct = RunProgram({"redis-cli", "-p", std::to_string(b.redis_old_port), "get", "relay:key"});
  EXPECT_EQ(direct.out, "value-1\n");
}

TEST_F(RelayTest, RedisCliPipeMode) {
  StartTurnout();
  std::string input;
  for (int i = 0; i < 5000; ++i) input += "SET pipe:" + std::to_string(i) + " " + std::to_string(i) + "\r\n";
  auto r = RedisCli({"--pipe"}, input);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("errors: 0, replies: 5000"));
  EXPECT_EQ(RedisCli({"get", "pipe:4999"}).out, "4999\n");
}

TEST_F(RelayTest, RefusesPastMaxConnectionsWithTheServersMessage) {
  StartTurnout("  max_connections: 2\n");
  // The readiness probe's connections must be gone before the slots are counted.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Two idle redis connections hold the two slots.
  auto open_client = [](int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  };
  int a = open_client(redis_port_);
  int b = open_client(redis_port_);
  // Let turnout account for both before the third arrives.
  ASSERT_EQ(::write(a, "PING\r\n", 6), 6);
  ASSERT_EQ(::write(b, "PING\r\n", 6), 6);
  char buf[64];
  ASSERT_EQ(::read(a, buf, sizeof buf), 7);
  ASSERT_EQ(std::string(buf, 7), "+PONG\r\n");
  ASSERT_EQ(::read(b, buf, sizeof buf), 7);
  ASSERT_EQ(std::string(buf, 7), "+PONG\r\n");
  auto third = RedisCli({"ping"});
  EXPECT_THAT(third.out + third.err, HasSubstr("max number of clients reached")) << turnout_.Log();
  // Postgres routes have their own limit and libpq shows the server's text.
  auto pg = Psql("select 1");
  EXPECT_EQ(pg.exit_code, 0) << pg.err;  // the pg route has its own two slots
  ::close(a);
  ::close(b);
  // Slots are released when clients leave.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(RedisCli({"ping"}).out, "PONG\n");
}

TEST_F(RelayTest, PostgresClientsPastTheLimitSeeTooManyClients) {
  StartTurnout("  max_connections: 1\n");
  const auto& b = TestBackends::Get();
  // One psql holds the only slot for two seconds.
  std::thread holder([&] { Psql("select pg_sleep(2)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto r = Psql("select 1");
  holder.join();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("sorry, too many clients already"));
  (void)b;
}

TEST_F(RelayTest, UnreachableBackendGivesAClearError) {
  const int dead_port = FreePort();  // nothing listens here
  pg_port_ = FreePort();
  redis_port_ = FreePort();
  std::string yaml = RelayConfig(pg_port_, redis_port_, "  connect_timeout: 2s\n");
  const auto& b = TestBackends::Get();
  for (int port : {b.pg_old_port, b.redis_old_port}) {
    const std::string from = "127.0.0.1:" + std::to_string(port);
    yaml.replace(yaml.find(from), from.size(), "127.0.0.1:" + std::to_string(dead_port));
  }
  ASSERT_TRUE(turnout_.Start(yaml, {pg_port_, redis_port_})) << turnout_.Log();
  auto r = Psql("select 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("turnout: backend pg-old unreachable"));
  auto rc = RedisCli({"ping"});
  EXPECT_THAT(rc.out + rc.err, HasSubstr("turnout: backend redis-old unreachable"));
  // turnout itself keeps running.
  EXPECT_TRUE(turnout_.running());
}

TEST_F(RelayTest, IdleTimeoutClosesQuietSessions) {
  StartTurnout("  idle_timeout: 300ms\n");
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(redis_port_));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::write(fd, "PING\r\n", 6), 6);
  char buf[64];
  ASSERT_EQ(::read(fd, buf, sizeof buf), 7);  // +PONG\r\n
  // Quiet for longer than the timeout: turnout closes, read sees EOF.
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(::read(fd, buf, sizeof buf), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ::close(fd);
  EXPECT_THAT(turnout_.Log(), HasSubstr("idle timeout"));
}

TEST_F(RelayTest, ClientVanishingMidQueryDoesNotDisturbOthers) {
  StartTurnout();
  // A client that sends half a startup packet and disappears.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(pg_port_));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::write(fd, "\x00\x00\x01\x00garbage", 11), 11);
  ::close(fd);
  auto r = Psql("select 42");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "42\n");
}

}  // namespace
}  // namespace turnout::testing
