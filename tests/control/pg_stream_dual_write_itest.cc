// Dual-write carried by the change stream, as clients see it (issue
// "Postgres dual-write and cutover on the change stream"): with `apply:
// sync` a commit acknowledged through turnout is on new already; with
// `apply: async` a read that turnout sends to new after the session's own
// commit finds it. Real servers, real clients (libpq), 8 concurrent
// writers, and a full comparison of both sides at the end.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/control/change_stream_fixture.h"
#include "tests/support/backends.h"

namespace turnout::testing {
namespace {

constexpr int kWriters = 8;
constexpr int kCommitsPerWriter = 1250;  // 10,000 in all

constexpr char kSyncDualWrite[] =
    R"({"type":"canary","read_percentage":0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";

constexpr char kTable[] =
    "create table ev (id bigserial primary key, client int, n int, at timestamptz default now(), "
    "r float default random())";

// One libpq connection; a failed statement is a test failure.
class Conn {
 public:
  explicit Conn(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) ADD_FAILURE() << PQerrorMessage(c_);
  }
  ~Conn() { PQfinish(c_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // The first value of the first row ("" when none).
  std::string Value(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                               nullptr, 0);
    std::string out;
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    else if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return out;
  }
  void Exec(const std::string& sql) { (void)Value(sql); }
  // A simple Query (PQexec): how psql, psycopg and pgbench send BEGIN and COMMIT.
  void Simple(const std::string& sql) { Check(PQexec(c_, sql.c_str()), sql); }
  // A statement prepared by name once, then Bind, Describe, Execute, Sync
  // (how pgjdbc sends a COMMIT it has prepared on the server).
  // A simple Query's first value (its RETURNING).
  std::string Returning(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    std::string out;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    else out = PQgetvalue(r, 0, 0);
    PQclear(r);
    return out;
  }
  // A simple Query that must fail.
  void Fails(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    if (PQresultStatus(r) != PGRES_FATAL_ERROR) ADD_FAILURE() << sql << " did not fail";
    PQclear(r);
  }
  void Prepared(const std::string& name, const std::string& sql) {
    if (prepared_.insert(name).second) Check(PQprepare(c_, name.c_str(), sql.c_str(), 0, nullptr), sql);
    Check(PQexecPrepared(c_, name.c_str(), 0, nullptr, nullptr, nullptr, 0), sql);
  }

 private:
  void Check(PGresult* r, const std::string& sql) {
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  }

  PGconn* c_;
  std::set<std::string> prepared_;
};

class StreamDualWriteTest : public ChangeStreamTest {
 public:
  StreamDualWriteTest() : ChangeStreamTest("sdw") {}

  // The harness runs its clusters with synchronous_commit = off, where a
  // commit reaches the stream only once old's WAL writer flushed it (up to
  // wal_writer_delay later); production settings flush at commit.
  void SynchronousCommitOnOld() { Psql(old_, "alter database " + db_ + " set synchronous_commit = on"); }

  // turnout (protocol mode) with migration `id` under `strategy`, its data
  // `scan` (copy, then stream) over `ev`, once it streams.
  void StreamEv(const std::string& id, const std::string& strategy) {
    StartTurnout(/*protocol=*/true);
    Migrate(id, R"({"type":"scan"})", strategy, {"ev"});
    ASSERT_EQ(StreamPhase(WaitStreaming(id)), "streaming") << Log();
    // The first stream ends once it caught up after the copy, and the route
    // streams on with a new one (control/data_movement.cc): wait until that
    // one applies past where old is now, so that the tests' commits, which
    // count what they waited for, find the stream live in this process.
    auto route_streaming = [](const json::value& m) {
      if (!m.is_object() || !m.as_object().contains("progress")) return false;
      for (const auto& r : m.at("progress").at("routes").as_array())
        if (const auto* phase = r.as_object().if_contains("phase"); phase && phase->is_string() && *phase == "streaming")
          return true;
      return false;
    };
    ASSERT_TRUE(route_streaming(WaitFor(id, route_streaming))) << Log();
    Psql(old_, "select pg_logical_emit_message(false, 'turnout-test', 'after the first catch-up')");
    const std::string now = Psql(old_, "select pg_current_wal_insert_lsn()::text");
    auto applied_past = [&](const json::value& m) {
      for (const auto& r : m.at("progress").at("routes").as_array()) {
        const auto* stream = r.as_object().if_contains("stream");
        const auto* lsn = stream ? stream->as_object().if_contains("applied_lsn") : nullptr;
        if (lsn && lsn->is_string() && !lsn->as_string().empty() &&
            Psql(old_, "select '" + std::string(lsn->as_string()) + "'::pg_lsn >= '" + now + "'::pg_lsn") == "t")
          return true;
      }
      return false;
    };
    ASSERT_TRUE(applied_past(WaitFor(id, applied_past))) << Log();
  }

  std::string ViaTurnoutConnString() const { return TestBackends::Get().PgConnString(pg_port_, db_); }
  std::string NewConnString() const { return TestBackends::Get().PgConnString(new_, db_); }

  double Metric(const std::string& series) { return admin_->Metric(series); }
  // Writers commit in sync stream dual-write through turnout; turnout is
  // killed (-9) and restarted mid-way; every acknowledged write is on new,
  // none twice, and the table is the same on both sides.
  void KillTurnoutWhileSyncCommitsAreHeld(const std::string& id, bool connect_per_commit);
  double CommitTargets(const char* by) {
    return Metric(std::string("turnout_stream_commit_targets_total{by=\"") + by + "\",route=\"pg\"}");
  }
  // The stream wait series, for failure messages.
  std::string StreamMetrics() {
    std::string out;
    for (const char* by : {"xid", "xid_then_fence", "fence", "none"})
      out += std::string("commit targets by ") + by + " " + std::to_string(CommitTargets(by)) + "\n";
    for (const char* kind : {"commit", "read"})
      for (const char* result : {"applied", "timeout", "not_live"}) {
        const std::string series = std::string("turnout_stream_waits_total{kind=\"") + kind + "\",result=\"" + result +
                                   "\",route=\"pg\"}";
        out += series + " " + std::to_string(Metric(series)) + "\n";
      }
    return out;
  }
};

// Sync: the client's COMMIT (or its autocommit INSERT) is answered only once
// new applied it, so a direct read of new right after always finds the row.
// Five kinds of commit, a fifth each. By its own transaction's end in the
// stream (by xid): an autocommit INSERT in an extended batch (Parse, Bind,
// Describe, Execute, Sync); a COMMIT as a simple Query, as an extended batch
// of its own and as a statement prepared by name (Bind, Describe, Execute,
// Sync). By a sample of old with a fence: an INSERT in a simple Query of two
// statements.
TEST_F(StreamDualWriteTest, SyncCommitIsOnNewWhenTheClientHearsOfIt) {
  Both(kTable);
  SynchronousCommitOnOld();
  Psql(old_, "insert into ev (client, n) select 0, g from generate_series(1, 1000) g");
  ASSERT_NO_FATAL_FAILURE(StreamEv("sync_dw", kSyncDualWrite));

  std::atomic<int> missing{0}, done{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      Conn via(ViaTurnoutConnString()), direct(NewConnString());
      for (int i = 0; i < kCommitsPerWriter; ++i) {
        std::string id;
        const std::vector<std::string> row{std::to_string(w + 1), std::to_string(i)};
        if (i % 5 == 0) {
          id = via.Value("insert into ev (client, n) values ($1, $2) returning id", row);
        } else if (i % 5 == 4) {
          via.Simple("insert into ev (client, n) values (" + row[0] + ", " + row[1] + "); select 1");
          id = direct.Value("select id from ev where client = $1 and n = $2", row);
          if (id.empty()) ++missing;
        } else {
          // An explicit transaction: the COMMIT is what waits.
          via.Simple("begin");
          id = via.Value("insert into ev (client, n) values ($1, $2) returning id", row);
          if (i % 5 == 1) via.Exec("commit");
          else if (i % 5 == 2) via.Simple("commit");
          else via.Prepared("commit_stmt", "commit");
        }
        if (id.empty()) continue;  // counted missing, or the failure is reported already
        if (direct.Value("select count(*) from ev where id = $1", {id}) != "1") ++missing;
        ++done;
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(done.load(), kWriters * kCommitsPerWriter);
  EXPECT_EQ(missing.load(), 0) << "commits acknowledged through turnout that new did not have yet\n"
                                << StreamMetrics();
  EXPECT_GE(Metric(R"(turnout_stream_waits_total{kind="commit",result="applied",route="pg"})"),
            kWriters * kCommitsPerWriter);
  // Each waited by its xid (after 20 ms also for a fence: a loaded machine
  // may decode that late), but the two-statement Queries, for a fence.
  int fenced = 0;
  for (int i = 0; i < kCommitsPerWriter; ++i) fenced += i % 5 == 4;
  fenced *= kWriters;
  EXPECT_GT(CommitTargets("xid"), 0) << StreamMetrics();
  EXPECT_EQ(CommitTargets("xid") + CommitTargets("xid_then_fence"), kWriters * kCommitsPerWriter - fenced)
      << StreamMetrics();
  EXPECT_EQ(CommitTargets("fence"), fenced) << StreamMetrics();
  EXPECT_EQ(CommitTargets("none"), 0) << StreamMetrics();

  auto m = Complete("sync_dw");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

// The same promise for clients that connect per transaction while both
// backends pool their server connections (backends[].pool): each client's
// commit is on new when it hears of it, and the server connections the
// sync commits ran on (the xid query, the held ReadyForQuery) are handed on
// to the next clients.
TEST_F(StreamDualWriteTest, SyncCommitsOfClientsConnectingPerTransactionThroughThePoolAreOnNew) {
  Both(kTable);
  SynchronousCommitOnOld();
  backend_options_ = ", pool: {idle: 8}";
  ASSERT_NO_FATAL_FAILURE(StreamEv("sync_pool", kSyncDualWrite));

  constexpr int kPerWriter = 60;
  std::atomic<int> missing{0}, done{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      Conn direct(NewConnString());
      for (int i = 0; i < kPerWriter; ++i) {
        Conn via(ViaTurnoutConnString());  // a connection of its own each time
        const std::vector<std::string> row{std::to_string(w + 1), std::to_string(i)};
        std::string id;
        if (i % 2 == 0) {
          id = via.Value("insert into ev (client, n) values ($1, $2) returning id", row);
        } else {
          via.Simple("begin");
          id = via.Value("insert into ev (client, n) values ($1, $2) returning id", row);
          via.Simple("commit");
        }
        if (id.empty()) continue;  // the failure is reported already
        if (direct.Value("select count(*) from ev where id = $1", {id}) != "1") ++missing;
        ++done;
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(done.load(), 4 * kPerWriter);
  EXPECT_EQ(missing.load(), 0) << "commits acknowledged through turnout that new did not have yet\n"
                                << StreamMetrics();
  const double reused = Metric(R"(turnout_pg_server_connections_total{backend="old",result="reused",route="pg"})");
  const double opened = Metric(R"(turnout_pg_server_connections_total{backend="old",result="opened",route="pg"})");
  EXPECT_EQ(reused + opened, 4 * kPerWriter);
  EXPECT_GT(reused, 2 * kPerWriter) << "opened " << opened;
  EXPECT_EQ(CommitTargets("none"), 0) << StreamMetrics();

  auto m = Complete("sync_pool");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

// A sync transaction whose commit the stream never shows is not held for it
// past a short grace: one that changed nothing has no xid, and one that
// rolled back (or failed, so its COMMIT rolls back) committed nothing: they
// are not held at all; one that wrote only a temporary table has an xid that
// no stream decodes, and falls back to a sample with a fence. Writes after
// each are on new when their client hears of them.
TEST_F(StreamDualWriteTest, SyncCommitsTheStreamDoesNotShowAreReleased) {
  Both(kTable);
  SynchronousCommitOnOld();
  ASSERT_NO_FATAL_FAILURE(StreamEv("sync_quiet", kSyncDualWrite));
  Conn via(ViaTurnoutConnString()), direct(NewConnString());
  via.Simple("create temporary table scratch (n int)");
  for (int i = 0; i < 20; ++i) {
    via.Simple("begin");
    via.Simple("update ev set n = n where false");  // a write that changes nothing: no xid
    via.Simple("commit");
    via.Simple("begin");
    via.Simple("insert into ev (client, n) values (2, 0)");
    via.Simple("rollback");
    via.Simple("begin");
    via.Simple("insert into ev (client, n) values (3, 0)");
    via.Fails("select 1/0");
    via.Simple("commit");  // answered ROLLBACK
    via.Simple("begin");
    via.Simple("insert into scratch values (1)");  // an xid the stream never decodes
    via.Simple("commit");
    via.Simple("begin");
    const std::string id = via.Value("insert into ev (client, n) values (1, $1) returning id", {std::to_string(i)});
    via.Simple("commit");
    EXPECT_EQ(direct.Value("select count(*) from ev where id = $1", {id}), "1") << StreamMetrics();
  }
  EXPECT_EQ(CommitTargets("none"), 60) << StreamMetrics();
  EXPECT_EQ(direct.Value("select count(*) from ev where client in (2, 3)"), "0");
  EXPECT_EQ(CommitTargets("xid_then_fence") + CommitTargets("xid"), 40) << StreamMetrics();
  EXPECT_GE(CommitTargets("xid_then_fence"), 20) << StreamMetrics();
  EXPECT_EQ(Metric(R"(turnout_stream_waits_total{kind="commit",result="timeout",route="pg"})"), 0)
      << StreamMetrics();
  auto m = Complete("sync_quiet");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

// An autocommit write sent as a simple Query (psql, psycopg2) waits for its
// own transaction too: turnout appends the xid query to it, so the one
// implicit transaction answers with its xid. What the client sees is what the
// server says to its statement: rows of a RETURNING, the command tag, an
// error. A write that failed, or changed nothing, is not held.
TEST_F(StreamDualWriteTest, AutocommitSimpleQueryWritesWaitForTheirOwnTransaction) {
  Both(kTable);
  Both("create unique index ev_client_n on ev (client, n)");
  SynchronousCommitOnOld();
  ASSERT_NO_FATAL_FAILURE(StreamEv("sync_auto", kSyncDualWrite));
  Conn via(ViaTurnoutConnString()), direct(NewConnString());
  constexpr int kRounds = 30;
  for (int i = 0; i < kRounds; ++i) {
    const std::string n = std::to_string(i);
    // RETURNING: the client's rows come back as the server sent them.
    const std::string id = via.Returning("insert into ev (client, n) values (1, " + n + ") returning id");
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(direct.Value("select count(*) from ev where id = $1", {id}), "1");
    // A trailing comment and a trailing semicolon.
    via.Simple("update ev set r = -1 where client = 1 and n = " + n + " -- a comment");
    EXPECT_EQ(direct.Value("select r from ev where id = $1", {id}), "-1");
    via.Simple("delete from ev where id = " + id + ";");
    EXPECT_EQ(direct.Value("select count(*) from ev where id = $1", {id}), "0");
    // A failed write (duplicate key) and one that changes nothing.
    // The id is given: the column default's nextval() logs the sequence
    // every 32 values (and after a checkpoint), and that takes an xid, so
    // a conflict that inserts nothing would still have one now and then.
    via.Simple("insert into ev (id, client, n) values (-1, 2, 0) on conflict do nothing");
    via.Fails("insert into ev (client, n) values (2, 0)");
    via.Simple("update ev set n = n where false");
  }
  // Per round: three writes by xid, one insert at the first round only and
  // then a conflict that changes nothing, a failure, a no-op.
  EXPECT_EQ(CommitTargets("xid") + CommitTargets("xid_then_fence"), 3 * kRounds + 1) << StreamMetrics();
  EXPECT_EQ(CommitTargets("none"), 3 * kRounds - 1) << StreamMetrics();
  EXPECT_EQ(CommitTargets("fence"), 0) << StreamMetrics();
  auto m = Complete("sync_auto");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

// An autocommit write in an extended batch (pgjdbc, node-pg, libpq's
// PQexecParams) waits for its own transaction too: turnout sends the xid
// query as a statement of its own before the batch's Sync. The client sees
// only its own replies; its unnamed statement stays its own; a batch that
// fails, or changes nothing, is not held; a batch with a transaction block
// in it waits for a fence.
TEST_F(StreamDualWriteTest, AutocommitExtendedBatchWritesWaitForTheirOwnTransaction) {
  Both(kTable);
  SynchronousCommitOnOld();
  ASSERT_NO_FATAL_FAILURE(StreamEv("sync_ext", kSyncDualWrite));
  PGconn* via = PQconnectdb(ViaTurnoutConnString().c_str());
  ASSERT_EQ(PQstatus(via), CONNECTION_OK) << PQerrorMessage(via);
  Conn direct(NewConnString());
  auto exec = [&](PGresult* r, ExecStatusType want, const char* what) {
    std::string first;
    if (PQresultStatus(r) != want) ADD_FAILURE() << what << ": " << PQresStatus(PQresultStatus(r)) << " "
                                                 << PQresultErrorMessage(r);
    else if (want == PGRES_TUPLES_OK && PQntuples(r) > 0) first = PQgetvalue(r, 0, 0);
    PQclear(r);
    return first;
  };
  constexpr int kRounds = 30;
  for (int i = 0; i < kRounds; ++i) {
    const std::string n = std::to_string(i);
    // RETURNING, by Parse/Bind/Describe/Execute/Sync.
    const char* insert_values[] = {n.c_str()};
    const std::string id = exec(PQexecParams(via, "insert into ev (client, n) values (1, $1::int) returning id", 1,
                                             nullptr, insert_values, nullptr, nullptr, 0),
                                PGRES_TUPLES_OK, "insert returning");
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(direct.Value("select count(*) from ev where id = $1", {id}), "1");
    // The client's unnamed statement, by Bind/Describe/Execute/Sync, twice:
    // the xid query's statement did not replace it.
    exec(PQprepare(via, "", "update ev set r = $2::float8 where id = $1::bigint", 0, nullptr), PGRES_COMMAND_OK,
         "prepare unnamed");
    for (const char* r : {"-1", "-2"}) {
      const char* update_values[] = {id.c_str(), r};
      exec(PQexecPrepared(via, "", 2, update_values, nullptr, nullptr, 0), PGRES_COMMAND_OK, "update by unnamed");
      EXPECT_EQ(direct.Value("select r from ev where id = $1", {id}), r);
    }
    // A named statement.
    const char* delete_values[] = {id.c_str()};
    if (i == 0)
      exec(PQprepare(via, "del", "delete from ev where id = $1::bigint", 0, nullptr), PGRES_COMMAND_OK, "prepare");
    exec(PQexecPrepared(via, "del", 1, delete_values, nullptr, nullptr, 0), PGRES_COMMAND_OK, "delete by name");
    EXPECT_EQ(direct.Value("select count(*) from ev where id = $1", {id}), "0");
    // A failed write (duplicate key) and one that changes nothing.
    exec(PQexecParams(via, "insert into ev (id, client, n) values (-1, 2, 0) on conflict do nothing", 0, nullptr,
                      nullptr, nullptr, nullptr, 0),
         PGRES_COMMAND_OK, "insert on conflict");
    exec(PQexecParams(via, "insert into ev (id, client, n) values (-1, 2, 0)", 0, nullptr, nullptr, nullptr, nullptr,
                      0),
         PGRES_FATAL_ERROR, "duplicate key");
    exec(PQexecParams(via, "update ev set n = n where false", 0, nullptr, nullptr, nullptr, nullptr, 0),
         PGRES_COMMAND_OK, "no-op update");
  }
  // Two writes in one batch (libpq's pipeline mode: one Sync): one
  // transaction, waited for by its xid; the second row is on new too.
  ASSERT_EQ(PQenterPipelineMode(via), 1);
  const char* a[] = {"1000"};
  const char* b[] = {"1001"};
  ASSERT_EQ(PQsendQueryParams(via, "insert into ev (client, n) values (3, $1::int)", 1, nullptr, a, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(via, "insert into ev (client, n) values (3, $1::int)", 1, nullptr, b, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(via), 1);
  for (int k = 0; k < 2; ++k) {
    exec(PQgetResult(via), PGRES_COMMAND_OK, "pipelined insert");
    ASSERT_EQ(PQgetResult(via), nullptr);
  }
  exec(PQgetResult(via), PGRES_PIPELINE_SYNC, "pipeline sync");
  ASSERT_EQ(PQexitPipelineMode(via), 1);
  EXPECT_EQ(direct.Value("select count(*) from ev where client = 3 and n in (1000, 1001)"), "2");
  // A batch that opens a transaction block and commits it: a fence.
  ASSERT_EQ(PQenterPipelineMode(via), 1);
  const char* c[] = {"1002"};
  ASSERT_EQ(PQsendQueryParams(via, "insert into ev (client, n) values (3, $1::int)", 1, nullptr, c, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(via, "begin", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(via, "commit", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(via), 1);
  for (int k = 0; k < 3; ++k) {
    exec(PQgetResult(via), PGRES_COMMAND_OK, "pipelined statement");
    ASSERT_EQ(PQgetResult(via), nullptr);
  }
  exec(PQgetResult(via), PGRES_PIPELINE_SYNC, "pipeline sync");
  ASSERT_EQ(PQexitPipelineMode(via), 1);
  EXPECT_EQ(direct.Value("select count(*) from ev where client = 3 and n = 1002"), "1");
  // Nothing of turnout's statement is left on the server connection.
  EXPECT_EQ(exec(PQexecParams(via, "select count(*) from pg_prepared_statements where name like 'turnout%'", 0,
                              nullptr, nullptr, nullptr, nullptr, 0),
                 PGRES_TUPLES_OK, "prepared statements"),
            "0");
  PQfinish(via);
  // Per round: four writes by xid, one insert at the first round only and
  // then a conflict that changes nothing, a failure, a no-op, and a Parse
  // of an UPDATE without an Execute (and once of a DELETE); then the
  // two-insert batch by xid, the batch with a block by a fence.
  EXPECT_EQ(CommitTargets("xid") + CommitTargets("xid_then_fence"), 4 * kRounds + 1 + 1) << StreamMetrics();
  EXPECT_EQ(CommitTargets("none"), 3 * kRounds - 1 + kRounds + 1) << StreamMetrics();
  EXPECT_EQ(CommitTargets("fence"), 1) << StreamMetrics();
  auto m = Complete("sync_ext");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

// The two kill tests below.
void StreamDualWriteTest::KillTurnoutWhileSyncCommitsAreHeld(const std::string& id, bool connect_per_commit) {
  Both(kTable);
  SynchronousCommitOnOld();
  ASSERT_NO_FATAL_FAILURE(StreamEv(id, kSyncDualWrite));
  std::atomic<bool> stop{false};
  std::atomic<long> acknowledged_total{0};
  std::vector<std::vector<long>> acknowledged(4);
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      PGconn* c = nullptr;
      for (long n = 0; !stop; ++n) {
        if (connect_per_commit && c != nullptr) {
          PQfinish(c);
          c = nullptr;
        }
        if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
          if (c != nullptr) PQfinish(c);
          c = PQconnectdb(ViaTurnoutConnString().c_str());
          if (PQstatus(c) != CONNECTION_OK) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
          }
        }
        const std::string client = std::to_string(w + 1), value = std::to_string(n);
        bool committed = false;
        if (n % 2 == 0) {
          const char* params[] = {client.c_str(), value.c_str()};
          PGresult* r = PQexecParams(c, "insert into ev (client, n) values ($1::int, $2::int)", 2, nullptr, params,
                                     nullptr, nullptr, 0);
          committed = PQresultStatus(r) == PGRES_COMMAND_OK;
          PQclear(r);
        } else {
          PGresult* r = PQexec(c, ("begin; insert into ev (client, n) values (" + client + ", " + value + ")").c_str());
          const bool inserted = PQresultStatus(r) == PGRES_COMMAND_OK;
          PQclear(r);
          if (!inserted) continue;
          r = PQexec(c, "commit");
          committed = PQresultStatus(r) == PGRES_COMMAND_OK && std::string_view(PQcmdStatus(r)) == "COMMIT";
          PQclear(r);
        }
        if (!committed) continue;
        acknowledged[w].push_back(n);
        ++acknowledged_total;
      }
      if (c != nullptr) PQfinish(c);
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double by_xid = CommitTargets("xid") + CommitTargets("xid_then_fence");
  const long before_kill = acknowledged_total.load();
  process_->Signal(SIGKILL);
  process_->Wait(5000);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  StartTurnout(/*protocol=*/true);
  // The restarted sidecar streams again once its commits wait by xid.
  double by_xid_after = 0;
  for (int i = 0; i < 300 && by_xid_after == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    by_xid_after = CommitTargets("xid") + CommitTargets("xid_then_fence");
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (auto& t : writers) t.join();
  const long after_restart = acknowledged_total.load() - before_kill;
  std::printf("sync writers: %ld acknowledged before the kill (%.0f by xid), %ld after the restart\n", before_kill,
              by_xid, after_restart);
  EXPECT_GT(by_xid, 0);
  EXPECT_GT(by_xid_after, 0) << "no commit waited by xid after the restart\n" << StreamMetrics() << Log();
  EXPECT_GT(after_restart, 0) << "no write went through the restarted sidecar";

  auto m = Complete(id);
  ASSERT_EQ(State(m), "Completed") << Log();
  Conn direct(NewConnString());
  long missing = 0;
  for (int w = 0; w < 4; ++w) {
    std::set<long> on_new;
    std::istringstream rows(Psql(new_, "select n from ev where client = " + std::to_string(w + 1)));
    for (std::string n; std::getline(rows, n);) on_new.insert(std::atol(n.c_str()));
    for (long n : acknowledged[w]) missing += on_new.contains(n) ? 0 : 1;
  }
  EXPECT_EQ(missing, 0) << "acknowledged writes missing on new";
  EXPECT_EQ(Psql(new_, "select count(*) from (select client, n from ev group by 1, 2 having count(*) > 1) twice"), "0");
  ExpectSame("ev");
}

// kill -9 of turnout while sync commits are held (each already committed on
// old, its client not yet told): nothing acknowledged is lost, nothing is
// applied twice. Four writers through turnout, autocommit inserts by the
// extended protocol and explicit transactions by simple Query, each
// reconnecting after a failure and keeping what it was told committed; the
// sidecar is killed mid-load and started again on the same ports and
// state. Once the migration completes, every acknowledged row is on new and
// both sides hold the same rows and columns.
TEST_F(StreamDualWriteTest, KillingTurnoutWhileSyncCommitsAreHeldLosesNoAcknowledgedWrite) {
  ASSERT_NO_FATAL_FAILURE(KillTurnoutWhileSyncCommitsAreHeld("sync_kill", /*connect_per_commit=*/false));
}

// The same with both backends pooling server connections and the writers
// connecting anew for each commit: the kill drops parked connections and
// held commits alike, and still no acknowledged write is missing.
TEST_F(StreamDualWriteTest, KillingTurnoutWithPooledConnectionsLosesNoAcknowledgedWrite) {
  backend_options_ = ", pool: {idle: 8}";
  ASSERT_NO_FATAL_FAILURE(KillTurnoutWhileSyncCommitsAreHeld("sync_kill_pool", /*connect_per_commit=*/true));
  // The restarted sidecar handed server connections on too.
  EXPECT_GT(Metric(R"(turnout_pg_server_connections_total{backend="old",result="reused",route="pg"})"), 0);
}

// COMMIT AND CHAIN commits and opens the next transaction at once: its
// client is told of the commit only once new has it, as for a COMMIT.
TEST_F(StreamDualWriteTest, CommitAndChainIsHeldLikeACommit) {
  Both(kTable);
  SynchronousCommitOnOld();
  ASSERT_NO_FATAL_FAILURE(StreamEv("sync_chain", kSyncDualWrite));
  Conn via(ViaTurnoutConnString()), direct(NewConnString());
  constexpr int kRounds = 20;
  via.Simple("begin");
  for (int i = 0; i < kRounds; ++i) {
    const std::string id = via.Returning("insert into ev (client, n) values (1, " + std::to_string(i) + ") returning id");
    via.Simple("commit and chain");
    EXPECT_EQ(direct.Value("select count(*) from ev where id = $1", {id}), "1") << StreamMetrics();
  }
  via.Simple("commit");
  EXPECT_EQ(CommitTargets("xid") + CommitTargets("xid_then_fence"), kRounds) << StreamMetrics();
  auto m = Complete("sync_chain");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

// Async: commits are not held; a read that the canary sends to new right
// after the session's own commit waits until new has it.
TEST_F(StreamDualWriteTest, AsyncCanaryReadsOnNewSeeTheSessionsOwnCommits) {
  Both(kTable);
  SynchronousCommitOnOld();
  ASSERT_NO_FATAL_FAILURE(StreamEv(
      "async_dw",
      R"({"type":"canary","read_percentage":1.0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})"));

  std::atomic<int> missed{0}, done{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      Conn via(ViaTurnoutConnString());
      for (int i = 0; i < kCommitsPerWriter; ++i) {
        const std::string id =
            via.Value("insert into ev (client, n) values ($1, $2) returning id", {std::to_string(w + 1), std::to_string(i)});
        if (id.empty()) return;
        // Served by new (read_percentage 1.0): the session's own row is there.
        if (via.Value("select count(*) from ev where id = $1", {id}) != "1") ++missed;
        ++done;
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(done.load(), kWriters * kCommitsPerWriter);
  EXPECT_EQ(missed.load(), 0) << "reads through turnout that missed the session's own commit\n" << StreamMetrics();
  // The reads went to new and none waited in vain.
  EXPECT_GE(Metric(R"(turnout_requests_total{backend="new",class="read",route="pg"})"), kWriters * kCommitsPerWriter);
  EXPECT_EQ(Metric(R"(turnout_stream_waits_total{kind="read",result="timeout",route="pg"})"), 0);
  EXPECT_EQ(Metric(R"(turnout_stream_waits_total{kind="commit",result="applied",route="pg"})"), 0)
      << "async commits are not held";

  auto m = Complete("async_dw");
  ASSERT_EQ(State(m), "Completed") << Log();
  ExpectSame("ev");
}

}  // namespace
}  // namespace turnout::testing
