// kill -9 of turnout under Postgres statement dual-write load (issue 14 item
// 2): a migration without data movement (`data: none`) keeps dual-write in
// statement mode; the intent record names every table with a write in flight
// between the two sides, the next start journals them, and repair makes
// every row and column of both sides equal.
//
// Determinism without timing: a session on new holds an ACCESS EXCLUSIVE
// lock on `probe`, so an autocommit INSERT through turnout commits on old
// and waits on new; it is seen on old before the kill. Without the intent
// record that row would be on old only with no trace anywhere.
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "tests/pg/pg_migration_itest_fixture.h"

namespace turnout::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PgCrashTest : public PgMigrationTest {
 protected:
  std::string Url() const { return PgUrl(port_, TestBackends::Get().pg_user, db_); }
  RunResult Pgbench(const std::vector<std::string>& args, int timeout_ms = 180000) {
    std::vector<std::string> argv = {"pgbench"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, "", {{"PGPASSWORD", TestBackends::Get().pg_password}}, timeout_ms);
  }
  // Every row, every column, in a fixed order: a count and a hash.
  std::string Fingerprint(int port, const std::string& table) {
    auto r = OnSide(port, "select count(*) || ':' || md5(coalesce(string_agg(t::text, ',' order by t::text), '')) from " +
                              table + " t");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  std::string Scalar(int port, const std::string& sql) {
    auto r = OnSide(port, sql);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
};

TEST_F(PgCrashTest, KillNineUnderSyncStatementDualWriteThenRepairMakesBothSidesEqual) {
  const auto& b = TestBackends::Get();
  // The same tables and rows on both sides.
  for (int port : {b.pg_old_port, b.pg_new_port}) {
    auto r = Pgbench({"-q", "-i", "-s", "1", Direct(port, db_)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  ASSERT_EQ(Both("create table probe (id int primary key, v text)").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("pgcrash", R"({"type":"canary","read_percentage":0.0,
      "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}},"data":{"type":"none"})");
  ASSERT_FALSE(HasFatalFailure());

  // Load: autocommit writes and transactions, every value chosen by the
  // client (no now()): after the repair, every column must be equal.
  const std::string dir = turnout_->dir();
  std::ofstream(dir + "/auto.sql") << "\\set aid random(1, 100000)\n\\set delta random(-5000, 5000)\n"
                                      "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
                                      "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                                      "VALUES (1, 1, :aid, :delta, '2024-01-01');\n";
  std::ofstream(dir + "/txn.sql") << "\\set aid random(1, 100000)\n\\set tid random(1, 10)\n"
                                     "\\set delta random(-5000, 5000)\n"
                                     "BEGIN;\n"
                                     "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
                                     "UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;\n"
                                     "UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = 1;\n"
                                     "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
                                     "VALUES (:tid, 1, :aid, :delta, '2024-01-01');\n"
                                     "END;\n";
  auto load = std::async(std::launch::async, [&] {
    return Pgbench({"-n", "-c", "4", "-j", "2", "-T", "120", "-f", dir + "/auto.sql", "-f", dir + "/txn.sql", Url()});
  });
  // Let it run until it has written (by work done, not by time).
  auto history_rows = [&] { return std::stoll("0" + Scalar(b.pg_old_port, "select count(*) from pgbench_history")); };
  for (int i = 0; i < 600 && history_rows() < 500; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(history_rows(), 500) << turnout_->Log();

  // Hold writes to `probe` on new, then write it through turnout.
  ChildProcess locker;
  locker.Start({"psql", "-X", "-q", Direct(b.pg_new_port, db_), "-c",
                "begin; lock table probe in access exclusive mode; select pg_sleep(120) /* turnout-crash-locker */;"},
               dir + "/locker.log", {{"PGPASSWORD", b.pg_password}});
  auto locked = [&] {
    return Scalar(b.pg_new_port,
                  "select count(*) from pg_locks where relation = 'probe'::regclass and mode = 'AccessExclusiveLock' "
                  "and granted") == "1\n";
  };
  for (int i = 0; i < 300 && !locked(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(locked());
  ChildProcess writer;
  writer.Start({"psql", "-X", "-q", Url(), "-c", "insert into probe values (1, 'applied-on-old-only')"},
               dir + "/writer.log", {{"PGPASSWORD", b.pg_password}});
  auto on_old = [&] { return Scalar(b.pg_old_port, "select count(*) from probe") == "1\n"; };
  for (int i = 0; i < 300 && !on_old(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(on_old()) << turnout_->Log();

  turnout_->Signal(SIGKILL);
  ASSERT_EQ(turnout_->Wait(10000), 128 + SIGKILL);
  // turnout's sessions on new are dead with it, but a statement of theirs
  // waiting for the lock would still run once it is released: they end
  // first (as when a sidecar's host dies), then the locker.
  Scalar(b.pg_new_port,
         "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = current_database() "
         "and wait_event_type = 'Lock' and pid <> pg_backend_pid()");
  Scalar(b.pg_new_port,
         "select count(pg_terminate_backend(pid)) from pg_stat_activity where query like '%turnout-crash-locker%' "
         "and pid <> pg_backend_pid()");
  locker.Wait(10000);
  writer.Wait(10000);
  load.get();  // pgbench fails once turnout is gone; what it wrote is what counts
  ASSERT_EQ(Scalar(b.pg_new_port, "select count(*) from probe"), "0\n") << "the probe reached new before the kill";

  // The same config, the same journal and intent record.
  ASSERT_TRUE(turnout_->Start(ReadFile(turnout_->ConfigPath()), {port_, admin_port_})) << turnout_->Log();
  EXPECT_GE(admin_.Metric("turnout_intents_recovered_total"), 1) << turnout_->Log();
  auto journal = admin_.Get("/api/v1/migrations/pgcrash/journal");
  ASSERT_EQ(journal.status, 200) << journal.body;
  EXPECT_NE(journal.body.find("probe"), std::string::npos) << journal.body;

  auto repair = admin_.Post("/api/v1/migrations/pgcrash/repair");
  ASSERT_EQ(repair.status, 200) << repair.body;
  EXPECT_EQ(repair.json.at("data").at("pending").as_int64(), 0) << repair.body;

  EXPECT_EQ(Scalar(b.pg_new_port, "select v from probe where id = 1"), "applied-on-old-only\n") << repair.body;
  for (const std::string table : {"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "probe"})
    EXPECT_EQ(Fingerprint(b.pg_old_port, table), Fingerprint(b.pg_new_port, table)) << table << "\n" << repair.body;
}

}  // namespace
}  // namespace turnout::testing
