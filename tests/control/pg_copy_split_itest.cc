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
#include "control/pg_set_aside_indexes.h"
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
  void Sleep(std::chrono::milliseconds) override {}
  void Log(const std::string& line) override {
    std::lock_guard<std::mutex> l(mu_);
    lines.push_back(line);
  }
  bool Logged(const std::string& part) const {
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(part) != std::string::npos; });
  }
  // Stops the copy once it has checkpointed this often (0: never).
  int stop_after_checkpoints = 0;
  bool ShouldContinue() override { return stop_after_checkpoints == 0 || checkpoints < stop_after_checkpoints; }
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
  static void ExpectSameSmall(const std::string& on_old, const std::string& on_new, const std::string& table) {
    EXPECT_GT(Count(on_old), 100) << table;
    EXPECT_TRUE(on_old == on_new) << table << ": new differs from old\nold rows: " << Count(on_old)
                                  << "\nnew rows: " << Count(on_new);
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

// character(n) values lose their padding on the way (binary COPY,
// protocol/pg/binary_copy_trim.h) and new pads them back: every stored byte
// is old's. Unbounded bpchar, varchar and arrays of character(n) keep their
// spaces; multibyte, empty, full-length and NULL values are among the rows.
// Both copiers: the snapshot's (ranges straight into the empty table) and
// the keyset scan's (batches through a staging table, then INSERT … ON
// CONFLICT), with some of old's rows already on new, padded otherwise.
void CopyPaddedTable(CopySplitTest& t, control::DataSpec::Mode mode) {
  t.Both("create table padded (id int primary key, code char(6), name char(4), free bpchar, codes char(3)[], "
         "v varchar(6), z char(1))");
  t.Psql(t.old_,
         "insert into padded select g, "
         "case g % 5 when 0 then null when 1 then '' when 2 then 'ab' when 3 then 'abcdef' else ' x y' end, "
         "case g % 4 when 0 then 'é' when 1 then 'éé  ' when 2 then 'ñçéü' else null end, "
         "case g % 3 when 0 then 'x   ' when 1 then '' else ' ' end, array[('c' || g % 7)::char(3), null, ' '], "
         "case g % 2 when 0 then 'v  ' else 'vvvvvv' end, 'z' from generate_series(1, 6000) g");
  control::DataSpec spec;
  spec.mode = mode;
  spec.workers = 2;
  if (mode == control::DataSpec::Mode::kScan) {
    spec.rule = control::ConflictRule::kReplace;
    spec.batch_size = 1000;
    t.Psql(t.new_, "insert into padded (id, code, free) select g, 'stale', 'stale ' from generate_series(1, 6000, 7) g");
  }
  control::RouteProgress progress;
  Job job;
  auto st = control::CopyPostgres(t.BackendOf(t.old_), t.BackendOf(t.new_), {"padded"}, spec, progress, job, "",
                                  kSmallSplit);
  ASSERT_TRUE(st.ok()) << st;

  const std::string stored =
      "select t::text, encode(bpcharsend(code), 'hex'), encode(bpcharsend(name), 'hex'), "
      "encode(bpcharsend(free), 'hex'), octet_length(v), codes::text from padded t order by id";
  DirectPg on_old(t.old_, t.db_), on_new(t.new_, t.db_);
  const std::string want = on_old.Rows(stored);
  EXPECT_GT(CopySplitTest::Count(want), 5000);
  EXPECT_TRUE(want == on_new.Rows(stored)) << "new's bytes differ from old's";
}

TEST_F(CopySplitTest, CharacterColumnsArriveByteForByteThoughTheirPaddingIsCutOnTheWay) {
  CopyPaddedTable(*this, control::DataSpec::Mode::kSnapshot);
}

TEST_F(CopySplitTest, CharacterColumnsArriveByteForByteThroughTheKeysetScansStaging) {
  CopyPaddedTable(*this, control::DataSpec::Mode::kScan);
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

// ---------------------------------------------------------------- indexes set aside
// (control/pg_set_aside_indexes.h): the stream's copy fills an empty table
// without its indexes and builds them once its rows are in.
class CopyIndexesTest : public CopySplitTest {
 public:
  // Every index and constraint of `table` on new as its definition prints,
  // and whether each index is valid and ready.
  std::string Definitions(const std::string& table) {
    return Psql(new_, "select coalesce(string_agg(d, E'\\n' order by d), '') from ("
                      " select pg_get_indexdef(indexrelid) || ' valid=' || indisvalid || ' ready=' || indisready as d"
                      " from pg_index where indrelid = '" + table + "'::regclass"
                      " union all select conname || ' ' || pg_get_constraintdef(oid) from pg_constraint"
                      " where conrelid = '" + table + "'::regclass) x");
  }
  std::string Recorded() {
    return Psql(new_, "select case when to_regclass('_turnout.set_aside_indexes') is null then 'none' else "
                      "(select count(*)::text from _turnout.set_aside_indexes) end");
  }
  // `acct`: a primary key, a deferrable unique constraint, a partial, an
  // expression, a hash and a covering index with a storage parameter.
  void CreateAccounts() {
    Both("create table acct (id bigint primary key, email text, grp int, score numeric, note text, "
         "constraint acct_email_key unique (email) deferrable initially deferred)");
    Both("create index acct_grp on acct (grp) where grp > 10");
    Both("create index acct_lower on acct (lower(note))");
    Both("create index acct_hash on acct using hash (grp)");
    Both("create index acct_cover on acct (grp) include (score) with (fillfactor = 70)");
    Psql(old_, "insert into acct select g, 'user' || g || '@example.com', g % 50, g * 0.5, "
               "case when g % 9 = 0 then null else 'Note ' || g end from generate_series(1, 30000) g");
  }
  absl::Status Copy(Job& job, const std::vector<std::string>& tables, const std::string& snapshot,
                    control::RouteProgress& progress) {
    control::DataSpec spec;
    spec.mode = control::DataSpec::Mode::kSnapshot;
    spec.workers = 3;
    return control::CopyPostgres(BackendOf(old_), BackendOf(new_), tables, spec, progress, job, snapshot, kSmallSplit);
  }
};

TEST_F(CopyIndexesTest, AnEmptyTablesIndexesAreSetAsideAndBuiltAgainExactly) {
  CreateAccounts();
  const std::string before = Definitions("acct");
  ASSERT_NE(before.find("acct_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED"), std::string::npos) << before;
  DirectPg exporter(old_, db_);
  exporter.Value("begin isolation level repeatable read read only");
  const std::string snapshot = exporter.Value("select pg_export_snapshot()");
  Psql(old_, "update acct set note = 'after' where id % 4 = 0");

  Job job;
  control::RouteProgress progress;
  auto st = Copy(job, {"acct"}, snapshot, progress);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(job.Logged("6 indexes of public.acct set aside")) << ::testing::PrintToString(job.lines);
  EXPECT_TRUE(job.Logged("indexes of public.acct built in")) << ::testing::PrintToString(job.lines);
  EXPECT_EQ(Definitions("acct"), before);
  EXPECT_EQ(Recorded(), "0");
  DirectPg on_new(new_, db_);
  ExpectSame(Rows(exporter, "acct", "id"), on_new, "acct", "id");
  // The key holds again: a duplicate is refused (the block fails when not).
  EXPECT_EQ(Psql(new_, "do $$ begin insert into acct (id) values (1); raise exception 'duplicate key accepted'; "
                       "exception when unique_violation then raise notice 'refused'; end $$; select 'refused'"),
            "refused");
  exporter.Value("commit");
}

TEST_F(CopyIndexesTest, IndexesThatCannotBeBuiltAgainExactlyStayInPlace) {
  // parent: a foreign key references its key. commented: a comment on its
  // index. clustered: CLUSTER's index. ident: the replica identity's index.
  // child: nothing in the way (its foreign key points elsewhere).
  Both("create table parent (id int primary key, v text)");
  Both("create table child (id int primary key, parent_id int references parent (id))");
  Both("create table commented (id int primary key)");
  Both("comment on index commented_pkey is 'kept'");
  Both("create table clustered (id int primary key)");
  Both("cluster clustered using clustered_pkey");
  Both("create table ident (id int primary key, u int not null)");
  Both("create unique index ident_u on ident (u)");
  Both("alter table ident replica identity using index ident_u");
  Psql(old_, "insert into parent select g, 'p' || g from generate_series(1, 3000) g");
  Psql(old_, "insert into child select g, g % 3000 + 1 from generate_series(1, 3000) g");
  for (const char* t : {"commented", "clustered"}) Psql(old_, std::string("insert into ") + t + " select generate_series(1, 3000)");
  Psql(old_, "insert into ident select g, -g from generate_series(1, 3000) g");
  const std::vector<std::string> tables = {"parent", "child", "commented", "clustered", "ident"};
  std::vector<std::string> before;
  for (const auto& t : tables) before.push_back(Definitions(t));
  DirectPg exporter(old_, db_);
  exporter.Value("begin isolation level repeatable read read only");
  const std::string snapshot = exporter.Value("select pg_export_snapshot()");

  Job job;
  control::RouteProgress progress;
  auto st = Copy(job, tables, snapshot, progress);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(job.Logged("1 indexes of public.child set aside")) << ::testing::PrintToString(job.lines);
  for (const char* kept : {"public.parent ", "public.commented ", "public.clustered ", "public.ident "})
    EXPECT_FALSE(job.Logged(std::string("indexes of ") + kept)) << kept << ::testing::PrintToString(job.lines);
  DirectPg on_new(new_, db_);
  for (std::size_t i = 0; i < tables.size(); ++i) {
    EXPECT_EQ(Definitions(tables[i]), before[i]) << tables[i];
    ExpectSameSmall(Rows(exporter, tables[i], "id"), Rows(on_new, tables[i], "id"), tables[i]);
  }
  EXPECT_EQ(Psql(new_, "select relreplident from pg_class where relname = 'ident'"), "i");
  EXPECT_EQ(Psql(new_, "select indisclustered from pg_index where indexrelid = 'clustered_pkey'::regclass"), "t");
  EXPECT_EQ(Recorded(), "0");
  exporter.Value("commit");
}

// A copy cut short by kill -9 leaves its record on new: the next copy of the
// table builds the indexes first. Here the record is made as the copy makes
// it, then a copy that stops at once, then one that runs to the end.
TEST_F(CopyIndexesTest, IndexesLeftAsideByACopyCutShortAreBuiltByTheNext) {
  CreateAccounts();
  const std::string before = Definitions("acct");
  auto to = control::PgConnectSide(BackendOf(new_), "new", "split-itest");
  ASSERT_TRUE(to.ok()) << to.status();
  auto aside = control::SetIndexesAside(*to, "\"public\".\"acct\"");
  ASSERT_TRUE(aside.ok()) << aside.status();
  EXPECT_EQ(*aside, 6);
  EXPECT_EQ(Psql(new_, "select count(*) from pg_index where indrelid = 'acct'::regclass"), "0");
  EXPECT_EQ(Recorded(), "6");

  // A copy told to stop before its first piece: it builds what it finds
  // recorded, sets the indexes aside again, stops, and builds them again.
  DirectPg exporter(old_, db_);
  exporter.Value("begin isolation level repeatable read read only");
  const std::string snapshot = exporter.Value("select pg_export_snapshot()");
  Job stopping;
  stopping.stop_after_checkpoints = 1;
  control::RouteProgress progress;
  auto st = Copy(stopping, {"acct"}, snapshot, progress);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(stopping.Logged("built the indexes an earlier copy set aside on"))
      << ::testing::PrintToString(stopping.lines);
  EXPECT_TRUE(stopping.Logged("6 indexes of public.acct set aside")) << ::testing::PrintToString(stopping.lines);
  EXPECT_EQ(Definitions("acct"), before);
  EXPECT_EQ(Recorded(), "0");

  Job job;
  control::RouteProgress again;
  st = Copy(job, {"acct"}, snapshot, again);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(Definitions("acct"), before);
  DirectPg on_new(new_, db_);
  ExpectSame(Rows(exporter, "acct", "id"), on_new, "acct", "id");
  exporter.Value("commit");
}

}  // namespace
}  // namespace turnout::testing
