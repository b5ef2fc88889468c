// POST …/test (dry run) and POST …/verify against the harness servers:
// schema differences block, data differences are named, equal data passes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;
constexpr char kToken[] = "inspector-admin-token-0123456789";

std::string Redis(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = RunProgram(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

// Deletes the keys under `prefix` on one server (never FLUSHALL: shared).
void RedisDeletePrefix(int port, const std::string& prefix) {
  RunProgram({"sh", "-c", "redis-cli -p " + std::to_string(port) + " --scan --pattern '" + prefix +
                              "*' | xargs -r redis-cli -p " + std::to_string(port) + " del > /dev/null"});
}

void Sql(int port, const std::string& sql) {
  const auto& b = TestBackends::Get();
  auto r = RunProgram({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", b.PgConnString(port, "app"), "-c", sql});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

class InspectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    table_ = "inspect_" + std::to_string(::getpid());
    std::ofstream(t_.dir() + "/tokens") << kToken << " admin ops\n";
    std::ostringstream y;
    y << "admin: {listen: \"127.0.0.1:" << admin_ << "\", tokens_file: tokens}\nstate_store: {path: state.json}\n"
      << "backends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: app}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: app, tls: {mode: verify-full, ca_file: " << b.ca_file << "}}\n"
      << "  - {name: redis-old, protocol: redis, address: \"127.0.0.1:" << b.redis_old_port << "\"}\n"
      << "  - {name: redis-new, protocol: redis, address: \"127.0.0.1:" << b.redis_new_port << "\", user: "
      << b.redis_user << ", password: " << b.redis_password << "}\n"
      << "routes:\n  - {name: db, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << listen_
      << "\", old: pg-old, new: pg-new}\n"
      << "  - {name: cache, protocol: redis, mode: relay, listen: \"127.0.0.1:" << listen2_
      << "\", old: redis-old, new: redis-new}\n";
    ASSERT_TRUE(t_.Start(y.str(), {admin_, listen_})) << t_.Log();
    ASSERT_EQ(c_.Post("/api/v1/migrations", R"({"id":"inspect","strategy":{"type":"big_bang"}})").status, 201);
    ASSERT_EQ(c_.Post("/api/v1/migrations/inspect/api/t", "{\"tables\":[\"" + table_ + "\"]}").status, 200);
    // Other suites fill the shared Redis servers; compare only this test's keys.
    ASSERT_EQ(c_.Post("/api/v1/migrations/inspect/api/k", "{\"keys\":[\"" + table_ + ":*\"]}").status, 200);
  }
  void TearDown() override {
    const auto& b = TestBackends::Get();
    for (int port : {b.pg_old_port, b.pg_new_port}) Sql(port, "drop table if exists " + table_);
    for (int port : {b.redis_old_port, b.redis_new_port}) RedisDeletePrefix(port, table_ + ":");
  }

  std::string table_;
  TurnoutProcess t_;
  int admin_ = FreePort(), listen_ = FreePort(), listen2_ = FreePort();
  AdminClient c_{admin_, kToken};
};

TEST_F(InspectorTest, DryRunReportsSchemaDifferencesAndVersions) {
  const auto& b = TestBackends::Get();
  Sql(b.pg_old_port, "create table " + table_ + "(id int primary key, name text not null, note varchar(20))");
  Sql(b.pg_new_port, "create table " + table_ + "(id int primary key, name text, extra int)");
  auto r = c_.Post("/api/v1/migrations/inspect/test");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& d = r.json.at("data");
  EXPECT_FALSE(d.at("ok").as_bool());
  std::string blocking, warnings;
  for (const auto& route : d.at("routes").as_array()) {
    if (route.at("route") != "db") {
      // The Redis route: both reachable (new with its ACL user), versions read.
      EXPECT_TRUE(route.at("ok").as_bool()) << json::serialize(route);
      EXPECT_THAT(std::string(route.at("new").at("version").as_string()), HasSubstr("7."));
      continue;
    }
    EXPECT_TRUE(route.at("old").at("reachable").as_bool());
    EXPECT_TRUE(route.at("new").at("reachable").as_bool());  // over verify-full TLS
    EXPECT_THAT(std::string(route.at("new").at("version").as_string()), HasSubstr("15"));
    for (const auto& x : route.at("blocking").as_array()) blocking += std::string(x.as_string()) + "\n";
    for (const auto& x : route.at("warnings").as_array()) warnings += std::string(x.as_string()) + "\n";
  }
  EXPECT_THAT(blocking, HasSubstr("public." + table_ + ".name: text not null on old, text on new"));
  EXPECT_THAT(blocking, HasSubstr("public." + table_ + ".note is missing on new"));
  EXPECT_THAT(warnings, HasSubstr("public." + table_ + ".extra exists only on new"));
}

// The dry run says how data will move (the harness' old has wal_level =
// logical: by change stream) and which roles and extensions new lacks
// before any traffic moves (session state replayed there would need them).
TEST_F(InspectorTest, DryRunSaysTheDataPathAndWhatNewLacks) {
  const auto& b = TestBackends::Get();
  const std::string role = "inspect_role_" + std::to_string(::getpid());
  Sql(b.pg_old_port, "create role " + role);
  Sql(b.pg_old_port, "create extension if not exists pgcrypto");
  Sql(b.pg_new_port, "drop extension if exists pgcrypto");
  Sql(b.pg_old_port, "create table " + table_ + "(id int primary key)");
  Sql(b.pg_new_port, "create table " + table_ + "(id int primary key)");
  auto r = c_.Post("/api/v1/migrations/inspect/test");
  Sql(b.pg_old_port, "drop role " + role);
  Sql(b.pg_old_port, "drop extension if exists pgcrypto");
  ASSERT_EQ(r.status, 200) << r.body;
  bool seen = false;
  for (const auto& route : r.json.at("data").at("routes").as_array()) {
    if (route.at("protocol") != "postgres") continue;
    seen = true;
    EXPECT_EQ(route.at("data_path").at("method"), "stream") << r.body;
    EXPECT_EQ(route.at("data_path").at("dual_write"), "stream") << r.body;
    std::string warnings;
    for (const auto& x : route.at("warnings").as_array()) warnings += std::string(x.as_string()) + "\n";
    EXPECT_THAT(warnings, HasSubstr("role " + role + " exists on old, not on new"));
    EXPECT_THAT(warnings, HasSubstr("extension pgcrypto is installed on old, not on new"));
  }
  EXPECT_TRUE(seen) << r.body;
}

TEST_F(InspectorTest, VerifyNamesDifferingTablesAndPassesEqualOnes) {
  const auto& b = TestBackends::Get();
  for (int port : {b.pg_old_port, b.pg_new_port})
    Sql(port, "create table " + table_ + "(id int primary key, v text); insert into " + table_ +
                  " select g, md5(g::text) from generate_series(1, 1000) g");
  Sql(b.pg_new_port, "update " + table_ + " set v = 'drift' where id = 500");
  auto r = c_.Post("/api/v1/migrations/inspect/verify");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.json.at("data").at("equal").as_bool());
  EXPECT_THAT(r.body, HasSubstr("table public." + table_));
  Sql(b.pg_new_port, "update " + table_ + " set v = md5('500') where id = 500");
  auto again = c_.Post("/api/v1/migrations/inspect/verify");
  bool db_equal = false;
  for (const auto& route : again.json.at("data").at("routes").as_array())
    if (route.at("route") == "db") db_equal = route.at("equal").as_bool();
  EXPECT_TRUE(db_equal) << again.body;
}

TEST_F(InspectorTest, VerifyComparesRedisValuesByTypeAndCapsTheNamedKeys) {
  const auto& b = TestBackends::Get();
  const int o = b.redis_old_port, n = b.redis_new_port;
  auto k = [&](const std::string& name) { return table_ + ":" + name; };
  // Many keys, so the comparison crosses batch boundaries; every 10th differs.
  constexpr int kMany = 1500;
  std::vector<std::string> mset_old = {"mset"}, mset_new = {"mset"};
  for (int i = 0; i < kMany; ++i) {
    const std::string key = k("many:" + std::to_string(10000 + i));
    mset_old.insert(mset_old.end(), {key, "v" + std::to_string(i)});
    mset_new.insert(mset_new.end(), {key, i % 10 == 5 ? "drift" : "v" + std::to_string(i)});
  }
  Redis(o, mset_old);
  Redis(n, mset_new);
  for (int port : {o, n}) {
    Redis(port, {"set", k("a:str"), "same"});
    Redis(port, {"rpush", k("a:list"), "x", "y", "z"});
    Redis(port, {"xadd", k("a:stream"), "1-1", "f", "v"});  // compared by DUMP
    Redis(port, {"zadd", k("a:zset"), "1", "m1", "2", "m2"});
  }
  // Order-independent types, written in different orders: equal.
  Redis(o, {"sadd", k("a:set"), "p", "q", "r"});
  Redis(n, {"sadd", k("a:set"), "r", "q", "p"});
  Redis(o, {"hset", k("a:hash"), "f1", "1", "f2", "2"});
  Redis(n, {"hset", k("a:hash"), "f2", "2", "f1", "1"});
  // Differences: a value, a list's order, a score, a key on one side, a type.
  Redis(o, {"set", k("b:str"), "old"});
  Redis(n, {"set", k("b:str"), "new"});
  Redis(o, {"rpush", k("b:list"), "x", "y"});
  Redis(n, {"rpush", k("b:list"), "y", "x"});
  Redis(o, {"zadd", k("b:zset"), "1", "m"});
  Redis(n, {"zadd", k("b:zset"), "2", "m"});
  Redis(n, {"set", k("b:only-new"), "1"});
  Redis(o, {"set", k("b:type"), "1"});
  Redis(n, {"rpush", k("b:type"), "1"});

  auto r = c_.Post("/api/v1/migrations/inspect/verify");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::object* cache = nullptr;
  for (const auto& route : r.json.at("data").at("routes").as_array())
    if (route.at("route") == "cache") cache = &route.as_object();
  ASSERT_NE(cache, nullptr) << r.body;
  EXPECT_FALSE(cache->at("equal").as_bool());
  EXPECT_EQ(cache->at("keys_compared").to_number<std::int64_t>(), kMany + 11);
  EXPECT_EQ(cache->at("keys_differing").to_number<std::int64_t>(), kMany / 10 + 5);
  // Keys in order, the first 100 named.
  std::vector<std::string> named;
  for (const auto& d : cache->at("differences").as_array()) named.emplace_back(d.as_string());
  std::vector<std::string> expected;
  for (const char* name : {"b:list", "b:only-new", "b:str", "b:type", "b:zset"}) expected.push_back("key " + k(name));
  for (int i = 5; expected.size() < 100; i += 10) expected.push_back("key " + k("many:" + std::to_string(10000 + i)));
  EXPECT_EQ(named, expected);
}

}  // namespace
}  // namespace turnout::testing
