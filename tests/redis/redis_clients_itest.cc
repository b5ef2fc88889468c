// Real Redis clients through turnout's protocol-aware session: redis-cli
// (commands, --pipe, RESP3), redis-benchmark, redis-py (Debian's 4.3),
// node-redis, each direct, under dual-write and under shadow; and TLS on
// both sides (client listener; a TLS-only redis-server started here with the
// harness' certificate).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/redis/redis_itest_support.h"
#include "tests/redis/redis_migration_fixture.h"
#include "tests/support/client_modes.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class RedisClientsTest : public ::testing::Test {
 protected:
  void Start(const RedisRouteOptions& options = {}) {
    t_.Start(options);
    ASSERT_FALSE(HasFatalFailure());
  }
  RunResult Cli(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(t_.port)};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, input, {}, 60000);
  }
  RedisTurnout t_;
};

// The client-library tests run once per ClientMode through a turnout with
// the route "redis" over the harness' old and new servers and its admin API:
// direct (no migration), dual-write (canary, read_percentage 0, dual_write
// old_authoritative sync) and shadow (shadow_writes on, scratch keys under a
// prefix of the test's own). The client's assertions are the same in every
// mode. Keys and channels carry a prefix per mode and process (the modes run
// in parallel on the same servers); redis-benchmark, whose key names are
// fixed, uses a database per mode. Under a migration the test ends by
// checking that the journal is empty and, under dual-write, that the keys
// it left behind are equal on both sides (every key, by value and TTL).
class RedisClientsModeTest : public RedisMigrationTest, public ::testing::WithParamInterface<ClientMode> {
 protected:
  static constexpr int kOtherDb = 2;  // RedisCliCommands' SELECT

  void SetUp() override {
    prefix_ = "cl:" + ModeName(GetParam()) + ":" + std::to_string(::getpid()) + ":";
    scratch_ = "turnout:shadow:" + prefix_;
    bench_db_ = 13 + static_cast<int>(GetParam() == ClientMode::kDualWrite) + 2 * static_cast<int>(GetParam() == ClientMode::kShadow);
    CleanUp();
    Start();
    ASSERT_FALSE(HasFatalFailure());
    Migrate(ModeStrategy(GetParam(), "", scratch_));
  }
  void TearDown() override {
    if (GetParam() != ClientMode::kDirect && !HasFatalFailure()) {
      EXPECT_EQ(Pending(), 0) << JournalText();
      if (IsDualWrite(GetParam())) {
        for (const auto& [db, pattern] : std::vector<std::pair<int, std::string>>{
                 {0, prefix_ + "*"}, {kOtherDb, prefix_ + "*"}}) {
          auto [same, report] = CompareDb(db, pattern);
          EXPECT_TRUE(same) << "db " << db << " " << pattern << ": " << report;
        }
        if (uses_bench_db_) {
          auto [same, report] = CompareDb(bench_db_, "*");
          EXPECT_TRUE(same) << "db " << bench_db_ << ": " << report;
        }
      }
    }
    CleanUp();
  }

  // Keys this test may leave on either server, in every database it uses.
  void CleanUp() {
    const auto& b = TestBackends::Get();
    for (int port : {b.redis_old_port, b.redis_new_port}) {
      for (int db : {0, kOtherDb}) {
        DeleteIn(port, db, prefix_ + "*");
        DeleteIn(port, db, scratch_ + "*");
      }
      // Only the benchmark test of this mode uses its database: another
      // test of the mode, running at the same time, must not empty it.
      if (uses_bench_db_) DeleteIn(port, bench_db_, "*");
    }
  }
  static void DeleteIn(int port, int db, const std::string& pattern) {
    const auto& b = TestBackends::Get();
    std::vector<std::string> base = {"redis-cli", "-p", std::to_string(port), "--user", b.redis_user, "--pass",
                                     b.redis_password, "--no-auth-warning", "-n", std::to_string(db)};
    auto argv = base;
    argv.insert(argv.end(), {"--scan", "--pattern", pattern});
    auto keys = RunProgram(argv);
    std::string input;
    std::istringstream in(keys.out);
    for (std::string k; std::getline(in, k);)
      if (!k.empty()) input += Cmd({"UNLINK", k});
    if (!input.empty()) {
      base.push_back("--pipe");
      RunProgram(base, input, {}, 60000);
    }
  }
  std::pair<bool, std::string> CompareDb(int db, const std::string& pattern) {
    const auto& b = TestBackends::Get();
    auto addr = [&](int port) {
      return b.redis_user + ":" + b.redis_password + "@" + std::to_string(port) + "/" + std::to_string(db);
    };
    auto r = RunProgram({"/usr/bin/python3", std::string(TURNOUT_SOURCE_DIR) + "/tests/redis/scripts/compare_keys.py",
                         addr(b.redis_old_port), addr(b.redis_new_port), pattern},
                        "", {}, 120000);
    return {r.exit_code == 0, r.out + r.err};
  }

  std::string K(const std::string& key) const { return prefix_ + key; }
  RunResult Cli(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, input, {}, 60000);
  }

  std::string prefix_, scratch_;
  int bench_db_ = 13;
  bool uses_bench_db_ = false;  // RedisBenchmarkRunsWithoutErrors
};

TEST_P(RedisClientsModeTest, RedisCliCommands) {
  EXPECT_EQ(Cli({"ping"}).out, "PONG\n");
  EXPECT_EQ(Cli({"set", K("cli:k"), "hello world"}).out, "OK\n");
  EXPECT_EQ(Cli({"get", K("cli:k")}).out, "hello world\n");
  EXPECT_EQ(Cli({"del", K("cli:l")}).exit_code, 0);
  EXPECT_EQ(Cli({"rpush", K("cli:l"), "a", "b", "c"}).out, "3\n");
  EXPECT_EQ(Cli({"lrange", K("cli:l"), "0", "-1"}).out, "a\nb\nc\n");
  EXPECT_THAT(Cli({"nosuchcommand"}).out, HasSubstr("ERR unknown command 'nosuchcommand'"));
  // Interactive-style input on stdin, one command per line.
  auto r = Cli({}, "select 2\nset " + K("cli:db2") + " x\nget " + K("cli:db2") + "\nselect 0\nget " + K("cli:db2") +
                       "\n");
  EXPECT_EQ(r.out, "OK\nOK\nx\nOK\n\n");
}

TEST_P(RedisClientsModeTest, RedisCliPipeTwentyThousand) {
  std::string input;
  for (int i = 0; i < 20000; ++i) {
    input += Cmd({"SET", K("cli:pipe:" + std::to_string(i)), std::to_string(i)});
  }
  auto r = Cli({"--pipe"}, input);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("errors: 0, replies: 20000"));
  EXPECT_EQ(Cli({"get", K("cli:pipe:19999")}).out, "19999\n");
}

TEST_P(RedisClientsModeTest, RedisCliResp3) {
  auto hello = Cli({"-3", "hello", "3"});
  EXPECT_THAT(hello.out, HasSubstr("proto"));
  Cli({"del", K("cli:h3")});
  Cli({"hset", K("cli:h3"), "f", "v"});
  // redis-cli shows a RESP3 map as "key => value".
  auto map = Cli({"-3", "--no-raw", "hgetall", K("cli:h3")});
  EXPECT_THAT(map.out, HasSubstr("\"f\" => \"v\"")) << map.out;
  auto dbl = Cli({"-3", "--no-raw", "zincrby", K("cli:z3"), "1.5", "m"});
  EXPECT_THAT(dbl.out, HasSubstr("(double)")) << dbl.out;
}

TEST_P(RedisClientsModeTest, RedisBenchmarkRunsWithoutErrors) {
  uses_bench_db_ = true;
  CleanUp();
  for (const char* pipeline : {"1", "16"}) {
    auto r = RunProgram({"redis-benchmark", "-p", std::to_string(port_), "-t", "get,set,incr,lpush,lrange_100", "-n",
                         "2000", "-c", "10", "-P", pipeline, "--dbnum", std::to_string(bench_db_), "--csv"},
                        "", {}, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("ERR")));
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("rror")));
    for (const char* test : {"\"SET\"", "\"GET\"", "\"INCR\"", "\"LPUSH\"", "\"LRANGE_100"})
      EXPECT_THAT(r.out, HasSubstr(test)) << r.out;
  }
}

TEST_P(RedisClientsModeTest, RedisPyPipelineTransactionPubSub) {
  auto r = RunProgram({"/usr/bin/python3", std::string(TURNOUT_SOURCE_DIR) + "/tests/redis/scripts/redis_py_client.py"},
                      "", {{"TURNOUT_PORT", std::to_string(port_)}, {"KEY_PREFIX", prefix_}}, 60000);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "OK\n");
}

TEST_P(RedisClientsModeTest, NodeRedisClient) {
  // node-redis from the npm registry, installed once into the build tree.
  // The modes run in parallel: copying and installing happen under one
  // lock, so no test runs node while another is still installing.
  const std::string dir = REDIS_NODE_DIR;
  std::filesystem::create_directories(dir);
  const std::string src = std::string(TURNOUT_SOURCE_DIR) + "/tests/node-redis";
  auto install = RunProgram(
      {"sh", "-c",
       "cd '" + dir + "' && flock .lock sh -c 'cp \"" + src + "/package.json\" \"" + src + "/package-lock.json\" \"" + src +
           "/redis_client_test.js\" . && { test -e node_modules/redis/package.json || npm ci --offline --no-audit "
           "--no-fund >/dev/null 2>&1 || npm ci --no-audit --no-fund; }'"},
      "", {}, 240000);
  ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
  auto r = RunProgram({"node", dir + "/redis_client_test.js", std::to_string(port_), prefix_}, "", {}, 60000);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "OK\n");
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisClientsModeTest,
                         ::testing::Values(ClientMode::kDirect, ClientMode::kDualWrite, ClientMode::kShadow),
                         [](const ::testing::TestParamInfo<ClientMode>& i) { return ModeName(i.param); });

// Quiet for longer than kReleaseIdlePagesAfter (proxy/idle_pages.h), a
// session's receive buffers lose their free pages; pipelines and values
// larger than the buffers are relayed as before (redis-py).
TEST_F(RedisClientsTest, ASessionQuietPastThePageReleaseGoesOnAsBefore) {
  Start();
  auto r = RunProgram({"/usr/bin/python3", "-c", R"PY(
import sys, time, redis
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), single_connection_client=True)
def round_trip(n, tag):
    big = bytes((97 + (i * 7) % 26) for i in range(n))
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set('idle:pages:%s:%d' % (tag, i), big if i % 50 == 0 else b'v%d' % i)
    for i in range(200):
        p.get('idle:pages:%s:%d' % (tag, i))
    got = p.execute()[200:]
    assert all(g == (big if i % 50 == 0 else b'v%d' % i) for i, g in enumerate(got)), tag
round_trip(300000, 'a')
time.sleep(6)
round_trip(300000, 'b')
round_trip(10, 'c')
r.delete(*[('idle:pages:%s:%d' % (t, i)) for t in 'abc' for i in range(200)])
print('ok')
)PY",
                           std::to_string(t_.port)},
                          "", {}, 60000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << t_.process.Log();
  EXPECT_EQ(r.out, "ok\n");
}

TEST_F(RedisClientsTest, TlsClientListener) {
  const auto& b = TestBackends::Get();
  RedisRouteOptions o;
  o.tls_cert = b.server_cert;
  o.tls_key = b.server_key;
  Start(o);
  auto tls = Cli({"--tls", "--cacert", b.ca_file, "ping"});
  EXPECT_EQ(tls.out, "PONG\n") << tls.err;
  auto tls3 = Cli({"--tls", "--cacert", b.ca_file, "-3", "hello", "3"});
  EXPECT_THAT(tls3.out, HasSubstr("proto"));
  // Not required: a plain client is still served on the same port.
  EXPECT_EQ(Cli({"ping"}).out, "PONG\n");
  std::string input;
  for (int i = 0; i < 5000; ++i) input += Cmd({"SET", "tls:pipe:" + std::to_string(i), "v"});
  auto pipe = Cli({"--tls", "--cacert", b.ca_file, "--pipe"}, input);
  EXPECT_THAT(pipe.out, HasSubstr("errors: 0, replies: 5000")) << pipe.err;
}

TEST_F(RedisClientsTest, TlsRequiredRefusesPlainClients) {
  const auto& b = TestBackends::Get();
  RedisRouteOptions o;
  o.tls_cert = b.server_cert;
  o.tls_key = b.server_key;
  o.tls_required = true;
  Start(o);
  EXPECT_EQ(Cli({"--tls", "--cacert", b.ca_file, "ping"}).out, "PONG\n");
  auto plain = Cli({"ping"});
  EXPECT_THAT(plain.out, Not(HasSubstr("PONG")));
}

// A redis-server with TLS only, the harness' certificate (127.0.0.1, localhost).
class TlsRedisServer {
 public:
  explicit TlsRedisServer(const std::string& dir) {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    server_.Start({"redis-server", "--port", "0", "--tls-port", std::to_string(port_), "--tls-cert-file",
                   b.server_cert, "--tls-key-file", b.server_key, "--tls-ca-cert-file", b.ca_file,
                   "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir, "--bind",
                   "127.0.0.1"},
                  dir + "/tls-redis.log");
    ready_ = WaitForPort(port_, 10000);
  }
  int port() const { return port_; }
  bool ready() const { return ready_; }

 private:
  ChildProcess server_;
  int port_ = 0;
  bool ready_ = false;
};

TEST_F(RedisClientsTest, TlsToTheBackendWithVerification) {
  const auto& b = TestBackends::Get();
  const std::string dir = t_.process.dir();
  TlsRedisServer server(dir);
  ASSERT_TRUE(server.ready());
  RedisRouteOptions o;
  o.backend_address = "127.0.0.1:" + std::to_string(server.port());
  o.backend_auth = false;
  o.backend_tls = "    tls:\n      mode: verify-full\n      ca_file: " + b.ca_file + "\n";
  Start(o);
  EXPECT_EQ(Cli({"ping"}).out, "PONG\n");
  EXPECT_EQ(Cli({"set", "tlsb:k", "over-tls"}).out, "OK\n");
  EXPECT_EQ(Cli({"get", "tlsb:k"}).out, "over-tls\n");
  std::string input;
  for (int i = 0; i < 5000; ++i) input += Cmd({"INCR", "tlsb:n"});
  auto pipe = Cli({"--pipe"}, input);
  EXPECT_THAT(pipe.out, HasSubstr("errors: 0, replies: 5000")) << pipe.err;
  // The value lives on the TLS server.
  auto direct = RunProgram({"redis-cli", "--tls", "--cacert", b.ca_file, "-p", std::to_string(server.port()), "get",
                            "tlsb:n"});
  EXPECT_EQ(direct.out, "5000\n") << direct.err;
}

TEST_F(RedisClientsTest, TlsToTheBackendRefusesAWrongName) {
  const auto& b = TestBackends::Get();
  TlsRedisServer server(t_.process.dir());
  ASSERT_TRUE(server.ready());
  RedisRouteOptions o;
  o.backend_address = "127.0.0.1:" + std::to_string(server.port());
  o.backend_auth = false;
  o.backend_tls = "    tls:\n      mode: verify-full\n      ca_file: " + b.ca_file +
                  "\n      server_name: not-this-host.example\n";
  Start(o);
  auto r = Cli({"ping"});
  EXPECT_THAT(r.out + r.err, HasSubstr("TLS handshake failed"));
  // A plain backend for a TLS-expecting route fails the same clear way.
  RedisRouteOptions plain;
  plain.backend_tls = "    tls:\n      mode: require\n";
  plain.limits = "  connect_timeout: 1s\n";
  RedisTurnout t2;
  t2.Start(plain);
  ASSERT_FALSE(HasFatalFailure());
  auto r2 = RunProgram({"redis-cli", "-p", std::to_string(t2.port), "ping"});
  EXPECT_THAT(r2.out + r2.err, HasSubstr("turnout: backend redis-old"));
}

}  // namespace
}  // namespace turnout::testing
