// Server connections reused across client sessions (backends[].pool,
// proxy/pg/server_pool.h), with real clients (psycopg2, pgbench) against the
// harness' old cluster: a client takes the connection an earlier one left,
// with none of its state; what must not be reused is not.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/pg/pg_itest_support.h"
#include "tests/support/admin_client.h"

namespace turnout::testing {
namespace {

constexpr char kAdminToken[] = "pool-test-admin-token-0123456789abcdef";

class PgPoolTest : public ::testing::Test {
 protected:
  // One worker: every client lands where the last one parked its connection.
  // With `tls`, the backend is the harness' new cluster over verified TLS.
  void Start(const std::string& pool_yaml = "{idle: 4}", bool tls = false) {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    admin_port_ = FreePort();
    server_port_ = tls ? b.pg_new_port : b.pg_old_port;
    std::ostringstream y;
    y << "instance_id: pool-test\nworkers: 1\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port_ << "\n  tokens_file: tokens\n"
      << "backends:\n  - name: pg-old\n    protocol: postgres\n    address: 127.0.0.1:" << server_port_
      << "\n    user: " << b.pg_user << "\n    password: " << b.pg_password << "\n    pool: " << pool_yaml << "\n";
    if (tls) y << "    tls: {mode: verify-full, ca_file: " << b.ca_file << "}\n";
    // The route's new side: the new cluster over verified TLS, pooled too
    // (a session moves there with TURNOUT DEBUG USE NEW).
    y << "  - name: pg-new\n    protocol: postgres\n    address: 127.0.0.1:" << b.pg_new_port << "\n    user: "
      << b.pg_user << "\n    password: " << b.pg_password << "\n    pool: " << pool_yaml
      << "\n    tls: {mode: verify-full, ca_file: " << b.ca_file << "}\n";
    y << "routes:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:" << port_
      << "\n    old: pg-old\n    new: pg-new\n";
    ::setenv("TURNOUT_PG_DEBUG_HOOKS", "1", 1);
    std::filesystem::create_directories(turnout_.dir());
    std::ofstream(turnout_.dir() + "/tokens") << kAdminToken << " admin ops\n";
    ASSERT_TRUE(turnout_.Start(y.str(), {port_, admin_port_})) << turnout_.Log();
    admin_ = AdminClient(admin_port_, kAdminToken);
  }

  // A psycopg2 script with DSNs defined: THROUGH (turnout), DIRECT (the
  // server behind the route's old backend) and DIRECT_NEW (the new cluster).
  RunResult Script(const std::string& body) const {
    const auto& b = TestBackends::Get();
    const std::string script = absl::StrCat(
        "import psycopg2, sys, time\n", "THROUGH = 'host=127.0.0.1 port=", port_, " user=", b.pg_user,
        " dbname=postgres sslmode=disable'\n", "DIRECT = 'host=127.0.0.1 port=", server_port_, " user=", b.pg_user,
        " dbname=postgres sslmode=disable'\n", "DIRECT_NEW = 'host=127.0.0.1 port=", b.pg_new_port, " user=",
        b.pg_user, " dbname=postgres sslmode=disable'\n",
        "def one(dsn, sql, **kw):\n"
        "    c = psycopg2.connect(dsn, **kw); c.autocommit = True; cur = c.cursor(); cur.execute(sql)\n"
        "    r = cur.fetchone()[0]; c.close(); return r\n"
        // Parked: the server ran the reset and sits idle; the pool takes it
        // a moment after the reset's answer.
        "def wait_parked(pid, dsn=DIRECT):\n"
        "    for _ in range(200):\n"
        "        if one(dsn, \"select count(*) from pg_stat_activity where pid = %d and state = 'idle' \"\n"
        "               \"and query = 'DISCARD ALL'\" % pid) == 1:\n"
        "            time.sleep(0.1); return\n"
        "        time.sleep(0.05)\n"
        "    sys.exit('connection %d was not reset' % pid)\n",
        body);
    return Python(script, {{"PGPASSWORD", b.pg_password}});
  }

  // The parked gauge once it reads `want` (polled: a connection is parked
  // a moment after its client left, and swept within a second).
  double ParkedBecomes(double want) const {
    double v = -1;
    for (int i = 0; i < 100 && (v = admin_.Metric("turnout_pg_server_connections_parked")) != want; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return v;
  }

  double Logins(const std::string& result) const {
    return admin_.Metric(absl::StrCat("turnout_pg_server_connections_total{backend=\"old\",result=\"", result,
                                      "\",route=\"pg\"}"));
  }

  void TearDown() override { EXPECT_TRUE(turnout_.running()) << turnout_.Log(); }
  // What kStateLeftBehind printed: the second client on the same server
  // connection, with none of the first one's state.
  void ExpectNoStateLeft(const std::string& out);

  TurnoutProcess turnout_;
  AdminClient admin_{0, kAdminToken};
  int port_ = 0, admin_port_ = 0, server_port_ = 0;
};

// The first client leaves settings, a reported parameter, a prepared
// statement, a temporary table, LISTEN and an advisory lock behind.
constexpr char kStateLeftBehind[] = R"(
c = psycopg2.connect(THROUGH); c.autocommit = True; cur = c.cursor()
cur.execute('select pg_backend_pid()'); pid = cur.fetchone()[0]
cur.execute("set work_mem = '7MB'")
cur.execute("set timezone = 'Asia/Tokyo'")
cur.execute('prepare pooled_p as select 1')
cur.execute('create temp table pooled_t (x int)')
cur.execute('listen pooled_channel')
cur.execute('select pg_advisory_lock(424242)')
assert c.get_parameter_status('TimeZone') == 'Asia/Tokyo'
c.close()
wait_parked(pid)
c = psycopg2.connect(THROUGH); c.autocommit = True; cur = c.cursor()
cur.execute('select pg_backend_pid()'); print('same', cur.fetchone()[0] == pid)
# What the client was told at startup is what the server has now.
cur.execute('show timezone'); tz = cur.fetchone()[0]
print('timezone', tz != 'Asia/Tokyo' and c.get_parameter_status('TimeZone') == tz)
cur.execute('show work_mem'); print('work_mem', cur.fetchone()[0])
cur.execute('select count(*) from pg_prepared_statements'); print('prepared', cur.fetchone()[0])
cur.execute("select to_regclass('pg_temp.pooled_t') is null"); print('temp_gone', cur.fetchone()[0])
cur.execute('select count(*) from pg_listening_channels()'); print('listening', cur.fetchone()[0])
print('lock_free', one(DIRECT, 'select pg_try_advisory_lock(424242)'))
c.close()
)";

TEST_F(PgPoolTest, ASecondClientTakesTheFirstOnesServerConnectionWithNoneOfItsState) {
  Start();
  const auto r = Script(kStateLeftBehind);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  ExpectNoStateLeft(r.out);
  EXPECT_EQ(ParkedBecomes(1), 1);  // the second client's, given back in turn
}

TEST_F(PgPoolTest, AConnectionOverTlsIsReusedTheSameWay) {
  Start("{idle: 4}", /*tls=*/true);
  const auto r = Script(kStateLeftBehind);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  ExpectNoStateLeft(r.out);
}

void PgPoolTest::ExpectNoStateLeft(const std::string& out) {
  EXPECT_THAT(out, ::testing::HasSubstr("same True\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("timezone True\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("work_mem 4MB\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("prepared 0\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("temp_gone True\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("listening 0\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("lock_free True\n"));
  EXPECT_EQ(Logins("opened"), 1);
  EXPECT_EQ(Logins("reused"), 1);
}

TEST_F(PgPoolTest, BothSidesOfASessionThatMovedToNewAreReused) {
  Start();
  const auto r = Script(R"(
def session(check):
    c = psycopg2.connect(THROUGH); c.autocommit = True; cur = c.cursor()
    cur.execute('select pg_backend_pid(), inet_server_port()'); old = cur.fetchone()
    if not check: cur.execute("set work_mem = '6MB'")
    # The debug hook, a simple Query of its own: the session moves to new.
    cur.execute('TURNOUT DEBUG USE NEW')
    cur.execute('select pg_backend_pid(), inet_server_port()'); new = cur.fetchone()
    cur.execute('show work_mem'); mem = cur.fetchone()[0]
    c.close()
    return old, new, mem
old1, new1, mem1 = session(False)
print('moved', old1[1] != new1[1], mem1)
wait_parked(old1[0]); wait_parked(new1[0], DIRECT_NEW)
old2, new2, mem2 = session(True)
print('old_same', old2[0] == old1[0])
print('new_same', new2[0] == new1[0])
print('work_mem', mem2)
)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  // The setting followed the session to new (replayed), and did not stay
  // with either connection.
  EXPECT_THAT(r.out, ::testing::HasSubstr("moved True 6MB\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("old_same True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("new_same True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("work_mem 4MB\n"));
  EXPECT_EQ(admin_.Metric("turnout_pg_server_connections_total{backend=\"new\",result=\"reused\",route=\"pg\"}"), 1);
}

TEST_F(PgPoolTest, AClientThatLeavesInsideATransactionDoesNotHandItsConnectionOn) {
  Start();
  const auto r = Script(R"(
one(DIRECT, 'drop table if exists pooled_rows; create table pooled_rows (id int); select 1')
c = psycopg2.connect(THROUGH); cur = c.cursor()
cur.execute('select pg_backend_pid()'); pid = cur.fetchone()[0]
cur.execute('insert into pooled_rows values (1)')
c.close()  # in the transaction: the server rolls it back
for _ in range(200):
    if one(DIRECT, 'select count(*) from pg_stat_activity where pid = %d' % pid) == 0: break
    time.sleep(0.05)
print('closed', one(DIRECT, 'select count(*) from pg_stat_activity where pid = %d' % pid) == 0)
c = psycopg2.connect(THROUGH); c.autocommit = True; cur = c.cursor()
cur.execute('select pg_backend_pid()'); print('other', cur.fetchone()[0] != pid)
cur.execute('select count(*) from pooled_rows'); print('rows', cur.fetchone()[0])
c.close()
one(DIRECT, 'drop table pooled_rows; select 1')
)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  EXPECT_THAT(r.out, ::testing::HasSubstr("closed True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("other True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("rows 0\n"));
  EXPECT_EQ(Logins("reused"), 0);
}

TEST_F(PgPoolTest, AParkedConnectionTheServerTerminatedIsNotHandedOut) {
  Start();
  const auto r = Script(R"(
pid = one(THROUGH, 'select pg_backend_pid()')
wait_parked(pid)
one(DIRECT, 'select pg_terminate_backend(%d)' % pid)
time.sleep(0.3)
c = psycopg2.connect(THROUGH); c.autocommit = True; cur = c.cursor()
cur.execute('select pg_backend_pid()'); print('other', cur.fetchone()[0] != pid)
cur.execute('select 41 + 1'); print('answer', cur.fetchone()[0])
c.close()
)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  EXPECT_THAT(r.out, ::testing::HasSubstr("other True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("answer 42\n"));
  EXPECT_EQ(Logins("reused"), 0);
  EXPECT_EQ(Logins("opened"), 2);
}

TEST_F(PgPoolTest, ClientsWithDifferentStartupParametersDoNotShareAConnection) {
  Start();
  const auto r = Script(R"(
a = one(THROUGH, 'select pg_backend_pid()', application_name='pool-a')
wait_parked(a)
b = one(THROUGH, 'select pg_backend_pid()', application_name='pool-b')
print('distinct', a != b)
wait_parked(b)
print('again_a', one(THROUGH, 'select pg_backend_pid()', application_name='pool-a') == a)
)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  EXPECT_THAT(r.out, ::testing::HasSubstr("distinct True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("again_a True\n"));
}

TEST_F(PgPoolTest, AParkedConnectionClosesAfterTheIdleTimeout) {
  Start("{idle: 4, idle_timeout: 1s}");
  const auto r = Script(R"(
pid = one(THROUGH, 'select pg_backend_pid()')
wait_parked(pid)
for _ in range(100):
    if one(DIRECT, 'select count(*) from pg_stat_activity where pid = %d' % pid) == 0: break
    time.sleep(0.1)
print('gone', one(DIRECT, 'select count(*) from pg_stat_activity where pid = %d' % pid) == 0)
print('other', one(THROUGH, 'select pg_backend_pid()') != pid)
)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  EXPECT_THAT(r.out, ::testing::HasSubstr("gone True\n"));
  EXPECT_THAT(r.out, ::testing::HasSubstr("other True\n"));
  // The last client's connection, parked, then closed in its turn.
  EXPECT_EQ(ParkedBecomes(1), 1);
  EXPECT_EQ(ParkedBecomes(0), 0);
}

// pgbench -C opens a connection per transaction: with the pool, turnout
// logs in to the server about once per client, not once per transaction.
TEST_F(PgPoolTest, PgbenchConnectingPerTransactionReusesServerConnections) {
  Start();
  const auto& b = TestBackends::Get();
  const std::string db = "pool_pgbench";
  const std::string direct = PgUrl(b.pg_old_port, b.pg_user);
  Psql(direct, b.pg_password, "drop database if exists " + db + " with (force)");
  ASSERT_EQ(Psql(direct, b.pg_password, "create database " + db).exit_code, 0);
  auto init = RunProgram({"pgbench", "-i", "-q", "-s", "1", PgUrl(b.pg_old_port, b.pg_user, db)}, "",
                         {{"PGPASSWORD", b.pg_password}});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  auto run = RunProgram({"pgbench", "-n", "-C", "-c", "4", "-t", "50", "-S", PgUrl(port_, b.pg_user, db)}, "",
                        {{"PGPASSWORD", b.pg_password}}, 120000);
  Psql(direct, b.pg_password, "drop database if exists " + db + " with (force)");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << turnout_.Log();
  EXPECT_THAT(run.out, ::testing::HasSubstr("number of transactions actually processed: 200/200"));
  EXPECT_THAT(run.out, ::testing::HasSubstr("number of failed transactions: 0"));
  // 200 client connections and pgbench's own first one; a reset races the
  // next client now and then, which then opens one of its own.
  const double opened = Logins("opened"), reused = Logins("reused");
  EXPECT_EQ(opened + reused, 201);
  EXPECT_LE(opened, 50) << "reused " << reused;
  std::cout << "pgbench -C: " << opened << " server connections opened, " << reused << " reused\n";
}

}  // namespace
}  // namespace turnout::testing
