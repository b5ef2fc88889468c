// The Postgres change stream (control/pg_change_stream.h) against the
// harness' real servers: writes through turnout while /migrate copies and
// streams, DDL, triggers, server-side COPY and two-phase commit in the
// stream, kill -9 of turnout mid-copy and mid-stream, lost connections, and the slot
// gone after Completed, RolledBack and DELETE. Every test works in a
// database of its own (slots, publications and the DDL trigger are per
// database) and ends with a full comparison of every row and column.
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

#include "control/pg_set_aside_indexes.h"
#include "tests/control/change_stream_fixture.h"
#include "tests/control/own_database_fixture.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

// The issue's insert: a random value, the client's id, from 8 clients.
constexpr char kEvInsert[] = "\\set c random(1, 1000000)\ninsert into ev (client, n) values (:client_id, :c);\n";

constexpr char kEvTable[] =
    "create table ev (id bigserial primary key, client int, n int, at timestamptz default now(), "
    "r float default random(), u uuid default gen_random_uuid())";

TEST_F(ChangeStreamTest, NonDeterministicWritesDuringCopyAndStreamArriveExactly) {
  Both(kEvTable);
  Psql(old_, "insert into ev (client, n) select 0, g from generate_series(1, 50000) g");
  StartTurnout();
  Migrate("ev_stream", R"({"type":"scan"})", kCanary, {"ev"});
  // 8 clients insert through turnout while the copy runs and after it.
  auto bench = Pgbench(kEvInsert, 8, 8);
  ASSERT_EQ(bench.exit_code, 0) << bench.err << bench.out;
  EXPECT_THAT(bench.out, ::testing::HasSubstr("number of failed transactions: 0"));
  auto m = Complete("ev_stream");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("ev");
  EXPECT_EQ(Slots(old_), 0) << "the slot outlived the Completed migration";
  // New's sequence moved past every streamed id: the next insert there fits.
  const std::string max_old = Psql(old_, "select max(id) from ev");
  EXPECT_GT(std::stoll(Psql(new_, "insert into ev (client, n) values (-1, -1) returning id")), std::stoll(max_old));
  EXPECT_EQ(Psql(old_, "select count(*) from pg_publication"), "0");
}

// The issue's ev workload under dual_write sync: the session sends no
// statement to new (it would be evaluated again: other ids, now(), random());
// the stream carries every committed row exactly, and nothing is journaled.
TEST_F(ChangeStreamTest, DualWriteUnderTheStreamSendsNoStatementToNewAndEveryRowArrivesExactly) {
  Both(kEvTable);
  Psql(old_, "insert into ev (client, n) select 0, g from generate_series(1, 1000) g");
  StartTurnout(/*protocol=*/true);
  Migrate("dw_stream", R"({"type":"scan"})",
          R"({"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})",
          {"ev"});
  auto bench = Pgbench(kEvInsert, 8, 8);
  ASSERT_EQ(bench.exit_code, 0) << bench.err << bench.out;
  EXPECT_THAT(bench.out, ::testing::HasSubstr("number of failed transactions: 0"));
  auto m = Complete("dw_stream");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("ev");
  EXPECT_EQ(Psql(new_, "select count(*) - count(distinct id) from ev"), "0");
  auto j = admin_->Get("/api/v1/migrations/dw_stream/journal");
  ASSERT_EQ(j.status, 200) << j.body;
  EXPECT_EQ(j.json.at("data").at("pending").as_int64(), 0) << j.body;
}

TEST_F(ChangeStreamTest, PgbenchTpcbThroughTurnoutForTheWholeMigrationLeavesNoDifference) {
  const auto& b = TestBackends::Get();
  for (int port : {old_, new_}) {
    auto r = RunProgram({"pgbench", "-i", "-q", "-s", "2", "-h", "127.0.0.1", "-p", std::to_string(port), "-U", b.pg_user,
                         db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // new starts empty: the copy brings every row.
  Psql(new_, "truncate pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history");
  Psql(old_, "alter table pgbench_history add column hid bigserial primary key");
  Psql(new_, "alter table pgbench_history add column hid bigserial primary key");
  StartTurnout();
  std::thread load([&] {
    auto r = RunProgram({"pgbench", "-n", "-c", "8", "-j", "2", "-T", "10", "-h", "127.0.0.1", "-p",
                         std::to_string(pg_port_), "-U", b.pg_user, db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, ::testing::HasSubstr("number of failed transactions: 0"));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Migrate("cs_tpcb", R"({"type":"scan"})", kCanary,
          {"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"});
  load.join();
  auto m = Complete("cs_tpcb");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  for (const char* t : {"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}) ExpectSame(t);
  EXPECT_EQ(Slots(old_), 0);
}

TEST_F(ChangeStreamTest, UpdatesAndDeletesOfRowsTheCopyHasNotReachedAreNotUndone) {
  Both("create table big (id int primary key, v text, pad text)");
  Psql(old_, "insert into big select g, 'v' || g, repeat('x', 200) from generate_series(1, 200000) g");
  StartTurnout();
  Migrate("updel", R"({"type":"scan"})", kCanary, {"big"});
  // While the copy runs: change and delete rows all over the key range.
  for (int i = 0; i < 20; ++i) {
    ViaTurnout("update big set v = 'changed-" + std::to_string(i) + "' where id % 20 = " + std::to_string(i) +
               " and id > 150000");
    ViaTurnout("delete from big where id between " + std::to_string(190000 + i * 100) + " and " +
               std::to_string(190000 + i * 100 + 10));
  }
  auto m = Complete("updel");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("big");
}

TEST_F(ChangeStreamTest, DdlThroughTurnoutMidStreamIsAppliedInOrder) {
  Both("create table items (id int primary key, name text)");
  Psql(old_, "insert into items select g, 'n' || g from generate_series(1, 1000) g");
  StartTurnout();
  Migrate("ddl", R"({"type":"scan"})", kCanary, {"items"});
  ASSERT_EQ(StreamPhase(WaitStreaming("ddl")), "streaming") << Log();
  ViaTurnout("alter table items add column extra text default 'd'");
  ViaTurnout("insert into items (id, name, extra) values (1001, 'new', 'uses-extra')");
  ViaTurnout("create index items_extra on items (extra)");
  ViaTurnout("update items set extra = 'e' || id where id <= 10");
  // The applied rows reach /metrics (insert 1 + update 10, at least).
  const std::string series = "turnout_stream_applied_rows_total{migration=\"ddl\",route=\"pg\"}";
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (admin_->Metric(series) < 11 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(admin_->Metric(series), 11) << admin_->Get("/metrics").body;
  auto m = Complete("ddl");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("items");
  EXPECT_EQ(Psql(new_, "select count(*) from pg_indexes where indexname = 'items_extra'"), "1");
}

// A migration of every table streams the tables created while it runs: with
// a key, without one, created in the transaction that fills it, or by
// CREATE TABLE AS (which new runs on its own copy of the source rows).
TEST_F(ChangeStreamTest, TablesCreatedMidStreamAreStreamedWhenEveryTableMoves) {
  Both("create table items (id int primary key, name text)");
  Psql(old_, "insert into items select g, 'n' || g from generate_series(1, 200) g");
  StartTurnout();
  Migrate("later", R"({"type":"scan"})", kCanary, {});
  ASSERT_EQ(StreamPhase(WaitStreaming("later")), "streaming") << Log();
  ViaTurnout("create table later (id bigserial primary key, at timestamptz default clock_timestamp(), "
             "r float default random())");
  ViaTurnout("insert into later (r) select random() from generate_series(1, 500)");
  ViaTurnout("update later set r = -r where id % 7 = 0");
  ViaTurnout("begin; create table filled (id int primary key, v text); "
             "insert into filled select g, md5(random()::text) from generate_series(1, 300) g; commit");
  // Matched by every column: types whose cast to text differs from how
  // they print (bool, char(n), inet), and a timestamptz.
  ViaTurnout("create table keyless (a int, b text default md5(random()::text), flag bool default true, "
             "code char(8) default 'x', addr inet default '10.0.0.1', at timestamptz default clock_timestamp())");
  ViaTurnout("insert into keyless (a) select g % 50 from generate_series(1, 400) g");
  ViaTurnout("update keyless set b = 'changed', flag = false where a = 3");
  ViaTurnout("delete from keyless where a = 4");
  ViaTurnout("create table summary as select id, name from items where id <= 50");
  ViaTurnout("insert into summary values (1000, 'after')");
  ViaTurnout("create unlogged table scratch (id int primary key)");  // cannot be published: a warning only
  ViaTurnout("insert into items values (201, 'last')");
  auto m = Complete("later");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("items");
  ExpectSame("later");
  ExpectSame("filled");
  ExpectSame("keyless");  // ordered by the whole row
  ExpectSame("summary");
  EXPECT_EQ(Psql(old_, "select relreplident from pg_class where relname = 'keyless'"), "f");
}

TEST_F(ChangeStreamTest, TriggersServerSideCopyAndPreparedTransactionsArriveEqual) {
  Both("create table orders (id int primary key, amount int)");
  Both("create table audit (id bigserial primary key, order_id int, note text)");
  Both("create function audit_order() returns trigger language plpgsql as $$ begin "
       "insert into audit (order_id, note) values (new.id, 'at ' || clock_timestamp()); return new; end $$");
  Both("create trigger orders_audit after insert on orders for each row execute function audit_order()");
  Psql(old_, "insert into orders select g, g from generate_series(1, 100) g");
  StartTurnout();
  Migrate("trig", R"({"type":"scan"})", kCanary, {"orders", "audit"});
  ASSERT_EQ(StreamPhase(WaitStreaming("trig")), "streaming") << Log();
  // The server reads the file: it must be readable by the server's user.
  const std::string file = "/tmp/turnout_cs_" + db_ + ".csv";
  {
    std::ofstream f(file);
    for (int i = 1000; i < 1500; ++i) f << i << "," << i * 2 << "\n";
  }
  ::chmod(file.c_str(), 0644);
  ViaTurnout("copy orders from '" + file + "' (format csv)");
  ViaTurnout("insert into orders values (2000, 1)");
  ViaTurnout("begin; insert into orders values (3000, 3); prepare transaction 'cs_" + db_ + "'");
  ViaTurnout("commit prepared 'cs_" + db_ + "'");
  ViaTurnout("begin; insert into orders values (4000, 4); prepare transaction 'cs2_" + db_ + "'");
  ViaTurnout("rollback prepared 'cs2_" + db_ + "'");
  auto m = Complete("trig");
  ::unlink(file.c_str());
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("orders");
  ExpectSame("audit");
  EXPECT_EQ(Psql(new_, "select count(*) from orders where id = 4000"), "0");
  EXPECT_EQ(Psql(new_, "select count(*) from pg_prepared_xacts where database = current_database()"), "0");
}

TEST_F(ChangeStreamTest, KillingTurnoutAndDroppingConnectionsMidStreamLosesAndDuplicatesNothing) {
  Both(kEvTable);
  Psql(old_, "insert into ev (client, n) select 0, g from generate_series(1, 1000) g");
  StartTurnout();
  Migrate("crash", R"({"type":"scan"})", kCanary, {"ev"});
  ASSERT_EQ(StreamPhase(WaitStreaming("crash")), "streaming") << Log();
  const auto& b = TestBackends::Get();
  // Writes straight to old, so they go on while turnout is down.
  std::thread load([&] {
    const std::string file = process_->dir() + "/w.sql";
    std::ofstream(file) << "insert into ev (client, n) values (:client_id, 1);\n";
    auto r = RunProgram({"pgbench", "-n", "-c", "4", "-T", "8", "-f", file, "-h", "127.0.0.1", "-p",
                         std::to_string(old_), "-U", b.pg_user, db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  process_->Signal(SIGKILL);
  process_->Wait(5000);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  StartTurnout();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  // new drops the applier's connection, old the replication connection.
  Psql(new_, "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
             "and application_name = 'turnout-change-stream'");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  Psql(old_, "select pg_terminate_backend(active_pid) from pg_replication_slots where database = current_database() "
             "and active");
  load.join();
  auto m = Complete("crash");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  EXPECT_EQ(Psql(new_, "select count(*) - count(distinct id) from ev"), "0");
  ExpectSame("ev");
}

// kill -9 of turnout while its copy fills a table whose indexes it set
// aside: the kill leaves new with the table's indexes dropped and their
// statements recorded (control/pg_set_aside_indexes.h); the runner started
// after it copies the table again, builds the indexes, and the stream brings
// every write old took meanwhile. 1,000,000 rows, so the copy is caught
// halfway on a fast machine too.
TEST_F(ChangeStreamTest, KillingTurnoutMidCopyBuildsTheIndexesItSetAsideAndLosesNothing) {
  // `code` is character(n): its padding is cut on the way (binary COPY) and
  // padded back by new, killed mid-way or not.
  Both("create table big (id bigserial primary key, v int, pad text, code char(12))");
  Both("create index big_v on big (v)");
  Psql(old_,
       "insert into big (v, pad, code) select g % 1000, repeat('x', 60), 'c' || g % 97 from generate_series(1, 1000000) g");
  const std::string index_defs =
      "select string_agg(pg_get_indexdef(indexrelid), '; ' order by indexrelid::regclass::text) from pg_index "
      "where indrelid = 'big'::regclass";
  const std::string defs_on_old = Psql(old_, index_defs);
  StartTurnout();
  const auto& b = TestBackends::Get();
  // Writes straight to old, before, during and after the kill.
  std::thread load([&] {
    const std::string file = process_->dir() + "/w.sql";
    std::ofstream(file) << "\\set id random(1, 1000000)\n"
                           "update big set v = v + 1 where id = :id;\n"
                           "insert into big (v, pad, code) values (:client_id, 'new', 'é');\n";
    auto r = RunProgram({"pgbench", "-n", "-c", "2", "-T", "10", "-f", file, "-h", "127.0.0.1", "-p",
                         std::to_string(old_), "-U", b.pg_user, db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  });
  Migrate("copy_crash", R"({"type":"scan"})", kCanary, {"big"});
  // Killed once new's COPY into the table has taken rows.
  const auto until = Clock::now() + std::chrono::seconds(60);
  while (Psql(new_, "select count(*) from pg_stat_progress_copy where relid = 'big'::regclass and tuples_processed > 0") ==
             "0" &&
         Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  process_->Signal(SIGKILL);
  process_->Wait(5000);
  // As the kill left new: the indexes dropped, their statements kept.
  EXPECT_EQ(Psql(new_, "select count(*) from pg_index where indrelid = 'big'::regclass"), "0")
      << "turnout was not killed mid-copy";
  EXPECT_EQ(Psql(new_, "select count(*) from _turnout.set_aside_indexes"), "2");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  StartTurnout();
  load.join();
  auto m = Complete("copy_crash");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  EXPECT_THAT(Log(), ::testing::HasSubstr("built the indexes an earlier copy set aside on public.big"));
  EXPECT_EQ(Psql(new_, index_defs), defs_on_old) << Log();
  EXPECT_EQ(Psql(new_, "select count(*) from _turnout.set_aside_indexes"), "0");
  EXPECT_EQ(Slots(old_), 0) << "the killed runner's slot is left behind";
  // Every row and column, compared by the digest of the whole table in key
  // order (the rows as text would be 100 MB per side).
  const std::string digest = "select count(*) || ' ' || md5(string_agg(t::text, E'\\n' order by id)) from big t";
  EXPECT_EQ(Psql(new_, digest), Psql(old_, digest));
}

// kill -9 of new's postmaster mid-stream, then a restart (crash recovery):
// what new committed with its position survives, the rest comes again from
// the slot. new is a cluster of this test's own (the harness' is shared).
TEST_F(ChangeStreamTest, KillingNewMidStreamLosesAndDuplicatesNothing) {
  const std::string harness = std::string(TURNOUT_SOURCE_DIR) + "/tests/harness/backends.sh";
  const std::string dir = "/tmp/turnout-cs-new-" + std::to_string(::getpid());
  auto started = RunProgram({harness, "pg-start", dir, "crashy"}, "", {}, 120000);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const int crashy = std::stoi(started.out);
  struct Cleanup {
    std::string harness, dir;
    ~Cleanup() {
      RunProgram({harness, "stop", dir});
      RunProgram({"rm", "-rf", dir});
    }
  } cleanup{harness, dir};

  Psql(old_, kEvTable);
  Psql(old_, "insert into ev (client, n) select 0, g from generate_series(1, 1000) g");
  Psql(crashy, kEvTable, "app");
  StartTurnout(/*protocol=*/false, crashy, "app");
  Migrate("crash_new", R"({"type":"scan"})", kCanary, {"ev"});
  ASSERT_EQ(StreamPhase(WaitStreaming("crash_new")), "streaming") << Log();
  const auto& b = TestBackends::Get();
  std::thread load([&] {
    const std::string file = process_->dir() + "/w.sql";
    std::ofstream(file) << "insert into ev (client, n) values (:client_id, 2);\n";
    auto r = RunProgram({"pgbench", "-n", "-c", "4", "-T", "8", "-f", file, "-h", "127.0.0.1", "-p",
                         std::to_string(old_), "-U", b.pg_user, db_},
                        "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto crash = RunProgram({harness, "pg-crash", dir, "crashy"});
  EXPECT_EQ(crash.exit_code, 0) << crash.err;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto restart = RunProgram({harness, "pg-restart", dir, "crashy"}, "", {}, 120000);
  ASSERT_EQ(restart.exit_code, 0) << restart.err;
  load.join();
  auto m = Complete("crash_new");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  EXPECT_THAT(Log(), ::testing::HasSubstr("retrying from the stored position")) << "the crash went unnoticed";
  EXPECT_EQ(Psql(crashy, "select count(*) - count(distinct id) from ev", "app"), "0");
  const std::string o = Rows(old_, "ev"), n = Psql(crashy, "select t::text from ev t order by 1", "app");
  EXPECT_FALSE(o.empty());
  EXPECT_TRUE(o == n) << "old and new differ after new crashed: " << std::count(o.begin(), o.end(), '\n') + 1
                      << " rows on old, " << std::count(n.begin(), n.end(), '\n') + 1 << " on new";
}

// Two Postgres routes in one migration stream at once: the second route's
// copy and stream do not wait for the first one's stream to end.
TEST_F(ChangeStreamTest, TwoRoutesOfOneMigrationStreamAtOnce) {
  const std::string db2 = db_ + "_b";
  for (int port : {old_, new_}) {
    Psql(port, "drop database if exists " + db2 + " with (force)", "postgres");
    Psql(port, "create database " + db2, "postgres");
  }
  struct Cleanup {
    ChangeStreamTest* t;
    std::string db;
    ~Cleanup() {
      for (int port : {t->old_, t->new_}) {
        t->Psql(port, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = '" + db + "'",
                "postgres");
        t->Psql(port, "drop database if exists " + db + " with (force)", "postgres");
      }
    }
  } cleanup{this, db2};
  Both(kEvTable);
  for (int port : {old_, new_}) Psql(port, kEvTable, db2);
  Psql(old_, "insert into ev (client, n) select 1, g from generate_series(1, 500) g");
  Psql(old_, "insert into ev (client, n) select 2, g from generate_series(1, 500) g", db2);
  StartTurnout(false, 0, "", db2);
  ASSERT_EQ(admin_->Post("/api/v1/migrations", R"({"id":"two","strategy":{"type":"canary","read_percentage":0},"data":{"type":"scan"}})").status, 201);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/two/interlay/pg", R"({"endpoint":"pg-new"})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/two/interlay/pg2", R"({"endpoint":"pg-new2"})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/two/api/tables", R"({"tables":["ev"]})").status, 200);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/two/migrate").status, 200);
  // Both routes reach "streaming", and writes to each arrive while both run.
  auto both = WaitFor("two", [](const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("progress")) return false;
    int n = 0;
    for (const auto& r : m.at("progress").at("routes").as_array()) n += r.at("phase") == "streaming";
    return n == 2;
  });
  ASSERT_TRUE(both.is_object()) << Log();
  Psql(old_, "insert into ev (client, n) values (1, -1)");
  Psql(old_, "insert into ev (client, n) values (2, -2)", db2);
  const auto until = Clock::now() + std::chrono::seconds(30);
  while ((Psql(new_, "select count(*) from ev where n < 0") != "1" ||
          Psql(new_, "select count(*) from ev where n < 0", db2) != "1") &&
         Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Psql(new_, "select count(*) from ev where n < 0"), "1") << Log();
  EXPECT_EQ(Psql(new_, "select count(*) from ev where n < 0", db2), "1") << Log();
  auto m = Complete("two");
  ASSERT_EQ(State(m), "Completed") << json::serialize(m.as_object().contains("progress") ? m.at("progress") : m) << Log();
  ExpectSame("ev");
  EXPECT_EQ(Psql(old_, "select t::text from ev t order by 1", db2), Psql(new_, "select t::text from ev t order by 1", db2));
}

TEST_F(ChangeStreamTest, TheSlotIsKeptWhilePausedAndDroppedAfterRollback) {
  Both("create table a (id int primary key)");
  Psql(old_, "insert into a select generate_series(1, 100)");
  StartTurnout();
  Migrate("rb", R"({"type":"scan"})", kCanary, {"a"});
  ASSERT_EQ(StreamPhase(WaitStreaming("rb")), "streaming") << Log();
  EXPECT_EQ(Slots(old_), 1);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/rb/rollback").status, 200);
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (Slots(old_) != 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Slots(old_), 0) << Log();

  // Paused: the slot stays (resume continues exactly), then a rollback and
  // DELETE leave nothing behind.
  Migrate("del", R"({"type":"scan"})", kCanary, {"a"});
  ASSERT_EQ(StreamPhase(WaitStreaming("del")), "streaming") << Log();
  EXPECT_EQ(Slots(old_), 1);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/del/pause").status, 200);
  Psql(old_, "insert into a values (1000)");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(Slots(old_), 1);
  ASSERT_EQ(admin_->Post("/api/v1/migrations/del/resume").status, 200);
  const auto until1 = Clock::now() + std::chrono::seconds(30);
  while (Psql(new_, "select count(*) from a where id = 1000") != "1" && Clock::now() < until1)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Psql(new_, "select count(*) from a where id = 1000"), "1") << "the write made while paused";
  ASSERT_EQ(admin_->Post("/api/v1/migrations/del/rollback").status, 200);
  auto d = admin_->Delete("/api/v1/migrations/del");
  ASSERT_EQ(d.status, 200) << d.body;
  const auto until2 = Clock::now() + std::chrono::seconds(30);
  while (Slots(old_) != 0 && Clock::now() < until2) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Slots(old_), 0) << Log();
  EXPECT_EQ(Psql(old_, "select count(*) from pg_event_trigger where evtname = 'turnout_ddl'"), "0");
}

// A copy cut short by kill -9 leaves the indexes it set aside recorded on new
// (control/pg_set_aside_indexes.h); when the migration then ends, with no
// copy to come that would build them, data movement's clean-up does.
TEST_F(ChangeStreamTest, IndexesACutShortCopySetAsideAreBuiltOnceTheMigrationEnds) {
  Both("create table a (id int primary key, v int)");
  Both("create index a_v on a (v)");
  Psql(old_, "insert into a select g, g % 7 from generate_series(1, 100) g");
  StartTurnout();
  Migrate("rb", R"({"type":"scan"})", kCanary, {"a"});
  ASSERT_EQ(StreamPhase(WaitStreaming("rb")), "streaming") << Log();
  // As the cut-short copy left it: the indexes gone, their record kept.
  auto side = control::PgConnectSide(BackendOf(new_), "new", "cs-itest");
  ASSERT_TRUE(side.ok()) << side.status();
  auto aside = control::SetIndexesAside(*side, "a");
  ASSERT_TRUE(aside.ok()) << aside.status();
  ASSERT_EQ(*aside, 2);
  ASSERT_EQ(Psql(new_, "select count(*) from pg_index where indrelid = 'a'::regclass"), "0");

  ASSERT_EQ(admin_->Post("/api/v1/migrations/rb/rollback").status, 200);
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (Psql(new_, "select count(*) from _turnout.set_aside_indexes") != "0" && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Psql(new_, "select string_agg(pg_get_indexdef(indexrelid), '; ' order by indexrelid::regclass::text) "
                       "from pg_index where indrelid = 'a'::regclass"),
            "CREATE UNIQUE INDEX a_pkey ON public.a USING btree (id); CREATE INDEX a_v ON public.a USING btree (v)")
      << Log();
  EXPECT_EQ(Psql(new_, "select conname from pg_constraint where conrelid = 'a'::regclass and contype = 'p'"), "a_pkey");
}

}  // namespace
}  // namespace turnout::testing
