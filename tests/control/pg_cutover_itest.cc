// A cutover's held write window (control/cutover.h) on the harness' real
// servers: two turnout sidecars sharing the Postgres state store, pgbench
// TPC-B through both while write authority moves from old to new; a
// cutover that cannot catch up, abandoned with writes going on on old; and
// a rollback after writes went to new, brought to old by the stream back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/control/change_stream_fixture.h"
#include "tests/control/direct_pg.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/stop_and_join.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

// A writer through turnout: one autocommit insert into acks at a time, a
// new connection after any failure; it keeps the ids it was told committed,
// and runs `after` on the same connection after each of them.
std::thread AckedWriter(std::string conn, std::atomic<bool>& stop, std::vector<long>& acknowledged,
                        std::function<void(PGconn*, long)> after = {}) {
  return std::thread([conn = std::move(conn), &stop, &acknowledged, after = std::move(after)] {
    PGconn* c = nullptr;
    for (long id = 1; !stop; ++id) {
      if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
        if (c != nullptr) PQfinish(c);
        c = PQconnectdb(conn.c_str());
        if (PQstatus(c) != CONNECTION_OK) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
      }
      PGresult* r = PQexec(c, ("insert into acks (id) values (" + std::to_string(id) + ")").c_str());
      const bool inserted = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      if (!inserted) continue;
      acknowledged.push_back(id);
      if (after) after(c, id);
    }
    if (c != nullptr) PQfinish(c);
  });
}

namespace json = boost::json;

constexpr char kSyncDualWrite[] =
    R"({"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";
const std::vector<std::string> kPgbenchTables = {"pgbench_accounts", "pgbench_branches", "pgbench_tellers",
                                                 "pgbench_history"};

struct Sidecar {
  std::unique_ptr<TurnoutProcess> process = std::make_unique<TurnoutProcess>();
  int admin_port = FreePort();
  int pg_port = FreePort();
  std::unique_ptr<AdminClient> admin;
  std::string yaml;  // its configuration, for a restart
};

class CutoverTest : public ChangeStreamTest {
 public:
  CutoverTest() : ChangeStreamTest("cut") {}
  void SetUp() override {
    ChangeStreamTest::SetUp();
    store_db_ = db_ + "_store";
    Psql(old_, "create database " + store_db_, "postgres");
  }
  void TearDown() override {
    for (auto& s : sidecars_) s.process->Signal(SIGKILL);
    ChangeStreamTest::TearDown();
    Psql(old_, "drop database if exists " + store_db_ + " with (force)", "postgres");
  }

  // Sidecar `n` of a fleet sharing the Postgres state store.
  Sidecar& Start(const std::string& limits = "") {
    const auto& b = TestBackends::Get();
    Sidecar& s = sidecars_.emplace_back();
    std::ofstream(s.process->dir() + "/tokens") << kToken << " admin ops\n";
    std::ostringstream y;
    y << "instance_id: sidecar-" << sidecars_.size() << "\nworkers: 1\nadmin:\n  listen: 127.0.0.1:" << s.admin_port
      << "\n  tokens_file: tokens\nstate_store:\n  kind: postgres\n  dsn: \"" << b.PgConnString(old_, store_db_)
      << "\"\njournal:\n  path: journal.log\n"
      << limits << "backends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << old_ << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << "}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << new_ << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << "}\n"
      << "routes:\n  - {name: pg, protocol: postgres, mode: protocol, listen: \"127.0.0.1:" << s.pg_port
      << "\", old: pg-old}\n";
    s.yaml = y.str();
    EXPECT_TRUE(s.process->Start(s.yaml, {s.admin_port, s.pg_port})) << s.process->Log();
    s.admin = std::make_unique<AdminClient>(s.admin_port, kToken);
    return s;
  }
  // A new process for `s` on its ports and configuration (after a kill).
  void Restart(Sidecar& s) {
    s.process = std::make_unique<TurnoutProcess>();
    std::ofstream(s.process->dir() + "/tokens") << kToken << " admin ops\n";
    EXPECT_TRUE(s.process->Start(s.yaml, {s.admin_port, s.pg_port})) << s.process->Log();
  }

  // pgbench TPC-B through `s` in the background.
  std::thread PgbenchVia(const Sidecar& s, int clients, int seconds, RunResult* out) {
    const auto& b = TestBackends::Get();
    const int port = s.pg_port;
    return std::thread([=, this] {
      *out = RunProgram({"pgbench", "-n", "-c", std::to_string(clients), "-j", "1", "-T", std::to_string(seconds), "-h",
                         "127.0.0.1", "-p", std::to_string(port), "-U", b.pg_user, db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 180000);
    });
  }
  static long Processed(const RunResult& r) {
    constexpr std::string_view kLine = "number of transactions actually processed: ";
    const auto at = r.out.find(kLine);
    return at == std::string::npos ? -1 : std::atol(r.out.c_str() + at + kLine.size());
  }

  json::value Record(Sidecar& s, const std::string& id) {
    admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
    return Get(id);
  }
  static std::string CutoverPhase(const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("cutover")) return "";
    return std::string(m.at("cutover").at("phase").as_string());
  }
  // Catching up before the hold, or holding.
  static bool WindowOpen(const json::value& m) {
    return CutoverPhase(m) == "catching_up" || CutoverPhase(m) == "holding";
  }
  // Writes move to new while reads stay half on old, so the migration runs
  // on and new's writes stream back to old. The record once the flip is done.
  json::value FlipWritesToNew(Sidecar& s, const std::string& id) {
    constexpr char kWritesToNew[] = R"({"type":"canary","read_percentage":0.5,"write_mode":{"mode":"new_only"}})";
    auto p = s.admin->Patch("/api/v1/migrations/" + id, std::string(R"({"strategy":)") + kWritesToNew + "}");
    EXPECT_EQ(p.status, 200) << p.body;
    auto m = WaitFor(id, [](const json::value& v) { return !WindowOpen(v); });
    EXPECT_EQ(CutoverPhase(m), "done") << json::serialize(m) << s.process->Log();
    EXPECT_TRUE(m.is_object() && m.at("cutover").as_object().contains("stream_back")) << json::serialize(m);
    return m;
  }

  // TPC-B's invariants on `port`, row by row: every account, teller and
  // branch holds exactly the sum of its history's deltas (all start at 0).
  void ExpectBalancesMatchHistory(int port) {
    DirectPg c(port, db_);
    for (const auto& [table, key, balance] :
         std::vector<std::tuple<std::string, std::string, std::string>>{{"pgbench_accounts", "aid", "abalance"},
                                                                        {"pgbench_tellers", "tid", "tbalance"},
                                                                        {"pgbench_branches", "bid", "bbalance"}}) {
      const std::string wrong = c.Value("select count(*) from " + table + " t left join (select " + key +
                                        ", sum(delta) s from pgbench_history group by " + key + ") h using (" + key +
                                        ") where t." + balance + " <> coalesce(h.s, 0)");
      EXPECT_EQ(wrong, "0") << table << " rows whose balance is not their history's sum on port " << port;
    }
  }

  // pgbench's tables, filled on old, empty on new; history gets a key so
  // the stream carries it (a keyless table is not moved); old commits
  // synchronously (the harness' default is off).
  void InitPgbenchOnOldSchemaOnNew() {
    const auto& b = TestBackends::Get();
    const std::map<std::string, std::string> env = {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}};
    auto init = RunProgram({"pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", std::to_string(old_), "-U",
                            b.pg_user, db_},
                           "", env, 120000);
    ASSERT_EQ(init.exit_code, 0) << init.err;
    auto schema = RunProgram({"pgbench", "-i", "-q", "-I", "dtp", "-s", "1", "-h", "127.0.0.1", "-p",
                              std::to_string(new_), "-U", b.pg_user, db_},
                             "", env, 120000);
    ASSERT_EQ(schema.exit_code, 0) << schema.err;
    for (int port : {old_, new_}) Psql(port, "alter table pgbench_history add column hid bigserial primary key");
    Psql(old_, "alter database " + db_ + " set synchronous_commit = on");
  }
  // Every row of `table` on `port` as text, sorted (a multiset to compare).
  std::vector<std::string> SortedRows(int port, const std::string& table) {
    std::vector<std::string> out;
    std::istringstream in(Rows(port, table));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    std::sort(out.begin(), out.end());
    return out;
  }

  // A route's stream back in the record (progress.routes[].stream_back), or null.
  static json::value StreamBack(const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("progress")) return nullptr;
    for (const auto& r : m.at("progress").at("routes").as_array())
      if (auto* s = r.as_object().if_contains("stream_back")) return *s;
    return nullptr;
  }
  static std::string Field(const json::value& o, const char* key) {
    const auto* f = o.is_object() ? o.as_object().if_contains(key) : nullptr;
    return f != nullptr && f->is_string() ? std::string(f->as_string()) : "";
  }
  // `a` >= `b`, both WAL positions as text (compared by the server).
  bool LsnAtLeast(const std::string& a, const std::string& b) {
    if (a.empty() || b.empty()) return false;
    return Psql(old_, "select '" + a + "'::pg_lsn >= '" + b + "'::pg_lsn") == "t";
  }

  std::string store_db_;
  std::deque<Sidecar> sidecars_;  // stable references
};

// Two sidecars, pgbench TPC-B -c 8 through both (4 each), a PATCH to
// big_bang on one: the window holds new write transactions on both, lets
// the open ones finish, waits for the stream, flips. No transaction fails;
// every one acknowledged is on new; old's rows are on new unchanged.
TEST_F(CutoverTest, TwoSidecarsUnderPgbenchMoveWriteAuthorityWithoutLosingAWrite) {
  InitPgbenchOnOldSchemaOnNew();
  ASSERT_FALSE(HasFatalFailure());
  Sidecar& a = Start();
  Sidecar& second = Start();
  admin_ = std::make_unique<AdminClient>(a.admin_port, kToken);
  Migrate("cut", R"({"type":"scan"})", kSyncDualWrite, kPgbenchTables);
  ASSERT_EQ(StreamPhase(WaitStreaming("cut")), "streaming") << a.process->Log();

  RunResult via_a, via_b;
  std::thread ta = PgbenchVia(a, 4, 12, &via_a), tb = PgbenchVia(second, 4, 12, &via_b);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  auto p = second.admin->Patch("/api/v1/migrations/cut", std::string(R"({"strategy":)") + kBigBang + "}");
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(CutoverPhase(p.json.at("data")), "catching_up") << p.body;
  ta.join();
  tb.join();
  for (const RunResult* r : {&via_a, &via_b}) {
    EXPECT_EQ(r->exit_code, 0) << r->err << r->out;
    EXPECT_THAT(r->out, ::testing::HasSubstr("number of failed transactions: 0")) << r->out;
  }

  auto m = WaitFor("cut", [](const json::value& v) { return State(v) == "Completed" || State(v) == "Failed"; });
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << a.process->Log() << second.process->Log();
  ASSERT_EQ(CutoverPhase(m), "done") << json::serialize(m.at("cutover"));
  const auto hold_ms = m.at("cutover").at("hold_ms").as_int64();
  std::printf("cutover write hold across two sidecars under pgbench -c 8: %lld ms\n", static_cast<long long>(hold_ms));
  for (const auto& s : sidecars_) {  // the runner's steps, with their times
    std::istringstream log(s.process->Log());
    for (std::string line; std::getline(log, line);)
      if (line.find("cutover") != std::string::npos) std::printf("  %s\n", line.c_str());
  }
  EXPECT_EQ(std::string(m.at("strategy").at("type").as_string()), "big_bang");
  // The end-of-copy comparison is not run after the flip: old no longer
  // receives writes, and the window already made new equal to old.
  EXPECT_TRUE(m.at("progress").at("verification").as_object().contains("skipped")) << json::serialize(m.at("progress"));
  EXPECT_EQ(a.admin->Metric(R"(turnout_cutover_write_hold_seconds{migration="cut",outcome="done"})"),
            static_cast<double>(hold_ms) / 1000);

  // Every acknowledged transaction is on new (one history row each), and
  // every account, teller and branch there is the sum of its history.
  DirectPg on_new(new_, db_);
  EXPECT_EQ(std::atol(on_new.Value("select count(*) from pgbench_history").c_str()), Processed(via_a) + Processed(via_b));
  ExpectBalancesMatchHistory(new_);
  // Old took writes until the flip: each of its history rows is on new as
  // it is on old (as multisets: the table has no key).
  const auto old_rows = SortedRows(old_, "pgbench_history"), new_rows = SortedRows(new_, "pgbench_history");
  EXPECT_FALSE(old_rows.empty());
  EXPECT_TRUE(std::includes(new_rows.begin(), new_rows.end(), old_rows.begin(), old_rows.end()))
      << "a history row of old is missing on new or differs there";
  ExpectBalancesMatchHistory(old_);
}


// New cannot apply (a lock held on one of its tables): the window cannot
// close within limits.cutover_timeout, so it is abandoned and writes go on
// on old. Once new can apply again, the next cutover flips, and both sides
// end equal.
TEST_F(CutoverTest, ACutoverThatCannotCatchUpIsAbandonedAndWritesContinueOnOld) {
  const auto& b = TestBackends::Get();
  for (int port : {old_, new_}) {
    auto r = RunProgram({"pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", std::to_string(port), "-U", b.pg_user,
                         db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  Psql(new_, "truncate pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history");
  for (int port : {old_, new_}) Psql(port, "alter table pgbench_history add column hid bigserial primary key");
  Psql(old_, "alter database " + db_ + " set synchronous_commit = on");
  Sidecar& s = Start("limits:\n  cutover_timeout: 2s\n  stream_wait_timeout: 1s\n");
  admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
  Migrate("stuck", R"({"type":"scan"})", kSyncDualWrite, kPgbenchTables);
  ASSERT_EQ(StreamPhase(WaitStreaming("stuck")), "streaming") << s.process->Log();

  // The applier on new waits behind this lock for as long as it is held.
  DirectPg blocker(new_, db_);
  blocker.Rows("begin");
  blocker.Rows("lock table pgbench_accounts in access exclusive mode");
  RunResult load;
  std::thread t = PgbenchVia(s, 2, 8, &load);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto p = s.admin->Patch("/api/v1/migrations/stuck", std::string(R"({"strategy":)") + kBigBang + "}");
  ASSERT_EQ(p.status, 200) << p.body;
  auto m = WaitFor("stuck", [](const json::value& v) { return !WindowOpen(v); });
  ASSERT_EQ(CutoverPhase(m), "abandoned") << json::serialize(m);
  EXPECT_THAT(std::string(m.at("cutover").at("reason").as_string()), ::testing::HasSubstr("did not catch up"));
  EXPECT_EQ(std::string(m.at("strategy").at("type").as_string()), "canary") << "an abandoned cutover flips nothing";
  EXPECT_EQ(State(m), "Running");
  t.join();
  EXPECT_EQ(load.exit_code, 0) << load.err << load.out;
  EXPECT_THAT(load.out, ::testing::HasSubstr("number of failed transactions: 0"));
  // Writes went on on old through the abandoned window: every acknowledged
  // transaction is there (one history row each).
  EXPECT_GT(Processed(load), 0);
  EXPECT_EQ(std::atol(Psql(old_, "select count(*) from pgbench_history").c_str()), Processed(load));

  // New applies again: once it has caught up with what piled up, the next
  // cutover flips, and both sides are equal.
  blocker.Rows("commit");
  const std::string on_old = Psql(old_, "select count(*) from pgbench_history");
  for (int i = 0; i < 600 && Psql(new_, "select count(*) from pgbench_history") != on_old; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p = s.admin->Patch("/api/v1/migrations/stuck", std::string(R"({"strategy":)") + kBigBang + "}");
  ASSERT_EQ(p.status, 200) << p.body;
  m = WaitFor("stuck", [](const json::value& v) { return State(v) == "Completed" || State(v) == "Failed"; });
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process->Log();
  EXPECT_EQ(CutoverPhase(m), "done");
  EXPECT_EQ(m.at("cutover").at("epoch").as_int64(), 2);
  for (const auto& table : kPgbenchTables) ExpectSame(table);
}


// big_bang moves write authority at /migrate. Under pgbench through turnout
// the whole time, writes stay on old while the stream copies and catches
// up, then the window holds them, new catches up, and they flip to new: no
// transaction fails, every acknowledged one is on new, and old's rows are
// on new as they are on old.
TEST_F(CutoverTest, BigBangMigrateUnderPgbenchFlipsOnlyOnceTheStreamHasTheData) {
  InitPgbenchOnOldSchemaOnNew();
  ASSERT_FALSE(HasFatalFailure());
  Sidecar& s = Start();
  admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
  RunResult load;
  std::thread t = PgbenchVia(s, 4, 12, &load);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Migrate("bb", R"({"type":"scan"})", kBigBang, kPgbenchTables);
  const auto at_migrate = Get("bb");
  EXPECT_EQ(CutoverPhase(at_migrate), "waiting_for_data") << json::serialize(at_migrate);
  t.join();
  EXPECT_EQ(load.exit_code, 0) << load.err << load.out;
  EXPECT_THAT(load.out, ::testing::HasSubstr("number of failed transactions: 0")) << load.out;
  auto m = WaitFor("bb", [](const json::value& v) { return State(v) == "Completed" || State(v) == "Failed"; });
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process->Log();
  EXPECT_EQ(CutoverPhase(m), "done") << json::serialize(m.at("cutover"));
  std::printf("big_bang /migrate under pgbench -c 4: writes held %lld ms\n",
              static_cast<long long>(m.at("cutover").at("hold_ms").as_int64()));
  // Every acknowledged transaction is on new (one history row each) and
  // every balance there is the sum of its history; old's rows are on new.
  EXPECT_EQ(std::atol(Psql(new_, "select count(*) from pgbench_history").c_str()), Processed(load));
  ExpectBalancesMatchHistory(new_);
  const auto old_rows = SortedRows(old_, "pgbench_history"), new_rows = SortedRows(new_, "pgbench_history");
  EXPECT_TRUE(std::includes(new_rows.begin(), new_rows.end(), old_rows.begin(), old_rows.end()))
      << "a history row of old is missing on new or differs there";
}

// The only sidecar is killed (-9) while a cutover's window is open (held
// open by a transaction that wrote and did not commit). Restarted, it finds
// the window in the store, drains (the killed sessions are gone), lets new
// catch up and flips. A writer that retries through the whole of it loses
// no acknowledged row: each is on new, and old and new are equal.
TEST_F(CutoverTest, KillingTheSidecarMidWindowThenRestartingItFinishesTheCutover) {
  Both("create table acks (id bigint primary key, at timestamptz default clock_timestamp())");
  Psql(old_, "alter database " + db_ + " set synchronous_commit = on");
  Sidecar& s = Start();
  admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
  Migrate("kill", R"({"type":"scan"})", kSyncDualWrite, {"acks"});
  ASSERT_EQ(StreamPhase(WaitStreaming("kill")), "streaming") << s.process->Log();

  // The writer: one autocommit insert at a time through turnout, a new
  // connection after any failure; it keeps the ids it was told committed.
  std::atomic<bool> stop{false};
  std::vector<long> acknowledged;
  const std::string conn = TestBackends::Get().PgConnString(s.pg_port, db_);
  std::thread writer = AckedWriter(conn, stop, acknowledged);
  StopAndJoin joiner{writer, stop};
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // A transaction that wrote stays open: the window cannot close.
  DirectPg open_txn(s.pg_port, db_);
  open_txn.Rows("begin");
  open_txn.Rows("insert into acks (id) values (-1)");
  auto p = s.admin->Patch("/api/v1/migrations/kill", std::string(R"({"strategy":)") + kBigBang + "}");
  ASSERT_EQ(p.status, 200) << p.body;
  ASSERT_EQ(CutoverPhase(p.json.at("data")), "catching_up") << p.body;
  // It catches up, then holds; the open transaction keeps it holding.
  const auto holding = WaitFor("kill", [](const json::value& v) { return CutoverPhase(v) != "catching_up"; }, 30000);
  ASSERT_EQ(CutoverPhase(holding), "holding") << json::serialize(holding);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(CutoverPhase(Get("kill")), "holding") << "the open transaction keeps the window open";
  s.process->Signal(SIGKILL);
  s.process->Wait(10000);
  Restart(s);

  auto m = WaitFor("kill", [](const json::value& v) { return State(v) == "Completed" || State(v) == "Failed"; });
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process->Log();
  EXPECT_EQ(CutoverPhase(m), "done") << json::serialize(m.at("cutover"));
  EXPECT_EQ(m.at("cutover").at("epoch").as_int64(), 1) << "the window the killed sidecar opened";
  std::this_thread::sleep_for(std::chrono::seconds(1));  // writes on new, after the flip
  stop = true;
  writer.join();

  ASSERT_FALSE(acknowledged.empty());
  std::set<long> on_new;
  {
    std::istringstream ids(Psql(new_, "select id from acks"));
    for (std::string id; std::getline(ids, id);) on_new.insert(std::atol(id.c_str()));
  }
  long missing = 0;
  for (long id : acknowledged) missing += on_new.contains(id) ? 0 : 1;
  EXPECT_EQ(missing, 0) << "acknowledged rows missing on new, of " << acknowledged.size();
  EXPECT_EQ(Psql(new_, "select count(*) from acks where id = -1"), "0") << "the killed transaction never committed";
  // Old took writes until the flip, new after it: every row of old is on
  // new as it is on old.
  const auto old_rows = SortedRows(old_, "acks"), new_rows = SortedRows(new_, "acks");
  EXPECT_TRUE(std::includes(new_rows.begin(), new_rows.end(), old_rows.begin(), old_rows.end()))
      << "a row of old is missing on new or differs there";
}

// After a flip that leaves the migration running, new's writes stream back
// to old. pgbench TPC-B writes to new for 10 s, then `rollback` (under the
// same load) holds writes, lets old catch up with new and rolls back: no
// transaction fails, and old holds every one new acknowledged.
TEST_F(CutoverTest, RollbackAfterTenSecondsOfWritesOnNewLosesNone) {
  InitPgbenchOnOldSchemaOnNew();
  ASSERT_FALSE(HasFatalFailure());
  Sidecar& s = Start();
  admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
  Migrate("back", R"({"type":"scan"})", kSyncDualWrite, kPgbenchTables);
  ASSERT_EQ(StreamPhase(WaitStreaming("back")), "streaming") << s.process->Log();

  auto m = FlipWritesToNew(s, "back");
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(State(m), "Running");
  const std::string old_before = Psql(old_, "select count(*) from pgbench_history");

  RunResult load;
  std::thread t = PgbenchVia(s, 4, 16, &load);
  std::this_thread::sleep_for(std::chrono::seconds(10));
  // Ten seconds of writes went to new only.
  EXPECT_GT(std::atol(Psql(new_, "select count(*) from pgbench_history").c_str()), std::atol(old_before.c_str()));
  auto r = s.admin->Post("/api/v1/migrations/back/rollback");
  ASSERT_EQ(r.status, 200) << r.body;
  m = WaitFor("back", [](const json::value& v) { return State(v) != "Running"; });
  t.join();
  ASSERT_EQ(State(m), "RolledBack") << json::serialize(m) << s.process->Log();
  EXPECT_EQ(std::string(m.at("cutover").at("direction").as_string()), "back");
  EXPECT_EQ(CutoverPhase(m), "done");
  std::printf("write hold of the rollback window under pgbench -c 4: %lld ms\n",
              static_cast<long long>(m.at("cutover").at("hold_ms").as_int64()));
  {
    std::istringstream log(s.process->Log());
    for (std::string line; std::getline(log, line);)
      if (line.find("cutover") != std::string::npos || line.find("stream back") != std::string::npos)
        std::printf("  %s\n", line.c_str());
  }
  EXPECT_EQ(load.exit_code, 0) << load.err << load.out;
  EXPECT_THAT(load.out, ::testing::HasSubstr("number of failed transactions: 0")) << load.out;

  // Every acknowledged transaction, on new before the rollback and on old
  // after it, is on old (one history row each) ...
  EXPECT_EQ(std::atol(Psql(old_, "select count(*) from pgbench_history").c_str()),
            std::atol(old_before.c_str()) + Processed(load));
  ExpectBalancesMatchHistory(old_);
  // ... and every history row new holds is on old as it is on new (old
  // has moved on since the rollback: new's rows are a subset of old's).
  const auto old_rows = SortedRows(old_, "pgbench_history"), new_rows = SortedRows(new_, "pgbench_history");
  EXPECT_TRUE(std::includes(old_rows.begin(), old_rows.end(), new_rows.begin(), new_rows.end()))
      << "a history row new acknowledged is missing on old or differs there";
  // Nothing travelled back where it came from: a transaction of new applied
  // on old and then again on new (by the stream from old) would have set
  // balances there to stale values.
  ExpectBalancesMatchHistory(new_);
  // The stream back is gone from new once the migration rolled back, and
  // the record says it stopped, with what it applied.
  for (int i = 0; i < 100 && Slots(new_) != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Slots(new_), 0);
  m = WaitFor("back", [](const json::value& v) { return Field(StreamBack(v), "phase") == "stopped"; });
  const json::value back = StreamBack(m);
  ASSERT_EQ(Field(back, "phase"), "stopped") << json::serialize(m);
  EXPECT_GT(back.at("transactions").to_number<double>(), 0) << json::serialize(back);
  EXPECT_EQ(back.at("lag_bytes").to_number<double>(), 0) << json::serialize(back);
}

// The sidecar that runs the stream back is killed (-9) while writes flow on
// new, through turnout and straight to new while it is down. Restarted, it
// resumes the stream back from the position stored on old with the rows it
// applied: old ends with every row and column new has, no transaction of
// new applied on old twice (an ALWAYS trigger on old logs every insert the
// applier makes, in its transaction), and the stream back's slot and
// publication are gone from new once the migration completes.
TEST_F(CutoverTest, KillingTheStreamBackRunnerResumesFromItsStoredPositionWithNothingLostOrTwice) {
  Both("create table acks (id bigint primary key, at timestamptz default clock_timestamp())");
  Both("create table tally (k int primary key, n bigint not null, last bigint not null)");
  Both("insert into tally select k, 0, 0 from generate_series(0, 3) k");
  Psql(old_, "create table acks_applied (id bigint not null)");
  Psql(old_, "create function log_ack() returns trigger language plpgsql as "
             "$$ begin insert into acks_applied values (new.id); return new; end $$");
  Psql(old_, "create trigger log_ack before insert on acks for each row execute function log_ack()");
  // The applier runs with session_replication_role = replica: only an
  // ALWAYS trigger fires there.
  Psql(old_, "alter table acks enable always trigger log_ack");
  Psql(old_, "alter database " + db_ + " set synchronous_commit = on");
  Sidecar& s = Start();
  admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
  Migrate("sb", R"({"type":"scan"})", kSyncDualWrite, {"acks", "tally"});
  ASSERT_EQ(StreamPhase(WaitStreaming("sb")), "streaming") << s.process->Log();

  auto m = FlipWritesToNew(s, "sb");
  ASSERT_FALSE(HasFailure());

  // The writer: an insert and an update at a time through turnout (to new),
  // a new connection after any failure; it keeps the ids it was told committed.
  std::atomic<bool> stop{false};
  std::vector<long> acknowledged;
  const std::string conn = TestBackends::Get().PgConnString(s.pg_port, db_);
  std::thread writer = AckedWriter(conn, stop, acknowledged, [](PGconn* c, long id) {
    PQclear(PQexec(c, ("update tally set n = n + 1, last = " + std::to_string(id) + " where k = " + std::to_string(id % 4))
                          .c_str()));
  });
  StopAndJoin joiner{writer, stop};

  // The stream back reports like the forward stream: in the record, the
  // metrics and ctl status.
  m = WaitFor("sb", [](const json::value& v) {
    const json::value back = StreamBack(v);
    return Field(back, "phase") == "streaming" && back.at("rows").to_number<double>() > 0;
  });
  const json::value running = StreamBack(m);
  ASSERT_EQ(Field(running, "phase"), "streaming") << json::serialize(m) << s.process->Log();
  const std::string slot = Field(running, "slot");
  EXPECT_THAT(slot, ::testing::EndsWith("_back"));
  EXPECT_FALSE(Field(running, "applied_lsn").empty());
  EXPECT_GT(s.admin->Metric(R"(turnout_stream_applied_rows_total{direction="back",migration="sb",route="pg"})"), 0);
  auto status = RunProgram({TURNOUT_BINARY, "ctl", "--server", "http://127.0.0.1:" + std::to_string(s.admin_port),
                            "--token", kToken, "status", "sb"});
  EXPECT_THAT(status.out, ::testing::HasSubstr("stream back " + slot + "  streaming")) << status.out << status.err;

  // Killed while writing; new takes writes straight while it is down.
  s.process->Signal(SIGKILL);
  s.process->Wait(10000);
  {
    DirectPg on_new(new_, db_);
    for (long id = 1'000'000; id < 1'000'200; ++id) {
      on_new.Rows("insert into acks (id) values (" + std::to_string(id) + ")");
      on_new.Rows("update tally set n = n + 1, last = " + std::to_string(id) + " where k = " + std::to_string(id % 4));
    }
  }
  // Where old says the stream back got to: the restarted runner starts there.
  const std::string stored = Psql(old_, "select lsn::text from _turnout.stream_position where slot = '" + slot + "'");
  ASSERT_FALSE(stored.empty());
  Restart(s);
  m = WaitFor("sb", [&](const json::value& v) {
    const json::value back = StreamBack(v);
    return Field(back, "phase") == "streaming" && LsnAtLeast(Field(back, "applied_lsn"), stored) &&
           Field(back, "applied_lsn") != stored;
  });
  ASSERT_TRUE(LsnAtLeast(Field(StreamBack(m), "applied_lsn"), stored)) << json::serialize(m) << s.process->Log();
  EXPECT_THAT(s.process->Log(), ::testing::HasSubstr("slot " + slot + ": streaming from " + stored + "\n"))
      << "the restarted stream back resumes from the position stored on old";

  std::this_thread::sleep_for(std::chrono::seconds(2));  // writes through the restarted sidecar
  stop = true;
  writer.join();
  ASSERT_FALSE(acknowledged.empty());
  std::printf("stream back killed and restarted: %zu rows acknowledged through turnout, 200 written to new while "
              "it was down; resumed from %s\n",
              acknowledged.size(), stored.c_str());
  // Old has applied everything new wrote once the record says so.
  const std::string end_of_new = Psql(new_, "select pg_current_wal_lsn()::text");
  m = WaitFor("sb", [&](const json::value& v) { return LsnAtLeast(Field(StreamBack(v), "applied_lsn"), end_of_new); },
              120000);
  ASSERT_TRUE(LsnAtLeast(Field(StreamBack(m), "applied_lsn"), end_of_new)) << json::serialize(m) << s.process->Log();

  // Every row and column of every table: old is new.
  ExpectSame("acks");
  ExpectSame("tally");
  std::set<long> on_old;
  {
    std::istringstream ids(Psql(old_, "select id from acks"));
    for (std::string id; std::getline(ids, id);) on_old.insert(std::atol(id.c_str()));
  }
  long missing = 0;
  for (long id : acknowledged) missing += on_old.contains(id) ? 0 : 1;
  EXPECT_EQ(missing, 0) << "acknowledged rows missing on old, of " << acknowledged.size();
  // Nothing applied twice: each row of old was inserted there once.
  EXPECT_EQ(Psql(old_, "select count(*) from (select id from acks_applied group by id having count(*) > 1) twice"), "0");
  EXPECT_EQ(Psql(old_, "select count(*) from acks_applied"), Psql(old_, "select count(*) from acks"));

  // The migration completes: the stream back is recorded stopped and its
  // slot and publication leave new.
  m = Complete("sb");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m) << s.process->Log();
  m = WaitFor("sb", [](const json::value& v) { return Field(StreamBack(v), "phase") == "stopped"; });
  EXPECT_EQ(Field(StreamBack(m), "phase"), "stopped") << json::serialize(m);
  const std::string left = "select (select count(*) from pg_replication_slots where slot_name = '" + slot +
                           "') + (select count(*) from pg_publication where pubname = '" + slot + "')";
  for (int i = 0; i < 300 && Psql(new_, left) != "0"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Psql(new_, left), "0") << "the stream back's slot or publication is still on new";
  EXPECT_EQ(s.admin->Metric(R"(turnout_stream_applied_rows_total{direction="back",migration="sb",route="pg"})"), -1)
      << "a stopped stream back has no series";
}

// The forward stream marks what it applies on new (so the stream back
// skips it) only from a cutover's fence on: before, new's stored position
// says it does not mark; after the flip it does, and a write straight to
// old, which the forward stream applies on new, does not travel back to
// old. A kill -9 and restart keeps marking (the stored position says so).
TEST_F(CutoverTest, TheForwardStreamMarksFromTheCutoverOnAndNothingItAppliesTravelsBack) {
  Both("create table notes (id bigint primary key, body text not null)");
  Psql(old_, "create table notes_applied (id bigint not null)");
  Psql(old_, "create function log_note() returns trigger language plpgsql as "
             "$$ begin insert into notes_applied values (new.id); return new; end $$");
  Psql(old_, "create trigger log_note before insert on notes for each row execute function log_note()");
  Psql(old_, "alter table notes enable always trigger log_note");
  Sidecar& s = Start();
  admin_ = std::make_unique<AdminClient>(s.admin_port, kToken);
  Migrate("marks", R"({"type":"scan"})", kSyncDualWrite, {"notes"});
  ASSERT_EQ(StreamPhase(WaitStreaming("marks")), "streaming") << s.process->Log();
  auto marks = [&] {
    return Psql(new_, "select marks from _turnout.stream_position where slot like 'turnout_%' and slot not like '%_back'");
  };
  auto wait_on = [&](int port, long id) {
    const std::string q = "select count(*) from notes where id = " + std::to_string(id);
    for (int i = 0; i < 300 && Psql(port, q) != "1"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return Psql(port, q) == "1";
  };
  {
    DirectPg via(s.pg_port, db_);
    via.Rows("insert into notes values (1, 'through turnout, before the cutover')");
  }
  ASSERT_TRUE(wait_on(new_, 1)) << s.process->Log();
  EXPECT_EQ(marks(), "f") << "the forward stream marks before any cutover";

  FlipWritesToNew(s, "marks");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(marks(), "t") << "the cutover's fence did not turn marking on";
  EXPECT_THAT(s.process->Log(), ::testing::HasSubstr("new's transactions are marked from here on"));

  // Straight to old (a client not behind turnout): the forward stream
  // applies it on new, marked; the stream back skips it. A write through
  // turnout after it (to new) reaches old, so the stream back got past it.
  auto round = [&](long direct, long via_turnout) {
    Psql(old_, "insert into notes values (" + std::to_string(direct) + ", 'straight to old')");
    ASSERT_TRUE(wait_on(new_, direct)) << s.process->Log();
    {
      DirectPg via(s.pg_port, db_);
      via.Rows("insert into notes values (" + std::to_string(via_turnout) + ", 'through turnout, to new')");
    }
    ASSERT_TRUE(wait_on(old_, via_turnout)) << "the stream back did not bring a write on new to old\n"
                                            << s.process->Log();
  };
  round(2, 3);
  ASSERT_FALSE(HasFatalFailure());

  // Restarted after a kill -9, the forward stream goes on marking.
  s.process->Signal(SIGKILL);
  s.process->Wait(10000);
  Restart(s);
  round(4, 5);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(marks(), "t");

  // Every row and column on both sides; on old each row was inserted once
  // (nothing came back from new).
  ExpectSame("notes");
  EXPECT_EQ(Psql(old_, "select string_agg(id::text, ',' order by id) from notes_applied"), "1,2,3,4,5")
      << "rows inserted on old, by clients and the stream back";
}

}  // namespace
}  // namespace turnout::testing
