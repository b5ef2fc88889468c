// Secondary work of the PostgreSQL session through real clients (DESIGN.md
// §2): dual-write of transactions under pgbench in every protocol mode, sync
// and async; failures journaled with their statement and parameters; the new
// backend stopped mid dual-write, then repaired; policy changes under load;
// shadow comparison finding a planted difference; shadow writes rolled back;
// a session reading its own async writes. Each test works in a database of
// its own on both harness clusters, so pgbench's tables cannot collide.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "tests/pg/pg_itest_support.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

namespace json = boost::json;

constexpr char kAdminToken[] = "pg-dw-admin-token-0123456789abcdef";
constexpr char kDualSync[] =
    R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";
constexpr char kDualAsync[] =
    R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})";

// A TCP forwarder to the new cluster that a test can kill and restart: the
// new backend "stopped" as turnout sees it (connections cut, then refused).
class StoppableForwarder {
 public:
  explicit StoppableForwarder(int target_port) : target_(target_port), port_(FreePort()) {}
  ~StoppableForwarder() { Stop(); }
  bool Start() {
    const std::string script =
        "import socket, threading, sys\n"
        "ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "ls.bind(('127.0.0.1', " + std::to_string(port_) + ")); ls.listen(64)\n"
        "def pump(a, b):\n"
        "    try:\n"
        "        while True:\n"
        "            d = a.recv(65536)\n"
        "            if not d: break\n"
        "            b.sendall(d)\n"
        "    except OSError: pass\n"
        "    for s in (a, b):\n"
        "        try: s.shutdown(socket.SHUT_RDWR)\n"
        "        except OSError: pass\n"
        "while True:\n"
        "    c, _ = ls.accept()\n"
        "    u = socket.create_connection(('127.0.0.1', " + std::to_string(target_) + "))\n"
        "    threading.Thread(target=pump, args=(c, u), daemon=True).start()\n"
        "    threading.Thread(target=pump, args=(u, c), daemon=True).start()\n";
    child_ = std::make_unique<ChildProcess>();
    child_->Start({"/usr/bin/python3", "-c", script}, "/dev/null");
    return WaitForPort(port_, 10000);
  }
  void Stop() {
    if (child_ && child_->running()) {
      child_->Signal(SIGKILL);
      child_->Wait(10000);
    }
    child_.reset();
  }
  int port() const { return port_; }

 private:
  int target_;
  int port_;
  std::unique_ptr<ChildProcess> child_;
};

class PgDualWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    db_ = "dw_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    for (int port : {b.pg_old_port, b.pg_new_port})
      ASSERT_EQ(Psql(Direct(port, "postgres"), b.pg_password, "create database " + db_).exit_code, 0);
  }
  void TearDown() override {
    turnout_.reset();
    const auto& b = TestBackends::Get();
    for (int port : {b.pg_old_port, b.pg_new_port})
      Psql(Direct(port, "postgres"), b.pg_password, "drop database if exists " + db_ + " with (force)");
  }

  // turnout with the admin API, a state store and a journal; the route's new
  // backend at `new_port` (default: the harness' new cluster). Both backends
  // name the test's database: repair and verify connect there.
  void Start(int new_port = 0) {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    admin_port_ = FreePort();
    turnout_ = std::make_unique<TurnoutProcess>();
    std::ostringstream y;
    y << "instance_id: pgdw-test\nworkers: 2\nlog_level: info\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port_ << "\n  tokens_file: tokens\n"
      << "state_store:\n  path: state.json\njournal:\n  path: journal.log\n"
      << "backends:\n"
      << "  - name: pg-old\n    protocol: postgres\n    address: 127.0.0.1:" << b.pg_old_port << "\n    user: "
      << b.pg_user << "\n    password: " << b.pg_password << "\n    database: " << db_ << "\n"
      << "  - name: pg-new\n    protocol: postgres\n    address: 127.0.0.1:"
      << (new_port != 0 ? new_port : b.pg_new_port) << "\n    user: " << b.pg_user
      << "\n    password: " << b.pg_password << "\n    database: " << db_ << "\n"
      << "routes:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:" << port_
      << "\n    old: pg-old\n    new: pg-new\n";
    std::filesystem::create_directories(turnout_->dir());
    std::ofstream(turnout_->dir() + "/tokens") << kAdminToken << " admin ops\n";
    ASSERT_TRUE(turnout_->Start(y.str(), {port_, admin_port_})) << turnout_->Log();
    admin_ = AdminClient(admin_port_, kAdminToken);
  }
  void CreateMigration(const std::string& id, const std::string& strategy) {
    auto r = admin_.Post("/api/v1/migrations", R"({"id":")" + id + R"(","strategy":)" + strategy + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }
  void PatchStrategy(const std::string& id, const std::string& strategy) {
    auto r = admin_.Patch("/api/v1/migrations/" + id, R"({"strategy":)" + strategy + "}");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  double Metric(const std::string& series) const { return admin_.Metric(series); }
  json::value Journal(const std::string& id) {
    auto r = admin_.Get("/api/v1/migrations/" + id + "/journal");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json.is_object() ? r.json.at("data") : json::value();
  }

  static std::string Direct(int port, const std::string& db) { return PgUrl(port, TestBackends::Get().pg_user, db); }
  std::string Url() const { return PgUrl(port_, TestBackends::Get().pg_user, db_); }
  RunResult Both(const std::string& sql) {
    const auto& b = TestBackends::Get();
    auto r = Psql(Direct(b.pg_old_port, db_), b.pg_password, sql);
    if (r.exit_code != 0) return r;
    return Psql(Direct(b.pg_new_port, db_), b.pg_password, sql);
  }
  RunResult Pgbench(const std::vector<std::string>& args, int timeout_ms = 180000) {
    std::vector<std::string> argv = {"pgbench"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, "", {{"PGPASSWORD", TestBackends::Get().pg_password}}, timeout_ms);
  }
  // pgbench's tables, initialised identically on both sides.
  void InitPgbench() {
    const auto& b = TestBackends::Get();
    for (int port : {b.pg_old_port, b.pg_new_port}) {
      auto r = Pgbench({"-q", "-i", "-s", "1", Direct(port, db_)});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  // Row by row: a count and a hash of every row, in a fixed order. History's
  // mtime is the server's clock and differs by nature.
  std::string Fingerprint(int port, const std::string& relation) {
    const std::string q = "select count(*) || ':' || md5(coalesce(string_agg(t::text, ',' order by t::text), '')) from " +
                          relation + " t";
    auto r = Psql(Direct(port, db_), TestBackends::Get().pg_password, q);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  // Polls (async work settles after the clients) until both sides agree.
  void ExpectPgbenchTablesEqual() {
    const auto& b = TestBackends::Get();
    for (const std::string rel : {"pgbench_accounts", "pgbench_branches", "pgbench_tellers",
                                  "(select tid, bid, aid, delta from pgbench_history)"}) {
      std::string o = Fingerprint(b.pg_old_port, rel), n = Fingerprint(b.pg_new_port, rel);
      for (int i = 0; i < 40 && o != n; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        n = Fingerprint(b.pg_new_port, rel);
      }
      EXPECT_EQ(o, n) << rel;
    }
  }

  std::unique_ptr<TurnoutProcess> turnout_;
  int port_ = 0;
  int admin_port_ = 0;
  AdminClient admin_{0, kAdminToken};
  std::string db_;
  static inline int counter_ = 0;
};

// ------------------------------------------------------------------ dual-write

struct PgbenchCase {
  const char* protocol;  // pgbench -M
  const char* apply;     // sync | async
  int seconds;
};

class PgDualWritePgbenchTest : public PgDualWriteTest, public ::testing::WithParamInterface<PgbenchCase> {};

// TPC-B: every write inside BEGIN … END, 8 clients.
TEST_P(PgDualWritePgbenchTest, TransactionsLeaveBothSidesEqual) {
  const PgbenchCase c = GetParam();
  InitPgbench();
  ASSERT_FALSE(HasFatalFailure());
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw", std::string(c.apply) == "sync" ? kDualSync : kDualAsync);
  auto r = Pgbench({"-n", "-M", c.protocol, "-c", "8", "-j", "2", "-T", std::to_string(c.seconds), Url()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  EXPECT_NE(r.out.find("number of failed transactions: 0 "), std::string::npos) << r.out;
  ExpectPgbenchTablesEqual();
  EXPECT_GT(Metric(R"(turnout_dualwrite_total{result="applied",route="pg"})"), 1000);
  EXPECT_EQ(Metric(R"(turnout_dualwrite_total{result="failed",route="pg"})"), 0);
  EXPECT_EQ(Journal("pgdw").at("pending").as_int64(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, PgDualWritePgbenchTest,
                         ::testing::Values(PgbenchCase{"prepared", "sync", 30}, PgbenchCase{"simple", "sync", 10},
                                           PgbenchCase{"extended", "sync", 10}, PgbenchCase{"prepared", "async", 10},
                                           PgbenchCase{"simple", "async", 10}),
                         [](const auto& test) {
                           return std::string(test.param.protocol) + "_" + test.param.apply;
                         });

// psycopg (3) binds parameters server-side: Parse/Bind/Execute/Sync.
TEST_F(PgDualWriteTest, ExtendedWriteFailingOnNewIsJournaledWithItsParameters) {
  ASSERT_EQ(Both("create table items(id int primary key, name text)").exit_code, 0);
  const auto& b = TestBackends::Get();
  ASSERT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password, "insert into items values (7, 'planted')").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw_fail", kDualSync);
  const std::string script =
      "import psycopg, os\n"
      "with psycopg.connect(os.environ['URL'], autocommit=True) as c:\n"
      "    for i in range(1, 11):\n"
      "        c.execute('insert into items values (%s, %s)', (i, 'item-' + str(i)))\n"
      "    with c.transaction():\n"
      "        c.execute('update items set name = %s where id = %s', ('renamed', 3))\n"
      "print('ok')\n";
  auto r = Python(script, {{"URL", Url()}, {"PGPASSWORD", b.pg_password}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  // The authoritative old side has every row; new refused the duplicate.
  EXPECT_EQ(Psql(Direct(b.pg_old_port, db_), b.pg_password, "select count(*) from items").out, "10\n");
  auto j = Journal("pgdw_fail");
  ASSERT_EQ(j.at("pending").as_int64(), 1) << json::serialize(j);
  const auto& e = j.at("entries").as_array().at(0);
  EXPECT_EQ(e.at("kind").as_string(), "failed") << json::serialize(e);
  EXPECT_EQ(e.at("backend").as_string(), "pg-new");
  EXPECT_EQ(e.at("database").as_string(), db_);
  EXPECT_NE(std::string(e.at("statement").as_string()).find("insert into items"), std::string::npos) << json::serialize(e);
  const std::string params = json::serialize(e.at("params"));
  EXPECT_NE(params.find("\"7\""), std::string::npos) << params;
  EXPECT_NE(params.find("item-7"), std::string::npos) << params;
  EXPECT_NE(json::serialize(e.at("targets")).find("items"), std::string::npos) << json::serialize(e);
  EXPECT_NE(std::string(e.at("secondary").as_string()).find("23505"), std::string::npos)
      << json::serialize(e);
  // The update inside a transaction reached new too.
  EXPECT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password, "select name from items where id = 3").out, "renamed\n");
  EXPECT_EQ(Metric(R"(turnout_dualwrite_total{result="failed",route="pg"})"), 1);
}

// A transaction the client rolls back, or that fails on old, leaves nothing
// on new; a statement that failed under a savepoint is rolled back to it on
// both sides, and the rest of its transaction commits on both.
TEST_F(PgDualWriteTest, RolledBackAndFailedTransactionsLeaveNewUntouched) {
  ASSERT_EQ(Both("create table ledger(id int primary key, amount int check (amount >= 0))").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw_rb", kDualSync);
  const auto& b = TestBackends::Get();
  const std::string sql =
      "begin; insert into ledger values (1, 10); rollback;\n"
      "begin; insert into ledger values (2, 20); insert into ledger values (3, -1); commit;\n"
      "begin; insert into ledger values (4, 40); commit;\n"
      "begin; insert into ledger values (5, 50); savepoint s; insert into ledger values (5, 55);\n"
      "rollback to savepoint s; insert into ledger values (6, 60); commit;\n";
  auto script = RunProgram({"psql", "-X", "-q", Url()}, sql, {{"PGPASSWORD", b.pg_password}}, 60000);
  ASSERT_EQ(script.exit_code, 0) << script.err;
  for (int port : {b.pg_old_port, b.pg_new_port})
    EXPECT_EQ(Psql(Direct(port, db_), b.pg_password, "select string_agg(id::text, ',' order by id) from ledger").out,
              "4,5,6\n")
        << port;
  EXPECT_EQ(Journal("pgdw_rb").at("pending").as_int64(), 0);
}

// atomic: true — the new side prepares before old commits, so a transaction
// new cannot commit is rolled back on both sides.
TEST_F(PgDualWriteTest, AtomicTransactionsCommitOnBothSidesOrNeither) {
  ASSERT_EQ(Both("create table wallet(id int primary key, balance int)").exit_code, 0);
  const auto& b = TestBackends::Get();
  // New refuses balances of 1000 or more; old does not.
  ASSERT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password,
                 "alter table wallet add constraint small check (balance < 1000)")
                .exit_code,
            0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw_atomic", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync","atomic":true}})");
  const std::string script =
      "import psycopg2, os\n"
      "c = psycopg2.connect(os.environ['URL'])\n"
      "cur = c.cursor()\n"
      "cur.execute('insert into wallet values (1, 10)')\n"
      "cur.execute('update wallet set balance = balance + 5 where id = 1')\n"
      "c.commit()\n"
      "cur.execute('insert into wallet values (2, 5000)')\n"  // new refuses this one
      "c.commit()\n"
      "cur.execute('select count(*) from wallet')\n"
      "print(cur.fetchone()[0])\n";
  auto r = Python(script, {{"URL", Url()}, {"PGPASSWORD", b.pg_password}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  EXPECT_EQ(r.out, "1\n");
  for (int port : {b.pg_old_port, b.pg_new_port})
    EXPECT_EQ(Psql(Direct(port, db_), b.pg_password, "select string_agg(id || ':' || balance, ',') from wallet").out,
              "1:15\n")
        << port;
  EXPECT_NE(turnout_->Log().find("could not prepare"), std::string::npos) << turnout_->Log();
  // Nothing is left prepared on new.
  EXPECT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password,
                 "select count(*) from pg_prepared_xacts where gid like 'turnout\\_%' and database = current_database()")
                .out,
            "0\n");
}

TEST_F(PgDualWriteTest, NewBackendStoppedMidDualWriteIsJournaledAndRepaired) {
  InitPgbench();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  StoppableForwarder forwarder(b.pg_new_port);
  ASSERT_TRUE(forwarder.Start());
  Start(forwarder.port());
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw_down", kDualSync);
  auto load = std::async(std::launch::async,
                         [&] { return Pgbench({"-n", "-M", "extended", "-c", "4", "-j", "2", "-T", "12", Url()}); });
  std::this_thread::sleep_for(std::chrono::seconds(3));
  forwarder.Stop();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(forwarder.Start());
  auto r = load.get();
  // The authoritative old side kept serving: no client saw an error.
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  EXPECT_NE(r.out.find("number of failed transactions: 0 "), std::string::npos) << r.out;
  auto j = Journal("pgdw_down");
  EXPECT_GT(j.at("pending").as_int64(), 0) << json::serialize(j);
  for (const auto& e : j.at("entries").as_array()) {
    EXPECT_EQ(e.at("backend").as_string(), "pg-new");
    const std::string kind(e.at("kind").as_string());
    EXPECT_TRUE(kind == "dropped" || kind == "failed") << kind;
  }
  EXPECT_GT(Metric(R"(turnout_dualwrite_total{result="dropped",route="pg"})") +
                Metric(R"(turnout_dualwrite_total{result="failed",route="pg"})"),
            0);
  // As a job, followed in the record: pgbench_history has no key and is
  // compared and copied whole, which under a loaded machine takes longer
  // than one HTTP request may wait.
  auto repair = admin_.Post("/api/v1/migrations/pgdw_down/repair", R"({"wait": false})");
  ASSERT_EQ(repair.status, 202) << repair.body << turnout_->Log();
  std::string state;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::minutes(5);
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(std::chrono::milliseconds(500))) {
    auto m = admin_.Get("/api/v1/migrations/pgdw_down");
    ASSERT_EQ(m.status, 200) << m.body;
    const auto* job = m.json.at("data").as_object().if_contains("repair");
    state = job != nullptr && job->is_object() ? std::string(job->at("state").as_string()) : "";
    if (state != "running") break;
  }
  EXPECT_EQ(state, "finished") << turnout_->Log();
  EXPECT_EQ(Journal("pgdw_down").at("pending").as_int64(), 0);
  ExpectPgbenchTablesEqual();
}

TEST_F(PgDualWriteTest, PolicyChangesUnderLoadFailNoRequest) {
  InitPgbench();
  ASSERT_FALSE(HasFatalFailure());
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw_flip", kDualSync);
  auto load = std::async(std::launch::async,
                         [&] { return Pgbench({"-n", "-M", "extended", "-c", "4", "-j", "2", "-T", "14", Url()}); });
  const char* strategies[] = {
      R"({"type":"canary","read_percentage":0.5,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})",
      R"({"type":"canary","read_percentage":1.0,"write_mode":{"mode":"dual_write","policy":"new_authoritative","apply":"sync"}})",
      R"({"type":"canary","read_percentage":0.2,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})",
      R"({"type":"canary","read_percentage":0.8,"write_mode":{"mode":"dual_write","policy":"new_authoritative","apply":"async"}})",
      kDualSync};
  for (const char* s : strategies) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    PatchStrategy("pgdw_flip", s);
  }
  auto r = load.get();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  EXPECT_NE(r.out.find("number of failed transactions: 0 "), std::string::npos) << r.out;
  ExpectPgbenchTablesEqual();
  EXPECT_EQ(Journal("pgdw_flip").at("pending").as_int64(), 0);
}

// Under canary reads from new and async dual-write, a session's read right
// after its own write finds it, even when new applies writes slowly.
TEST_F(PgDualWriteTest, SessionReadsItsOwnAsyncWrites) {
  ASSERT_EQ(Both("create table notes(id int primary key, body text)").exit_code, 0);
  const auto& b = TestBackends::Get();
  ASSERT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password,
                 "create function slow() returns trigger language plpgsql as "
                 "$$ begin perform pg_sleep(0.02); return new; end $$;"
                 "create trigger slow before insert on notes for each row execute function slow()")
                .exit_code,
            0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgdw_ryw", R"({"type":"canary","read_percentage":1.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})");
  const std::string script =
      "import psycopg, os\n"
      "missed = 0\n"
      "with psycopg.connect(os.environ['URL'], autocommit=True) as c:\n"
      "    for i in range(1, 51):\n"
      "        c.execute('insert into notes values (%s, %s)', (i, 'n' + str(i)))\n"
      "        if c.execute('select body from notes where id = %s', (i,)).fetchone() is None: missed += 1\n"
      "print(missed)\n";
  auto r = Python(script, {{"URL", Url()}, {"PGPASSWORD", b.pg_password}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  EXPECT_EQ(r.out, "0\n");
  // The writes reach new a little later (20 ms each there).
  std::string on_new;
  for (int i = 0; i < 40 && on_new != "50\n"; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    on_new = Psql(Direct(b.pg_new_port, db_), b.pg_password, "select count(*) from notes").out;
  }
  EXPECT_EQ(on_new, "50\n");
}

// ------------------------------------------------------------------ shadow

TEST_F(PgDualWriteTest, ShadowFindsAPlantedDifference) {
  const auto& b = TestBackends::Get();
  ASSERT_EQ(Psql(Direct(b.pg_old_port, db_), b.pg_password,
                 "create table prices(id int primary key, price numeric);"
                 "insert into prices select g, g * 10 from generate_series(1, 50) g")
                .exit_code,
            0);
  // Same rows on new, stored in the opposite order, one price planted.
  ASSERT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password,
                 "create table prices(id int primary key, price numeric);"
                 "insert into prices select g, g * 10 from generate_series(50, 1, -1) g;"
                 "update prices set price = 999 where id = 13")
                .exit_code,
            0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgsh", R"({"type":"shadow_traffic"})");
  const std::string script =
      "import psycopg, psycopg2, os\n"
      "with psycopg2.connect(os.environ['URL']) as c:\n"  // simple protocol
      "    c.autocommit = True\n"
      "    cur = c.cursor()\n"
      "    cur.execute('select id, price from prices where id <> 13')\n"
      "    assert len(cur.fetchall()) == 49\n"
      "    cur.execute('select count(*) from prices')\n"
      "with psycopg.connect(os.environ['URL'], autocommit=True) as c:\n"  // extended protocol
      "    rows = c.execute('select id, price from prices where id between %s and %s order by id', (12, 14)).fetchall()\n"
      "    assert rows[1] == (13, 130), rows\n"
      "print('ok')\n";
  auto r = Python(script, {{"URL", Url()}, {"PGPASSWORD", b.pg_password}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  // Comparisons run off the reply path: wait for the three.
  for (int i = 0; i < 40 && Metric(R"(turnout_shadow_comparisons_total{result="match",route="pg"})") +
                                    Metric(R"(turnout_shadow_comparisons_total{result="mismatch",route="pg"})") <
                                3;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  // Rows in another order match as a multiset; the planted price does not.
  EXPECT_EQ(Metric(R"(turnout_shadow_comparisons_total{result="match",route="pg"})"), 2) << turnout_->Log();
  EXPECT_EQ(Metric(R"(turnout_shadow_comparisons_total{result="mismatch",route="pg"})"), 1);
  EXPECT_EQ(Metric(R"(turnout_shadow_mismatches_total{kind="rows",route="pg"})"), 1);
  auto s = admin_.Get("/api/v1/migrations/pgsh/shadow");
  ASSERT_EQ(s.status, 200) << s.body;
  const auto& m = s.json.at("data").at("mismatches").as_array();
  ASSERT_EQ(m.size(), 1u) << s.body;
  EXPECT_NE(std::string(m[0].at("request").as_string()).find("between"), std::string::npos) << s.body;
  EXPECT_NE(std::string(m[0].at("secondary").as_string()).find("999"), std::string::npos) << s.body;
  EXPECT_EQ(std::string(m[0].at("primary").as_string()).find("999"), std::string::npos) << s.body;
  // Nothing was written anywhere.
  EXPECT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password, "select price from prices where id = 13").out, "999\n");
}

TEST_F(PgDualWriteTest, ShadowWritesAreComparedAndRolledBackOnNew) {
  ASSERT_EQ(Both("create table events(id int primary key, kind text)").exit_code, 0);
  const auto& b = TestBackends::Get();
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgsh_w", R"({"type":"shadow_traffic","shadow_writes":true})");
  for (int i = 1; i <= 5; ++i)
    ASSERT_EQ(Psql(Url(), b.pg_password, "insert into events values (" + std::to_string(i) + ", 'click')").exit_code, 0);
  ASSERT_EQ(Psql(Url(), b.pg_password, "update events set kind = 'view' where id <= 2").exit_code, 0);
  for (int i = 0; i < 40 && Metric(R"(turnout_shadow_comparisons_total{result="match",route="pg"})") +
                                    Metric(R"(turnout_shadow_comparisons_total{result="mismatch",route="pg"})") <
                                6;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  // Each insert hit 1 row on both sides; the update 0 rows on new, 2 on old.
  EXPECT_EQ(Metric(R"(turnout_shadow_comparisons_total{result="match",route="pg"})"), 5) << turnout_->Log();
  EXPECT_EQ(Metric(R"(turnout_shadow_mismatches_total{kind="command_tag",route="pg"})"), 1);
  EXPECT_EQ(Psql(Direct(b.pg_old_port, db_), b.pg_password, "select count(*) from events").out, "5\n");
  EXPECT_EQ(Psql(Direct(b.pg_new_port, db_), b.pg_password, "select count(*) from events").out, "0\n");
}

}  // namespace
}  // namespace turnout::testing
