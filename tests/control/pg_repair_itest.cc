// RepairFromJournal on Postgres against the harness clusters: the tables that
// journal entries name are resynchronised on the backend that missed the
// writes (missing rows inserted, extra rows deleted, changed rows updated, a
// table without a primary key copied whole), then verified; entries clear
// only once their tables are equal. Table names carry the pid: ctest runs
// suites in parallel against the same servers.
#include <libpq-fe.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "control/journal_repair.h"
#include "control/migration.h"
#include "routing/config.h"
#include "routing/journal.h"
#include "tests/control/direct_pg.h"
#include "tests/support/backends.h"

namespace turnout::control {
namespace {

using ::testing::HasSubstr;
using turnout::testing::TestBackends;
namespace json = boost::json;

using Direct = turnout::testing::DirectPg;

// Row-for-row fingerprint of a table, in `order`.
std::string Fingerprint(Direct& d, const std::string& table, const std::string& order) {
  return d.Value("select coalesce(md5(string_agg(t::text, '|' order by " + order + ")), 'empty') from " + table + " t");
}

class PgRepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    const std::string pid = std::to_string(::getpid());
    accounts_ = "repair_accounts_" + pid;
    log_ = "repair_log_" + pid;
    mixed_ = "RepairMixed_" + pid;  // quoted: case kept, as the classifier records it
    big_ = "repair_big_" + pid;
    routing::Backend old_b{.name = "pg-old", .address = {"127.0.0.1", static_cast<std::uint16_t>(b.pg_old_port)},
                           .user = b.pg_user, .password = b.pg_password, .database = "app"};
    routing::Backend new_b{.name = "pg-new", .address = {"127.0.0.1", static_cast<std::uint16_t>(b.pg_new_port)},
                           .user = b.pg_user, .password = b.pg_password, .database = "app",
                           .tls_mode = routing::UpstreamTlsMode::kVerifyFull, .tls_ca_file = b.ca_file};
    config_.backends = {old_b, new_b};
    config_.routes.push_back(routing::Route{.name = "db", .old_backend = "pg-old", .new_backend = "pg-new"});
    migration_.id = "pg_repair";
    migration_.interlays = {{"db", "pg-new"}};
    // Verify compares only this test's tables (others fill the shared servers).
    migration_.apis = {{"t", {accounts_, log_, mixed_, big_}, {}}};
    DropTables();
  }
  void TearDown() override { DropTables(); }

  void DropTables() {
    for (Direct* d : {&old_, &new_})
      d->Value("drop table if exists " + accounts_ + ", " + log_ + ", \"" + mixed_ + "\", " + big_);
  }

  // On both sides.
  void Both(const std::string& sql) {
    old_.Value(sql);
    new_.Value(sql);
  }

  std::uint64_t Journal(const std::vector<std::string>& targets, const std::string& statement = "update …",
                        const std::string& missed_by = "pg-new", const std::string& database = "") {
    routing::JournalEntry e;
    e.at = absl::Now();
    e.migration_id = migration_.id;
    e.route = "db";
    e.backend = missed_by;  // the side that missed the write; the other applied it
    e.kind = routing::JournalKind::kFailed;
    e.statement = statement;
    e.targets = targets;
    e.database = database;
    e.primary_outcome = "UPDATE 1";
    e.secondary_outcome = "connection refused";
    return journal_->Append(e);
  }

  Direct old_{TestBackends::Get().pg_old_port};
  Direct new_{TestBackends::Get().pg_new_port};
  routing::Config config_;
  Migration migration_;
  std::unique_ptr<routing::Journal> journal_ = routing::Journal::InMemory({});
  std::string accounts_, log_, mixed_, big_;
};

TEST_F(PgRepairTest, JournaledTablesAreResynchronisedOnTheSideThatMissedTheWrites) {
  // accounts: identity key, jsonb (no equality operator) and a generated column.
  Both("create table " + accounts_ +
       " (id bigint generated always as identity primary key, name text not null, balance numeric(12,2), "
       "tags jsonb, name_len int generated always as (length(name)) stored)");
  old_.Value("insert into " + accounts_ +
             " (name, balance, tags) select 'user' || g, g * 1.5, jsonb_build_object('g', g) "
             "from generate_series(1, 1000) g");
  new_.Value("insert into " + accounts_ +
             " (id, name, balance, tags) overriding system value select g, 'user' || g, g * 1.5, "
             "jsonb_build_object('g', g) from generate_series(1, 1000) g");
  // New missed: 10 inserts, 10 updates (one to null), a jsonb change, 5 deletes.
  new_.Value("delete from " + accounts_ + " where id between 991 and 1000");
  new_.Value("update " + accounts_ + " set balance = balance + 1 where id between 100 and 109");
  new_.Value("update " + accounts_ + " set balance = null where id = 110");
  new_.Value("update " + accounts_ + " set tags = '{\"g\": -1}' where id = 111");
  new_.Value("insert into " + accounts_ + " (id, name) overriding system value select g, 'gone' || g "
             "from generate_series(2001, 2005) g");

  // log: no primary key, duplicate rows.
  Both("create table " + log_ + " (msg text, n int)");
  old_.Value("insert into " + log_ + " select 'm' || (g % 7), g % 3 from generate_series(1, 50) g");
  new_.Value("insert into " + log_ + " select 'm' || (g % 7), g % 3 from generate_series(1, 40) g");
  new_.Value("insert into " + log_ + " values ('only on new', 9), (null, null)");

  // RepairMixed: quoted mixed-case name, composite key.
  Both("create table \"" + mixed_ + "\" (a int, b text, v text, primary key (a, b))");
  old_.Value("insert into \"" + mixed_ + "\" select g % 10, 'k' || g, 'v' || g from generate_series(1, 200) g");
  new_.Value("insert into \"" + mixed_ + "\" select g % 10, 'k' || g, 'v' || g from generate_series(1, 150) g");
  new_.Value("update \"" + mixed_ + "\" set v = 'stale' where a = 3");

  ASSERT_NE(Fingerprint(old_, accounts_, "id"), Fingerprint(new_, accounts_, "id"));
  ASSERT_NE(Fingerprint(old_, log_, "msg, n"), Fingerprint(new_, log_, "msg, n"));

  Journal({"public." + accounts_});
  Journal({log_, mixed_});
  Journal({accounts_});  // the same table unqualified
  const std::uint64_t no_targets = Journal({}, "do $$ begin perform 1; end $$");
  ASSERT_TRUE(journal_->Flush().ok());
  ASSERT_EQ(journal_->PendingCount(migration_.id), 4u);

  auto r = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& o = r->as_object();
  SCOPED_TRACE(json::serialize(*r));

  EXPECT_EQ(Fingerprint(old_, accounts_, "id"), Fingerprint(new_, accounts_, "id"));
  EXPECT_EQ(Fingerprint(old_, log_, "msg, n"), Fingerprint(new_, log_, "msg, n"));
  EXPECT_EQ(Fingerprint(old_, "\"" + mixed_ + "\"", "a, b"), Fingerprint(new_, "\"" + mixed_ + "\"", "a, b"));
  EXPECT_EQ(new_.Value("select count(*) from " + log_), "50");
  // New's identity sequence was moved past old's: its next id is free.
  EXPECT_EQ(new_.Value("insert into " + accounts_ + " (name) values ('next') returning id"), "1001");

  EXPECT_EQ(o.at("repaired_entries").to_number<std::int64_t>(), 3);
  EXPECT_EQ(o.at("pending").to_number<std::int64_t>(), 1);
  EXPECT_EQ(journal_->Pending(migration_.id).at(0).seq, no_targets);
  EXPECT_TRUE(o.at("postgres_equal").as_bool());
  ASSERT_EQ(o.at("failures").as_array().size(), 1u);
  EXPECT_THAT(std::string(o.at("failures").as_array()[0].as_string()),
              HasSubstr("entry " + std::to_string(no_targets) + " (route db): no tables recorded"));

  // Each table once, whichever way the entries named it.
  const auto& tables = o.at("tables_repaired").as_array();
  ASSERT_EQ(tables.size(), 3u);
  for (const auto& t : tables) {
    EXPECT_EQ(t.at("from").as_string(), "pg-old");
    EXPECT_EQ(t.at("to").as_string(), "pg-new");
    EXPECT_TRUE(t.at("equal").as_bool());
    const std::string name(t.at("table").as_string());
    if (name == "public." + accounts_) {
      EXPECT_TRUE(t.at("primary_key").as_bool());
      // Only the rows the verifier named were re-copied.
      EXPECT_EQ(t.at("method").as_string(), "rows");
      EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 27);
      EXPECT_EQ(t.at("source_rows").to_number<std::int64_t>(), 1000);
      EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 5);
      EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 22);  // 10 missing + 12 changed
    } else if (name == "public." + log_) {
      EXPECT_FALSE(t.at("primary_key").as_bool());
      // As a multiset: the two rows only on new out, the ten missing copies in.
      EXPECT_EQ(t.at("method").as_string(), "rows");
      EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 12);
      EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 2);
      EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 10);
    } else {
      EXPECT_EQ(name, "public." + mixed_);
      EXPECT_EQ(t.at("method").as_string(), "rows");
      EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 0);
      EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 50 + 15);  // 50 missing; a = 3 among the first 150
    }
  }

  // A second run finds nothing to repair and leaves the targetless entry.
  auto again = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at("repaired_entries").to_number<std::int64_t>(), 0);
  EXPECT_EQ(again->at("pending").to_number<std::int64_t>(), 1);
}

// Differences no journal entry names (a write the journal never heard of):
// the verifier finds them, and the repair fixes exactly those rows, from the
// side that holds the migration's writes.
TEST_F(PgRepairTest, TablesThatDifferWithoutAnEntryAreFoundByTheVerifierAndRepaired) {
  Both("create table " + accounts_ + " (id int primary key, v text)");
  Both("insert into " + accounts_ + " select g, 'v' || g from generate_series(1, 1000) g");
  new_.Value("update " + accounts_ + " set v = 'stale' where id in (10, 20, 30)");
  new_.Value("delete from " + accounts_ + " where id in (40, 50)");
  new_.Value("insert into " + accounts_ + " values (5000, 'only on new')");
  Both("create table " + log_ + " (msg text, n int)");
  old_.Value("insert into " + log_ + " select 'm' || g, g from generate_series(1, 50) g");
  new_.Value("insert into " + log_ + " select 'm' || g, g from generate_series(1, 48) g");
  ASSERT_EQ(journal_->PendingCount(migration_.id), 0u);

  auto r = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  EXPECT_TRUE(r->at("postgres_equal").as_bool());
  std::set<std::string> repaired;
  for (const auto& t : r->at("tables_repaired").as_array()) {
    EXPECT_EQ(t.at("found_by").as_string(), "verify");
    EXPECT_EQ(t.at("from").as_string(), "pg-old");
    EXPECT_EQ(t.at("to").as_string(), "pg-new");
    EXPECT_TRUE(t.at("equal").as_bool());
    const std::string name(t.at("table").as_string());
    repaired.insert(name);
    if (name == "public." + accounts_) {
      EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 6);
      EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 5);  // 3 changed, 2 missing
      EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 1);
    }
  }
  EXPECT_EQ(repaired, (std::set<std::string>{"public." + accounts_, "public." + log_}));
  EXPECT_EQ(Fingerprint(old_, accounts_, "id"), Fingerprint(new_, accounts_, "id"));
  EXPECT_EQ(Fingerprint(old_, log_, "msg, n"), Fingerprint(new_, log_, "msg, n"));
}

// A table without a key (issue 12): the verifier lists rows present more
// often on one side with how many more; the repair deletes exactly that many
// copies on the target (by ctid) and copies exactly the missing ones, and
// leaves every other row where it was.
TEST_F(PgRepairTest, TableWithoutKeyIsRepairedCopyByCopy) {
  Both("create table " + log_ + " (msg text, n int, at timestamptz, payload jsonb)");
  const std::string rows = "select 'm' || (g % 5), g % 3, '2024-01-01'::timestamptz + (g % 4) * interval '1 hour', "
                           "case when g % 6 = 0 then null else jsonb_build_object('g', g % 2) end "
                           "from generate_series(1, 300) g";
  Both("insert into " + log_ + " " + rows);
  // One row of which old holds five copies (g = 1, 61, 121, 181, 241).
  const std::string five_copies = "msg = 'm1' and n = 1 and at = '2024-01-01 01:00:00+00' and payload = '{\"g\": 1}'";
  // New: three copies of that row too many, one row it never had, a NULL-only row;
  // missing: two of the copies of another row and every copy of a third.
  new_.Value("insert into " + log_ + " select msg, n, at, payload from " + log_ +
             " where " + five_copies + " limit 1");
  new_.Value("insert into " + log_ + " select msg, n, at, payload from " + log_ +
             " where " + five_copies + " limit 2");
  new_.Value("insert into " + log_ + " values ('only on new', 7, null, '[]'), (null, null, null, null)");
  new_.Value("delete from " + log_ + " where ctid = any(array(select ctid from " + log_ +
             " where msg = 'm2' and n = 2 and payload = '{\"g\": 0}' limit 2))");
  new_.Value("delete from " + log_ + " where msg = 'm4' and n = 0");
  const std::string copies_m1 =
      "select count(*) from " + log_ + " where " + five_copies;
  ASSERT_EQ(std::stoi(new_.Value(copies_m1)), std::stoi(old_.Value(copies_m1)) + 3);
  const std::int64_t missing_m4 = std::stoll(old_.Value("select count(*) from " + log_ + " where msg = 'm4' and n = 0"));
  ASSERT_GT(missing_m4, 0);
  // Rows the repair must not move: every row of msg m0 keeps its ctid.
  const std::string untouched = "select string_agg(ctid::text, ',' order by ctid) from " + log_ + " where msg = 'm0'";
  const std::string ctids_before = new_.Value(untouched);

  Journal({log_});
  auto r = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  const auto& tables = r->at("tables_repaired").as_array();
  ASSERT_EQ(tables.size(), 1u);
  const auto& t = tables[0];
  EXPECT_FALSE(t.at("primary_key").as_bool());
  EXPECT_EQ(t.at("method").as_string(), "rows");
  EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 3 + 2 + 2 + missing_m4);
  EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 3 + 2);
  EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 2 + missing_m4);
  EXPECT_TRUE(t.at("equal").as_bool());
  EXPECT_TRUE(r->at("postgres_equal").as_bool());
  EXPECT_EQ(new_.Value(untouched), ctids_before);
  // Both sides, row for row and column for column (duplicates included).
  const std::string all = "msg, n, at, payload::text";
  EXPECT_EQ(Fingerprint(old_, log_, all), Fingerprint(new_, log_, all));
  EXPECT_EQ(old_.Value("select count(*) from " + log_), new_.Value("select count(*) from " + log_));
  EXPECT_EQ(old_.Value("select count(*) from " + log_), "300");
}

TEST_F(PgRepairTest, TablesThatCannotBeRepairedKeepTheirEntries) {
  Both("create table " + accounts_ + " (id int primary key, v text)");
  old_.Value("insert into " + accounts_ + " values (1, 'a'), (2, 'b')");
  Journal({accounts_});
  Journal({"no_such_table_" + accounts_, accounts_});
  auto r = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  // The first entry's table was repaired; the second names a missing table.
  EXPECT_EQ(r->at("repaired_entries").to_number<std::int64_t>(), 1);
  EXPECT_EQ(r->at("pending").to_number<std::int64_t>(), 1);
  EXPECT_EQ(Fingerprint(old_, accounts_, "id"), Fingerprint(new_, accounts_, "id"));
  ASSERT_EQ(r->at("failures").as_array().size(), 1u);
  EXPECT_THAT(std::string(r->at("failures").as_array()[0].as_string()), HasSubstr("does not exist on the source"));
}

// When old missed the writes (new authoritative), new is the source.
// A session that wrote in another database than the backends' own: the
// entry names it, and the repair works there.
TEST_F(PgRepairTest, TablesAreRepairedInTheDatabaseTheEntryNames) {
  const std::string db = "repair_db_" + std::to_string(::getpid());
  for (Direct* d : {&old_, &new_}) {
    d->Value("drop database if exists " + db + " with (force)");
    d->Value("create database " + db);
  }
  {
    Direct old_db(TestBackends::Get().pg_old_port, db), new_db(TestBackends::Get().pg_new_port, db);
    for (Direct* d : {&old_db, &new_db}) d->Value("create table items (id int primary key, name text)");
    old_db.Value("insert into items select g, 'n' || g from generate_series(1, 100) g");
    new_db.Value("insert into items select g, 'n' || g from generate_series(1, 90) g");
    const std::uint64_t seq = Journal({"items"}, "insert into items …", "pg-new", db);
    auto r = RepairFromJournal(config_, migration_, *journal_);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(Fingerprint(old_db, "items", "id"), Fingerprint(new_db, "items", "id"));
    EXPECT_EQ(new_db.Value("select count(*) from items"), "100");
    const auto pending = journal_->Pending(migration_.id);
    EXPECT_TRUE(std::none_of(pending.begin(), pending.end(), [&](const auto& e) { return e.seq == seq; }))
        << json::serialize(*r);
  }
  for (Direct* d : {&old_, &new_}) d->Value("drop database if exists " + db + " with (force)");
}

TEST_F(PgRepairTest, OldIsRepairedFromNewWhenOldMissedTheWrites) {
  Both("create table " + accounts_ + " (id int primary key, v text)");
  new_.Value("insert into " + accounts_ + " values (1, 'a'), (2, 'b'), (3, 'c')");
  old_.Value("insert into " + accounts_ + " values (1, 'stale'), (4, 'extra')");
  Journal({accounts_}, "update …", "pg-old");
  auto r = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  EXPECT_EQ(r->at("pending").to_number<std::int64_t>(), 0);
  EXPECT_EQ(old_.Value("select string_agg(id || '=' || v, ',' order by id) from " + accounts_), "1=a,2=b,3=c");
  const auto& t = r->at("tables_repaired").as_array().at(0);
  EXPECT_EQ(t.at("from").as_string(), "pg-new");
  EXPECT_EQ(t.at("to").as_string(), "pg-old");
  EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), 1);
  EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 3);
}

// 100k rows, 1% missing, 1% extra, 1% changed on new: seconds, not minutes.
TEST_F(PgRepairTest, HundredThousandRowTableIsRepairedInSeconds) {
  constexpr int kRows = 100000;
  Both("create table " + big_ + " (id int primary key, payload text, v int, at timestamptz)");
  const std::string fill = "insert into " + big_ + " select g, md5(g::text), g % 1000, '2024-01-01'::timestamptz + "
                           "g * interval '1 second' from generate_series(1, " + std::to_string(kRows) + ") g";
  Both(fill);
  new_.Value("delete from " + big_ + " where id % 100 = 1");
  new_.Value("update " + big_ + " set v = -1 where id % 100 = 2");
  new_.Value("insert into " + big_ + " select g, 'extra', 0, now() from generate_series(" + std::to_string(kRows + 1) +
             ", " + std::to_string(kRows + kRows / 100) + ") g");
  Journal({big_});
  const auto start = std::chrono::steady_clock::now();
  auto r = RepairFromJournal(config_, migration_, *journal_);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  EXPECT_EQ(r->at("pending").to_number<std::int64_t>(), 0);
  EXPECT_EQ(Fingerprint(old_, big_, "id"), Fingerprint(new_, big_, "id"));
  const auto& t = r->at("tables_repaired").as_array().at(0);
  EXPECT_EQ(t.at("source_rows").to_number<std::int64_t>(), kRows);
  EXPECT_EQ(t.at("method").as_string(), "rows");
  EXPECT_EQ(t.at("rows_differing").to_number<std::int64_t>(), 3 * kRows / 100);
  EXPECT_EQ(t.at("deleted").to_number<std::int64_t>(), kRows / 100);
  EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 2 * kRows / 100);
  const double table_seconds = t.at("seconds").to_number<double>();
  std::printf("repair of %d rows: %.3f s for the table (%.0f rows/s), %.3f s with verification\n", kRows,
              table_seconds, kRows / table_seconds, seconds);
  EXPECT_LT(seconds, 30.0);
}

// A difference the verifier cannot pin to rows (here a column only the
// target has) falls back to the whole-table resync.
TEST_F(PgRepairTest, SchemaDriftFallsBackToTheWholeTable) {
  old_.Value("create table " + accounts_ + " (id int primary key, v text)");
  new_.Value("create table " + accounts_ + " (id int primary key, v text, extra int default 7)");
  old_.Value("insert into " + accounts_ + " select g, 'v' || g from generate_series(1, 50) g");
  new_.Value("insert into " + accounts_ + " (id, v) select g, 'v' || g from generate_series(1, 45) g");
  new_.Value("update " + accounts_ + " set v = 'stale' where id = 3");
  Journal({accounts_});
  auto r = RepairFromJournal(config_, migration_, *journal_);
  ASSERT_TRUE(r.ok()) << r.status();
  SCOPED_TRACE(json::serialize(*r));
  const auto& t = r->at("tables_repaired").as_array().at(0);
  EXPECT_EQ(t.at("method").as_string(), "table");
  EXPECT_EQ(t.at("upserted").to_number<std::int64_t>(), 6);  // 5 missing, 1 changed
  EXPECT_EQ(old_.Value("select string_agg(id || '=' || v, ',' order by id) from " + accounts_),
            new_.Value("select string_agg(id || '=' || v, ',' order by id) from " + accounts_));
}

}  // namespace
}  // namespace turnout::control
