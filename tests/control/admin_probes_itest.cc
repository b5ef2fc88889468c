// Probes never wait (issue 14, item 4): while POST …/verify reads a large
// table that another session holds locked, /healthz, /readyz and /metrics
// answer, and the verify is still in flight when they have. No timing
// threshold: the order of completion is the assertion.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

constexpr char kToken[] = "probes-admin-token-0123456789abc";

void Sql(int port, const std::string& sql) {
  const auto& b = TestBackends::Get();
  auto r = RunProgram({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", b.PgConnString(port, "app"), "-c", sql});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::string SqlValue(int port, const std::string& sql) {
  const auto& b = TestBackends::Get();
  auto r = RunProgram({"psql", "-X", "-q", "-At", b.PgConnString(port, "app"), "-c", sql});
  return r.out;
}

class AdminProbesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    table_ = "probes_" + std::to_string(::getpid());
    std::ofstream(t_.dir() + "/tokens") << kToken << " admin ops\n";
    std::ostringstream y;
    y << "admin: {listen: \"127.0.0.1:" << admin_ << "\", tokens_file: tokens}\nstate_store: {path: state.json}\n"
      << "backends:\n";
    for (const auto& [name, port] : {std::pair{"pg-old", b.pg_old_port}, std::pair{"pg-new", b.pg_new_port}})
      y << "  - {name: " << name << ", protocol: postgres, address: \"127.0.0.1:" << port << "\", user: " << b.pg_user
        << ", password: " << b.pg_password << ", database: app}\n";
    y << "routes:\n  - {name: db, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << listen_
      << "\", old: pg-old, new: pg-new}\n";
    ASSERT_TRUE(t_.Start(y.str(), {admin_, listen_})) << t_.Log();
    // A large table on both sides.
    for (int port : {b.pg_old_port, b.pg_new_port})
      Sql(port, "create table " + table_ + "(id int primary key, v text); insert into " + table_ +
                    " select g, md5(g::text) from generate_series(1, 200000) g");
    ASSERT_EQ(c_.Post("/api/v1/migrations", R"({"id":"probes","strategy":{"type":"big_bang"}})").status, 201);
    ASSERT_EQ(c_.Post("/api/v1/migrations/probes/api/t", "{\"tables\":[\"" + table_ + "\"]}").status, 200);
  }
  void TearDown() override {
    const auto& b = TestBackends::Get();
    for (int port : {b.pg_old_port, b.pg_new_port}) Sql(port, "drop table if exists " + table_);
  }

  std::string table_;
  TurnoutProcess t_;
  int admin_ = FreePort(), listen_ = FreePort();
  AdminClient c_{admin_, kToken};
  AdminClient anonymous_{admin_, ""};
};

TEST_F(AdminProbesTest, HealthzReadyzAndMetricsAnswerWhileAVerifyIsInFlight) {
  const auto& b = TestBackends::Get();
  // Another session holds the table locked until we commit: the verify is
  // certainly still running while we probe.
  const std::string psql = "psql -X -q '" + b.PgConnString(b.pg_old_port, "app") + "' > /dev/null";
  FILE* locker = ::popen(psql.c_str(), "w");
  ASSERT_NE(locker, nullptr);
  std::fprintf(locker, "begin; lock table %s in access exclusive mode;\n", table_.c_str());
  std::fflush(locker);
  for (int i = 0; i < 200 && SqlValue(b.pg_old_port, "select count(*) from pg_locks where relation = '" + table_ +
                                                         "'::regclass and mode = 'AccessExclusiveLock' and granted") != "1\n";
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));

  std::atomic<bool> verify_done{false};
  HttpResult verify;
  std::thread long_request([&] {
    verify = c_.Post("/api/v1/migrations/probes/verify");
    verify_done = true;
  });
  // /metrics answers during the verify: it reports it in flight.
  while (c_.Metric("turnout_admin_long_requests_in_flight") != 1 && !verify_done)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(verify_done) << verify.body;
  const int healthz = anonymous_.Get("/healthz").status;
  const int readyz = anonymous_.Get("/readyz").status;
  const auto metrics = anonymous_.Get("/metrics");
  const bool verify_finished_first = verify_done;
  // Release the lock; the verify completes with its report.
  std::fprintf(locker, "commit;\n");
  ::pclose(locker);
  long_request.join();

  EXPECT_EQ(healthz, 200);
  EXPECT_NE(readyz, 0);  // answered (its verdict depends on the prober)
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, ::testing::HasSubstr("turnout_admin_long_requests_in_flight 1"));
  EXPECT_FALSE(verify_finished_first) << "the probes completed only after the verify";
  EXPECT_EQ(verify.status, 200) << verify.body;
  EXPECT_TRUE(verify.json.at("data").at("equal").as_bool()) << verify.body;
  EXPECT_EQ(c_.Metric("turnout_admin_long_requests_in_flight"), 0);
}

}  // namespace
}  // namespace turnout::testing
