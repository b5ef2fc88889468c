// The high-risk DDL policy of a migrating Postgres route (DESIGN.md §3,
// routing/ddl_policy.h), through a raw wire-protocol client: a refusal is
// one ErrorResponse and the session stays usable, in the simple and the
// extended protocol alike (at a batch's start and in its middle, where the
// batch's earlier statements roll back as on a server error); temporary
// tables, tables outside the migration's scopes and objects that hold no
// rows pass; `ddl.high_risk` allows or refuses more.

#include <gtest/gtest.h>

#include <string>

#include "tests/pg/pg_migration_itest_fixture.h"

namespace turnout::testing {
namespace {

std::string DualSync(const std::string& ddl = "") {
  return std::string(R"({"type":"canary","read_percentage":0.0,)") + (ddl.empty() ? "" : R"("ddl":)" + ddl + ",") +
         R"("write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";
}

class PgDdlPolicyTest : public PgMigrationTest {};

TEST_F(PgDdlPolicyTest, HighRiskDdlOnAMovedTableIsRefusedInEveryProtocolAndTheSessionGoesOn) {
  ASSERT_EQ(Both("create table orders(id int primary key); insert into orders values (1), (2)").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("ddl_default", DualSync());
  const std::string script = R"PY(
refused = 'refused high-risk DDL'
# simple Query
r = conn.run(Q('drop table orders'))
assert '0A000' in err(r) and 'high-risk DDL' in err(r), r
assert conn.run(Q('select count(*) from orders'))[-1][0] == 'Z'
# extended, refused at the batch's first message (a named statement, pgjdbc style)
r = conn.run(P('drop table if exists orders', 'S_1'), B('S_1'), D(), E(), S)
assert '0A000' in err(r) and [t for t, _ in r] == ['E', 'Z'], r
r = conn.run(P('truncate orders'), B(), E(), S)
assert '0A000' in err(r) and [t for t, _ in r] == ['E', 'Z'], r
# extended, refused in the middle of a batch: the batch's insert rolls back
r = conn.run(P('insert into orders values (3)'), B(), E(), P('alter table orders drop column id'), B(), E(), S)
assert refused in err(r) and r[-1] == ('Z', b'I'), r
# inside a transaction: the transaction is failed, as by a server error
r = conn.run(Q('begin'))
r = conn.run(P('drop table orders'), B(), E(), S)
assert '0A000' in err(r) and status(r) == 'E', r
conn.run(Q('rollback'))
r = conn.run(P('select count(*) from orders'), B(), E(), S)
assert not err(r), r
print('ok', tags(r))
conn.close()
)PY";
  auto r = Raw(script);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  const auto& b = TestBackends::Get();
  for (int port : {b.pg_old_port, b.pg_new_port})
    EXPECT_EQ(OnSide(port, "select count(*) from orders").out, "2\n") << port;
  EXPECT_NE(turnout_->Log().find("high-risk DDL refused"), std::string::npos);
}

TEST_F(PgDdlPolicyTest, TemporaryOutsideScopeAndRowlessObjectsAreNeverRefused) {
  ASSERT_EQ(Both("create table orders(id int primary key); create table scratch(id int)").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("ddl_scope", DualSync());
  auto scope = admin_.Post("/api/v1/migrations/ddl_scope/api/orders", R"({"tables":["orders"]})");
  ASSERT_EQ(scope.status, 200) << scope.body;
  const std::string script = R"PY(
for stmt in ['create temp table t1(id int)', 'drop table t1', 'create temporary table t2(id int)',
             'truncate t2', 'drop table pg_temp.t2', 'drop table if exists not_there',
             'drop table if exists scratch', 'drop function if exists no_such_fn()',
             'drop role if exists no_such_role_xyz', 'drop schema if exists no_such_schema']:
    r = conn.run(P(stmt), B(), E(), S)
    assert not err(r), (stmt, err(r))
# a temporary table dropped is forgotten: a permanent one of that name is protected
conn.run(Q('create temp table orders(id int)'))
assert not err(conn.run(Q('drop table orders')))
r = conn.run(Q('drop table orders'))
assert '0A000' in err(r), r
r = conn.run(Q('drop schema public cascade'))
assert '0A000' in err(r), r
print('ok')
conn.close()
)PY";
  auto r = Raw(script);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  const auto& b = TestBackends::Get();
  for (int port : {b.pg_old_port, b.pg_new_port}) {
    EXPECT_EQ(OnSide(port, "select count(*) from orders").out, "0\n") << port;
    EXPECT_EQ(OnSide(port, "select to_regclass('scratch') is null").out, "t\n") << port;
  }
}

TEST_F(PgDdlPolicyTest, TheMigrationsDdlFieldAllowsOrRefusesMore) {
  ASSERT_EQ(Both("create table orders(id int primary key); create table scratch(id int)").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  auto bad = admin_.Post("/api/v1/migrations", R"({"id":"bad","strategy":)" + DualSync(R"({"high_risk":"maybe"})") + "}");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("strategy.ddl.high_risk"), std::string::npos) << bad.body;

  CreateMigration("ddl_refuse", DualSync(R"({"high_risk":"refuse"})"));
  auto scope = admin_.Post("/api/v1/migrations/ddl_refuse/api/orders", R"({"tables":["orders"]})");
  ASSERT_EQ(scope.status, 200) << scope.body;
  auto got = admin_.Get("/api/v1/migrations/ddl_refuse");
  EXPECT_NE(got.body.find(R"("high_risk":"refuse")"), std::string::npos) << got.body;
  auto r = Raw(R"PY(
r = conn.run(P('drop table scratch'), B(), E(), S)
assert '0A000' in err(r), r
assert not err(conn.run(Q('create temp table t(id int)')))
assert not err(conn.run(Q('drop table t')))
print('ok')
)PY");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();

  auto patch = admin_.Patch("/api/v1/migrations/ddl_refuse", R"({"strategy":)" + DualSync(R"({"high_risk":"allow"})") + "}");
  ASSERT_EQ(patch.status, 200) << patch.body;
  r = Raw(R"PY(
r = conn.run(P('drop table orders'), B(), E(), S)
assert not err(r), r
print('ok')
)PY");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_->Log();
  // Allowed DDL is dual-written like any other.
  const auto& b = TestBackends::Get();
  for (int port : {b.pg_old_port, b.pg_new_port})
    EXPECT_EQ(OnSide(port, "select to_regclass('orders') is null").out, "t\n") << port;
}

}  // namespace
}  // namespace turnout::testing
