// The snapshot copy (control/pg_backfill.h) with large tables split into
// page ranges (control/pg_copy_ranges.h) that several workers copy at once,
// against the harness' real servers. The split threshold is lowered so that
// tables of a few hundred pages split into many ranges, more than workers.
// Every test compares every row and column on new with old as the copy's
// snapshot saw it, while old changes after the snapshot was taken.
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "control/data_movement.h"
#include "control/migration.h"
#include "control/pg_backfill.h"
#include "control/pg_copy_ranges.h"
#include "control/pg_client.h"
#include "tests/control/direct_pg.h"
#include "tests/control/own_database_fixture.h"
#include "tests/support/backends.h"

namespace turnout::testing {
namespace {

using control::CtidRange;
using control::PgCopySplit;

// Splits a table of a few hundred pages into up to 9 ranges for 3 workers.
constexpr PgCopySplit kSmallSplit{/*min_range_pages=*/4, /*ranges_per_worker=*/3};

// The job as a copy sees it: always going on, checkpoints kept in memory.
class Job : public control::BackfillContext {
 public:
  absl::Status Checkpoint(control::RouteProgress&) override {
    ++checkpoints;
    return absl::OkStatus();
  }
  bool ShouldContinue() override { return true; }
  void Sleep(std::chrono::milliseconds) override {}
  void Log(const std::string& line) override {
    std::lock_guard<std::mutex> l(mu_);
    lines.push_back(line);
  }
  bool Logged(const std::string& part) const {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(part) != std::string::npos; });
  }
  int checkpoints = 0;
  std::vector<std::string> lines;

 private:
  std::mutex mu_;
};

class CopySplitTest : public OwnDatabaseTest {
 public:
  CopySplitTest() : OwnDatabaseTest("split") {}

  void Both(const std::string& sql) {
    Psql(old_, sql);
    Psql(new_, sql);
  }
  // Every row and column of `table` as text, in `order` (a row's text may
  // hold newlines: Count is a rough size, for messages).
  static std::string Rows(DirectPg& c, const std::string& table, const std::string& order) {
    return c.Rows("select t::text from " + table + " t order by " + order);
  }
  static int Count(const std::string& rows) {
    return rows.empty() ? 0 : static_cast<int>(std::count(rows.begin(), rows.end(), '\n')) + 1;
  }
  void ExpectSame(const std::string& at_snapshot, DirectPg& on_new, const std::string& table, const std::string& order) {
    const std::string n = Rows(on_new, table, order);
    EXPECT_GT(Count(at_snapshot), 1000) << table;
    EXPECT_TRUE(at_snapshot == n) << table << ": new differs from old at the snapshot\nold rows: " << Count(at_snapshot)
                                  << "\nnew rows: " << Count(n);
  }

  // `wide`: built-in types only (binary COPY), NULLs, 30,000 rows, a third
  // of them and one block deleted and vacuumed (holes in every page, empty
  // pages in the middle). `pairs`: a composite key and an enum (text COPY),
  // values with tabs, newlines and backslashes. `nokey`: no primary key,
  // duplicate rows.
  void CreateTables() {
    Both("create type mood as enum ('sad', 'ok', 'happy')");
    Both("create table wide (id bigint primary key, body text, amount numeric(12,2), at timestamptz, "
         "tags int[], doc jsonb, flag boolean)");
    Both("create table pairs (a int, b text, m mood, note text, primary key (a, b))");
    Both("create table nokey (n int, label text)");
    Psql(old_,
         "insert into wide select g, repeat(md5(g::text), 3), g * 1.25, timestamptz '2024-01-01' + g * interval '1 s', "
         "case when g % 7 = 0 then null else array[g, -g] end, jsonb_build_object('g', g), "
         "case when g % 5 = 0 then null else g % 2 = 0 end from generate_series(1, 30000) g");
    Psql(old_, "delete from wide where id % 3 = 0 or id between 12000 and 17000");
    Psql(old_,
         "insert into pairs select g / 3, 'k' || (g % 3) || E'\\t' || g, (array['sad','ok','happy'])[g % 3 + 1]::mood, "
         "case when g % 11 = 0 then null else E'line\\nnext \\\\ ' || repeat('x', g % 50) end "
         "from generate_series(1, 24000) g");
    Psql(old_, "delete from pairs where a % 4 = 1");
    Psql(old_, "insert into nokey select g % 5000, 'label ' || (g % 5000) from generate_series(1, 20000) g");
    Psql(old_, "delete from nokey where n % 10 = 3");
    Psql(old_, "vacuum analyze wide, pairs, nokey");
  }
  // Writes on old after the snapshot: new versions, removed rows, new rows
  // (some in the space vacuum freed), none of which the copy may carry.
  void ChangeOld() {
    Psql(old_, "update wide set body = 'changed', amount = -1 where id % 10 = 1");
    Psql(old_, "delete from wide where id % 10 = 2");
    Psql(old_, "insert into wide (id, body) select g, 'after' from generate_series(12001, 13000) g where g % 3 <> 0");
    Psql(old_, "update pairs set note = 'changed' where a % 5 = 0");
    Psql(old_, "insert into pairs values (-1, 'after', 'ok', 'after')");
    Psql(old_, "delete from nokey where n % 10 = 4");
    Psql(old_, "insert into nokey select g, 'after' from generate_series(1, 500) g");
  }
};

TEST_F(CopySplitTest, RangeBoundariesCoverEveryPageOnce) {
  EXPECT_EQ(control::CtidCondition(CtidRange{0, -1}), "");
  EXPECT_EQ(control::CtidCondition(CtidRange{0, 10}), "ctid < '(10,0)'::tid");
  EXPECT_EQ(control::CtidCondition(CtidRange{10, 20}), "ctid >= '(10,0)'::tid and ctid < '(20,0)'::tid");
  EXPECT_EQ(control::CtidCondition(CtidRange{20, -1}), "ctid >= '(20,0)'::tid");

  CreateTables();
  auto from = control::PgConnectSide(BackendOf(old_), "old", "split-itest");
  ASSERT_TRUE(from.ok()) << from.status();
  const std::string oid = Psql(old_, "select 'wide'::regclass::oid");
  auto ranges = control::SplitByPages(*from, oid, 3, kSmallSplit);
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  ASSERT_EQ(ranges->size(), 9u);
  EXPECT_EQ(ranges->front().first_page, 0);
  EXPECT_EQ(ranges->back().end_page, -1);
  for (std::size_t i = 1; i < ranges->size(); ++i) {
    EXPECT_EQ((*ranges)[i].first_page, (*ranges)[i - 1].end_page) << i;
    EXPECT_LT((*ranges)[i - 1].first_page, (*ranges)[i - 1].end_page) << i;
  }
  // The production default leaves a table this small whole, as does one worker.
  auto whole = control::SplitByPages(*from, oid, 3, PgCopySplit{});
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->size(), 1u);
  auto one = control::SplitByPages(*from, oid, 1, PgCopySplit{4, 1});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->size(), 1u);
  // A range condition is a TID range scan: no sequential scan of the table.
  const std::string plan = Psql(old_, "explain select * from wide where " + control::CtidCondition((*ranges)[1]));
  EXPECT_NE(plan.find("Tid Range Scan"), std::string::npos) << plan;
}

// The change stream's copy: a snapshot exported elsewhere (as a slot's is),
// tables empty on new (rows go straight in), three workers, nine ranges a
// table; old changes after the export.
TEST_F(CopySplitTest, CopiesSplitTablesExactlyUnderAnExportedSnapshot) {
  CreateTables();
  DirectPg exporter(old_, db_);
  exporter.Value("begin isolation level repeatable read read only");
  const std::string snapshot = exporter.Value("select pg_export_snapshot()");
  ASSERT_FALSE(snapshot.empty());
  ChangeOld();

  control::DataSpec spec;
  spec.mode = control::DataSpec::Mode::kSnapshot;
  spec.workers = 3;
  control::RouteProgress progress;
  Job job;
  auto st = control::CopyPostgres(BackendOf(old_), BackendOf(new_), {"wide", "pairs", "nokey"}, spec, progress, job,
                                  snapshot, kSmallSplit);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(job.Logged("split by pages")) << ::testing::PrintToString(job.lines);

  DirectPg on_new(new_, db_);
  const std::string wide = Rows(exporter, "wide", "id"), pairs = Rows(exporter, "pairs", "a, b");
  ExpectSame(wide, on_new, "wide", "id");
  ExpectSame(pairs, on_new, "pairs", "a, b");
  EXPECT_EQ(progress.copied, std::stoll(exporter.Value("select (select count(*) from wide) + (select count(*) from pairs)")));
  EXPECT_EQ(progress.written, progress.copied);
  // No key: noted, never copied (the stream could not carry its updates).
  EXPECT_EQ(on_new.Value("select count(*) from nokey"), "0");
  EXPECT_NE(std::find(progress.notes.begin(), progress.notes.end(), "table public.nokey has no primary key: not copied"),
            progress.notes.end())
      << ::testing::PrintToString(progress.notes);
  exporter.Value("commit");
}

// A snapshot copy of its own into tables new already holds rows of: every
// range goes through staging and INSERT … ON CONFLICT by the rule.
TEST_F(CopySplitTest, SplitRangesApplyByTheConflictRule) {
  CreateTables();
  // On new, before the copy: some of old's keys with other values.
  Psql(new_, "insert into wide (id, body) select g, 'stale' from generate_series(1, 30000, 4) g");
  Psql(new_, "insert into pairs (a, b, note) select a, b, 'stale' from (values (0, 'k1\t1'), (2, 'k0\t6')) v(a, b)");

  control::DataSpec spec;
  spec.mode = control::DataSpec::Mode::kSnapshot;
  spec.rule = control::ConflictRule::kReplace;
  spec.workers = 2;
  control::RouteProgress progress;
  Job job;
  auto st = control::CopyPostgres(BackendOf(old_), BackendOf(new_), {"wide", "pairs"}, spec, progress, job, "",
                                  kSmallSplit);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(job.Logged("split by pages")) << ::testing::PrintToString(job.lines);

  // Old did not change: its rows now are the snapshot's. Rows new had for
  // keys old deleted stay (the rule never deletes).
  DirectPg on_old(old_, db_), on_new(new_, db_);
  Psql(new_, "delete from wide where body = 'stale'");
  ExpectSame(Rows(on_old, "wide", "id"), on_new, "wide", "id");
  ExpectSame(Rows(on_old, "pairs", "a, b"), on_new, "pairs", "a, b");
}

// The ranges alone on a table without a key: each copied by its own session
// under one exported snapshot, the union is exactly the snapshot's rows
// (duplicates included), whatever old does meanwhile.
TEST_F(CopySplitTest, RangesOfATableWithoutKeyUnionToTheSnapshot) {
  CreateTables();
  DirectPg exporter(old_, db_);
  exporter.Value("begin isolation level repeatable read read only");
  const std::string snapshot = exporter.Value("select pg_export_snapshot()");
  ASSERT_FALSE(snapshot.empty());
  ChangeOld();

  auto coordinator = control::PgConnectSide(BackendOf(old_), "old", "split-itest");
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  auto ranges = control::SplitByPages(*coordinator, Psql(old_, "select 'nokey'::regclass::oid"), 2, kSmallSplit);
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  ASSERT_GT(ranges->size(), 2u);
  std::int64_t copied = 0;
  for (const auto& r : *ranges) {
    auto from = control::PgConnectSide(BackendOf(old_), "old", "split-itest");
    auto to = control::PgConnectSide(BackendOf(new_), "new", "split-itest");
    ASSERT_TRUE(from.ok() && to.ok());
    ASSERT_TRUE(control::PgExec(*from, "begin isolation level repeatable read read only").ok());
    ASSERT_TRUE(control::PgExec(*from, "set transaction snapshot '" + snapshot + "'").ok());
    auto rows = control::PgCopyAcross(*from, "copy (select n, label from nokey where " + control::CtidCondition(r) +
                                                 ") to stdout (format binary)",
                                      *to, "copy nokey (n, label) from stdin (format binary)", "out", "in");
    ASSERT_TRUE(rows.ok()) << rows.status();
    copied += *rows;
  }
  DirectPg on_new(new_, db_);
  const std::string at_snapshot = Rows(exporter, "nokey", "t::text");
  ExpectSame(at_snapshot, on_new, "nokey", "t::text");
  EXPECT_EQ(copied, std::stoll(exporter.Value("select count(*) from nokey")));
  exporter.Value("commit");
}

}  // namespace
}  // namespace turnout::testing
