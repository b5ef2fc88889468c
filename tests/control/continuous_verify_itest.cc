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

#include <gmock/gmock.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/control/own_database_fixture.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/stop_and_join.h"
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

  // `protocol`: the route parses Postgres and routes by the strategy (else a
  // plain relay to old).
  void StartTurnout(bool protocol = false) {
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
      << "routes:\n  - {name: pg, protocol: postgres, mode: " << (protocol ? "protocol" : "relay")
      << ", listen: \"127.0.0.1:" << pg_port_
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
  // The record's continuous_verification (null while there is none).
  static json::value Continuous(const json::value& m) {
    if (!m.is_object()) return nullptr;
    auto* p = m.as_object().if_contains("progress");
    if (!p || !p->is_object()) return nullptr;
    auto* cv = p->as_object().if_contains("continuous_verification");
    return cv ? *cv : json::value(nullptr);
  }
  static std::string StreamPhase(const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("progress")) return "";
    for (const auto& r : m.at("progress").at("routes").as_array())
      if (auto* s = r.as_object().if_contains("stream")) return std::string(s->at("phase").as_string());
    return "";
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
  for (const char* rate : {"0", "-5", "\"fast\"", "1.5"}) {
    auto r = admin_->Post("/api/v1/migrations",
                          std::string(R"({"id":"cv_bad","strategy":{"type":"canary","read_percentage":0},)"
                                      R"("data":{"type":"none","verify":{"continuous":true,"rows_per_second":)") +
                              rate + "}}}");
    EXPECT_EQ(r.status, 400) << rate << ": " << r.body;
    EXPECT_NE(r.body.find("data.verify.rows_per_second"), std::string::npos) << r.body;
  }
  auto ok = admin_->Post("/api/v1/migrations",
                         R"({"id":"cv_ok","strategy":{"type":"canary","read_percentage":0},)"
                         R"("data":{"type":"none","verify":{"continuous":true,"rows_per_second":1000}}})");
  EXPECT_EQ(ok.status, 201) << ok.body;
}

// data.verify.rows_per_second: while a run is under way the record says how
// far it got; every progress it shows is within the budget (rows <= rate ×
// the run's own elapsed time, as the throttle computes it: no wall clock
// here), chunks are cut to the budget, and the run still names the row
// planted on new.
TEST_F(ContinuousVerifyTest, ThrottledRunReportsItsProgressWithinTheBudgetAndFindsAPlantedRow) {
  constexpr std::int64_t kRows = 3000, kBudget = 500;
  for (int port : {old_, new_})
    Psql(port, "create table t (id int primary key, v text); "
               "insert into t select g, 'row ' || g from generate_series(1, " + std::to_string(kRows) + ") g");
  Psql(new_, "update t set v = 'planted on new' where id = 2718");
  StartTurnout();
  auto c = admin_->Post("/api/v1/migrations",
                        R"({"id":"slow","strategy":{"type":"canary","read_percentage":0},)"
                        R"("data":{"type":"none","verify":{"continuous":true,"interval_s":5,"rows_per_second":)" +
                            std::to_string(kBudget) + "}}}");
  ASSERT_EQ(c.status, 201) << c.body;
  ASSERT_EQ(admin_->Post("/api/v1/migrations/slow/interlay/pg", R"({"endpoint":"pg-new"})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/slow/api/tables", R"({"tables":["t"]})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/slow/migrate").status, 200);

  // Progress of the first run, read until its report is in.
  int partial = 0, seen = 0;
  std::int64_t last_rows = 0;
  ASSERT_TRUE(WaitUntil([&] {
    const json::value cv = Continuous(Get("slow"));
    if (!cv.is_object()) return false;
    if (auto* p = cv.as_object().if_contains("progress")) {
      const std::int64_t rows = p->at("rows").to_number<std::int64_t>();
      const double elapsed = p->at("elapsed_s").to_number<double>();
      ++seen;
      EXPECT_EQ(p->at("rows_per_second").to_number<std::int64_t>(), kBudget);
      EXPECT_EQ(p->at("table").as_string(), "public.t");
      EXPECT_LE(static_cast<double>(rows), kBudget * elapsed + 1) << json::serialize(*p);
      EXPECT_GE(rows, last_rows);  // one run: it only moves forward
      // A chunk is at most one second of the budget.
      EXPECT_EQ(rows % kBudget, 0) << json::serialize(*p);
      last_rows = rows;
      if (rows > 0 && rows < kRows) ++partial;
    }
    return cv.as_object().contains("routes");
  })) << json::serialize(Get("slow")) << Log();
  EXPECT_GT(seen, 0);
  EXPECT_GT(partial, 0) << "no progress was seen before the run ended";
  const json::value report = Continuous(Get("slow"));
  SCOPED_TRACE(json::serialize(report));
  EXPECT_FALSE(report.as_object().contains("progress"));
  const auto& pace = report.at("pace");
  EXPECT_EQ(pace.at("rows").to_number<std::int64_t>(), kRows);
  EXPECT_LE(pace.at("rate").to_number<double>(), kBudget + 1.0);
  EXPECT_LE(static_cast<double>(kRows), kBudget * pace.at("elapsed_s").to_number<double>() + 1);
  const auto rows = ReportedRows(Get("slow"), "public.t");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("kind"), "changed");
  EXPECT_EQ(rows[0].at("key"), (json::object{{"id", "2718"}}));
  const auto& table = report.at("routes").as_array().at(0).at("tables").as_array().at(0);
  EXPECT_EQ(table.at("chunks").to_number<std::int64_t>(), kRows / kBudget + 1);  // and one open-ended past the last key
  EXPECT_EQ(table.at("consistency"), "recheck");  // no change stream: data "none"
  // Both sides, fully: only the planted row differs.
  const std::string all = "select string_agg(t::text, '|' order by id) from t where id <> 2718";
  EXPECT_EQ(Psql(old_, all), Psql(new_, all));
  EXPECT_EQ(Psql(new_, "select v from t where id = 2718"), "planted on new");
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

// Issue 12, "consistency while writes flow": pgbench TPC-B with 8 clients
// through turnout (a relay to old) while the change stream carries every
// write to new and continuous
// verification runs. Every report made while writes flow is in "lsn" mode
// and finds no difference (no false positive: not in the hot branch and
// teller rows, counted as unsettled when they never hold still), nor does a one-off
// POST …/verify; a row planted directly on new is named by its key; once the
// load stops and the plant is removed, both sides are equal row for row.
TEST_F(ContinuousVerifyTest, PgbenchThroughTheStreamGivesNoFalsePositiveAndAPlantedRowIsNamedByKey) {
  const auto& b = TestBackends::Get();
  for (int port : {old_, new_}) {
    auto r = RunProgram({"pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", std::to_string(port), "-U", b.pg_user,
                         db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // New starts empty: the stream's copy brings every row. History gets a
  // key: data movement does not stream a table without one (a keyless table
  // in "lsn" mode: PgVerifyTest.LsnModeReportsNoWriteInFlightAndFallsBackWhenTheStreamLags).
  Psql(new_, "truncate pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history");
  for (int port : {old_, new_}) Psql(port, "alter table pgbench_history add column hid bigserial primary key");
  // A relay to old: every write reaches new through the change stream only.
  StartTurnout();
  auto c = admin_->Post("/api/v1/migrations",
                        R"({"id":"tpcb","strategy":{"type":"canary","read_percentage":0},)"
                        R"("data":{"type":"scan","verify":{"continuous":true,"interval_s":5}}})");
  ASSERT_EQ(c.status, 201) << c.body;
  ASSERT_EQ(admin_->Post("/api/v1/migrations/tpcb/interlay/pg", R"({"endpoint":"pg-new"})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/tpcb/api/tables",
                         R"({"tables":["pgbench_accounts","pgbench_branches","pgbench_tellers","pgbench_history"]})")
                .status,
            200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/tpcb/migrate").status, 200);
  ASSERT_TRUE(WaitUntil([&] { return StreamPhase(Get("tpcb")) == "streaming"; })) << json::serialize(Get("tpcb")) << Log();

  // The load runs (in rounds of 5 s) until the test has seen what it waits
  // for, however slowly verification goes on a loaded machine. Its rate is
  // bounded (400 transactions a second, 1,600 row changes) so that the
  // stream keeps up on a machine running other heavy tests too: unbounded,
  // beside another test's pgbench, the stream fell more than the verifier's
  // wait (10 s) behind, and the recheck that follows cannot tell a row in
  // flight in such a stream from a difference (docs/verification.md).
  std::atomic<bool> load_done{false}, stop_load{false};
  std::string load_out;
  std::thread load([&] {
    while (!stop_load) {
      auto r = RunProgram({"pgbench", "-n", "-c", "8", "-j", "2", "-T", "5", "-R", "400", "-h", "127.0.0.1", "-p",
                           std::to_string(pg_port_), "-U", b.pg_user, db_},
                          "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 60000);
      EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
      load_out = r.out;
      EXPECT_THAT(r.out, ::testing::HasSubstr("number of failed transactions: 0"));
      if (r.exit_code != 0) break;
    }
    load_done = true;
  });
  // Joined on every way out, a failed assertion too.
  StopAndJoin joiner{load, stop_load};
  // Wait for history rows through turnout: the load is flowing.
  ASSERT_TRUE(WaitUntil([&] { return load_done || std::stoll(Psql(old_, "select count(*) from pgbench_history")) > 100; }));
  ASSERT_FALSE(load_done) << load_out << Psql(old_, "select count(*) from pgbench_history") << Log();

  // Reports finished while the load runs (a run that started before it may
  // finish after: only reports started after the load is seen flowing count).
  const std::int64_t runs_before = Runs(Get("tpcb"));
  const std::string planted_key = "100000001";
  bool planted = false, planted_seen = false;
  int clean_reports = 0;
  std::int64_t runs_checked = runs_before + 1;  // the run under way may have started before the load
  auto check = [&](const json::value& m) {
    const std::int64_t runs = Runs(m);
    if (runs <= runs_checked) return;
    runs_checked = runs;
    const json::value cv = Continuous(m);
    ASSERT_TRUE(cv.is_object() && cv.as_object().contains("routes")) << json::serialize(cv);
    const auto& route = cv.at("routes").as_array().at(0);
    SCOPED_TRACE(json::serialize(route));
    // By LSN; where the stream lagged past the wait (a loaded machine), a
    // range is rechecked instead, and the report says so. Either way no
    // write in flight may be reported (the totals below).
    EXPECT_THAT(std::string(route.at("consistency").as_string()),
                ::testing::AnyOf("lsn", "lsn, recheck where the stream lagged"));
    std::int64_t total = 0;
    bool plant_named = false;
    for (const auto& t : route.at("tables").as_array()) {
      EXPECT_THAT(std::string(t.at("consistency").as_string()), ::testing::AnyOf("lsn", "recheck"));
      total += t.at("differences_total").to_number<std::int64_t>();
      for (const auto& row : t.at("rows").as_array())
        if (t.at("table") == "public.pgbench_accounts" && row.at("kind") == "only_new" &&
            row.at("key") == json::object{{"aid", planted_key}})
          plant_named = true;
    }
    if (!planted) {
      EXPECT_EQ(total, 0) << "a difference while only the load wrote";
      ++clean_reports;
    } else if (plant_named) {
      EXPECT_EQ(total, 1) << "only the planted row differs";
      planted_seen = true;
    }
  };
  ASSERT_TRUE(WaitUntil([&] {
    check(Get("tpcb"));
    return clean_reports >= 1 || load_done;
  }, 180000)) << Log();
  ASSERT_FALSE(load_done) << "the load ended before a whole run was made while it ran: "
                          << json::serialize(Continuous(Get("tpcb"))) << Log();
  ASSERT_GE(clean_reports, 1);

  // A one-off verification while the load runs: the same mode, no difference.
  auto once = admin_->Post("/api/v1/migrations/tpcb/verify");
  ASSERT_EQ(once.status, 200) << once.body;
  EXPECT_THAT(std::string(once.json.at("data").at("routes").at(0).at("consistency").as_string()),
              ::testing::AnyOf("lsn", "lsn, recheck where the stream lagged"))
      << once.body;
  EXPECT_TRUE(once.json.at("data").at("equal").as_bool()) << once.body;

  // A row only on new, written behind turnout's and the stream's back.
  Psql(new_, "insert into pgbench_accounts (aid, bid, abalance, filler) values (" + planted_key + ", 1, 0, 'planted')");
  planted = true;
  runs_checked = Runs(Get("tpcb"));  // a run under way may have read accounts before the plant
  ASSERT_TRUE(WaitUntil([&] {
    check(Get("tpcb"));
    return planted_seen;
  }, 180000)) << json::serialize(Continuous(Get("tpcb"))) << Log();
  EXPECT_FALSE(load_done) << "the plant was found only after the load ended";
  stop_load = true;
  load.join();

  // The load stopped; the plant removed: both sides equal, row for row.
  Psql(new_, "delete from pgbench_accounts where aid = " + planted_key);
  for (const char* t : {"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}) {
    const std::string all = std::string("select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from ") + t + " t";
    ASSERT_TRUE(WaitUntil([&] { return Psql(old_, all) == Psql(new_, all); })) << t;
  }
  const std::int64_t runs_now = Runs(Get("tpcb"));
  ASSERT_TRUE(WaitUntil([&] {
    const json::value m = Get("tpcb");
    return Runs(m) > runs_now + 1 && Continuous(m).at("equal").as_bool();
  })) << json::serialize(Continuous(Get("tpcb")));
}

}  // namespace
}  // namespace turnout::testing
