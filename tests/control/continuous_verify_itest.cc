// Continuous verification (control/continuous_verify.h) against the
// harness' Postgres servers: a migration with data "none" and
// `"verify": {"continuous": true, "interval_s": 5}` in a database of its own;
// a row changed on new is named in the record and counted in
// turnout_verify_differences, and the count goes back to 0 once the row is
// fixed. No timing assertions: every wait is for a condition.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/control/own_database_fixture.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "continuous-verify-admin-token-0123456789";

class ContinuousVerifyTest : public OwnDatabaseTest {
 protected:
  ContinuousVerifyTest() : OwnDatabaseTest("cv") {}
  void TearDown() override {
    if (process_) process_->Signal(SIGKILL);
    OwnDatabaseTest::TearDown();
  }

  void StartTurnout() {
    const auto& b = TestBackends::Get();
    process_ = std::make_unique<TurnoutProcess>();
    admin_port_ = FreePort();
    pg_port_ = FreePort();
    std::ofstream(process_->dir() + "/tokens") << kToken << " admin ops\n";
    std::ostringstream y;
    y << "instance_id: verifier\nworkers: 1\nadmin:\n  listen: 127.0.0.1:" << admin_port_
      << "\n  tokens_file: tokens\nstate_store:\n  path: state.json\njournal:\n  path: journal.log\nbackends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << "}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << "}\n"
      << "routes:\n  - {name: pg, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << pg_port_
      << "\", old: pg-old}\n";
    ASSERT_TRUE(process_->Start(y.str(), {admin_port_, pg_port_})) << process_->Log();
    admin_ = std::make_unique<AdminClient>(admin_port_, kToken);
  }

  json::value Get(const std::string& id) {
    auto r = admin_->Get("/api/v1/migrations/" + id, {"X-Verbose: true"});
    return r.status == 200 && r.json.is_object() ? r.json.at("data") : json::value(nullptr);
  }
  // The last report's rows of `table` (empty while there is none).
  static json::array ReportedRows(const json::value& m, const std::string& table) {
    if (!m.is_object()) return {};
    auto* p = m.as_object().if_contains("progress");
    if (!p || !p->is_object()) return {};
    auto* cv = p->as_object().if_contains("continuous_verification");
    if (!cv || !cv->is_object() || !cv->as_object().contains("routes")) return {};
    for (const auto& r : cv->at("routes").as_array())
      if (auto* ts = r.as_object().if_contains("tables"))
        for (const auto& t : ts->as_array())
          if (t.at("table").as_string() == table) return t.at("rows").as_array();
    return {};
  }
  static std::int64_t Runs(const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("progress")) return 0;
    auto* r = m.at("progress").as_object().if_contains("verify_runs");
    return r && r->is_int64() ? r->as_int64() : 0;
  }
  bool WaitUntil(const std::function<bool()>& done, int timeout_ms = 90000) {
    const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (Clock::now() < until);
    return done();
  }
  std::string Log() const { return process_ ? process_->Log() : ""; }

  std::unique_ptr<TurnoutProcess> process_;
  int admin_port_ = 0, pg_port_ = 0;
  std::unique_ptr<AdminClient> admin_;
};

TEST_F(ContinuousVerifyTest, ValidatesTheVerifyField) {
  StartTurnout();
  auto bad = admin_->Post("/api/v1/migrations",
                          R"({"id":"cv_bad","strategy":{"type":"canary","read_percentage":0},)"
                          R"("data":{"type":"none","verify":{"continuous":true,"every":5}}})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("data.verify.every: unknown field"), std::string::npos) << bad.body;
  auto low = admin_->Post("/api/v1/migrations",
                          R"({"id":"cv_bad","strategy":{"type":"canary","read_percentage":0},)"
                          R"("data":{"type":"none","verify":{"continuous":true,"interval_s":1}}})");
  EXPECT_EQ(low.status, 400) << low.body;
  EXPECT_NE(low.body.find("data.verify.interval_s"), std::string::npos) << low.body;
  auto type = admin_->Post("/api/v1/migrations",
                           R"({"id":"cv_bad","strategy":{"type":"canary","read_percentage":0},)"
                           R"("data":{"type":"none","verify":{"continuous":"yes"}}})");
  EXPECT_EQ(type.status, 400) << type.body;
}

TEST_F(ContinuousVerifyTest, FindsAChangedRowOnNewAndClearsOnceFixed) {
  for (int port : {old_, new_})
    Psql(port, "create table t (id int primary key, v text); "
               "insert into t select g, 'row ' || g from generate_series(1, 200) g");
  StartTurnout();
  const std::string id = "cv";
  auto c = admin_->Post("/api/v1/migrations", R"({"id":"cv","strategy":{"type":"canary","read_percentage":0},)"
                                              R"("data":{"type":"none","verify":{"continuous":true,"interval_s":5}}})");
  ASSERT_EQ(c.status, 201) << c.body;
  ASSERT_EQ(admin_->Post("/api/v1/migrations/cv/interlay/pg", R"({"endpoint":"pg-new"})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/cv/api/tables", R"({"tables":["t"]})").status, 200);
  auto m = admin_->Post("/api/v1/migrations/cv/migrate");
  ASSERT_EQ(m.status, 200) << m.body;

  const std::string series = R"(turnout_verify_differences{migration="cv",route="pg",table="public.t"})";
  // A first run: equal.
  ASSERT_TRUE(WaitUntil([&] { return Runs(Get(id)) >= 1; })) << json::serialize(Get(id)) << Log();
  EXPECT_EQ(admin_->Metric(series), 0) << admin_->Get("/metrics").body;
  EXPECT_GE(admin_->Metric(R"(turnout_verify_rows_total{migration="cv"})"), 200);

  Psql(new_, "update t set v = 'changed on new' where id = 42");
  ASSERT_TRUE(WaitUntil([&] {
    for (const auto& r : ReportedRows(Get(id), "public.t"))
      if (auto* k = r.as_object().if_contains("key"); k && k->is_object())
        if (auto* v = k->as_object().if_contains("id"); v && json::serialize(*v).find("42") != std::string::npos)
          return true;
    return false;
  })) << json::serialize(Get(id)) << Log();
  ASSERT_TRUE(WaitUntil([&] { return admin_->Metric(series) > 0; })) << admin_->Get("/metrics").body;
  EXPECT_GE(admin_->Metric(R"(turnout_verify_runs_total{migration="cv"})"), 2);

  Psql(new_, "update t set v = 'row 42' where id = 42");
  ASSERT_TRUE(WaitUntil([&] { return admin_->Metric(series) == 0; })) << admin_->Get("/metrics").body << Log();
  EXPECT_TRUE(ReportedRows(Get(id), "public.t").empty()) << json::serialize(Get(id));
  EXPECT_EQ(Get(id).at("state").as_string(), "Running");
}

}  // namespace
}  // namespace turnout::testing
