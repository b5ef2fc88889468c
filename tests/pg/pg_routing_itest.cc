// Routing of the PostgreSQL session by policy (DESIGN.md §2–§3): canary read
// shares, sync dual-write under pgbench, the new backend unreachable during
// dual-write. Static strategies (routes[].strategy) drive the policy.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "tests/pg/pg_itest_support.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

class PgRoutingTest : public ::testing::Test {
 protected:
  void Start(const std::string& strategy_json, const std::string& new_address = "") {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    std::ostringstream y;
    y << "instance_id: pgr-test\nworkers: 2\nadmin:\n  enabled: false\n"
      << "backends:\n"
      << "  - name: pg-old\n    protocol: postgres\n    address: 127.0.0.1:" << b.pg_old_port << "\n    user: "
      << b.pg_user << "\n    password: " << b.pg_password << "\n"
      << "  - name: pg-new\n    protocol: postgres\n    address: "
      << (new_address.empty() ? "127.0.0.1:" + std::to_string(b.pg_new_port) : new_address) << "\n    user: "
      << b.pg_user << "\n    password: " << b.pg_password << "\n"
      << "routes:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:" << port_
      << "\n    old: pg-old\n    new: pg-new\n";
    if (!strategy_json.empty()) y << "    strategy: " << strategy_json << "\n";
    turnout_ = std::make_unique<TurnoutProcess>();
    ASSERT_TRUE(turnout_->Start(y.str(), {port_})) << turnout_->Log();
  }
  std::string Url() const { return PgUrl(port_, TestBackends::Get().pg_user); }
  static std::string Direct(int port) { return PgUrl(port, TestBackends::Get().pg_user); }
  static RunResult Both(const std::string& sql_old, const std::string& sql_new) {
    const auto& b = TestBackends::Get();
    auto r = Psql(Direct(b.pg_old_port), b.pg_password, sql_old);
    if (r.exit_code != 0) return r;
    return Psql(Direct(b.pg_new_port), b.pg_password, sql_new);
  }
  static std::string Unique(const std::string& base) {
    return base + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
  }

  // Opens `n` connections through turnout, one autocommit SELECT each;
  // returns how many answered "new".
  int CountNew(const std::string& table, int n) {
    const std::string script =
        "import psycopg2, os\n"
        "n = 0\n"
        "for i in range(" + std::to_string(n) + "):\n"
        "    c = psycopg2.connect(os.environ['URL']); c.autocommit = True\n"
        "    cur = c.cursor(); cur.execute('select side from " + table + "')\n"
        "    s = cur.fetchone()[0]\n"
        "    assert s in ('old', 'new'), s\n"
        "    n += s == 'new'\n"
        "    c.close()\n"
        "print(n)\n";
    auto r = Python(script, {{"URL", Url()}, {"PGPASSWORD", TestBackends::Get().pg_password}}, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
    return r.exit_code == 0 ? std::stoi(r.out) : -1;
  }

  std::unique_ptr<TurnoutProcess> turnout_;
  int port_ = 0;
  static inline int counter_ = 0;
};

TEST_F(PgRoutingTest, CanaryReadShares) {
  const std::string t = Unique("canary_side");
  ASSERT_EQ(Both("create table " + t + "(side text); insert into " + t + " values ('old')",
                 "create table " + t + "(side text); insert into " + t + " values ('new')")
                .exit_code,
            0);
  struct Case {
    const char* pct;
    int lo, hi;
  };
  for (const Case& c : {Case{"0", 0, 0}, Case{"0.3", 40, 80}, Case{"1", 200, 200}}) {
    Start(std::string("{type: canary, read_percentage: ") + c.pct + "}");
    const int n = CountNew(t, 200);
    EXPECT_GE(n, c.lo) << "read_percentage " << c.pct;
    EXPECT_LE(n, c.hi) << "read_percentage " << c.pct;
    turnout_.reset();
  }
  Both("drop table " + t, "drop table " + t);
}

TEST_F(PgRoutingTest, DualWriteUnderPgbenchLeavesBothSidesEqual) {
  const std::string acc = Unique("dw_acc"), hist = Unique("dw_hist");
  const std::string schema = "create table " + acc + "(aid int primary key, abalance int not null default 0);" +
                             "insert into " + acc + " select g, 0 from generate_series(1, 1000) g;" +
                             "create table " + hist + "(hid bigint primary key, aid int, delta int);";
  ASSERT_EQ(Both(schema, schema).exit_code, 0);
  Start("{type: canary, read_percentage: 0, write_mode: {mode: dual_write, policy: old_authoritative}}");
  const std::string script_path = turnout_->dir() + "/dw.sql";
  // Autocommit writes, a custom script (transactions under every protocol
  // mode are in pg_dual_write_itest.cc).
  std::ofstream(script_path) << "\\set aid random(1, 1000)\n\\set delta random(-5000, 5000)\n"
                             << "\\set hid :client_id * 1000000000 + random(1, 999999999)\n"
                             << "UPDATE " << acc << " SET abalance = abalance + :delta WHERE aid = :aid;\n"
                             << "SELECT abalance FROM " << acc << " WHERE aid = :aid;\n"
                             << "INSERT INTO " << hist << " VALUES (:hid, :aid, :delta) ON CONFLICT DO NOTHING;\n"
                             << "UPDATE " << acc << " SET abalance = abalance - 1 WHERE aid = :aid;\n";
  auto r = RunProgram({"pgbench", "-n", "-c", "8", "-j", "2", "-T", "30", "-f", script_path, Url()}, "",
                      {{"PGPASSWORD", TestBackends::Get().pg_password}}, 120000);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  EXPECT_NE(r.out.find("failed transactions: 0 "), std::string::npos) << r.out;
  const auto& b = TestBackends::Get();
  for (const std::string& q : {"select count(*) || ':' || md5(string_agg(t::text, ',' order by aid)) from " + acc + " t",
                               "select count(*) || ':' || md5(string_agg(t::text, ',' order by hid)) from " + hist + " t"}) {
    auto o = Psql(Direct(b.pg_old_port), b.pg_password, q);
    auto n = Psql(Direct(b.pg_new_port), b.pg_password, q);
    ASSERT_EQ(o.exit_code, 0) << o.err;
    EXPECT_EQ(o.out, n.out) << q;
  }
  Both("drop table " + acc + ", " + hist, "drop table " + acc + ", " + hist);
}

TEST_F(PgRoutingTest, NewUnreachableDuringDualWriteOldKeepsServing) {
  const std::string t = Unique("dw_down");
  ASSERT_EQ(Both("create table " + t + "(id int primary key)", "create table " + t + "(id int primary key)").exit_code,
            0);
  // Nothing listens on the new side's address.
  Start("{type: canary, read_percentage: 0, write_mode: {mode: dual_write, policy: old_authoritative}}",
        "127.0.0.1:" + std::to_string(FreePort()));
  for (int i = 1; i <= 20; ++i) {
    auto r = Psql(Url(), TestBackends::Get().pg_password,
                  "insert into " + t + " values (" + std::to_string(i) + ")");
    ASSERT_EQ(r.exit_code, 0) << r.err << turnout_->Log();
  }
  const auto& b = TestBackends::Get();
  EXPECT_EQ(Psql(Direct(b.pg_old_port), b.pg_password, "select count(*) from " + t).out, "20\n");
  Both("drop table " + t, "drop table " + t);
}

}  // namespace
}  // namespace turnout::testing
