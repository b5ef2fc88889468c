// turnout_dualwrite_total{result} means the same for Postgres as for Redis
// (proxy/secondary/outcome.h): one dual-write, one outcome, counted once
// under its own label, and every outcome but applied journaled with its
// kind. One test per outcome, with psql against the harness clusters
// (tests/redis/redis_dual_write_outcome_itest.cc is the Redis twin).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <string>
#include <thread>

#include "tests/pg/pg_migration_itest_fixture.h"

namespace turnout::testing {
namespace {

namespace json = boost::json;

constexpr std::array<const char*, 4> kResults = {"applied", "failed", "diverged", "dropped"};
constexpr char kDualSync[] =
    R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";

constexpr char kDualAsync[] =
    R"({"type":"canary","read_percentage":0.0,"write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})";

class PgDualWriteOutcomeTest : public PgMigrationTest {
 protected:
  void SetUp() override {
    PgMigrationTest::SetUp();
    ASSERT_EQ(Both("create table t(id int primary key, v int)").exit_code, 0);
  }
  double Result(const std::string& result) {
    return admin_.Metric("turnout_dualwrite_total{result=\"" + result + "\",route=\"pg\"}");
  }
  // Exactly one dual-write, with `result`; every other label 0.
  void ExpectOnly(const std::string& result) {
    for (int i = 0; i < 50 && Result(result) != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const char* r : kResults) EXPECT_EQ(Result(r), r == result ? 1 : 0) << r;
  }
  json::array Entries() {
    auto r = admin_.Get("/api/v1/migrations/outcome/journal");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json.is_object() ? r.json.at("data").at("entries").as_array() : json::array();
  }
  RunResult Through(const std::string& sql) {
    return Psql(PgUrl(port_, TestBackends::Get().pg_user, db_), TestBackends::Get().pg_password, sql);
  }
};

TEST_F(PgDualWriteOutcomeTest, AppliedOnBothSidesIsCountedAppliedAndNotJournaled) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", kDualSync);
  auto r = Through("insert into t values (1, 1)");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOnly("applied");
  EXPECT_EQ(Entries().size(), 0u);
  EXPECT_EQ(OnSide(TestBackends::Get().pg_new_port, "select v from t where id = 1").out, "1\n");
}

TEST_F(PgDualWriteOutcomeTest, RefusedByTheSecondaryIsCountedFailedAndJournaledFailed) {
  ASSERT_EQ(OnSide(TestBackends::Get().pg_new_port, "insert into t values (7, 0)").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", kDualSync);
  auto r = Through("insert into t values (7, 1)");  // a duplicate key on new only
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOnly("failed");
  const auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("kind").as_string(), "failed");
  EXPECT_NE(std::string(entries[0].at("secondary").as_string()).find("23505"), std::string::npos);
}

TEST_F(PgDualWriteOutcomeTest, DifferentOutcomesAreCountedDivergedAndJournaledDiverged) {
  ASSERT_EQ(Both("insert into t values (1, 0)").exit_code, 0);
  ASSERT_EQ(OnSide(TestBackends::Get().pg_new_port, "insert into t values (2, 0)").exit_code, 0);
  Start();
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", kDualSync);
  auto r = Through("update t set v = 5 where v = 0");  // UPDATE 1 on old, UPDATE 2 on new
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOnly("diverged");
  const auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("kind").as_string(), "diverged");
  EXPECT_NE(std::string(entries[0].at("secondary").as_string()).find("UPDATE 2"), std::string::npos)
      << json::serialize(entries[0]);
}

TEST_F(PgDualWriteOutcomeTest, UnreachableSecondaryIsCountedDroppedAndJournaledDropped) {
  Start({}, FreePort());  // nothing listens there
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", kDualSync);
  auto r = Through("insert into t values (1, 1)");  // the authoritative side keeps serving
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectOnly("dropped");
  const auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("kind").as_string(), "dropped");
  const std::string targets = json::serialize(entries[0].at("targets"));
  EXPECT_TRUE(targets == R"(["t"])" || targets == R"(["public.t"])") << targets;
}

// ------------------------------------------------------------------ limits
// (proxy/secondary/queue_limits.h, read from `limits:`)

// A queue of one op: a sync session still applies every write (it waits
// for room, never sheds to the journal).
TEST_F(PgDualWriteOutcomeTest, SyncDualWriteWithAOneOpQueueDropsNothing) {
  Start({}, 0, "  secondary_queue_ops: 1\n");
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", kDualSync);
  std::string script;
  for (int i = 1; i <= 50; ++i)
    script += "insert into t values (" + std::to_string(i) + ", " + std::to_string(i) + ");\n";
  auto r = Psql(PgUrl(port_, TestBackends::Get().pg_user, db_), TestBackends::Get().pg_password, "", script);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Result("applied"), 50);
  EXPECT_EQ(Result("dropped"), 0);
  EXPECT_EQ(Entries().size(), 0u);
  EXPECT_EQ(OnSide(TestBackends::Get().pg_new_port, "select count(*) from t").out, "50\n");
}

// A queue of one op, async: each write finds the one before it still on
// its way to the secondary and waits for room (at most a second, as Redis
// does) instead of being journaled `dropped` at once.
TEST_F(PgDualWriteOutcomeTest, AsyncDualWriteWithAOneOpQueueWaitsForRoomAndDropsNothing) {
  Start({}, 0, "  secondary_queue_ops: 1\n");
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", kDualAsync);
  constexpr int kN = 200;
  std::string script;
  for (int i = 1; i <= kN; ++i)
    script += "insert into t values (" + std::to_string(i) + ", " + std::to_string(i) + ");\n";
  auto r = Psql(PgUrl(port_, TestBackends::Get().pg_user, db_), TestBackends::Get().pg_password, "", script);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < 50 && Result("applied") != kN; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Result("applied"), kN);
  EXPECT_EQ(Result("dropped"), 0);
  EXPECT_EQ(Entries().size(), 0u);
  const std::string rows = "select id, v from t order by id";
  const auto on_old = OnSide(TestBackends::Get().pg_old_port, rows), on_new = OnSide(TestBackends::Get().pg_new_port, rows);
  EXPECT_EQ(std::count(on_old.out.begin(), on_old.out.end(), '\n'), kN);
  EXPECT_EQ(on_new.out, on_old.out);
}

TEST_F(PgDualWriteOutcomeTest, ShadowPastTheConfiguredBoundIsCountedDropped) {
  Start({}, 0, "  shadow_queue_ops: 0\n");
  ASSERT_FALSE(HasFatalFailure());
  CreateMigration("outcome", R"({"type":"shadow_traffic"})");
  auto r = Through("select count(*) from t");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0\n");
  EXPECT_EQ(admin_.Metric(R"(turnout_shadow_dropped_total{route="pg"})"), 1);
  EXPECT_EQ(admin_.Metric(R"(turnout_shadow_comparisons_total{result="match",route="pg"})"), 0);
}

}  // namespace
}  // namespace turnout::testing
