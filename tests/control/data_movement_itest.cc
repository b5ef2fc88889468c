// Data movement (DESIGN.md §6) against the harness' real servers, driven
// through the admin API of a running turnout: Redis SCAN/DUMP/RESTORE and
// Postgres scan and snapshot copies with every conflict rule, resuming from
// the checkpoint after kill -9, exactly one runner in a fleet, pause/resume,
// and failure handling. Postgres here is the copier ("method": "copy"); the
// change stream has its own tests (pg_change_stream_itest.cc). Every test
// owns its tables and key prefixes (the servers are shared by tests running
// in parallel) and removes them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "data-movement-admin-token-0123456789";

// A table or database name no other test process uses.
std::string Unique(const std::string& what) { return "dm_" + std::to_string(::getpid()) + "_" + what; }

// ---- servers ------------------------------------------------------------------

std::string Psql(int port, const std::string& sql) {
  const auto& b = TestBackends::Get();
  auto r = RunProgram({"psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", b.PgConnString(port, "app"), "-c", sql});
  EXPECT_EQ(r.exit_code, 0) << sql << "\n" << r.err;
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

std::string Redis(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunProgram(argv);
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

// Deletes the keys under `prefix` on one server (never FLUSHALL: shared).
void RedisDeletePrefix(int port, const std::string& prefix) {
  RunProgram({"sh", "-c", "redis-cli -p " + std::to_string(port) + " --scan --pattern '" + prefix +
                              "*' | xargs -r redis-cli -p " + std::to_string(port) + " del > /dev/null"});
}

// ---- turnout -------------------------------------------------------------------

struct Sidecar {
  TurnoutProcess process;
  int admin_port = FreePort();
  int pg_port = FreePort();
  int redis_port = FreePort();
  AdminClient admin{admin_port, kToken};
};

// Routes without `new`: every test attaches the routes it moves.
std::string Config(const Sidecar& s, const std::string& instance, const std::string& state_store_yaml,
                   const std::string& database = "app") {
  const auto& b = TestBackends::Get();
  std::ostringstream y;
  y << "instance_id: " << instance << "\nworkers: 1\n"
    << "admin:\n  listen: 127.0.0.1:" << s.admin_port << "\n  tokens_file: tokens\n"
    << state_store_yaml << "backends:\n"
    << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\", user: " << b.pg_user
    << ", password: " << b.pg_password << ", database: " << database << "}\n"
    << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\", user: " << b.pg_user
    << ", password: " << b.pg_password << ", database: " << database << "}\n"
    << "  - {name: redis-old, protocol: redis, address: \"127.0.0.1:" << b.redis_old_port << "\", user: " << b.redis_user
    << ", password: " << b.redis_password << "}\n"
    << "  - {name: redis-new, protocol: redis, address: \"127.0.0.1:" << b.redis_new_port << "\", user: " << b.redis_user
    << ", password: " << b.redis_password << "}\n"
    << "routes:\n"
    << "  - {name: pg, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << s.pg_port << "\", old: pg-old}\n"
    << "  - {name: cache, protocol: redis, mode: relay, listen: \"127.0.0.1:" << s.redis_port << "\", old: redis-old}\n";
  return y.str();
}

bool Start(Sidecar& s, const std::string& instance, const std::string& store_yaml = "state_store:\n  path: state.json\n",
           const std::string& database = "app") {
  std::ofstream(s.process.dir() + "/tokens") << kToken << " admin ops\n";
  return s.process.Start(Config(s, instance, store_yaml, database), {s.admin_port});
}

json::value Get(const Sidecar& s, const std::string& id) {
  auto r = s.admin.Get("/api/v1/migrations/" + id, {"X-Verbose: true"});
  if (r.status != 200 || !r.json.is_object()) return nullptr;
  return r.json.at("data");
}

std::string State(const json::value& m) { return m.is_object() ? std::string(m.at("state").as_string()) : ""; }

const json::object* Progress(const json::value& m) {
  if (!m.is_object()) return nullptr;
  auto* p = m.as_object().if_contains("progress");
  return p && p->is_object() ? &p->as_object() : nullptr;
}

std::string ProgressStatus(const json::value& m) {
  auto* p = Progress(m);
  return p ? std::string(p->at("status").as_string()) : "";
}

const json::object& RouteProgress(const json::value& m, const std::string& route) {
  static const json::object empty;
  auto* p = Progress(m);
  if (!p) return empty;
  for (const auto& r : p->at("routes").as_array())
    if (r.at("route").as_string() == route) return r.as_object();
  return empty;
}

std::int64_t Copied(const json::value& m, const std::string& route) {
  const auto& r = RouteProgress(m, route);
  return r.contains("copied") ? r.at("copied").to_number<std::int64_t>() : -1;
}

// Polls GET …/{id} until `done` holds (or the timeout passes); returns the last view.
json::value WaitFor(const Sidecar& s, const std::string& id, const std::function<bool(const json::value&)>& done,
                    int timeout_ms = 30000) {
  const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
  json::value m;
  do {
    m = Get(s, id);
    if (done(m)) return m;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (Clock::now() < until);
  return m;
}

bool Finished(const json::value& m) {
  const std::string st = State(m);
  return st == "Completed" || st == "Failed" || ProgressStatus(m) == "done" || ProgressStatus(m) == "failed";
}

// Creates a migration, attaches routes and scopes, and runs POST …/migrate.
void Migrate(const Sidecar& s, const std::string& id, const std::string& data, const std::string& strategy,
             const std::vector<std::pair<std::string, std::string>>& routes,
             const std::vector<std::pair<std::string, std::string>>& scopes,
             const std::string& failure_handling = "\"rollback_all\"") {
  auto c = s.admin.Post("/api/v1/migrations", R"({"id":")" + id + R"(","strategy":)" + strategy + R"(,"data":)" + data +
                                                  R"(,"failure_handling":)" + failure_handling + "}");
  ASSERT_EQ(c.status, 201) << c.body;
  for (const auto& [route, endpoint] : routes) {
    auto r = s.admin.Post("/api/v1/migrations/" + id + "/interlay/" + route, R"({"endpoint":")" + endpoint + "\"}");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  for (const auto& [name, body] : scopes) {
    auto r = s.admin.Post("/api/v1/migrations/" + id + "/api/" + name, body);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  auto m = s.admin.Post("/api/v1/migrations/" + id + "/migrate");
  ASSERT_EQ(m.status, 200) << m.body;
}

constexpr char kBigBang[] = R"({"type":"big_bang"})";
constexpr char kCanary[] = R"({"type":"canary","read_percentage":0.5})";

// ---- Redis -----------------------------------------------------------------------

class RedisMovementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    old_ = b.redis_old_port;
    new_ = b.redis_new_port;
    prefix_ = "dm:" + std::to_string(::getpid()) + ":" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ":";
    ASSERT_TRUE(Start(s_, "redis-mover")) << s_.process.Log();
  }
  void TearDown() override {
    RedisDeletePrefix(old_, prefix_);
    RedisDeletePrefix(new_, prefix_);
    RedisDeletePrefix(old_, "dm-outside:" + std::to_string(::getpid()));
  }
  std::string Key(const std::string& k) const { return prefix_ + k; }

  // 200 strings, one with a TTL, a hash, a set, a zset and a list on old.
  void SeedOld() {
    std::vector<std::string> mset = {"mset"};
    for (int i = 0; i < 200; ++i) {
      mset.push_back(Key("s:" + std::to_string(i)));
      mset.push_back("value-" + std::to_string(i));
    }
    Redis(old_, mset);
    Redis(old_, {"set", Key("ttl"), "expiring", "px", "600000"});
    Redis(old_, {"hset", Key("h"), "a", "1", "b", "2"});
    Redis(old_, {"sadd", Key("set"), "x", "y"});
    Redis(old_, {"zadd", Key("z"), "1", "one", "2", "two"});
    Redis(old_, {"rpush", Key("list"), "l1", "l2", "l3"});
    Redis(old_, {"set", Key("conflict"), "from-old"});
    Redis(new_, {"set", Key("conflict"), "from-new"});
    Redis(new_, {"hset", Key("h"), "b", "20", "c", "3"});
    Redis(new_, {"sadd", Key("set"), "y", "z"});
    // Outside the scope: must stay where it is.
    Redis(old_, {"set", "dm-outside:" + std::to_string(::getpid()), "stay"});
  }

  json::value Run(const std::string& id, const std::string& rule, int passes = 1) {
    Migrate(s_, id,
            R"({"type":"scan","replace":")" + rule + R"(","batch_size":50,"sleep_ms":0,"passes":)" +
                std::to_string(passes) + "}",
            kBigBang,
            {{"cache", "redis-new"}}, {{"keys", R"({"keys":[")" + prefix_ + R"(*"]})"}});
    return WaitFor(s_, id, Finished);
  }

  void ExpectCommonCopied() {
    for (int i = 0; i < 200; i += 17) EXPECT_EQ(Redis(new_, {"get", Key("s:" + std::to_string(i))}), "value-" + std::to_string(i));
    EXPECT_EQ(Redis(new_, {"get", Key("s:199")}), "value-199");
    EXPECT_EQ(Redis(new_, {"get", Key("ttl")}), "expiring");
    const long long ttl = std::atoll(Redis(new_, {"pttl", Key("ttl")}).c_str());
    EXPECT_GT(ttl, 500000);
    EXPECT_LE(ttl, 600000);
    EXPECT_EQ(Redis(new_, {"pttl", Key("s:1")}), "-1");
    EXPECT_EQ(Redis(new_, {"lrange", Key("list"), "0", "-1"}), "l1\nl2\nl3");
    EXPECT_EQ(Redis(new_, {"zrange", Key("z"), "0", "-1", "withscores"}), "one\n1\ntwo\n2");
    EXPECT_EQ(Redis(new_, {"exists", "dm-outside:" + std::to_string(::getpid())}), "0");
  }

  Sidecar s_;
  int old_ = 0, new_ = 0;
  std::string prefix_;
};

std::string SortedLines(std::string text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

TEST_F(RedisMovementTest, ScanCopiesEveryKeyOfTheScopeWithTtlsAndNoneKeepsTheTarget) {
  SeedOld();
  auto m = Run("redis_none", "none");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s_.process.Log();
  ExpectCommonCopied();
  EXPECT_EQ(Redis(new_, {"get", Key("conflict")}), "from-new");
  // none keeps new's hash and set as they were.
  EXPECT_EQ(SortedLines(Redis(new_, {"hgetall", Key("h")})), SortedLines("b\n20\nc\n3"));
  EXPECT_EQ(SortedLines(Redis(new_, {"smembers", Key("set")})), "y\nz\n");
  const auto& r = RouteProgress(m, "cache");
  EXPECT_EQ(r.at("phase").as_string(), "done");
  EXPECT_GE(r.at("copied").to_number<std::int64_t>(), 206);
  EXPECT_EQ(r.at("written").to_number<std::int64_t>(), 203);  // 206 keys, 3 already on new
  EXPECT_EQ(r.at("ratio").to_number<double>(), 1.0);
  EXPECT_EQ(Progress(m)->at("runner").as_string(), "redis-mover");
  // Verification ran: the conflicting keys differ, by the rule.
  EXPECT_FALSE(Progress(m)->at("verification").at("equal").as_bool());

  AdminClient anon(s_.admin_port, "");
  const std::string metrics = anon.Get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("turnout_data_movement_progress_ratio{migration=\"redis_none\",route=\"cache\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("turnout_data_movement_rows_total{migration=\"redis_none\",route=\"cache\"} 2"));
  EXPECT_THAT(metrics, HasSubstr("turnout_data_movement_rate{migration=\"redis_none\",route=\"cache\"} 0"));
  auto check = RunProgram({"promtool", "check", "metrics"}, metrics);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // Checkpoints are not audited: the history stays short.
  EXPECT_LE(m.at("history").as_array().size(), 8u) << json::serialize(m.at("history"));
}

TEST_F(RedisMovementTest, ReplaceOverwritesTheTarget) {
  SeedOld();
  auto m = Run("redis_replace", "replace", /*passes=*/2);
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s_.process.Log();
  // Two passes: every key restored twice (REPLACE is idempotent).
  EXPECT_GE(Copied(m, "cache"), 2 * 206);
  EXPECT_THAT(s_.process.Log(), HasSubstr("scan pass 1 of 2 done"));
  ExpectCommonCopied();
  EXPECT_EQ(Redis(new_, {"get", Key("conflict")}), "from-old");
  EXPECT_EQ(SortedLines(Redis(new_, {"hgetall", Key("h")})), SortedLines("a\n1\nb\n2"));
  EXPECT_EQ(SortedLines(Redis(new_, {"smembers", Key("set")})), "x\ny\n");
  EXPECT_TRUE(Progress(m)->at("verification").at("equal").as_bool()) << json::serialize(m.at("progress"));
}

TEST_F(RedisMovementTest, MergeUnionsHashesAndSetsAndKeepsTargetStrings) {
  SeedOld();
  Redis(new_, {"zadd", Key("z"), "5", "two", "9", "nine"});
  auto m = Run("redis_merge", "merge");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s_.process.Log();
  EXPECT_EQ(Redis(new_, {"get", Key("conflict")}), "from-new");
  // Union; for a field on both sides new's value wins.
  EXPECT_EQ(SortedLines(Redis(new_, {"hgetall", Key("h")})), SortedLines("a\n1\nb\n20\nc\n3"));
  EXPECT_EQ(SortedLines(Redis(new_, {"smembers", Key("set")})), "x\ny\nz\n");
  EXPECT_EQ(Redis(new_, {"zrange", Key("z"), "0", "-1", "withscores"}), "one\n1\ntwo\n5\nnine\n9");
  EXPECT_EQ(Redis(new_, {"get", Key("s:7")}), "value-7");
}

// ---- Postgres --------------------------------------------------------------------

struct PgCase {
  const char* mode;
  const char* rule;
};
void PrintTo(const PgCase& c, std::ostream* os) { *os << c.mode << "/" << c.rule; }

class PgFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    old_ = b.pg_old_port;
    new_ = b.pg_new_port;
  }
  void TearDown() override {
    for (const auto& t : tables_) {
      Psql(old_, "drop table if exists " + t);
      Psql(new_, "drop table if exists " + t);
    }
  }
  // The same table on both sides; `rows` rows on old drawn from its sequence.
  void CreateTable(const std::string& t, int rows, bool on_new = true) {
    tables_.push_back(t);
    const std::string ddl = "create table " + t +
                            " (id bigserial primary key, name text not null, note text, amount int, "
                            "created timestamptz default now())";
    Psql(old_, ddl);
    if (on_new) Psql(new_, ddl);
    Psql(old_, "insert into " + t + " (name, note, amount) select 'n' || g, case when g % 2 = 0 then 'note' || g end, g "
                                    "from generate_series(1, " + std::to_string(rows) + ") g");
  }
  // Rows 1..5 exist on new with other values; 2 and 4 have a NULL note and amount.
  void SeedConflicts(const std::string& t) {
    Psql(new_, "insert into " + t + " (id, name, note, amount) values "
                                    "(1, 'new-1', 'kept-1', -1), (2, 'new-2', null, null), (3, 'new-3', 'kept-3', -3), "
                                    "(4, 'new-4', null, null), (5, 'new-5', 'kept-5', -5)");
  }
  std::string Checksum(int port, const std::string& t, const std::string& where = "true") {
    return Psql(port, "select count(*) || ':' || count(distinct id) || ':' || "
                      "coalesce(sum(hashtext(id || name || coalesce(note, '~') || coalesce(amount::text, '~'))), 0) from " +
                          t + " where " + where);
  }

  int old_ = 0, new_ = 0;
  std::vector<std::string> tables_;
};

class PgMovementTest : public PgFixture, public ::testing::WithParamInterface<PgCase> {};

TEST_P(PgMovementTest, CopiesATableOfTwentyThousandRowsByTheRule) {
  const PgCase c = GetParam();
  const std::string t = Unique(std::string(c.mode) + "_" + c.rule);
  const std::string nopk = t + "_nopk";
  CreateTable(t, 20000);
  tables_.push_back(nopk);
  Psql(old_, "create table " + nopk + " (v int)");
  Psql(new_, "create table " + nopk + " (v int)");
  SeedConflicts(t);

  Sidecar s;
  ASSERT_TRUE(Start(s, "pg-mover")) << s.process.Log();
  const std::string id = "pg_" + std::string(c.mode) + "_" + c.rule;
  Migrate(s, id,
          std::string(R"({"method":"copy","type":")") + c.mode + R"(","replace":")" + c.rule + R"(","batch_size":2500,"sleep_ms":0})",
          kBigBang, {{"pg", "pg-new"}}, {{"tables", R"({"tables":[")" + t + R"(",")" + nopk + R"("]})"}});
  const auto started = Clock::now();
  auto m = WaitFor(s, id, Finished);
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process.Log();
  const auto& r = RouteProgress(m, "pg");
  EXPECT_EQ(r.at("copied").to_number<std::int64_t>(), 20000);
  EXPECT_EQ(r.at("total").to_number<std::int64_t>(), 20000);
  EXPECT_THAT(json::serialize(r.at("notes")), HasSubstr(nopk + " has no primary key: not copied"));
  std::printf("%s/%s: 20000 rows in %.2f s (API round trips included)\n", c.mode, c.rule, secs);

  // Rows 6.. are the source's whatever the rule.
  EXPECT_EQ(Checksum(new_, t, "id > 5"), Checksum(old_, t, "id > 5"));
  EXPECT_EQ(Psql(new_, "select count(*) from " + t), "20000");
  const std::string rows = Psql(new_, "select id || ',' || name || ',' || coalesce(note, '-') || ',' || "
                                      "coalesce(amount::text, '-') from " + t + " where id <= 5 order by id");
  const std::string rule = c.rule;
  if (rule == "none") {
    EXPECT_EQ(rows, "1,new-1,kept-1,-1\n2,new-2,-,-\n3,new-3,kept-3,-3\n4,new-4,-,-\n5,new-5,kept-5,-5");
    EXPECT_EQ(r.at("written").to_number<std::int64_t>(), 19995);
  } else if (rule == "replace") {
    EXPECT_EQ(rows, "1,n1,-,1\n2,n2,note2,2\n3,n3,-,3\n4,n4,note4,4\n5,n5,-,5");
    EXPECT_EQ(Checksum(new_, t), Checksum(old_, t));
    EXPECT_TRUE(Progress(m)->at("verification").at("equal").as_bool()) << json::serialize(m.at("progress"));
  } else {
    // merge: new's NULL columns filled from old, the rest kept.
    EXPECT_EQ(rows, "1,new-1,kept-1,-1\n2,new-2,note2,2\n3,new-3,kept-3,-3\n4,new-4,note4,4\n5,new-5,kept-5,-5");
  }
  EXPECT_EQ(Psql(new_, "select count(*) from " + nopk), "0");
  // The sequence moved past old's value: new's next id cannot collide.
  EXPECT_EQ(Psql(new_, "select last_value from " + t + "_id_seq"), "20000");
  EXPECT_EQ(Psql(new_, "insert into " + t + " (name) values ('after') returning id"), "20001");
}

INSTANTIATE_TEST_SUITE_P(ModesAndRules, PgMovementTest,
                         ::testing::Values(PgCase{"scan", "none"}, PgCase{"scan", "replace"}, PgCase{"scan", "merge"},
                                           PgCase{"snapshot", "none"}, PgCase{"snapshot", "replace"},
                                           PgCase{"snapshot", "merge"}),
                         [](const ::testing::TestParamInfo<PgCase>& i) {
                           return std::string(i.param.mode) + "_" + i.param.rule;
                         });

class PgJobTest : public PgFixture {};

TEST_F(PgJobTest, AKilledSidecarResumesFromItsCheckpoint) {
  const std::string t = Unique("resume");
  CreateTable(t, 6000);
  Sidecar s;
  ASSERT_TRUE(Start(s, "resumer")) << s.process.Log();
  // Tiny batches and a throttle: the job takes seconds.
  Migrate(s, "pg_resume", R"({"method":"copy","type":"scan","replace":"none","batch_size":100,"sleep_ms":30})", kBigBang,
          {{"pg", "pg-new"}}, {{"tables", R"({"tables":[")" + t + R"("]})"}});
  auto m = WaitFor(s, "pg_resume", [](const json::value& v) { return Copied(v, "pg") >= 1500; });
  const std::int64_t checkpoint = Copied(m, "pg");
  ASSERT_GE(checkpoint, 1500) << json::serialize(m) << s.process.Log();
  ASSERT_LT(checkpoint, 6000);
  s.process.Signal(SIGKILL);
  s.process.Wait(5000);

  ChildProcess again;
  again.Start({TURNOUT_BINARY, "--config", s.process.ConfigPath()}, s.process.LogPath());
  ASSERT_TRUE(WaitForPort(s.admin_port, 10000)) << s.process.Log();
  auto first = Get(s, "pg_resume");
  EXPECT_GE(Copied(first, "pg"), checkpoint) << json::serialize(first);
  m = WaitFor(s, "pg_resume", Finished);
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process.Log();
  // Resumed, not restarted: at most the batch in flight at the kill was read twice.
  EXPECT_GE(Copied(m, "pg"), 6000);
  EXPECT_LE(Copied(m, "pg"), 6000 + 100);
  EXPECT_EQ(Checksum(new_, t), Checksum(old_, t));
  EXPECT_EQ(Psql(new_, "select count(*) || '/' || count(distinct id) from " + t), "6000/6000");
  EXPECT_THAT(s.process.Log(), HasSubstr("data movement resumed on resumer"));
}

TEST_F(PgJobTest, PauseStopsAtABatchBoundaryAndResumeContinues) {
  const std::string t = Unique("pause");
  CreateTable(t, 4000);
  Sidecar s;
  ASSERT_TRUE(Start(s, "pauser")) << s.process.Log();
  Migrate(s, "pg_pause", R"({"method":"copy","type":"scan","replace":"replace","batch_size":100,"sleep_ms":30})", kCanary,
          {{"pg", "pg-new"}}, {{"tables", R"({"tables":[")" + t + R"("]})"}});
  WaitFor(s, "pg_pause", [](const json::value& v) { return Copied(v, "pg") >= 500; });
  ASSERT_EQ(s.admin.Post("/api/v1/migrations/pg_pause/pause").status, 200);
  auto paused = WaitFor(s, "pg_pause", [](const json::value& v) { return ProgressStatus(v) == "paused"; }, 5000);
  ASSERT_EQ(ProgressStatus(paused), "paused") << json::serialize(paused);
  const std::int64_t at_pause = Copied(paused, "pg");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  auto still = Get(s, "pg_pause");
  EXPECT_EQ(Copied(still, "pg"), at_pause);
  EXPECT_EQ(Psql(new_, "select count(*) from " + t), std::to_string(at_pause));
  EXPECT_LT(at_pause, 4000);

  ASSERT_EQ(s.admin.Post("/api/v1/migrations/pg_pause/resume").status, 200);
  auto m = WaitFor(s, "pg_pause", Finished);
  // A canary at 50 % does not send everything to new: the migration stays
  // Running with its data at 100 %.
  EXPECT_EQ(State(m), "Running") << json::serialize(m);
  EXPECT_EQ(ProgressStatus(m), "done");
  EXPECT_EQ(Progress(m)->at("ratio").to_number<double>(), 1.0);
  EXPECT_EQ(Copied(m, "pg"), 4000);
  EXPECT_EQ(Checksum(new_, t), Checksum(old_, t));
  // Rolling back afterwards is allowed.
  EXPECT_EQ(s.admin.Post("/api/v1/migrations/pg_pause/rollback").status, 200);
}

double Rate(const json::value& m, const std::string& route) {
  const auto& r = RouteProgress(m, route);
  return r.contains("rate") ? r.at("rate").to_number<double>() : 0;
}

TEST_F(PgJobTest, RollbackStopsTheJobAndTheRateIsReportedWhileItRuns) {
  const std::string t = Unique("rollback");
  CreateTable(t, 5000);
  Sidecar s;
  ASSERT_TRUE(Start(s, "roller")) << s.process.Log();
  Migrate(s, "pg_rollback", R"({"method":"copy","type":"scan","batch_size":100,"sleep_ms":50})", kBigBang, {{"pg", "pg-new"}},
          {{"tables", R"({"tables":[")" + t + R"("]})"}});
  // The rate covers intervals of at least a second.
  auto m = WaitFor(s, "pg_rollback", [](const json::value& v) { return Rate(v, "pg") > 0; }, 10000);
  ASSERT_GT(Rate(m, "pg"), 0) << json::serialize(m);
  AdminClient anon(s.admin_port, "");
  const std::string metrics = anon.Get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("turnout_data_movement_rate{migration=\"pg_rollback\",route=\"pg\"}"));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("turnout_data_movement_rate{migration=\"pg_rollback\",route=\"pg\"} 0\n")));

  ASSERT_EQ(s.admin.Post("/api/v1/migrations/pg_rollback/rollback").status, 200);
  auto stopped = WaitFor(s, "pg_rollback", [](const json::value& v) { return ProgressStatus(v) == "stopped"; }, 5000);
  EXPECT_EQ(ProgressStatus(stopped), "stopped") << json::serialize(stopped);
  EXPECT_EQ(State(stopped), "RolledBack");
  const std::int64_t at_stop = Copied(stopped, "pg");
  EXPECT_LT(at_stop, 5000);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(Copied(Get(s, "pg_rollback"), "pg"), at_stop);
  EXPECT_EQ(Psql(new_, "select count(*) from " + t), std::to_string(at_stop));
  EXPECT_THAT(s.process.Log(), HasSubstr("data movement stopped at a batch boundary"));
}

TEST_F(PgJobTest, ALaterScanPassCopiesRowsWrittenBehindTheCursor) {
  const std::string t = Unique("passes");
  CreateTable(t, 2000);
  Sidecar s;
  ASSERT_TRUE(Start(s, "passer")) << s.process.Log();
  Migrate(s, "pg_passes", R"({"method":"copy","type":"scan","batch_size":100,"sleep_ms":30,"passes":2})", kBigBang, {{"pg", "pg-new"}},
          {{"tables", R"({"tables":[")" + t + R"("]})"}});
  auto m = WaitFor(s, "pg_passes", [](const json::value& v) { return Copied(v, "pg") >= 500; });
  ASSERT_LT(Copied(m, "pg"), 2000) << "pass 1 ended before the late row was written";
  Psql(old_, "insert into " + t + " (id, name) values (0, 'late')");
  m = WaitFor(s, "pg_passes", Finished);
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process.Log();
  EXPECT_EQ(Psql(new_, "select name from " + t + " where id = 0"), "late");
  EXPECT_EQ(Checksum(new_, t), Checksum(old_, t));
  EXPECT_EQ(Copied(m, "pg"), 4001);  // 2000 + 2001
  EXPECT_THAT(s.process.Log(), HasSubstr("scan pass 1 of 2 done"));
}

// Without table scopes every user table moves: this test owns a whole
// database on both sides, so other tests' tables stay out of it.
TEST_F(PgJobTest, WithoutTableScopesEveryUserTableWithAPrimaryKeyIsCopied) {
  const std::string db = Unique("alltables");
  const std::string ddl =
      "create schema extra; "
      "create table plain (id int primary key, v text); "
      "create table pair (a int, b text, v text, primary key (a, b)); "
      "create table loose (v int); "
      "create table extra.other (id uuid primary key default gen_random_uuid(), n int, "
      "  doubled int generated always as (n * 2) stored); "
      "create table turnout_migrations (id text primary key);";
  for (int port : {old_, new_}) {
    ASSERT_EQ(RunProgram({"psql", "-X", "-q", TestBackends::Get().PgConnString(port), "-c", "create database " + db}).exit_code, 0);
    ASSERT_EQ(RunProgram({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", TestBackends::Get().PgConnString(port, db), "-c", ddl})
                  .exit_code, 0);
  }
  auto on = [&](int port, const std::string& sql) {
    auto r = RunProgram({"psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", TestBackends::Get().PgConnString(port, db), "-c", sql});
    EXPECT_EQ(r.exit_code, 0) << sql << r.err;
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  };
  on(old_, "insert into plain select g, 'v' || g from generate_series(1, 700) g; "
           "insert into pair select g % 7, 'k' || (g / 7), 'v' || g from generate_series(1, 700) g; "
           "insert into loose select generate_series(1, 10); "
           "insert into extra.other (n) select generate_series(1, 300); "
           "insert into turnout_migrations values ('state store rows never travel')");
  {
    Sidecar s;
    ASSERT_TRUE(Start(s, "all-tables", "state_store:\n  path: state.json\n", db)) << s.process.Log();
    // Composite keys across small batches exercise the row comparison.
    Migrate(s, "pg_all", R"({"method":"copy","type":"scan","replace":"replace","batch_size":64,"sleep_ms":0})", kBigBang,
            {{"pg", "pg-new"}}, {});
    auto m = WaitFor(s, "pg_all", Finished);
    ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process.Log();
    EXPECT_EQ(Copied(m, "pg"), 1700);
    const std::string notes = json::serialize(RouteProgress(m, "pg").at("notes"));
    EXPECT_THAT(notes, HasSubstr("public.loose has no primary key"));
    const std::string sum = "select count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) from ";
    for (const char* t : {"plain", "pair", "extra.other"})
      EXPECT_EQ(on(new_, sum + t + " t"), on(old_, sum + t + " t")) << t;
    EXPECT_EQ(on(new_, "select count(*) from loose"), "0");
    EXPECT_EQ(on(new_, "select count(*) from turnout_migrations"), "0");
    EXPECT_TRUE(Progress(m)->at("verification").is_object());
  }
  for (int port : {old_, new_})
    RunProgram({"psql", "-X", "-q", TestBackends::Get().PgConnString(port), "-c", "drop database if exists " + db + " with (force)"});
}

TEST_F(PgJobTest, AFailedCopyWithRollbackAllFailsTheMigration) {
  const std::string t = Unique("missing");
  CreateTable(t, 100, /*on_new=*/false);
  Sidecar s;
  ASSERT_TRUE(Start(s, "failer")) << s.process.Log();
  Migrate(s, "pg_fail", R"({"method":"copy","type":"scan"})", kBigBang, {{"pg", "pg-new"}}, {{"tables", R"({"tables":[")" + t + R"("]})"}});
  auto m = WaitFor(s, "pg_fail", Finished);
  EXPECT_EQ(State(m), "Failed") << json::serialize(m);
  EXPECT_THAT(std::string(m.at("error").as_string()), HasSubstr("does not exist on new"));
  EXPECT_EQ(ProgressStatus(m), "failed");
  EXPECT_EQ(RouteProgress(m, "pg").at("phase").as_string(), "failed");
  // Failed routes to old; rollback is still possible.
  EXPECT_EQ(s.admin.Post("/api/v1/migrations/pg_fail/rollback").status, 200);
}

TEST_F(PgJobTest, RetryThenAllRetriesFromTheCheckpointThenFails) {
  const std::string t = Unique("retry");
  CreateTable(t, 100, /*on_new=*/false);
  Sidecar s;
  ASSERT_TRUE(Start(s, "retrier")) << s.process.Log();
  Migrate(s, "pg_retry", R"({"method":"copy","type":"scan"})", kBigBang, {{"pg", "pg-new"}}, {{"tables", R"({"tables":[")" + t + R"("]})"}},
          R"({"type":"retry_then_all","retry_count":1})");
  auto m = WaitFor(s, "pg_retry", Finished);
  EXPECT_EQ(State(m), "Failed") << json::serialize(m);
  EXPECT_EQ(RouteProgress(m, "pg").at("attempts").to_number<int>(), 1);
  EXPECT_THAT(s.process.Log(), HasSubstr("retry 1 of 1"));
}

TEST_F(PgJobTest, AllowPartialMarksTheRouteFailedAndCopiesTheOthers) {
  const std::string t = Unique("partial");
  CreateTable(t, 100, /*on_new=*/false);
  const auto& b = TestBackends::Get();
  const std::string key = "dm:" + std::to_string(::getpid()) + ":partial:k";
  Redis(b.redis_old_port, {"set", key, "v"});
  Sidecar s;
  ASSERT_TRUE(Start(s, "partial")) << s.process.Log();
  Migrate(s, "mixed_partial", R"({"method":"copy","type":"scan"})", kBigBang, {{"pg", "pg-new"}, {"cache", "redis-new"}},
          {{"tables", R"({"tables":[")" + t + R"("]})"}, {"keys", R"({"keys":[")" + key + R"("]})"}}, R"("allow_partial")");
  auto m = WaitFor(s, "mixed_partial", Finished);
  EXPECT_EQ(State(m), "Running") << json::serialize(m);
  EXPECT_EQ(RouteProgress(m, "pg").at("phase").as_string(), "failed");
  EXPECT_EQ(RouteProgress(m, "cache").at("phase").as_string(), "done");
  EXPECT_EQ(Redis(b.redis_new_port, {"get", key}), "v");
  Redis(b.redis_old_port, {"del", key});
  Redis(b.redis_new_port, {"del", key});
}

// ---- fleet -----------------------------------------------------------------------

TEST_F(PgJobTest, InAFleetExactlyOneSidecarRunsTheJob) {
  const std::string t = Unique("fleet");
  CreateTable(t, 3000);
  const auto& b = TestBackends::Get();
  const std::string db = Unique("fleet_store");
  ASSERT_EQ(RunProgram({"psql", "-X", "-q", b.PgConnString(old_), "-c", "create database " + db}).exit_code, 0);
  const std::string store = "state_store:\n  kind: postgres\n  dsn: \"" + b.PgConnString(old_, db) + "\"\n";
  {
    Sidecar a, c;
    ASSERT_TRUE(Start(a, "sidecar-a", store)) << a.process.Log();
    ASSERT_TRUE(Start(c, "sidecar-b", store)) << c.process.Log();
    Migrate(a, "fleet_move", R"({"method":"copy","type":"scan","batch_size":100,"sleep_ms":20})", kBigBang, {{"pg", "pg-new"}},
            {{"tables", R"({"tables":[")" + t + R"("]})"}});
    // Both see the job's progress through the store while it runs.
    auto on_b = WaitFor(c, "fleet_move", [](const json::value& v) { return Copied(v, "pg") > 0; });
    EXPECT_GT(Copied(on_b, "pg"), 0) << json::serialize(on_b);
    auto m = WaitFor(a, "fleet_move", Finished);
    ASSERT_EQ(State(m), "Completed") << json::serialize(m) << a.process.Log() << c.process.Log();
    auto m_b = WaitFor(c, "fleet_move", [](const json::value& v) { return State(v) == "Completed"; }, 5000);
    EXPECT_EQ(State(m_b), "Completed");
    const std::string runner(Progress(m)->at("runner").as_string());
    ASSERT_TRUE(runner == "sidecar-a" || runner == "sidecar-b") << runner;
    const std::string runner_log = runner == "sidecar-a" ? a.process.Log() : c.process.Log();
    const std::string other_log = runner == "sidecar-a" ? c.process.Log() : a.process.Log();
    EXPECT_THAT(runner_log, HasSubstr("data movement started on " + runner));
    EXPECT_THAT(other_log, HasSubstr("data movement runs on another sidecar"));
    EXPECT_THAT(other_log, ::testing::Not(HasSubstr("data movement started")));
    EXPECT_THAT(other_log, ::testing::Not(HasSubstr("data movement resumed")));
    EXPECT_EQ(Copied(m, "pg"), 3000);
    EXPECT_EQ(Checksum(new_, t), Checksum(old_, t));
    // Every sidecar reports the job's progress (the Grafana panel takes the max).
    for (const Sidecar* sc : {&a, &c}) {
      AdminClient anon(sc->admin_port, "");
      EXPECT_THAT(anon.Get("/metrics").body,
                  HasSubstr("turnout_data_movement_progress_ratio{migration=\"fleet_move\",route=\"pg\"} 1"));
    }
  }
  RunProgram({"psql", "-X", "-q", b.PgConnString(old_), "-c", "drop database if exists " + db + " with (force)"});
}

TEST_F(PgJobTest, WhenTheRunnerDiesAnotherSidecarResumesTheJob) {
  const std::string t = Unique("failover");
  CreateTable(t, 5000);
  const auto& b = TestBackends::Get();
  const std::string db = Unique("failover_store");
  ASSERT_EQ(RunProgram({"psql", "-X", "-q", b.PgConnString(old_), "-c", "create database " + db}).exit_code, 0);
  const std::string store = "state_store:\n  kind: postgres\n  dsn: \"" + b.PgConnString(old_, db) + "\"\n";
  {
    Sidecar a, c;
    ASSERT_TRUE(Start(a, "sidecar-a", store)) << a.process.Log();
    ASSERT_TRUE(Start(c, "sidecar-b", store)) << c.process.Log();
    Migrate(a, "failover_move", R"({"method":"copy","type":"scan","batch_size":100,"sleep_ms":30})", kBigBang, {{"pg", "pg-new"}},
            {{"tables", R"({"tables":[")" + t + R"("]})"}});
    auto m = WaitFor(a, "failover_move", [](const json::value& v) { return Copied(v, "pg") >= 1000; });
    ASSERT_GE(Copied(m, "pg"), 1000) << json::serialize(m);
    const std::string runner(Progress(m)->at("runner").as_string());
    Sidecar& dead = runner == "sidecar-a" ? a : c;
    Sidecar& survivor = runner == "sidecar-a" ? c : a;
    const std::string other = runner == "sidecar-a" ? "sidecar-b" : "sidecar-a";
    dead.process.Signal(SIGKILL);
    dead.process.Wait(5000);
    // The advisory lock dies with the runner's connection; the survivor
    // takes it on its next attempt and continues from the checkpoint.
    m = WaitFor(survivor, "failover_move", [](const json::value& v) { return State(v) == "Completed"; }, 30000);
    ASSERT_EQ(State(m), "Completed") << json::serialize(m) << survivor.process.Log();
    EXPECT_EQ(Progress(m)->at("runner").as_string(), other);
    EXPECT_THAT(survivor.process.Log(), HasSubstr("data movement resumed on " + other));
    EXPECT_LE(Copied(m, "pg"), 5000 + 100);
    EXPECT_EQ(Checksum(new_, t), Checksum(old_, t));
  }
  RunProgram({"psql", "-X", "-q", b.PgConnString(old_), "-c", "drop database if exists " + db + " with (force)"});
}

}  // namespace
}  // namespace turnout::testing
