// turnout_dualwrite_total{result} means the same for Redis as for Postgres
// (proxy/secondary/outcome.h): one dual-write, one outcome, counted once
// under its own label, and every outcome but applied journaled with its
// kind. One test per outcome, each against the harness' real servers
// (tests/pg/pg_dual_write_outcome_itest.cc is the Postgres twin).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <array>
#include <chrono>
#include <string>
#include <thread>

#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

namespace json = boost::json;

constexpr std::array<const char*, 4> kResults = {"applied", "failed", "diverged", "dropped"};

class RedisDualWriteOutcomeTest : public RedisMigrationTest {
 protected:
  void SetUp() override {
    prefix_ = Prefix("outcome");
    Cleanup(prefix_ + "*");
  }
  void TearDown() override { Cleanup(prefix_ + "*"); }

  double Result(const std::string& result) {
    return admin_.Metric("turnout_dualwrite_total{result=\"" + result + "\",route=\"redis\"}");
  }
  // Exactly one dual-write, with `result`; every other label 0.
  void ExpectOnly(const std::string& result) {
    // Sync dual-write counts before the reply; allow a scrape's lag anyway.
    for (int i = 0; i < 50 && Result(result) != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const char* r : kResults) EXPECT_EQ(Result(r), r == result ? 1 : 0) << r;
  }
  json::array Entries() {
    auto r = admin_.Get("/api/v1/migrations/ri/journal");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json.is_object() ? r.json.at("data").at("entries").as_array() : json::array();
  }
  void Plant(std::initializer_list<std::string_view> args) {
    RespConn c(TestBackends::Get().redis_new_port);
    LoggedIn(c);
    EXPECT_EQ(c.Call(args), "+OK\r\n");
  }

  std::string prefix_;
};

TEST_F(RedisDualWriteOutcomeTest, AppliedOnBothSidesIsCountedAppliedAndNotJournaled) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kSync);
  RespConn c(port_);
  EXPECT_EQ(c.Call({"SET", prefix_ + "k", "v"}), "+OK\r\n");
  ExpectOnly("applied");
  EXPECT_EQ(Entries().size(), 0u);
  RespConn n(TestBackends::Get().redis_new_port);
  LoggedIn(n);
  EXPECT_EQ(n.Call({"GET", prefix_ + "k"}), "$1\r\nv\r\n");
}

TEST_F(RedisDualWriteOutcomeTest, RefusedByTheSecondaryIsCountedFailedAndJournaledFailed) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Plant({"SET", prefix_ + "list", "not a list"});  // new answers LPUSH with WRONGTYPE
  Migrate(kSync);
  RespConn c(port_);
  EXPECT_EQ(c.Call({"LPUSH", prefix_ + "list", "a"}), ":1\r\n");
  ExpectOnly("failed");
  const auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("kind").as_string(), "failed");
  EXPECT_NE(std::string(entries[0].at("secondary").as_string()).find("WRONGTYPE"), std::string::npos);
}

TEST_F(RedisDualWriteOutcomeTest, DifferentRepliesAreCountedDivergedAndJournaledDiverged) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Plant({"SET", prefix_ + "ctr", "100"});  // new answers INCR with 101
  Migrate(kSync);
  RespConn c(port_);
  EXPECT_EQ(c.Call({"INCR", prefix_ + "ctr"}), ":1\r\n");
  ExpectOnly("diverged");
  const auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("kind").as_string(), "diverged");
  EXPECT_EQ(entries[0].at("secondary").as_string(), "(integer) 101");
}

TEST_F(RedisDualWriteOutcomeTest, UnreachableSecondaryIsCountedDroppedAndJournaledDropped) {
  Start("", "", "127.0.0.1:" + std::to_string(FreePort()));  // nothing listens there
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kSync);
  RespConn c(port_);
  EXPECT_EQ(c.Call({"SET", prefix_ + "k", "v"}), "+OK\r\n");  // the authoritative side keeps serving
  ExpectOnly("dropped");
  const auto entries = Entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].at("kind").as_string(), "dropped");
  EXPECT_EQ(entries[0].at("targets").as_array().at(0).as_string(), prefix_ + "k");
}

// ------------------------------------------------------------------ limits
// (proxy/secondary/queue_limits.h, read from `limits:`)

// A queue of one op: a sync pipeline still applies every write (it waits
// for room, never sheds to the journal).
TEST_F(RedisDualWriteOutcomeTest, SyncDualWriteWithAOneOpQueueDropsNothing) {
  Start("", "  secondary_queue_ops: 1\n");
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kSync);
  constexpr int kN = 200;
  std::string batch;
  for (int i = 0; i < kN; ++i) batch += Cmd({"SET", prefix_ + std::to_string(i), "v"});
  RespConn c(port_, 30000);
  c.Send(batch);
  const auto replies = c.Read(kN, 30000);
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kN));
  for (const auto& r : replies) EXPECT_EQ(r, "+OK\r\n");
  EXPECT_EQ(Result("applied"), kN);
  EXPECT_EQ(Result("dropped"), 0);
  EXPECT_EQ(Entries().size(), 0u);
  auto [equal, report] = Compare(prefix_ + "*");
  EXPECT_TRUE(equal) << report;
}

// A session-state op (CLIENT SETNAME, SELECT, HELLO) has no reply-FIFO
// entry to release it: released when queued, it must not hold the queue's
// head, or every write after it finds the queue full (async: dropped).
TEST_F(RedisDualWriteOutcomeTest, SessionStateOpsDoNotHoldTheQueue) {
  Start("", "  secondary_queue_ops: 2\n");
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kAsync);
  RespConn c(port_, 30000);
  EXPECT_EQ(c.Call({"SET", prefix_ + "first", "v"}), "+OK\r\n");  // opens the channel
  EXPECT_EQ(c.Call({"CLIENT", "SETNAME", "outcome"}), "+OK\r\n");
  constexpr int kN = 20;
  for (int i = 0; i < kN; ++i) EXPECT_EQ(c.Call({"SET", prefix_ + std::to_string(i), "v"}), "+OK\r\n");
  for (int i = 0; i < 50 && Result("applied") != kN + 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Result("applied"), kN + 1);
  EXPECT_EQ(Result("dropped"), 0);
  EXPECT_EQ(Entries().size(), 0u);
  auto [equal, report] = Compare(prefix_ + "*");
  EXPECT_TRUE(equal) << report;
}

TEST_F(RedisDualWriteOutcomeTest, ShadowPastTheConfiguredBoundIsCountedDropped) {
  Start("", "  shadow_queue_ops: 0\n");
  ASSERT_FALSE(HasFatalFailure());
  Migrate(R"({"type":"shadow_traffic"})");
  RespConn c(port_);
  EXPECT_EQ(c.Call({"GET", prefix_ + "k"}), "$-1\r\n");
  EXPECT_EQ(admin_.Metric(R"(turnout_shadow_dropped_total{route="redis"})"), 1);
  EXPECT_EQ(admin_.Metric(R"(turnout_shadow_comparisons_total{result="match",route="redis"})"), 0);
}

}  // namespace
}  // namespace turnout::testing
