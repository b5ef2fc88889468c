// Issue 13 item 2: a pgjdbc-style extended sequence under a running
// migration (SET as Parse/Bind/Execute/Sync, a named DROP TABLE IF EXISTS,
// then a batch with CREATE TABLE) used to leave its last batch unanswered
// forever: the refused DROP was still taken for secondary work, whose op
// waited for a reply that had already gone by. Each routing mode must now
// answer every batch; and the watchdog closes a session that turnout holds
// without progress, its sockets with it (no CLOSE-WAIT left behind).

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <ostream>
#include <sstream>
#include <vector>
#include <string>
#include <thread>

#include "tests/pg/pg_migration_itest_fixture.h"

namespace turnout::testing {
namespace {

struct HangCase {
  const char* name;
  const char* strategy;
  bool drop_refused;  // the DROP names a table the migration moves (no scope: every table)
};

void PrintTo(const HangCase& c, std::ostream* os) { *os << c.name; }

class PgSessionHangTest : public PgMigrationTest, public ::testing::WithParamInterface<HangCase> {};

// pgjdbc sends exactly this for: stmt.execute("SET ..."); a prepared
// "DROP TABLE IF EXISTS x" (named once prepareThreshold is reached); then
// addBatch(CREATE TABLE x ...), addBatch(INSERT ...), executeBatch().
constexpr char kPgjdbcSequence[] = R"PY(
r = conn.run(P('SET extra_float_digits = 3'), B(), E(), S)
assert not err(r), r
r = conn.run(P('DROP TABLE IF EXISTS hang_x', 'S_1'), B('S_1'), D(), E(), S)
first = err(r)
r = conn.run(P('CREATE TABLE IF NOT EXISTS hang_x (id int primary key, v text)'), B(), D(), E(),
             P('INSERT INTO hang_x VALUES (1, $$a$$)'), B(), D(), E(), S)
assert not err(r), r
# again, with the named statement re-executed as pgjdbc does
r = conn.run(B('S_1'), D(), E(), S)
second = err(r)
r = conn.run(P('CREATE TABLE IF NOT EXISTS hang_x (id int primary key, v text)'), B(), E(), S)
assert not err(r), r
r = conn.run(Q('select count(*) from hang_x'))
print('drop:', first or 'ok', '|', second or 'ok')
conn.close()
)PY";

TEST_P(PgSessionHangTest, PgjdbcDropThenCreateBatchIsAnswered) {
  const HangCase c = GetParam();
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("hang", c.strategy);
  auto r = Raw(kPgjdbcSequence, 60000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  if (c.drop_refused) {
    EXPECT_NE(r.out.find("drop: 0A000"), std::string::npos) << r.out;
  } else {
    EXPECT_NE(r.out.find("drop: ok | ok"), std::string::npos) << r.out;
  }
  // Allowed, the second DROP removed the row the batch inserted.
  const std::string rows = c.drop_refused ? "1\n" : "0\n";
  const auto& b = TestBackends::Get();
  EXPECT_EQ(OnSide(b.pg_old_port, "select count(*) from hang_x").out, rows);
  if (std::string(c.name).find("dual_sync") != std::string::npos) {
    EXPECT_EQ(OnSide(b.pg_new_port, "select count(*) from hang_x").out, rows);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, PgSessionHangTest,
    ::testing::Values(
        HangCase{"dual_sync", R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","apply":"sync"}})", true},
        HangCase{"dual_async", R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","apply":"async"}})", true},
        HangCase{"dual_sync_allow", R"({"type":"canary","read_percentage":0.0,"ddl":{"high_risk":"allow"},"write_mode":{"mode":"dual_write","apply":"sync"}})", false},
        HangCase{"shadow", R"({"type":"shadow_traffic","shadow_writes":true})", true},
        HangCase{"shadow_allow", R"({"type":"shadow_traffic","ddl":{"high_risk":"allow"}})", false}),
    [](const auto& test) { return std::string(test.param.name); });

// The watchdog: a client that leaves a sync dual-write waiting on a
// secondary that never answers (here: new holds a lock the write needs)
// is closed after the stall timeout, and turnout keeps no socket of it.
TEST_F(PgSessionHangTest, WatchdogClosesAStalledSessionAndItsSockets) {
  ASSERT_EQ(Both("create table locked(id int primary key)").exit_code, 0);
  Start({{"TURNOUT_PG_STALL_TIMEOUT", "3"}});
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("stall", R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","apply":"sync"}})");
  const auto& b = TestBackends::Get();
  // Hold an exclusive lock on new for 20 s: the secondary's INSERT waits on it.
  std::thread holder([&] {
    Psql(Direct(b.pg_new_port, db_), b.pg_password, "begin; lock table locked in access exclusive mode; select pg_sleep(20); commit;");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto r = Raw(R"PY(
import time
t0 = time.time()
conn.send(P('insert into locked values (1)'), B(), E(), S)
try:
    r = conn.until_z()
    print('answered', err(r), round(time.time() - t0))
except EOFError as e:
    print('closed', round(time.time() - t0))
except Exception as e:
    print('other', type(e).__name__, e)
)PY",
                60000);
  holder.join();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // The secondary's own reply timeout (30 s) is longer than the watchdog's 3 s.
  EXPECT_NE(r.out.find("closed"), std::string::npos) << r.out << turnout_->Log();
  EXPECT_NE(turnout_->Log().find("pg session stalled; closing it"), std::string::npos) << turnout_->Log();
  // Nothing of the session is left in CLOSE-WAIT on turnout's port.
  auto ss = RunProgram({"ss", "-tanH", "state", "close-wait", "( sport = :" + std::to_string(port_) + " )"}, "", {}, 10000);
  EXPECT_EQ(ss.out, "") << ss.out;
}

// A session that waits for its client longer than the stall timeout is not
// stalled: it stays open, answers its next query, and the watchdog does not
// spin meanwhile (it did: woken again at once, forever, one core busy).
TEST_F(PgSessionHangTest, AnIdleSessionPastTheStallTimeoutStaysOpenAndCostsNoCpu) {
  Start({{"TURNOUT_PG_STALL_TIMEOUT", "1"}});
  ASSERT_FALSE(HasFatalFailure());
  RunResult r;
  std::thread client([&] {
    r = Raw(R"PY(
import time
r = conn.run(Q('select 1'))
assert not err(r), r
time.sleep(6)
r = conn.run(Q('select 2'))
print('second query:', err(r) or 'ok')
)PY",
            60000);
  });
  // turnout's CPU time (user + system, in clock ticks) over 3 s of the
  // client's idle wait, past the 1 s stall timeout.
  auto cpu_ticks = [&] {
    std::ifstream stat("/proc/" + std::to_string(turnout_->pid()) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::istringstream fields(text.substr(text.rfind(')') + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
    return f.size() > 12 ? std::atol(f[11].c_str()) + std::atol(f[12].c_str()) : -1;
  };
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const long before = cpu_ticks();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const long after = cpu_ticks();
  client.join();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("second query: ok"), std::string::npos) << r.out << turnout_->Log();
  EXPECT_EQ(turnout_->Log().find("pg session stalled"), std::string::npos) << turnout_->Log();
  ASSERT_GE(before, 0);
  // A busy loop would take all of the 3 s (300 ticks at 100 Hz); an idle
  // process takes next to none.
  EXPECT_LT(after - before, 30) << "turnout was busy while its only session waited for its client";
}

}  // namespace
}  // namespace turnout::testing
