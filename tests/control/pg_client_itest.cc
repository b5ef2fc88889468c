// The control plane's libpq layer (control/pg_client.h) against the
// harness' real servers: errors that name the side and tell a lost
// connection from a failed statement, both sides of an asynchronous query,
// the COPY stream between two servers, escaping by the server's rules, and
// the interruptible dsn connect.
#include "control/pg_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "tests/control/direct_pg.h"
#include "tests/control/own_database_fixture.h"
#include "tests/support/backends.h"

namespace turnout::testing {
namespace {

using control::PgSide;

class PgClientTest : public OwnDatabaseTest {
 public:
  PgClientTest() : OwnDatabaseTest("pgclient") {}

  control::PgOwnedSide Side(int port, const char* name) {
    auto s = control::PgConnectSide(BackendOf(port), name, "pg-client-itest");
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : control::PgOwnedSide{};
  }
};

TEST_F(PgClientTest, FailedStatementNamesTheSideAndWhatFailed) {
  auto old_side = Side(old_, "old");
  auto r = control::PgExec(old_side, "select * from no_such_table", {}, "read the table");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.status().message().substr(0, 21), "old: read the table: ") << r.status();
  EXPECT_NE(r.status().message().find("no_such_table"), std::string_view::npos) << r.status();
  // One line, whatever libpq printed (ERROR, LINE, caret).
  EXPECT_EQ(r.status().message().find('\n'), std::string_view::npos) << r.status();
  // Without `what`, the statement names itself; the connection is usable.
  auto again = control::PgExec(old_side, "select $1::int + 1", {"41"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(control::PgValue(*again, 0, 0), "42");
}

TEST_F(PgClientTest, ALostConnectionIsUnavailable) {
  auto new_side = Side(new_, "new");
  const std::string pid = std::to_string(PQbackendPID(new_side.get()));
  DirectPg admin(new_, db_);
  EXPECT_EQ(admin.Value("select pg_terminate_backend(" + pid + ")"), "t");
  // Seen before a statement is sent, and after one fails on it.
  for (int i = 0; i < 50 && control::PgStillConnected(new_side.get()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(control::PgStillConnected(new_side.get()));
  auto r = control::PgExec(new_side, "select 1", {}, "probe");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(r.status().message().substr(0, 12), "new: probe: ") << r.status();
  EXPECT_TRUE(control::PgConnectionLost(new_side.get()));
}

TEST_F(PgClientTest, SendAndCollectRunOnBothSidesAtOnce) {
  auto a = Side(old_, "old");
  auto b = Side(new_, "new");
  // Each side sleeps 500 ms: sent to both before either is read, the pair
  // takes one sleep, not two.
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(control::PgSend(a, "select pg_sleep(0.5), $1::text", {"a"}, "sleep").ok());
  ASSERT_TRUE(control::PgSend(b, "select pg_sleep(0.5), $1::text", {"b"}, "sleep").ok());
  auto ra = control::PgCollect(a, "sleep");
  auto rb = control::PgCollect(b, "sleep");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(control::PgValue(*ra, 0, 1), "a");
  EXPECT_EQ(control::PgValue(*rb, 0, 1), "b");
  EXPECT_LT(took, std::chrono::milliseconds(900));
  // A failing query's error comes from PgCollect, named.
  ASSERT_TRUE(control::PgSend(a, "select 1/0", {}, "divide").ok());
  auto bad = control::PgCollect(a, "divide");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().substr(0, 13), "old: divide: ") << bad.status();
}

TEST_F(PgClientTest, CopyAcrossStreamsRowsAndSurvivesAFailedHalf) {
  Psql(old_, "create table t (id int primary key, label text); "
             "insert into t select g, 'row ' || g from generate_series(1, 5000) g");
  Psql(new_, "create table t (id int primary key, label text)");
  auto from = Side(old_, "old");
  auto to = Side(new_, "new");
  auto rows = control::PgCopyAcross(from, "copy t to stdout", to, "copy t from stdin", "copy out", "copy in");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, 5000);
  DirectPg check(new_, db_);
  EXPECT_EQ(check.Value("select count(*) || ' ' || sum(id) from t"), "5000 12502500");

  // The target half fails (duplicate keys): an error naming it, and both
  // connections usable again.
  auto dup = control::PgCopyAcross(from, "copy t to stdout", to, "copy t from stdin", "copy out", "copy in");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message().substr(0, 13), "new: copy in:") << dup.status();
  EXPECT_TRUE(control::PgExec(from, "select 1").ok());
  EXPECT_TRUE(control::PgExec(to, "select 1").ok());
  // The source half fails: the target's COPY is aborted, nothing lands.
  auto missing = control::PgCopyAcross(from, "copy no_such to stdout", to, "copy t from stdin", "copy out", "copy in");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message().substr(0, 14), "old: copy out:") << missing.status();
  EXPECT_TRUE(control::PgExec(to, "select 1").ok());
  EXPECT_EQ(check.Value("select count(*) from t"), "5000");
}

// Binary COPY with character(n) columns named for trimming: the rows land
// exactly as old stores them; a stream that is not binary COPY is refused
// (nothing lands, both connections usable).
TEST_F(PgClientTest, CopyAcrossCutsCharacterPaddingThatNewPadsBack) {
  const std::string table = "create table p (id int primary key, c char(8), b bpchar, t text)";
  Psql(old_, table + "; insert into p select g, case g % 3 when 0 then 'é' || g when 1 then null else '' end, "
                     "'b  ', 't  ' from generate_series(1, 3000) g");
  Psql(new_, table);
  auto from = Side(old_, "old");
  auto to = Side(new_, "new");
  const std::vector<bool> trim = {false, true, false, false};
  auto rows = control::PgCopyAcross(from, "copy p to stdout (format binary)", to, "copy p from stdin (format binary)",
                                    "copy out", "copy in", {}, trim);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, 3000);
  const std::string stored = "select id, encode(bpcharsend(c), 'hex'), encode(bpcharsend(b), 'hex'), t from p order by id";
  DirectPg on_old(old_, db_), on_new(new_, db_);
  EXPECT_EQ(on_old.Rows(stored), on_new.Rows(stored));

  Psql(new_, "truncate p");
  auto text = control::PgCopyAcross(from, "copy p to stdout", to, "copy p from stdin (format binary)", "copy out",
                                    "copy in", {}, trim);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "copy out: the rows are not in binary COPY format");
  EXPECT_TRUE(control::PgExec(from, "select 1").ok());
  EXPECT_TRUE(control::PgExec(to, "select 1").ok());
  EXPECT_EQ(on_new.Value("select count(*) from p"), "0");
}

TEST_F(PgClientTest, EscapingFollowsTheServer) {
  auto s = Side(old_, "old");
  const std::string name = "we\"ird name";
  const std::string quoted = control::PgIdentifier(s.get(), name);
  EXPECT_EQ(quoted, "\"we\"\"ird name\"");
  EXPECT_EQ(control::PgQuoteIdent(name), quoted);
  ASSERT_TRUE(control::PgExec(s, "create table " + quoted + " (v text)").ok());
  const std::string value = "it's \\ a value";
  ASSERT_TRUE(control::PgExec(s, "insert into " + quoted + " values (" + control::PgLiteral(s.get(), value) + ")").ok());
  auto r = control::PgExec(s, "select v from " + quoted);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(control::PgValue(*r, 0, 0), value);
}

TEST_F(PgClientTest, ScriptsAndAffectedRows) {
  auto s = Side(old_, "old");
  auto r = control::PgExecScript(s, "create table n (v int); insert into n values (1), (2), (3)", "setup");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(control::PgAffected(*r), 3);  // the last statement's
  auto u = control::PgExec(s, "update n set v = v + 1 where v >= $1", {"2"});
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(control::PgAffected(*u), 2);
}

TEST(PgClientConnect, DsnConnectTimesOutIsCancelledAndNeverShowsTheDsn) {
  const auto& b = TestBackends::Get();
  // A good dsn connects.
  auto ok = control::PgConnectDsn(b.PgConnString(b.pg_old_port), "pg-client-itest", std::chrono::seconds(5), nullptr);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FALSE(control::PgConnectionLost(ok->get()));
  // Stopping before the first poll gives up at once.
  std::atomic<bool> stopping{true};
  auto cancelled = control::PgConnectDsn(b.PgConnString(b.pg_old_port), "pg-client-itest", std::chrono::seconds(5),
                                         &stopping);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
  // A refused login: Unavailable, with libpq's reason and not the password.
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(b.pg_old_port) +
                          " dbname=postgres user=no_such_user password=s3cret-pw";
  auto refused = control::PgConnectDsn(dsn, "pg-client-itest", std::chrono::seconds(5), nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.status().message().find("s3cret-pw"), std::string_view::npos) << refused.status();
  EXPECT_EQ(refused.status().message().find('\n'), std::string_view::npos) << refused.status();
}

TEST(PgOneLine, JoinsLinesAndDropsRepeats) {
  EXPECT_EQ(control::PgOneLine(nullptr), "");
  EXPECT_EQ(control::PgOneLine("ERROR:  boom\n"), "ERROR:  boom");
  EXPECT_EQ(control::PgOneLine("connection failed\n\tIs the server running?\nconnection failed\n"),
            "connection failed Is the server running?");
}

}  // namespace
}  // namespace turnout::testing
