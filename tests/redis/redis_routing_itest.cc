// The routing engine in the Redis session (issue 5, DESIGN.md §2 and §4),
// end to end: turnout with a protocol-mode Redis route over the harness'
// old and new redis-servers, migrations driven through the admin API with
// curl, traffic from real clients (redis-cli, redis-benchmark, redis-py).
// Every test writes keys under its own prefix and deletes them afterwards
// (tests run in parallel processes against shared servers).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/redis/redis_itest_support.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

constexpr char kAdminToken[] = "rr-admin-token-0123456789abcdef";

std::string Script(const std::string& name) {
  return std::string(TURNOUT_SOURCE_DIR) + "/tests/redis/scripts/" + name;
}

// "user:password@port" for the harness servers (compare_keys.py addresses).
std::string HarnessAddr(int port) {
  const auto& b = TestBackends::Get();
  return b.redis_user + ":" + b.redis_password + "@" + std::to_string(port);
}

// A direct connection to a harness server, logged in as its ACL user.
class Direct {
 public:
  explicit Direct(int port, bool auth = true) : c_(port), port_(port) {
    if (auth) {
      const auto& b = TestBackends::Get();
      EXPECT_EQ(c_.Call({"AUTH", b.redis_user, b.redis_password}), "+OK\r\n");
    }
  }
  std::string Call(std::initializer_list<std::string_view> args) { return c_.Call(args); }
  RespConn& conn() { return c_; }

  // Deletes every key matching `pattern` (SCAN + UNLINK; never FLUSHALL).
  void DeletePattern(const std::string& pattern) {
    const auto& b = TestBackends::Get();
    auto r = RunProgram({"redis-cli", "-p", std::to_string(port_), "--user", b.redis_user, "--pass",
                         b.redis_password, "--no-auth-warning", "--scan", "--pattern", pattern});
    std::istringstream in(r.out);
    std::string key;
    std::string batch;
    std::size_t n = 0;
    while (std::getline(in, key)) {
      if (key.empty()) continue;
      batch += Cmd({"UNLINK", key});
      ++n;
    }
    if (n == 0) return;
    c_.Send(batch);
    c_.Read(n, 20000);
  }

 private:
  RespConn c_;
  int port_;
};

struct RoutingOptions {
  std::string strategy_json;   // routes[].strategy (static); empty: none
  std::string new_address;     // default: the harness' new server
  bool new_auth = true;        // new backend logs in as the harness user
  std::string old_address;     // default: the harness' old server (logged in)
  std::string route_extra;     // YAML lines under the route
  int workers = 2;
};

class RedisRoutingTest : public ::testing::Test {
 protected:
  using Options = RoutingOptions;

  void Start(const Options& o = {}) {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    admin_port_ = FreePort();
    std::ostringstream y;
    y << "instance_id: rr-test\nworkers: " << o.workers << "\nlog_level: info\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port_ << "\n  tokens_file: tokens\n"
      << "state_store:\n  path: state.json\n"
      << "journal:\n  path: journal.log\n"
      << "backends:\n"
      << "  - name: redis-old\n    protocol: redis\n    address: "
      << (o.old_address.empty() ? "127.0.0.1:" + std::to_string(b.redis_old_port) : o.old_address) << "\n";
    if (o.old_address.empty()) y << "    user: " << b.redis_user << "\n    password: " << b.redis_password << "\n";
    y
      << "  - name: redis-new\n    protocol: redis\n    address: "
      << (o.new_address.empty() ? "127.0.0.1:" + std::to_string(b.redis_new_port) : o.new_address) << "\n";
    if (o.new_auth) y << "    user: " << b.redis_user << "\n    password: " << b.redis_password << "\n";
    y << "routes:\n"
      << "  - name: redis\n    protocol: redis\n    mode: protocol\n    listen: 127.0.0.1:" << port_ << "\n"
      << "    old: redis-old\n    new: redis-new\n";
    if (!o.strategy_json.empty()) y << "    strategy: " << o.strategy_json << "\n";
    y << o.route_extra;
    std::filesystem::create_directories(turnout_.dir());
    std::ofstream(turnout_.dir() + "/tokens") << kAdminToken << " admin ops\n";
    ASSERT_TRUE(turnout_.Start(y.str(), {port_, admin_port_})) << turnout_.Log();
  }

  // Creates a migration with `strategy` (attached to the route, Ready:
  // the strategy routes at once).
  void CreateMigration(const std::string& id, const std::string& strategy) {
    auto r = admin_.Post("/api/v1/migrations", R"({"id":")" + id + R"(","strategy":)" + strategy + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }
  void PatchStrategy(const std::string& id, const std::string& strategy) {
    auto r = admin_.Patch("/api/v1/migrations/" + id, R"({"strategy":)" + strategy + "}");
    ASSERT_EQ(r.status, 200) << r.body;
  }

  // A counter of /metrics, by its full series text ("name{labels}").
  double Metric(const std::string& series) const { return admin_.Metric(series); }

  json::value Journal(const std::string& id) {
    auto r = admin_.Get("/api/v1/migrations/" + id + "/journal");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json.is_object() ? r.json.at("data") : json::value();
  }

  // Async secondaries settle a little after the clients: polls Compare
  // (up to 20 s on a loaded machine) until both sides are equal.
  std::pair<bool, std::string> EventuallyEqual(const std::string& pattern) {
    auto r = Compare(pattern);
    for (int i = 0; i < 40 && !r.first; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      r = Compare(pattern);
    }
    return r;
  }

  // Both sides equal under `pattern` (compare_keys.py); returns its report.
  std::pair<bool, std::string> Compare(const std::string& pattern, const std::string& new_addr = "") {
    const auto& b = TestBackends::Get();
    auto r = RunProgram({"/usr/bin/python3", Script("compare_keys.py"), HarnessAddr(b.redis_old_port),
                         new_addr.empty() ? HarnessAddr(b.redis_new_port) : new_addr, pattern},
                        "", {}, 120000);
    return {r.exit_code == 0, r.out + r.err};
  }

  RunResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, "", {}, 60000);
  }

  void Cleanup(const std::string& pattern) {
    const auto& b = TestBackends::Get();
    Direct(b.redis_old_port).DeletePattern(pattern);
    Direct(b.redis_new_port).DeletePattern(pattern);
  }

  TurnoutProcess turnout_;
  int port_ = 0;
  int admin_port_ = 0;
  AdminClient admin_{0, kAdminToken};

  void SetUp() override {}
  void StartWithAdmin(const Options& o = {}) {
    Start(o);
    admin_ = AdminClient(admin_port_, kAdminToken);
  }
};

// Reads `keys` through turnout in one pipeline and counts replies "new".
int CountFromNew(int port, const std::vector<std::string>& keys) {
  RespConn c(port);
  std::string batch;
  for (const auto& k : keys) batch += Cmd({"GET", k});
  c.Send(batch);
  auto replies = c.Read(keys.size(), 30000);
  EXPECT_EQ(replies.size(), keys.size());
  int n = 0;
  for (const auto& r : replies) {
    if (r == "$3\r\nnew\r\n") {
      ++n;
    } else {
      EXPECT_EQ(r, "$3\r\nold\r\n");
    }
  }
  return n;
}

TEST_F(RedisRoutingTest, CanaryReadShareFollowsThePercentageStickyByKey) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = "rr:canary:" + std::to_string(::getpid()) + ":";
  std::vector<std::string> keys;
  std::string seed_old, seed_new;
  for (int i = 0; i < 2000; ++i) {
    keys.push_back(prefix + std::to_string(i));
    seed_old += Cmd({"SET", keys.back(), "old"});
    seed_new += Cmd({"SET", keys.back(), "new"});
  }
  Direct old_side(b.redis_old_port), new_side(b.redis_new_port);
  old_side.conn().Send(seed_old);
  ASSERT_EQ(old_side.conn().Read(keys.size(), 30000).size(), keys.size());
  new_side.conn().Send(seed_new);
  ASSERT_EQ(new_side.conn().Read(keys.size(), 30000).size(), keys.size());

  auto canary = [](double p) {
    return R"({"type":"canary","read_percentage":)" + std::to_string(p) +
           R"(,"stickiness":"key","write_mode":{"mode":"old_only"}})";
  };
  CreateMigration("rr_canary", canary(0.0));
  EXPECT_EQ(CountFromNew(port_, keys), 0);
  PatchStrategy("rr_canary", canary(0.3));
  const int at30 = CountFromNew(port_, keys);
  EXPECT_NEAR(at30 / 2000.0, 0.30, 0.04) << at30;
  // Sticky: the same keys again, on another connection, give the same share.
  EXPECT_EQ(CountFromNew(port_, keys), at30);
  PatchStrategy("rr_canary", canary(1.0));
  EXPECT_EQ(CountFromNew(port_, keys), 2000);
  // Metrics: reads answered by both sides were counted.
  EXPECT_GT(Metric(R"(turnout_requests_total{backend="new",class="read",route="redis"})"), 2000);
  Cleanup(prefix + "*");
}

// redis-benchmark write workloads with our own key prefix (each run one
// command; -r spreads __rand_int__ over 1000 keys).
void RunBenchmarkWrites(int port, const std::string& prefix, int requests) {
  const std::vector<std::vector<std::string>> commands = {
      {"SET", prefix + "str:__rand_int__", "__rand_int__"},
      {"INCR", prefix + "ctr:__rand_int__"},
      {"LPUSH", prefix + "list:__rand_int__", "__rand_int__"},
      {"SADD", prefix + "set:__rand_int__", "__rand_int__"},
      {"HSET", prefix + "hash:__rand_int__", "f__rand_int__", "__rand_int__"},
  };
  for (const auto& c : commands) {
    std::vector<std::string> argv = {"redis-benchmark", "-p", std::to_string(port), "-n", std::to_string(requests),
                                     "-c", "20", "-r", "1000", "-P", "4", "-q"};
    argv.insert(argv.end(), c.begin(), c.end());
    auto r = RunProgram(argv, "", {}, 180000);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    // redis-benchmark stops at the first error reply and prints it.
    EXPECT_THAT(r.out + r.err, ::testing::Not(HasSubstr("Error"))) << c[0];
    EXPECT_THAT(r.out + r.err, ::testing::Not(HasSubstr("ERR"))) << c[0];
  }
}

// Non-deterministic writes through redis-cli: applied on old, their keys
// copied to new.
void RunNonDeterministicWrites(RedisRoutingTest* t, int port, const std::string& prefix) {
  (void)t;
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunProgram(argv, "", {}, 60000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("ERR"))) << args[0] << ": " << r.out;
    return r.out;
  };
  std::string many;
  for (int i = 0; i < 200; ++i) many += "SADD " + prefix + "pool " + std::to_string(i) + "\n";
  {
    std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port)};
    auto r = RunProgram(argv, many, {}, 60000);
    EXPECT_EQ(r.exit_code, 0);
  }
  for (int i = 0; i < 20; ++i) cli({"SPOP", prefix + "pool", "3"});
  cli({"SPOP", prefix + "pool"});
  for (int i = 0; i < 10; ++i) cli({"INCRBYFLOAT", prefix + "float", "0.1"});
  cli({"HINCRBYFLOAT", prefix + "hf", "field", "2.5"});
  cli({"XADD", prefix + "stream", "*", "a", "1"});
  cli({"XADD", prefix + "stream", "*", "b", "2"});
  cli({"EVAL", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", "2", prefix + "ev1",
       prefix + "ev2", "scripted"});
  cli({"RPUSH", prefix + "q", "a", "b", "c"});
  cli({"BLPOP", prefix + "q", "1"});
  cli({"LMOVE", prefix + "q", prefix + "q2", "LEFT", "RIGHT"});
  cli({"SET", prefix + "ttl", "v", "EX", "1000"});
  cli({"SPOP", prefix + "missing"});  // nothing there: DUMP nil, DEL on new
}

TEST_F(RedisRoutingTest, SyncDualWriteUnderRedisBenchmarkLeavesBothSidesEqual) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = "rr:dws:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  CreateMigration("rr_dws", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})");
  RunBenchmarkWrites(port_, prefix, 20000);
  RunNonDeterministicWrites(this, port_, prefix);
  // A transaction (redis-py MULTI/EXEC pipeline) with a non-deterministic
  // write inside, and a WATCH that aborts (nothing may reach new).
  {
    auto r = RunProgram({"/usr/bin/python3", "-c", R"(
import redis, sys
p, k = int(sys.argv[1]), sys.argv[2]
r = redis.Redis(port=p)
r.sadd(k + "txset", *range(50))
pipe = r.pipeline(transaction=True)
pipe.incr(k + "txc").spop(k + "txset").lpush(k + "txl", "x").get(k + "txc")
res = pipe.execute()
assert res[0] == 1 and res[3] == b"1", res
w = r.pipeline(transaction=True)
w.watch(k + "watched")
r2 = redis.Redis(port=p)
r2.set(k + "watched", "other")
w.multi()
w.set(k + "watched", "mine")
w.set(k + "aborted", "1")
try:
    w.execute()
    sys.exit("WATCH did not abort")
except redis.WatchError:
    pass
print("OK")
)",
                         std::to_string(port_), prefix},
                        "", {}, 60000);
    EXPECT_EQ(r.out, "OK\n") << r.err;
  }
  auto [equal, report] = Compare(prefix + "*");
  EXPECT_TRUE(equal) << report;
  EXPECT_THAT(report, HasSubstr("\"count\": 0"));
  const auto j = Journal("rr_dws");
  EXPECT_EQ(j.at("pending").as_int64(), 0) << json::serialize(j);
  EXPECT_GE(Metric(R"(turnout_dualwrite_total{result="applied",route="redis"})"), 5 * 20000);
  EXPECT_EQ(Metric(R"(turnout_dualwrite_total{result="failed",route="redis"})"), 0);
  // Secondary latency was recorded for the new side.
  EXPECT_GT(Metric(R"(turnout_requests_total{backend="new",class="write",route="redis"})"), 5 * 20000 - 1);
  Cleanup(prefix + "*");
}

TEST_F(RedisRoutingTest, AsyncDualWriteLeavesBothSidesEqualAndReadsYourWrites) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = "rr:dwa:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  // Every read goes to new; writes are applied on old, then on new from the
  // queue: a read right after a write must still see it (fence).
  CreateMigration("rr_dwa", R"({"type":"canary","read_percentage":1.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})");
  RunBenchmarkWrites(port_, prefix, 20000);
  RunNonDeterministicWrites(this, port_, prefix);
  {
    RespConn c(port_);
    std::string batch;
    for (int i = 0; i < 3000; ++i) {
      batch += Cmd({"SET", prefix + "ryw:" + std::to_string(i % 100), std::to_string(i)});
      batch += Cmd({"GET", prefix + "ryw:" + std::to_string(i % 100)});
    }
    c.Send(batch);
    auto replies = c.Read(6000, 30000);
    ASSERT_EQ(replies.size(), 6000u);
    int misses = 0;
    for (int i = 0; i < 3000; ++i) {
      const std::string v = std::to_string(i);
      if (replies[2 * i + 1] != "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n") ++misses;
    }
    EXPECT_EQ(misses, 0);
  }
  auto [equal, report] = EventuallyEqual(prefix + "*");
  EXPECT_TRUE(equal) << report;
  const auto j = Journal("rr_dwa");
  EXPECT_EQ(j.at("pending").as_int64(), 0) << json::serialize(j);
  EXPECT_GE(Metric(R"(turnout_dualwrite_total{result="applied",route="redis"})"), 5 * 20000);
  Cleanup(prefix + "*");
}

TEST_F(RedisRoutingTest, DivergentReplyIsJournaledAndRepairMakesBothSidesEqual) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = "rr:div:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  CreateMigration("rr_div", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})");
  // Planted: new already holds a different counter and a string where old
  // has nothing.
  Direct new_side(b.redis_new_port);
  EXPECT_EQ(new_side.Call({"SET", prefix + "ctr", "100"}), "+OK\r\n");
  EXPECT_EQ(new_side.Call({"SET", prefix + "list", "not a list"}), "+OK\r\n");
  RespConn c(port_);
  EXPECT_EQ(c.Call({"INCR", prefix + "ctr"}), ":1\r\n");            // new says 101: diverged
  EXPECT_EQ(c.Call({"LPUSH", prefix + "list", "a"}), ":1\r\n");     // new says WRONGTYPE: failed
  EXPECT_EQ(c.Call({"SET", prefix + "fine", "x"}), "+OK\r\n");
  auto j = Journal("rr_div");
  ASSERT_EQ(j.at("pending").as_int64(), 2) << json::serialize(j);
  const auto& e0 = j.at("entries").as_array()[0];
  EXPECT_EQ(e0.at("kind").as_string(), "diverged");
  EXPECT_EQ(e0.at("route").as_string(), "redis");
  EXPECT_EQ(e0.at("backend").as_string(), "redis-new");
  EXPECT_EQ(e0.at("statement").as_string(), "INCR " + prefix + "ctr");
  EXPECT_EQ(e0.at("targets").as_array()[0].as_string(), prefix + "ctr");
  EXPECT_EQ(e0.at("primary").as_string(), "(integer) 1");
  EXPECT_EQ(e0.at("secondary").as_string(), "(integer) 101");
  EXPECT_GT(e0.at("session").as_int64(), 0);
  const auto& e1 = j.at("entries").as_array()[1];
  EXPECT_EQ(e1.at("kind").as_string(), "failed");
  EXPECT_THAT(std::string(e1.at("secondary").as_string()), HasSubstr("WRONGTYPE"));
  EXPECT_EQ(Metric(R"(turnout_dualwrite_total{result="failed",route="redis"})"), 1);
  EXPECT_EQ(Metric(R"(turnout_dualwrite_total{result="diverged",route="redis"})"), 1);
  // The repair compares and copies every key of the migration's scope; the
  // harness' Redis is shared with the tests running beside this one.
  ASSERT_EQ(admin_.Post("/api/v1/migrations/rr_div/api/keys", R"({"keys":[")" + prefix + R"(*"]})").status, 200);
  auto repair = admin_.Post("/api/v1/migrations/rr_div/repair");
  ASSERT_EQ(repair.status, 200) << repair.body;
  EXPECT_EQ(Journal("rr_div").at("pending").as_int64(), 0);
  auto [equal, report] = Compare(prefix + "*");
  EXPECT_TRUE(equal) << report;
  Cleanup(prefix + "*");
}

TEST_F(RedisRoutingTest, PolicyChangesUnderLoadFailNoRequest) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = "rr:patch:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  auto canary = [](double p, const char* apply, const char* authority = "old_authoritative") {
    return R"({"type":"canary","read_percentage":)" + std::to_string(p) +
           R"(,"write_mode":{"mode":"dual_write","policy":")" + authority + R"(","apply":")" + apply + R"("}})";
  };
  CreateMigration("rr_patch", canary(0.1, "sync"));
  // A checked redis-py workload (pipelines, MULTI/EXEC, read-back of every
  // write) and redis-benchmark (which stops at the first error reply) run while the policy
  // changes every 100 ms.
  auto load = std::async(std::launch::async, [&] {
    return RunProgram({"/usr/bin/python3", Script("routing_load.py"), std::to_string(port_), prefix + "py:", "6", "4"},
                      "", {}, 120000);
  });
  auto bench = std::async(std::launch::async, [&] {
    return RunProgram({"redis-benchmark", "-p", std::to_string(port_), "-n", "60000", "-c", "10", "-r", "1000", "-P",
                       "8", "-q", "SET", prefix + "b:__rand_int__", "__rand_int__"},
                      "", {}, 120000);
  });
  // At least 20 changes, 100 ms apart, for at least 5 s: on a loaded
  // machine a PATCH takes longer, and the count, not the pace, is the point.
  int patches = 0, during_load = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (patches < 20 || std::chrono::steady_clock::now() < until) {
    const double p = 0.1 + 0.1 * (patches % 9);
    // Read share, sync/async, and every third change the authoritative side.
    PatchStrategy("rr_patch", canary(p, patches % 2 ? "async" : "sync",
                                     (patches / 3) % 2 ? "new_authoritative" : "old_authoritative"));
    ++patches;
    if (load.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ++during_load;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto l = load.get();
  auto br = bench.get();
  EXPECT_GE(patches, 20);
  EXPECT_GE(during_load, 5) << "the policy changed while the checked workload ran";
  ASSERT_EQ(l.exit_code, 0) << l.err;
  auto report = json::parse(l.out);
  EXPECT_EQ(report.at("errors").as_int64(), 0) << l.out;
  EXPECT_GT(report.at("ops").as_int64(), 1000) << l.out;
  EXPECT_EQ(br.exit_code, 0) << br.err;
  EXPECT_THAT(br.out + br.err, ::testing::Not(HasSubstr("Error"))) << br.out;
  EXPECT_THAT(br.out + br.err, ::testing::Not(HasSubstr("ERR"))) << br.out;
  auto [equal, cmp] = EventuallyEqual(prefix + "*");
  EXPECT_TRUE(equal) << cmp;
  EXPECT_EQ(Journal("rr_patch").at("pending").as_int64(), 0);
  Cleanup(prefix + "*");
}

TEST_F(RedisRoutingTest, ShadowDetectsAPlantedDifferenceOnNew) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = "rr:shadow:" + std::to_string(::getpid()) + ":";
  const std::string scratch = "rrscratch:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  Cleanup(scratch + "*");
  Direct old_side(b.redis_old_port), new_side(b.redis_new_port);
  for (Direct* d : {&old_side, &new_side}) {
    EXPECT_EQ(d->Call({"SET", prefix + "same", "v"}), "+OK\r\n");
    EXPECT_EQ(d->Call({"SADD", prefix + "set", "a", "b", "c", "d"}), ":4\r\n");
  }
  EXPECT_EQ(old_side.Call({"SET", prefix + "planted", "old value"}), "+OK\r\n");
  EXPECT_EQ(new_side.Call({"SET", prefix + "planted", "new value"}), "+OK\r\n");
  CreateMigration("rr_shadow", R"({"type":"shadow_traffic","shadow_writes":true,"scratch_key_prefix":")" + scratch +
                                   R"("})");
  const double mismatches_before = Metric(R"(turnout_shadow_mismatches_total{kind="value",route="redis"})");
  RespConn c(port_);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(c.Call({"GET", prefix + "same"}), "$1\r\nv\r\n");
    // Sets compare as sets: SMEMBERS order differs between servers freely.
    EXPECT_THAT(c.Call({"SMEMBERS", prefix + "set"}), ::testing::StartsWith("*4\r\n"));
  }
  // Replies always come from old.
  EXPECT_EQ(c.Call({"GET", prefix + "planted"}), "$9\r\nold value\r\n");
  // A shadow write lands under the scratch prefix on new only.
  EXPECT_EQ(c.Call({"SET", prefix + "w", "written"}), "+OK\r\n");
  json::value mismatches;
  for (int i = 0; i < 50; ++i) {
    auto r = admin_.Get("/api/v1/migrations/rr_shadow/shadow");
    ASSERT_EQ(r.status, 200) << r.body;
    mismatches = r.json.at("data").at("mismatches");
    if (!mismatches.as_array().empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(mismatches.as_array().size(), 1u) << json::serialize(mismatches);
  const auto& m = mismatches.as_array()[0];
  EXPECT_EQ(m.at("kind").as_string(), "value");
  EXPECT_EQ(m.at("request").as_string(), "GET " + prefix + "planted");
  EXPECT_EQ(m.at("primary").as_string(), "\"old value\"");
  EXPECT_EQ(m.at("secondary").as_string(), "\"new value\"");
  EXPECT_EQ(Metric(R"(turnout_shadow_mismatches_total{kind="value",route="redis"})"), mismatches_before + 1);
  EXPECT_GE(Metric(R"(turnout_shadow_comparisons_total{result="match",route="redis"})"), 40);
  EXPECT_EQ(new_side.Call({"GET", prefix + "w"}), "$-1\r\n");
  EXPECT_EQ(new_side.Call({"GET", scratch + prefix + "w"}), "$7\r\nwritten\r\n");
  EXPECT_EQ(old_side.Call({"GET", prefix + "w"}), "$7\r\nwritten\r\n");
  Cleanup(prefix + "*");
  Cleanup(scratch + "*");
}

// A redis-server of this test's own for "new", so it can be killed.
class OwnRedis {
 public:
  OwnRedis() : port_(FreePort()) {
    dir_ = std::filesystem::temp_directory_path() / ("rr-own-" + std::to_string(::getpid()) + "-" + std::to_string(port_));
    std::filesystem::create_directories(dir_);
  }
  ~OwnRedis() {
    Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // AOF with fsync always: a write it acknowledged survives kill -9.
  bool Start() {
    child_ = std::make_unique<ChildProcess>();
    child_->Start({"redis-server", "--bind", "127.0.0.1", "--port", std::to_string(port_), "--save", "",
                   "--appendonly", "yes", "--appendfsync", "always", "--dir", dir_.string()},
                  (dir_ / "redis.log").string());
    return WaitForPort(port_, 10000);
  }
  void Signal(int signo) {
    if (child_) child_->Signal(signo);
  }
  void Kill() {
    if (child_ && child_->running()) {
      child_->Signal(SIGKILL);
      child_->Wait(10000);
    }
    child_.reset();
  }
  int port() const { return port_; }

 private:
  int port_;
  std::filesystem::path dir_;
  std::unique_ptr<ChildProcess> child_;
};

TEST_F(RedisRoutingTest, NewBackendStoppedMidDualWriteIsJournaledAndRepaired) {
  OwnRedis own;
  ASSERT_TRUE(own.Start());
  Options o;
  o.new_address = "127.0.0.1:" + std::to_string(own.port());
  o.new_auth = false;
  StartWithAdmin(o);
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = "rr:down:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  CreateMigration("rr_down", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})");
  auto load = std::async(std::launch::async, [&] {
    return RunProgram({"/usr/bin/python3", Script("routing_load.py"), std::to_string(port_), prefix, "6", "4"}, "", {},
                      120000);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  own.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(own.Start());
  auto l = load.get();
  ASSERT_EQ(l.exit_code, 0) << l.err;
  auto report = json::parse(l.out);
  // The authoritative old side kept serving: no client saw an error.
  EXPECT_EQ(report.at("errors").as_int64(), 0) << l.out;
  auto j = Journal("rr_down");
  EXPECT_GT(j.at("pending").as_int64(), 0) << json::serialize(j);
  bool saw_down = false;
  for (const auto& e : j.at("entries").as_array()) {
    EXPECT_EQ(e.at("backend").as_string(), "redis-new");
    EXPECT_FALSE(e.at("targets").as_array().empty());
    if (e.at("kind").as_string() == "dropped") saw_down = true;
  }
  EXPECT_TRUE(saw_down) << json::serialize(j);
  // Reconnects were rate-limited: a handful of failed attempts, not one per write.
  const double errors = Metric(R"(turnout_upstream_errors_total{backend="new",route="redis"})");
  EXPECT_GT(errors, 0);
  EXPECT_LT(errors, 200);
  // The repair compares and copies every key of the migration's scope; the
  // harness' Redis is shared with the tests running beside this one.
  ASSERT_EQ(admin_.Post("/api/v1/migrations/rr_down/api/keys", R"({"keys":[")" + prefix + R"(*"]})").status, 200);
  auto repair = admin_.Post("/api/v1/migrations/rr_down/repair");
  ASSERT_EQ(repair.status, 200) << repair.body;
  EXPECT_EQ(Journal("rr_down").at("pending").as_int64(), 0) << repair.body;
  auto [equal, cmp] = Compare(prefix + "*", std::to_string(own.port()));
  EXPECT_TRUE(equal) << cmp;
  const auto& b = TestBackends::Get();
  Direct(b.redis_old_port).DeletePattern(prefix + "*");
}

TEST_F(RedisRoutingTest, StaticStrategyInTheConfigRoutesWithoutTheApi) {
  Options o;
  o.strategy_json = R"({"type":"blue_green","active_is_new":true})";
  StartWithAdmin(o);
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string key = "rr:static:" + std::to_string(::getpid());
  RespConn c(port_);
  EXPECT_EQ(c.Call({"SET", key, "green"}), "+OK\r\n");
  Direct new_side(b.redis_new_port), old_side(b.redis_old_port);
  EXPECT_EQ(new_side.Call({"GET", key}), "$5\r\ngreen\r\n");
  EXPECT_EQ(old_side.Call({"GET", key}), "$-1\r\n");
  new_side.Call({"DEL", key});
}


TEST_F(RedisRoutingTest, BlockingPopIsWokenByAPushAndCopiedUnderDualWrite) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = "rr:block:" + std::to_string(::getpid()) + ":";
  Cleanup(prefix + "*");
  CreateMigration("rr_block", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})");
  for (int round = 0; round < 5; ++round) {
    RespConn consumer(port_), producer(port_);
    const auto start = std::chrono::steady_clock::now();
    consumer.Send(Cmd({"BLMOVE", prefix + "jobs", prefix + "taken", "LEFT", "RIGHT", "5"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(producer.Call({"RPUSH", prefix + "jobs", "job" + std::to_string(round), "next"}), ":2\r\n");
    EXPECT_EQ(consumer.ReadOne(6000), "$4\r\njob" + std::to_string(round) + "\r\n");
    // Woken by the push at once, not after a key-order wait.
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
    EXPECT_EQ(producer.Call({"LPOP", prefix + "jobs"}), "$4\r\nnext\r\n");
  }
  auto [equal, report] = Compare(prefix + "*");
  EXPECT_TRUE(equal) << report;
  EXPECT_EQ(Journal("rr_block").at("pending").as_int64(), 0) << json::serialize(Journal("rr_block"));
  Cleanup(prefix + "*");
}

TEST_F(RedisRoutingTest, UnknownCommandsPassThroughToTheAuthoritativeSideWhenConfigured) {
  OwnRedis own;
  ASSERT_TRUE(own.Start());
  Options o;
  o.old_address = "127.0.0.1:" + std::to_string(own.port());
  o.route_extra = "    unknown_commands: passthrough\n";
  StartWithAdmin(o);
  ASSERT_FALSE(HasFatalFailure());
  RespConn c(port_);
  // The server itself answers (its error counter moves); turnout's own
  // refusal would not reach it.
  EXPECT_THAT(c.Call({"NOSUCHCOMMAND", "x"}), HasSubstr("unknown command"));
  EXPECT_EQ(c.Call({"PING"}), "+PONG\r\n");
  RespConn direct(own.port());
  EXPECT_THAT(direct.Call({"INFO", "errorstats"}), HasSubstr("errorstat_ERR:count=1"));
}


TEST_F(RedisRoutingTest, HungSecondaryReleasesSyncClientsAndIsJournaled) {
  OwnRedis own;
  ASSERT_TRUE(own.Start());
  Options o;
  o.new_address = "127.0.0.1:" + std::to_string(own.port());
  o.new_auth = false;
  StartWithAdmin(o);
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = "rr:hung:" + std::to_string(::getpid()) + ":";
  CreateMigration("rr_hung", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})");
  RespConn c(port_);
  EXPECT_EQ(c.Call({"SET", prefix + "a", "1"}), "+OK\r\n");
  own.Signal(SIGSTOP);  // new accepts bytes but never answers
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c.Call({"SET", prefix + "b", "2"}, 30000), "+OK\r\n");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GT(waited, std::chrono::seconds(8));
  EXPECT_LT(waited, std::chrono::seconds(20));
  own.Signal(SIGCONT);
  auto j = Journal("rr_hung");
  ASSERT_EQ(j.at("pending").as_int64(), 1) << json::serialize(j);
  const auto& e = j.at("entries").as_array()[0];
  EXPECT_EQ(e.at("kind").as_string(), "failed");
  EXPECT_THAT(std::string(e.at("secondary").as_string()), HasSubstr("no reply"));
  EXPECT_EQ(e.at("targets").as_array()[0].as_string(), prefix + "b");
  // Back to normal: the next write reaches new again (after the back-off).
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(c.Call({"SET", prefix + "c", "3"}), "+OK\r\n");
  RespConn direct(own.port());
  EXPECT_EQ(direct.Call({"GET", prefix + "c"}), "$1\r\n3\r\n");
  const auto& b = TestBackends::Get();
  Direct(b.redis_old_port).DeletePattern(prefix + "*");
}

// SELECT inside MULTI under sync dual-write: the block reaches new with
// its SELECT in place (the writes land in the same database on both sides),
// and the session's connections follow the database EXEC left it in; a
// DISCARDed or aborted block moves nothing.
TEST_F(RedisRoutingTest, SelectInsideMultiIsReplayedOnTheSecondary) {
  StartWithAdmin();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = "rr:msel:" + std::to_string(::getpid()) + ":";
  const std::vector<std::string> keys = {prefix + "k1", prefix + "k2", prefix + "k3", prefix + "k4",
                                         prefix + "k5", prefix + "k6", prefix + "k7", prefix + "set"};
  // The harness' cleanup scans db 0 only: delete by name in every db used.
  auto cleanup = [&] {
    for (int port : {b.redis_old_port, b.redis_new_port}) {
      Direct d(port);
      for (const char* db : {"0", "3", "5"}) {
        EXPECT_EQ(d.Call({"SELECT", db}), "+OK\r\n");
        for (const auto& k : keys) d.Call({"DEL", k});
      }
    }
  };
  cleanup();
  CreateMigration("rr_msel", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})");
  RespConn c(port_);
  c.Send(Cmd({"MULTI"}) + Cmd({"SELECT", "3"}) + Cmd({"SET", keys[0], "v1"}) + Cmd({"INCR", keys[1]}) +
         Cmd({"EXEC"}) + Cmd({"SET", keys[2], "v3"}));
  auto r = c.Read(6, 10000);
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[0], "+OK\r\n");
  EXPECT_EQ(r[1], "+QUEUED\r\n");
  EXPECT_EQ(r[4], "*3\r\n+OK\r\n+OK\r\n:1\r\n");
  EXPECT_EQ(r[5], "+OK\r\n");
  // A DISCARDed block and one aborted at EXEC (a command turnout refuses)
  // leave the session in db 3.
  c.Send(Cmd({"MULTI"}) + Cmd({"SELECT", "5"}) + Cmd({"SET", keys[3], "no"}) + Cmd({"DISCARD"}) +
         Cmd({"MULTI"}) + Cmd({"SELECT", "5"}) + Cmd({"SET", keys[3], "no"}) + Cmd({"SET", keys[3]}) +
         Cmd({"EXEC"}) + Cmd({"SET", keys[4], "v5"}));
  r = c.Read(10, 10000);
  ASSERT_EQ(r.size(), 10u);
  EXPECT_EQ(r[3], "+OK\r\n");
  EXPECT_THAT(r[8], HasSubstr("EXECABORT"));
  EXPECT_EQ(r[9], "+OK\r\n");
  // SELECTs back and forth and a non-deterministic write (copied in the
  // database the block ends in).
  c.Send(Cmd({"MULTI"}) + Cmd({"SELECT", "0"}) + Cmd({"SELECT", "3"}) + Cmd({"SADD", keys[7], "a", "b", "c"}) +
         Cmd({"SPOP", keys[7]}) + Cmd({"SET", keys[5], "v6"}) + Cmd({"EXEC"}) + Cmd({"GET", keys[0]}));
  r = c.Read(8, 10000);
  ASSERT_EQ(r.size(), 8u);
  EXPECT_THAT(r[6], HasSubstr("*5\r\n+OK\r\n+OK\r\n:3\r\n$1\r\n"));
  EXPECT_EQ(r[7], "$2\r\nv1\r\n");  // the primary's reads follow too
  for (int port : {b.redis_old_port, b.redis_new_port}) {
    SCOPED_TRACE(port == b.redis_old_port ? "old" : "new");
    Direct d(port);
    EXPECT_EQ(d.Call({"SELECT", "3"}), "+OK\r\n");
    EXPECT_EQ(d.Call({"GET", keys[0]}), "$2\r\nv1\r\n");
    EXPECT_EQ(d.Call({"GET", keys[1]}), "$1\r\n1\r\n");
    EXPECT_EQ(d.Call({"GET", keys[2]}), "$2\r\nv3\r\n");
    EXPECT_EQ(d.Call({"GET", keys[4]}), "$2\r\nv5\r\n");
    EXPECT_EQ(d.Call({"GET", keys[5]}), "$2\r\nv6\r\n");
    EXPECT_EQ(d.Call({"SCARD", keys[7]}), ":2\r\n");
    EXPECT_EQ(d.Call({"EXISTS", keys[3]}), ":0\r\n");
    for (const char* db : {"0", "5"}) {
      EXPECT_EQ(d.Call({"SELECT", db}), "+OK\r\n");
      for (const auto& k : keys) EXPECT_EQ(d.Call({"EXISTS", k}), ":0\r\n") << "db " << db << " " << k;
    }
  }
  {
    // Both sides hold the same set after the copy.
    Direct old_side(b.redis_old_port), new_side(b.redis_new_port);
    EXPECT_EQ(old_side.Call({"SELECT", "3"}), "+OK\r\n");
    EXPECT_EQ(new_side.Call({"SELECT", "3"}), "+OK\r\n");
    auto members = [](Direct& d, const std::string& k) {
      std::string out;
      for (const char* m : {"a", "b", "c"}) out += d.Call({"SISMEMBER", k, m});
      return out;
    };
    EXPECT_EQ(members(old_side, keys[7]), members(new_side, keys[7]));
  }
  const auto j = Journal("rr_msel");
  EXPECT_EQ(j.at("pending").as_int64(), 0) << json::serialize(j);
  EXPECT_EQ(Metric(R"(turnout_dualwrite_total{result="failed",route="redis"})"), 0);
  cleanup();
}

}  // namespace
}  // namespace turnout::testing
