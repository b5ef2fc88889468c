// The row-level verifier (control/pg_verify.h) and the repair by rows it
// drives (control/pg_table_repair.h) against the harness clusters: tables
// made equal, then rows changed, deleted and added on one side; the report
// must name exactly those keys and columns, and a repair must fix exactly
// those rows and leave both sides equal row for row, column for column.
// Table names carry the pid: ctest runs suites in parallel on one server.
#include <libpq-fe.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "control/backend_inspector.h"
#include "control/journal_repair.h"
#include "control/migration.h"
#include "control/pg_client.h"
#include "control/pg_verify.h"
#include "routing/config.h"
#include "routing/journal.h"
#include "tests/control/direct_pg.h"
#include "tests/support/backends.h"

namespace turnout::control {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using turnout::testing::TestBackends;
namespace json = boost::json;

using Direct = turnout::testing::DirectPg;

// A changed row: key text -> differing columns (name: old -> new).
using Changed = std::map<std::string, std::map<std::string, std::pair<std::string, std::string>>>;

struct Found {
  Changed changed;
  std::set<std::string> only_old, only_new;  // keys, values joined by ','
};

Found Collect(const PgTableVerify& v) {
  Found f;
  for (const auto& d : v.differences) {
    std::string key;
    for (std::size_t i = 0; i < d.key.size(); ++i) key += (i == 0 ? "" : ",") + d.key[i];
    switch (d.kind) {
      case PgRowDifference::Kind::kChanged:
        for (const auto& c : d.columns) f.changed[key][c.name] = {c.old_value, c.new_value};
        if (d.columns.empty()) f.changed[key];
        break;
      case PgRowDifference::Kind::kOnlyOld:
        f.only_old.insert(key);
        break;
      case PgRowDifference::Kind::kOnlyNew:
        f.only_new.insert(key);
        break;
    }
  }
  return f;
}

class PgVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    const std::string pid = std::to_string(::getpid());
    t_ = "verify_rows_" + pid;
    nokey_ = "verify_nokey_" + pid;
    text_ = "verify_text_" + pid;
    old_b_ = routing::Backend{.name = "pg-old", .address = {"127.0.0.1", static_cast<std::uint16_t>(b.pg_old_port)},
                              .user = b.pg_user, .password = b.pg_password, .database = "app"};
    new_b_ = routing::Backend{.name = "pg-new", .address = {"127.0.0.1", static_cast<std::uint16_t>(b.pg_new_port)},
                              .user = b.pg_user, .password = b.pg_password, .database = "app",
                              .tls_mode = routing::UpstreamTlsMode::kVerifyFull, .tls_ca_file = b.ca_file};
    config_.backends = {old_b_, new_b_};
    config_.routes.push_back(routing::Route{.name = "db", .old_backend = "pg-old", .new_backend = "pg-new"});
    migration_.id = "pg_verify";
    migration_.interlays = {{"db", "pg-new"}};
    migration_.apis = {{"t", {t_, nokey_, text_}, {}}};
    DropTables();
    auto oc = PgConnect(old_b_);
    auto nc = PgConnect(new_b_);
    ASSERT_TRUE(oc.ok()) << oc.status();
    ASSERT_TRUE(nc.ok()) << nc.status();
    oc_ = *std::move(oc);
    nc_ = *std::move(nc);
    ASSERT_TRUE(PrepareVerifySession(OldSide()).ok());
    ASSERT_TRUE(PrepareVerifySession(NewSide()).ok());
  }
  void TearDown() override { DropTables(); }

  void DropTables() {
    for (Direct* d : {&old_, &new_}) d->Rows("drop table if exists " + t_ + ", " + nokey_ + ", " + text_);
  }
  void Both(const std::string& sql) {
    old_.Rows(sql);
    new_.Rows(sql);
  }
  PgSide OldSide() const { return {oc_.get(), "old"}; }
  PgSide NewSide() const { return {nc_.get(), "new"}; }

  PgTableVerify VerifyTable(const std::string& table, PgVerifyOptions o = {}) {
    auto v = VerifyPgTable(OldSide(), NewSide(), "public." + table, o);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *std::move(v) : PgTableVerify{};
  }

  // Every row and column of `table` on both sides, in key order.
  void ExpectSameRows(const std::string& table, const std::string& order) {
    const std::string sql = "select * from " + table + " t order by " + order;
    const std::string o = old_.Rows(sql), n = new_.Rows(sql);
    EXPECT_FALSE(o.empty());
    EXPECT_EQ(o, n) << table;
  }

  // accounts-like table of `rows` rows, equal on both sides.
  void Fill(int rows) {
    Both("create table " + t_ +
         " (id int primary key, name text not null, balance numeric(12, 2), note text, at timestamptz, tags jsonb)");
    Both("insert into " + t_ + " select g, 'user' || g, g * 1.25, case when g % 3 = 0 then null else 'n' || g end, "
         "'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', jsonb_build_object('g', g) "
         "from generate_series(1, " + std::to_string(rows) + ") g");
  }

  Direct old_{TestBackends::Get().pg_old_port};
  Direct new_{TestBackends::Get().pg_new_port};
  routing::Backend old_b_, new_b_;
  routing::Config config_;
  Migration migration_;
  PgConn oc_, nc_;
  std::string t_, nokey_, text_;
};

TEST_F(PgVerifyTest, EqualTablesAreEqual) {
  Fill(2500);
  PgVerifyOptions o;
  o.chunk_rows = 1000;
  const auto v = VerifyTable(t_, o);
  EXPECT_TRUE(v.equal);
  EXPECT_EQ(v.old_rows, 2500);
  EXPECT_EQ(v.new_rows, 2500);
  EXPECT_EQ(v.chunks, 3);
  EXPECT_EQ(v.differences_total, 0);
  EXPECT_THAT(v.primary_key, UnorderedElementsAre("id"));
}

TEST_F(PgVerifyTest, NamesChangedMissingAndExtraRowsByKeyAndColumn) {
  Fill(25000);
  new_.Rows("update " + t_ + " set balance = -1 where id = 500");
  new_.Rows("update " + t_ + " set name = 'renamed', note = null where id = 12344");
  new_.Rows("update " + t_ + " set tags = '{\"g\": \"x\"}' where id = 20000");
  new_.Rows("delete from " + t_ + " where id = 7777");
  new_.Rows("insert into " + t_ + " (id, name) values (30001, 'only new')");
  old_.Rows("insert into " + t_ + " (id, name) values (-5, 'only old')");

  // Chunks of 10,000 (the default) cut into leaves of at most 1,000 rows.
  const auto v = VerifyTable(t_);
  EXPECT_FALSE(v.equal);
  EXPECT_EQ(v.mode, "recheck");
  EXPECT_EQ(v.old_rows, 25001);
  EXPECT_EQ(v.new_rows, 25000);
  EXPECT_EQ(v.differences_total, 6);
  const Found f = Collect(v);
  EXPECT_EQ(f.only_old, (std::set<std::string>{"-5", "7777"}));
  EXPECT_EQ(f.only_new, (std::set<std::string>{"30001"}));
  ASSERT_EQ(f.changed.size(), 3u);
  using Cols = std::map<std::string, std::pair<std::string, std::string>>;
  EXPECT_EQ(f.changed.at("500"), (Cols{{"balance", {"625.00", "-1.00"}}}));
  EXPECT_EQ(f.changed.at("12344"), (Cols{{"name", {"user12344", "renamed"}}, {"note", {"n12344", "NULL"}}}));
  EXPECT_EQ(f.changed.at("20000"), (Cols{{"tags", {"{\"g\": 20000}", "{\"g\": \"x\"}"}}}));
}

// One column of one row in a table of a million rows (issue 12's first
// case), named by key and column. Prints the verifier's rate.
TEST_F(PgVerifyTest, OneColumnOfOneRowInAMillionRows) {
  constexpr int kRows = 1000000;
  Both("create table " + t_ + " (id bigint primary key, payload text, v int, at timestamptz)");
  Both("insert into " + t_ + " select g, md5(g::text), g % 1000, '2024-01-01'::timestamptz + g * interval '1 second' "
       "from generate_series(1, " + std::to_string(kRows) + ") g");
  new_.Rows("update " + t_ + " set v = -7 where id = 654321");
  const auto start = absl::Now();
  const auto v = VerifyTable(t_);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("verify of %d rows: %.2f s (%.0f rows/s per side), %lld chunks\n", kRows, seconds, kRows / seconds,
              static_cast<long long>(v.chunks));
  EXPECT_EQ(v.old_rows, kRows);
  EXPECT_EQ(v.new_rows, kRows);
  EXPECT_EQ(v.chunks_differing, 1);
  EXPECT_EQ(v.differences_total, 1);
  const Found f = Collect(v);
  ASSERT_EQ(f.changed.size(), 1u);
  using Cols = std::map<std::string, std::pair<std::string, std::string>>;
  EXPECT_EQ(f.changed.at("654321"), (Cols{{"v", {"321", "-7"}}}));
}

// Differences on and next to every chunk boundary, and below the first and
// past the last key of old.
TEST_F(PgVerifyTest, FindsRowsAtChunkBoundaries) {
  Fill(1000);
  new_.Rows("update " + t_ + " set note = 'b' where id in (1, 100, 101, 200, 999, 1000)");
  new_.Rows("insert into " + t_ + " (id, name) values (0, 'before'), (1001, 'after'), (5000, 'far')");
  new_.Rows("delete from " + t_ + " where id in (300, 301)");
  PgVerifyOptions o;
  o.chunk_rows = 100;
  o.leaf_rows = 10;  // bisected, not read whole
  o.recheck_delay = absl::ZeroDuration();
  const auto v = VerifyTable(t_, o);
  EXPECT_EQ(v.mode, "single pass");
  EXPECT_EQ(v.chunks, 11);  // ten of 100 rows, then one open-ended past old's last key
  EXPECT_EQ(v.differences_total, 11);
  const Found f = Collect(v);
  std::set<std::string> changed;
  for (const auto& [k, cols] : f.changed) {
    changed.insert(k);
    EXPECT_EQ(cols.size(), 1u) << k;
    EXPECT_EQ(cols.begin()->first, "note");
    EXPECT_EQ(cols.begin()->second.second, "b");
  }
  EXPECT_EQ(changed, (std::set<std::string>{"1", "100", "101", "200", "999", "1000"}));
  EXPECT_EQ(f.only_new, (std::set<std::string>{"0", "1001", "5000"}));
  EXPECT_EQ(f.only_old, (std::set<std::string>{"300", "301"}));
}

// Text keys compare in C order on both servers, whatever their collations;
// a composite key names both parts.
TEST_F(PgVerifyTest, CompositeTextKeys) {
  Both("create table " + text_ + " (k text, n int, v text, primary key (k, n))");
  Both("insert into " + text_ + " select w, g, w || g from unnest(array['a', 'B', 'b', 'Z', 'é', 'a b', '']) w, "
       "generate_series(1, 50) g");
  new_.Rows("update " + text_ + " set v = 'x' where k = 'é' and n = 7");
  new_.Rows("delete from " + text_ + " where k = '' and n = 50");
  PgVerifyOptions o;
  o.chunk_rows = 40;
  o.leaf_rows = 5;
  o.recheck_delay = absl::ZeroDuration();
  const auto v = VerifyTable(text_, o);
  EXPECT_EQ(v.old_rows, 350);
  const Found f = Collect(v);
  EXPECT_EQ(f.only_old, (std::set<std::string>{",50"}));
  ASSERT_EQ(f.changed.size(), 1u);
  EXPECT_EQ(f.changed.begin()->first, "é,7");
  EXPECT_EQ(f.changed.begin()->second.at("v").second, "x");
  EXPECT_TRUE(f.only_new.empty());
}

TEST_F(PgVerifyTest, TableWithoutKeyIsComparedAsMultiset) {
  Both("create table " + nokey_ + " (msg text, n int)");
  Both("insert into " + nokey_ + " select 'm' || (g % 7), g % 3 from generate_series(1, 200) g");
  new_.Rows("insert into " + nokey_ + " values ('m1', 1), ('m1', 1), ('new', null)");
  old_.Rows("insert into " + nokey_ + " values ('old', 5)");
  const auto v = VerifyTable(nokey_);
  EXPECT_FALSE(v.equal);
  EXPECT_TRUE(v.primary_key.empty());
  EXPECT_EQ(v.old_rows, 201);
  EXPECT_EQ(v.new_rows, 203);
  EXPECT_EQ(v.differences_total, 4);
  std::map<std::tuple<std::string, std::string>, std::int64_t> rows;  // (kind, row) -> count
  for (const auto& d : v.differences)
    rows[{d.kind == PgRowDifference::Kind::kOnlyOld ? "old" : "new", d.row}] = d.count;
  EXPECT_EQ(rows, (std::map<std::tuple<std::string, std::string>, std::int64_t>{
                      {{"new", "(m1,1)"}, 2}, {{"new", "(new,)"}, 1}, {{"old", "(old,5)"}, 1}}));
}

// The report POST …/verify returns: the old top-level fields, and the rows.
TEST_F(PgVerifyTest, VerifyReportNamesRowsAndColumns) {
  Fill(300);
  Both("create table " + nokey_ + " (msg text)");
  Both("insert into " + nokey_ + " values ('a'), ('b')");
  new_.Rows("update " + t_ + " set name = repeat('x', 100) where id = 42");
  new_.Rows("delete from " + t_ + " where id = 43");
  auto r = Verify(config_, migration_);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  EXPECT_FALSE(r->at("equal").as_bool());
  const auto& route = r->at("routes").as_array().at(0);
  EXPECT_EQ(route.at("mode").as_string(), "recheck");
  EXPECT_FALSE(route.at("equal").as_bool());
  ASSERT_EQ(route.at("differences").as_array().size(), 1u);
  EXPECT_THAT(std::string(route.at("differences").as_array()[0].as_string()),
              HasSubstr("table public." + t_ + ": 2 rows differ (1 changed, 1 only on old, 0 only on new)"));
  bool seen_t = false, seen_nokey = false;
  for (const auto& t : route.at("tables").as_array()) {
    if (t.at("table").as_string() == "public." + nokey_) {
      seen_nokey = true;
      EXPECT_TRUE(t.at("equal").as_bool());
      continue;
    }
    ASSERT_EQ(t.at("table").as_string(), "public." + t_);
    seen_t = true;
    EXPECT_FALSE(t.at("equal").as_bool());
    EXPECT_EQ(t.at("old_rows").to_number<std::int64_t>(), 300);
    EXPECT_EQ(t.at("new_rows").to_number<std::int64_t>(), 299);
    EXPECT_EQ(t.at("differences_total").to_number<std::int64_t>(), 2);
    const auto& rows = t.at("rows").as_array();
    ASSERT_EQ(rows.size(), 2u);
    const auto& changed = rows[0].at("kind") == "changed" ? rows[0] : rows[1];
    const auto& gone = rows[0].at("kind") == "changed" ? rows[1] : rows[0];
    EXPECT_EQ(changed.at("key"), (json::object{{"id", "42"}}));
    const auto& col = changed.at("columns").as_array().at(0);
    EXPECT_EQ(col.at("column"), "name");
    EXPECT_EQ(col.at("old"), "user42");
    EXPECT_EQ(col.at("new").as_string(), std::string(64, 'x') + "…");  // truncated
    EXPECT_EQ(changed.at("columns").as_array().size(), 1u);
    EXPECT_EQ(gone.at("kind"), "only_old");
    EXPECT_EQ(gone.at("key"), (json::object{{"id", "43"}}));
  }
  EXPECT_TRUE(seen_t);
  EXPECT_TRUE(seen_nokey);
}

// Writes in flight: a row that differed only at the first look (put back
// before the recheck) is not reported, nor one that differs only at the
// second; a row that differs both times is.
TEST_F(PgVerifyTest, RecheckReportsOnlyWhatStaysDifferent) {
  Fill(1000);
  new_.Rows("update " + t_ + " set note = 'in flight' where id in (10, 20, 30)");
  PgVerifyOptions o;
  o.recheck_delay = absl::Milliseconds(1);
  o.before_recheck = [&] {
    new_.Rows("update " + t_ + " set note = 'n10' where id = 10");
    new_.Rows("update " + t_ + " set note = 'later' where id = 40");
  };
  const auto v = VerifyTable(t_, o);
  EXPECT_EQ(v.mode, "recheck");
  const Found f = Collect(v);
  std::set<std::string> changed;
  for (const auto& [k, cols] : f.changed) changed.insert(k);
  EXPECT_EQ(changed, (std::set<std::string>{"20", "30"}));
  EXPECT_EQ(v.differences_total, 2);
  // The next verification sees row 40.
  o.before_recheck = nullptr;
  EXPECT_EQ(VerifyTable(t_, o).differences_total, 3);
}

// "lsn" mode (the change stream's): old is read at a snapshot whose position
// is handed to the wait; a write that lands on both sides during that wait
// (old after its snapshot, new before it is read: what a stream does) makes
// the first pass differ, and is not reported; rows that really differ are,
// as is a table without a key. When the stream does not get there, the
// table falls back to rechecking and says why.
TEST_F(PgVerifyTest, LsnModeReportsNoWriteInFlightAndFallsBackWhenTheStreamLags) {
  Fill(2000);
  new_.Rows("update " + t_ + " set note = 'differs' where id = 7");
  new_.Rows("delete from " + t_ + " where id = 1500");
  Both("create table " + nokey_ + " (msg text, n int)");
  Both("insert into " + nokey_ + " select 'm' || (g % 7), g % 3 from generate_series(1, 100) g");
  new_.Rows("insert into " + nokey_ + " values ('only new', 1)");
  std::vector<std::string> positions;
  PgVerifyOptions o;
  o.chunk_rows = 500;
  o.wait_new_applied_past = [&](const std::string& lsn) {
    positions.push_back(lsn);
    if (positions.size() == 1) {
      // In flight: committed on old after its snapshot, applied on new.
      old_.Rows("update " + t_ + " set name = 'in flight' where id = 3");
      new_.Rows("update " + t_ + " set name = 'in flight' where id = 3");
    }
    return absl::OkStatus();
  };
  auto v = VerifyTable(t_, o);
  EXPECT_EQ(v.mode, "lsn");
  EXPECT_TRUE(v.consistency_note.empty()) << v.consistency_note;
  EXPECT_EQ(v.chunks, 5);
  EXPECT_GE(positions.size(), 5u + 1u);  // a snapshot per chunk, then one per settle round
  EXPECT_THAT(positions[0], ::testing::MatchesRegex("[0-9A-F]+/[0-9A-F]+"));
  Found f = Collect(v);
  EXPECT_EQ(f.only_old, (std::set<std::string>{"1500"}));
  ASSERT_EQ(f.changed.size(), 1u) << "the row written in flight (3) must not be reported";
  EXPECT_EQ(f.changed.begin()->first, "7");
  EXPECT_EQ(v.differences_total, 2);
  EXPECT_EQ(PgTableVerifyToJson(v).at("consistency"), "lsn");
  EXPECT_EQ(old_.Rows("select * from " + t_ + " where id = 3"), new_.Rows("select * from " + t_ + " where id = 3"));

  const auto keyless = VerifyTable(nokey_, o);
  EXPECT_EQ(keyless.mode, "lsn");
  EXPECT_EQ(keyless.differences_total, 1);
  ASSERT_EQ(keyless.differences.size(), 1u);
  EXPECT_EQ(keyless.differences[0].row, "(\"only new\",1)");
  EXPECT_EQ(keyless.differences[0].kind, PgRowDifference::Kind::kOnlyNew);

  // The stream does not get past old's position: rechecked, and said so.
  o.wait_new_applied_past = [](const std::string& lsn) {
    return absl::DeadlineExceededError("the change stream did not apply past " + lsn);
  };
  o.recheck_delay = absl::Milliseconds(1);
  v = VerifyTable(t_, o);
  EXPECT_EQ(v.mode, "recheck");
  EXPECT_THAT(v.consistency_note, HasSubstr("did not apply past"));
  EXPECT_EQ(PgTableVerifyToJson(v).at("consistency"), "recheck");
  f = Collect(v);
  EXPECT_EQ(f.only_old, (std::set<std::string>{"1500"}));
  EXPECT_EQ(f.changed.size(), 1u);
  // Both connections are out of the snapshot transactions.
  EXPECT_EQ(PQtransactionStatus(oc_.get()), PQTRANS_IDLE);
  EXPECT_EQ(PQtransactionStatus(nc_.get()), PQTRANS_IDLE);
}

// A row whose every column differs lists the first max_columns of them.
TEST_F(PgVerifyTest, DifferingColumnsPerRowAreBounded) {
  std::string cols, values;
  for (int i = 0; i < 20; ++i) {
    cols += ", c" + std::to_string(i) + " int";
    values += ", " + std::to_string(i);
  }
  Both("create table " + t_ + " (id int primary key" + cols + ")");
  Both("insert into " + t_ + " values (1" + values + ")");
  std::string sets;
  for (int i = 0; i < 20; ++i) sets += std::string(i ? ", " : "") + "c" + std::to_string(i) + " = -1";
  new_.Rows("update " + t_ + " set " + sets);
  PgVerifyOptions o;
  o.recheck_delay = absl::ZeroDuration();
  const auto v = VerifyTable(t_, o);
  ASSERT_EQ(v.differences.size(), 1u);
  EXPECT_EQ(v.differences[0].columns.size(), 16u);
  EXPECT_EQ(v.differences[0].columns_differing, 20u);
  EXPECT_EQ(v.differences[0].columns[0].name, "c0");
  EXPECT_EQ(PgTableVerifyToJson(v).at("rows").as_array()[0].at("columns_differing").to_number<std::int64_t>(), 20);
}

// Many differences: the report stays bounded, the total is exact.
TEST_F(PgVerifyTest, ReportIsBounded) {
  Fill(3000);
  new_.Rows("update " + t_ + " set note = 'drift' where id % 10 = 0");
  PgVerifyOptions o;
  o.recheck_delay = absl::ZeroDuration();
  o.max_keys = 150;
  const auto v = VerifyTable(t_, o);
  EXPECT_EQ(v.differences_total, 300);
  EXPECT_EQ(v.differences.size(), 150u);
  EXPECT_FALSE(v.complete());
  const auto j = PgTableVerifyToJson(v, 100);
  EXPECT_EQ(j.at("rows").as_array().size(), 100u);
  EXPECT_EQ(j.at("differences_total").to_number<std::int64_t>(), 300);
}

// A repair re-copies exactly the rows the verifier named, then both sides
// hold the same rows and columns.
TEST_F(PgVerifyTest, RepairCopiesExactlyTheDifferingRows) {
  Fill(20000);
  new_.Rows("update " + t_ + " set balance = null, tags = '[]' where id in (5, 15000)");
  new_.Rows("update " + t_ + " set at = at + interval '1 second' where id = 9999");
  new_.Rows("delete from " + t_ + " where id in (10000, 10001)");
  new_.Rows("insert into " + t_ + " (id, name) values (20001, 'extra'), (-1, 'extra')");
  Both("create table " + nokey_ + " (msg text, n int)");
  old_.Rows("insert into " + nokey_ + " values ('a', 1), ('a', 1), ('b', 2)");
  new_.Rows("insert into " + nokey_ + " values ('a', 1), ('c', 3)");
  // Rows the repair must not touch: their physical position (ctid) on new
  // would change if they were rewritten.
  const std::string untouched = "select ctid from " + t_ + " where id in (1, 4, 6, 14999, 19999) order by id";
  const std::string ctids_before = new_.Rows(untouched);

  auto journal = routing::Journal::InMemory({});
  routing::JournalEntry e;
  e.at = absl::Now();
  e.migration_id = migration_.id;
  e.route = "db";
  e.backend = "pg-new";
  e.kind = routing::JournalKind::kFailed;
  e.statement = "update …";
  e.targets = {t_, nokey_};
  journal->Append(e);
  auto r = RepairFromJournal(config_, migration_, *journal);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  EXPECT_TRUE(r->at("postgres_equal").as_bool());
  EXPECT_EQ(r->at("pending").to_number<std::int64_t>(), 0);
  const auto& tables = r->at("tables_repaired").as_array();
  ASSERT_EQ(tables.size(), 2u);
  for (const auto& t : tables) {
    EXPECT_TRUE(t.at("equal").as_bool());
    if (t.at("table").as_string() == "public." + t_) {
      EXPECT_EQ(t.at("method"), "rows");
      EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 7);
      EXPECT_EQ(t.at("source_rows").to_number<std::int64_t>(), 20000);
      EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 2);   // 20001, -1
      EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 5);  // 5, 15000, 9999 changed; 10000, 10001 missing
    } else {
      EXPECT_EQ(t.at("table").as_string(), "public." + nokey_);
      EXPECT_EQ(t.at("method"), "rows");  // as a multiset: one copy of (a,1) and (b,2) in, (c,3) out
      EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 3);
      EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 1);
      EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 2);
    }
  }
  EXPECT_EQ(new_.Rows(untouched), ctids_before);
  ExpectSameRows(t_, "id");
  ExpectSameRows(nokey_, "msg, n");
  EXPECT_TRUE(VerifyTable(t_).equal);
  EXPECT_TRUE(VerifyTable(nokey_).equal);
}

}  // namespace
}  // namespace turnout::control
