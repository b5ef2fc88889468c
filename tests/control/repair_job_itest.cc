// POST …/repair as a job (control/repair_job.h) against the harness'
// Postgres servers, through real turnout processes: the record shows the
// running repair's progress and, once it ended, its summary; a second
// repair of the migration is refused with 409 on the same sidecar and on
// another sharing a Postgres state store; {"wait": false} answers 202; a
// bad body is a 400 that starts nothing. Each data test ends with both
// sides compared row for row, every column.
//
// No timing assertions. Where a test must see the job in a given place it
// holds a lock on new that the repair waits for (a "gate"), and releases it
// once it saw what it needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "tests/control/direct_pg.h"
#include "tests/control/own_database_fixture.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "repair-job-admin-token-0123456789";
constexpr char kTables[] = "t1, t2, t3, t4";

class RepairJobTest : public OwnDatabaseTest {
 protected:
  RepairJobTest() : OwnDatabaseTest("rj") {}
  void TearDown() override {
    for (auto& p : processes_) p->Signal(SIGKILL);
    processes_.clear();
    if (!store_db_.empty()) Psql(old_, "drop database if exists " + store_db_ + " with (force)", "postgres");
    OwnDatabaseTest::TearDown();
  }

  // A sidecar; with `pg_store` the state store is a database of the old
  // cluster shared by every sidecar of the test.
  AdminClient& StartSidecar(const std::string& instance, bool pg_store) {
    const auto& b = TestBackends::Get();
    auto& p = processes_.emplace_back(std::make_unique<TurnoutProcess>());
    const int admin_port = FreePort(), pg_port = FreePort();
    std::ofstream(p->dir() + "/tokens") << kToken << " admin ops\n";
    if (pg_store && store_db_.empty()) {
      store_db_ = db_ + "_store";
      Psql(old_, "create database " + store_db_, "postgres");
    }
    std::ostringstream y;
    y << "instance_id: " << instance << "\nworkers: 1\nadmin:\n  listen: 127.0.0.1:" << admin_port
      << "\n  tokens_file: tokens\n";
    if (pg_store) y << "state_store:\n  kind: postgres\n  dsn: \"" << b.PgConnString(old_, store_db_) << "\"\n";
    else y << "state_store:\n  path: state.json\n";
    y << "journal:\n  path: journal.log\nbackends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << "}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << "}\n"
      << "routes:\n  - {name: pg, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << pg_port
      << "\", old: pg-old}\n";
    EXPECT_TRUE(p->Start(y.str(), {admin_port, pg_port})) << p->Log();
    ports_.push_back(admin_port);
    return *clients_.emplace_back(std::make_unique<AdminClient>(admin_port, kToken));
  }

  // The migration "rj": writes stay on old (the repair copies old → new),
  // the route moved to pg-new, the test's tables in scope.
  void CreateMigration(AdminClient& c, const std::string& tables) {
    auto created = c.Post("/api/v1/migrations", R"({"id":"rj","strategy":{"type":"canary","read_percentage":0}})");
    ASSERT_EQ(created.status, 201) << created.body;
    ASSERT_EQ(c.Post("/api/v1/migrations/rj/interlay/pg", R"({"endpoint":"pg-new"})").status, 200);
    std::string list;
    for (const auto& t : Split(tables)) list += (list.empty() ? "\"" : ",\"") + t + "\"";
    auto scoped = c.Post("/api/v1/migrations/rj/api/tables", "{\"tables\":[" + list + "]}");
    ASSERT_EQ(scoped.status, 200) << scoped.body;
  }
  static std::vector<std::string> Split(const std::string& tables) {
    std::vector<std::string> out;
    std::stringstream in(tables);
    for (std::string t; std::getline(in, t, ',');) {
      while (!t.empty() && t.front() == ' ') t.erase(0, 1);
      out.push_back(t);
    }
    return out;
  }

  // The record's repair object (null when there is none).
  static json::value Repair(const AdminClient& c) {
    auto r = c.Get("/api/v1/migrations/rj");
    if (r.status != 200 || !r.json.is_object()) return nullptr;
    auto* repair = r.json.at("data").as_object().if_contains("repair");
    return repair ? *repair : json::value(nullptr);
  }
  static std::string Str(const json::value& v, const char* key) {
    auto* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
    return f && f->is_string() ? std::string(f->as_string()) : "";
  }
  static std::int64_t Int(const json::value& v, const char* key) {
    auto* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
    return f && f->is_number() ? f->to_number<std::int64_t>() : -1;
  }
  static json::value Progress(const json::value& repair) {
    auto* p = repair.is_object() ? repair.as_object().if_contains("progress") : nullptr;
    return p ? *p : json::value(nullptr);
  }

  static bool WaitUntil(const std::function<bool()>& done, int timeout_ms = 120000) {
    const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    do {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (Clock::now() < until);
    return done();
  }

  // Every row of `table`, every column, in key order.
  std::string AllRows(int port, const std::string& table) {
    return Psql(port, "select coalesce(string_agg(t::text, '|' order by id), 'empty') from " + table + " t");
  }

  RunResult Ctl(int admin_port, std::vector<std::string> args) {
    std::vector<std::string> argv = {TURNOUT_BINARY, "ctl", "--server", "http://127.0.0.1:" + std::to_string(admin_port),
                                     "--token", kToken};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv);
  }

  std::string Logs() const {
    std::string out;
    for (const auto& p : processes_) out += p->Log();
    return out;
  }

  std::vector<std::unique_ptr<TurnoutProcess>> processes_;
  std::vector<std::unique_ptr<AdminClient>> clients_;
  std::vector<int> ports_;
  std::string store_db_;
};

// Four tables; on new, of 20,000 rows each, t1 has 3,000 rows changed, t2
// lacks 3,000 rows, t3 has 3,000 rows of its own and 500 changed: each
// repaired by rows, 9,500 rows. t4's 25,000 rows all differ, more than a
// repair by rows names: resynchronised whole, its 25,000 source rows count.
TEST_F(RepairJobTest, TheRecordShowsTheRunningRepairsProgressThenItsSummary) {
  for (int port : {old_, new_})
    for (const auto& t : Split(kTables))
      Psql(port, "create table " + t + " (id int primary key, v text, n int); insert into " + t +
                     " select g, 'row ' || g, g % 97 from generate_series(1, " + (t == "t4" ? "25000" : "20000") +
                     ") g");
  Psql(new_, "update t1 set v = 'stale' where id % 5 = 0 and id <= 15000");
  Psql(new_, "delete from t2 where id > 17000");
  Psql(new_, "insert into t3 select g, 'only on new', null from generate_series(30001, 33000) g; "
             "update t3 set n = -1 where id <= 500");
  Psql(new_, "update t4 set v = v || '!'");

  AdminClient& c = StartSidecar("rj-a", /*pg_store=*/false);
  CreateMigration(c, kTables);
  ASSERT_TRUE(Repair(c).is_null()) << "no repair has run yet";

  // The gate: t3's repair waits for this SHARE lock (it takes SHARE ROW
  // EXCLUSIVE, within its 10 s lock_timeout); reads, the verifier's, do not.
  auto gate = std::make_unique<DirectPg>(new_, db_);
  gate->Value("begin");
  gate->Value("lock table t3 in share mode");

  auto started = c.Post("/api/v1/migrations/rj/repair", R"({"wait": false})");
  ASSERT_EQ(started.status, 202) << started.body;
  const json::value job = started.json.at("data").at("repair");
  EXPECT_EQ(started.json.at("data").at("migration"), "rj");
  EXPECT_EQ(Str(job, "state"), "running");
  EXPECT_EQ(Str(job, "runner"), "rj-a");
  EXPECT_EQ(Str(job, "actor"), "ops");
  EXPECT_FALSE(Str(job, "started_at").empty());

  // Running records, in the order seen, until the job waits at the gate:
  // t1 and t2 done (6,000 rows), t3 started.
  std::vector<json::value> running;
  ASSERT_TRUE(WaitUntil([&] {
    const json::value r = Repair(c);
    if (Str(r, "state") != "running") return false;
    running.push_back(Progress(r));
    const json::value& p = running.back();
    return Str(p, "phase") == "found" && Str(p, "table") == "public.t3" && Int(p, "tables_done") == 2;
  })) << json::serialize(Repair(c)) << Logs();
  const json::value at_gate = running.back();
  SCOPED_TRACE(json::serialize(at_gate));
  EXPECT_EQ(Int(at_gate, "rows"), 6000);
  EXPECT_EQ(Int(at_gate, "tables_total"), 4);
  EXPECT_EQ(Str(at_gate, "route"), "pg");
  EXPECT_GT(at_gate.at("elapsed_s").to_number<double>(), 0);
  for (std::size_t i = 1; i < running.size(); ++i)
    EXPECT_GE(Int(running[i], "rows"), Int(running[i - 1], "rows")) << "rows went back at record " << i;

  // Meanwhile: a second repair is refused, probes and metrics answer, ctl
  // status says where the job is.
  auto second = c.Post("/api/v1/migrations/rj/repair");
  EXPECT_EQ(second.status, 409) << second.body;
  EXPECT_THAT(second.body, HasSubstr("a repair of migration rj is already running on rj-a since"));
  auto second_nowait = c.Post("/api/v1/migrations/rj/repair", R"({"wait": false})");
  EXPECT_EQ(second_nowait.status, 409) << second_nowait.body;
  EXPECT_EQ(c.Get("/healthz").status, 200);
  EXPECT_EQ(c.Metric("turnout_repairs_running"), 1);
  EXPECT_EQ(c.Metric(R"(turnout_repair_rows_total{route="pg"})"), 6000);
  auto status = Ctl(ports_[0], {"status", "rj"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("repair    running  runner rj-a"));
  EXPECT_THAT(status.out, HasSubstr("found  pg public.t3  6000 rows repaired  tables 2 of 4"));

  gate->Value("rollback");
  gate.reset();
  ASSERT_TRUE(WaitUntil([&] { return Str(Repair(c), "state") != "running"; })) << json::serialize(Repair(c)) << Logs();
  const json::value done = Repair(c);
  SCOPED_TRACE(json::serialize(done));
  EXPECT_EQ(Str(done, "state"), "finished");
  EXPECT_EQ(Str(done, "started_at"), Str(job, "started_at"));
  EXPECT_FALSE(Str(done, "finished_at").empty());
  EXPECT_GT(done.at("elapsed_s").to_number<double>(), 0);
  const json::value last = Progress(done);
  EXPECT_EQ(Int(last, "rows"), 9500 + 25000);  // more than at the gate: it moved on
  EXPECT_EQ(Int(last, "tables_done"), 4);
  EXPECT_EQ(Int(last, "tables_total"), 4);
  const json::value& summary = done.at("summary");
  EXPECT_EQ(Int(summary, "tables_repaired"), 4);
  EXPECT_EQ(Int(summary, "rows_upserted"), 3000 + 3000 + 500 + 25000);
  EXPECT_EQ(Int(summary, "rows_deleted"), 3000);
  EXPECT_EQ(Int(summary, "failures"), 0);
  EXPECT_EQ(summary.at("postgres_equal"), true);
  EXPECT_EQ(c.Metric("turnout_repairs_running"), 0);
  EXPECT_EQ(c.Metric(R"(turnout_repairs_total{result="finished"})"), 1);
  EXPECT_EQ(c.Metric(R"(turnout_repair_rows_total{route="pg"})"), 9500 + 25000);
  for (const auto& t : Split(kTables)) EXPECT_EQ(AllRows(old_, t), AllRows(new_, t)) << t;

  // The default form waits and answers with the full result; its record
  // replaces the last one.
  auto again = c.Post("/api/v1/migrations/rj/repair");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json.at("data").at("postgres_equal"), true);
  EXPECT_TRUE(again.json.at("data").at("tables_repaired").as_array().empty());
  const json::value after = Repair(c);
  EXPECT_EQ(Str(after, "state"), "finished");
  EXPECT_NE(Str(after, "started_at"), "");
  EXPECT_EQ(Int(after.at("summary"), "tables_repaired"), 0);
  EXPECT_EQ(c.Metric(R"(turnout_repairs_total{result="finished"})"), 2);
  auto finished = Ctl(ports_[0], {"status", "rj"});
  EXPECT_THAT(finished.out, HasSubstr("repair    finished  runner rj-a"));
  EXPECT_THAT(finished.out, HasSubstr("0 tables (0 rows upserted, 0 deleted), 0 keys, 0 entries cleared, 0 pending; "
                                      "postgres equal; 0 failures"));
  for (const auto& t : Split(kTables)) EXPECT_EQ(AllRows(old_, t), AllRows(new_, t)) << t;
}

// Two sidecars share a Postgres state store: while one repairs, the other
// refuses a repair of the same migration (409 naming the runner once the
// record reached it); once the first ended, the other may repair.
TEST_F(RepairJobTest, OneRepairOfAMigrationAtATimeAcrossSidecars) {
  for (int port : {old_, new_})
    Psql(port, "create table t1 (id int primary key, v text); "
               "insert into t1 select g, 'row ' || g from generate_series(1, 2000) g");
  Psql(new_, "update t1 set v = 'stale' where id % 10 = 0");
  AdminClient& a = StartSidecar("rj-a", /*pg_store=*/true);
  AdminClient& b = StartSidecar("rj-b", /*pg_store=*/true);
  CreateMigration(a, "t1");
  ASSERT_TRUE(WaitUntil([&] { return b.Get("/api/v1/migrations/rj").status == 200; }));

  // The gate: the verifier's reads of t1 on new wait for this lock.
  auto gate = std::make_unique<DirectPg>(new_, db_);
  gate->Value("begin");
  gate->Value("lock table t1 in access exclusive mode");

  auto started = a.Post("/api/v1/migrations/rj/repair", R"({"wait":false})");
  ASSERT_EQ(started.status, 202) << started.body;
  for (const char* body : {"", R"({"wait":false})", R"({"wait":true})"}) {
    auto refused = b.Post("/api/v1/migrations/rj/repair", body);
    EXPECT_EQ(refused.status, 409) << body << ": " << refused.body;
    EXPECT_THAT(refused.body, HasSubstr("a repair of migration rj is already running"));
  }
  // Once A's record reached B, B's refusal names A.
  ASSERT_TRUE(WaitUntil([&] { return Str(Repair(b), "runner") == "rj-a"; })) << json::serialize(Repair(b));
  EXPECT_EQ(Str(Repair(b), "state"), "running");
  auto named = b.Post("/api/v1/migrations/rj/repair");
  EXPECT_EQ(named.status, 409) << named.body;
  EXPECT_THAT(named.body, HasSubstr("already running on rj-a since"));
  EXPECT_EQ(b.Metric("turnout_repairs_running"), 0);
  EXPECT_EQ(a.Metric("turnout_repairs_running"), 1);

  gate->Value("rollback");
  gate.reset();
  ASSERT_TRUE(WaitUntil([&] { return Str(Repair(b), "state") == "finished"; })) << json::serialize(Repair(b)) << Logs();
  const json::value done = Repair(b);
  EXPECT_EQ(Str(done, "runner"), "rj-a");
  EXPECT_EQ(Int(done.at("summary"), "rows_upserted"), 200);
  EXPECT_EQ(done.at("summary").at("postgres_equal"), true);
  EXPECT_EQ(a.Metric(R"(turnout_repair_rows_total{route="pg"})"), 200);

  // A's lock is gone with its job: B repairs (nothing is left to repair).
  auto by_b = b.Post("/api/v1/migrations/rj/repair");
  ASSERT_EQ(by_b.status, 200) << by_b.body;
  EXPECT_EQ(by_b.json.at("data").at("postgres_equal"), true);
  // B's record reaches A: its start ("running") first, then its end.
  ASSERT_TRUE(WaitUntil([&] {
    const json::value r = Repair(a);
    return Str(r, "runner") == "rj-b" && Str(r, "state") == "finished";
  })) << json::serialize(Repair(a));
  EXPECT_EQ(AllRows(old_, "t1"), AllRows(new_, "t1"));
}

// A body POST …/repair cannot read is a 400 that starts nothing.
TEST_F(RepairJobTest, ABadBodyIsRefusedAndStartsNothing) {
  for (int port : {old_, new_})
    Psql(port, "create table t1 (id int primary key, v text); insert into t1 values (1, 'a'), (2, 'b')");
  Psql(new_, "update t1 set v = 'stale' where id = 2");
  AdminClient& c = StartSidecar("rj-a", /*pg_store=*/false);
  CreateMigration(c, "t1");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"wait":"no"})", "wait: expected true or false"},
      {R"({"wait":false,"now":true})", "now: unknown field"},
      {R"([false])", "body: expected a JSON object"},
      {R"({"wait":)", "invalid JSON"},
      {R"({"wait":false,"wait":true})", "wait: duplicate key"},
  };
  for (const auto& [body, error] : bad) {
    auto r = c.Post("/api/v1/migrations/rj/repair", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_THAT(r.body, HasSubstr(error)) << body;
  }
  EXPECT_TRUE(Repair(c).is_null()) << json::serialize(Repair(c));
  EXPECT_EQ(c.Metric(R"(turnout_repairs_total{result="finished"})"), 0);
  EXPECT_EQ(Psql(new_, "select v from t1 where id = 2"), "stale");
  // An unknown migration is a 404, before the body matters.
  EXPECT_EQ(c.Post("/api/v1/migrations/nope/repair", R"({"wait":false})").status, 404);

  // A good one, through ctl without waiting, repairs.
  auto ctl = Ctl(ports_[0], {"repair", "rj", "--no-wait"});
  ASSERT_EQ(ctl.exit_code, 0) << ctl.out << ctl.err;
  EXPECT_THAT(ctl.out, HasSubstr("repair    running  runner rj-a"));
  EXPECT_THAT(ctl.out, HasSubstr("follow it with: turnout ctl status rj --watch"));
  ASSERT_TRUE(WaitUntil([&] { return Str(Repair(c), "state") == "finished"; })) << json::serialize(Repair(c)) << Logs();
  EXPECT_EQ(Int(Repair(c).at("summary"), "rows_upserted"), 1);
  auto ok = c.Post("/api/v1/migrations/rj/repair", R"({"wait":true})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.json.at("data").at("postgres_equal"), true);
  EXPECT_EQ(AllRows(old_, "t1"), AllRows(new_, "t1"));
}

}  // namespace
}  // namespace turnout::testing
