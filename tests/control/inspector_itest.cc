// POST …/test (dry run) and POST …/verify against the harness servers:
// schema differences block, data differences are named, equal data passes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <sstream>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;
constexpr char kToken[] = "inspector-admin-token-0123456789";

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

}  // namespace
}  // namespace turnout::testing
