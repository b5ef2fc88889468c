// Process lifecycle: graceful drain on SIGTERM (Kubernetes rolling restarts
// depend on it), the drain deadline, SIGHUP reload, --check-config.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;

RunResult PsqlAt(int port, const std::string& sql) {
  const auto& b = TestBackends::Get();
  const std::string url =
      "postgres://" + b.pg_user + "@127.0.0.1:" + std::to_string(port) + "/postgres?sslmode=disable";
  return RunProgram({"psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", url, "-c", sql}, "",
             {{"PGPASSWORD", b.pg_password}, {"PGCONNECT_TIMEOUT", "5"}});
}

TEST(LifecycleTest, SigtermDrainsARunningQueryRefusesNewConnectionsAndExitsZero) {
  TurnoutProcess t;
  const int pg = FreePort(), redis = FreePort();
  ASSERT_TRUE(t.Start(RelayConfig(pg, redis, "  drain_timeout: 20s\n"), {pg, redis})) << t.Log();

  auto long_query = std::async(std::launch::async, [&] { return PsqlAt(pg, "select 'finished' from pg_sleep(3)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  t.Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // New connections are refused while the old one drains.
  auto refused = PsqlAt(pg, "select 1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("Connection refused"));

  auto finished = long_query.get();
  EXPECT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(finished.out, "finished\n");
  EXPECT_EQ(t.Wait(10000), 0) << t.Log();
  EXPECT_THAT(t.Log(), HasSubstr("draining"));
}

TEST(LifecycleTest, DrainDeadlineClosesWhatIsLeftAndStillExitsZero) {
  TurnoutProcess t;
  const int pg = FreePort(), redis = FreePort();
  ASSERT_TRUE(t.Start(RelayConfig(pg, redis, "  drain_timeout: 500ms\n"), {pg, redis})) << t.Log();
  auto long_query = std::async(std::launch::async, [&] { return PsqlAt(pg, "select pg_sleep(30)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  const auto start = std::chrono::steady_clock::now();
  t.Signal(SIGTERM);
  EXPECT_EQ(t.Wait(10000), 0) << t.Log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  auto cut = long_query.get();
  EXPECT_NE(cut.exit_code, 0);
  EXPECT_THAT(t.Log(), HasSubstr("drain deadline passed"));
}

TEST(LifecycleTest, SigintAlsoStopsCleanly) {
  TurnoutProcess t;
  const int pg = FreePort(), redis = FreePort();
  ASSERT_TRUE(t.Start(RelayConfig(pg, redis), {pg, redis})) << t.Log();
  t.Signal(SIGINT);
  EXPECT_EQ(t.Wait(10000), 0) << t.Log();
}

TEST(LifecycleTest, SighupReloadsLimitsAndKeepsRunningOnABadFile) {
  TurnoutProcess t;
  const int pg = FreePort(), redis = FreePort();
  ASSERT_TRUE(t.Start(RelayConfig(pg, redis), {pg, redis})) << t.Log();

  // A broken file: reload refused, the running configuration stays.
  t.WriteConfig("routes: [");
  t.Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_THAT(t.Log(), HasSubstr("reload refused"));
  EXPECT_EQ(PsqlAt(pg, "select 1").out, "1\n");

  // A valid file lowering the limit to one connection is applied.
  t.WriteConfig(RelayConfig(pg, redis, "  max_connections: 1\n"));
  t.Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_THAT(t.Log(), HasSubstr("configuration reloaded"));
  auto holder = std::async(std::launch::async, [&] { return PsqlAt(pg, "select pg_sleep(1.5)"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  auto second = PsqlAt(pg, "select 1");
  EXPECT_THAT(second.err, HasSubstr("too many clients"));
  EXPECT_EQ(holder.get().exit_code, 0);
  t.Signal(SIGTERM);
  EXPECT_EQ(t.Wait(10000), 0);
}

TEST(LifecycleTest, StartupFailsClearlyWhenAListenAddressIsTaken) {
  TurnoutProcess first;
  const int pg = FreePort(), redis = FreePort();
  ASSERT_TRUE(first.Start(RelayConfig(pg, redis), {pg, redis}));
  TurnoutProcess second;
  second.WriteConfig(RelayConfig(pg, redis));
  ChildProcess child;
  child.Start({TURNOUT_BINARY, "--config", second.ConfigPath()}, second.LogPath());
  EXPECT_EQ(child.Wait(10000), 1);
  EXPECT_THAT(second.Log(), HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(pg)));
}

TEST(CheckConfigTest, ValidFileExitsZero) {
  TurnoutProcess t;
  t.WriteConfig(RelayConfig(FreePort(), FreePort()));
  auto r = RunProgram({TURNOUT_BINARY, "--check-config", t.ConfigPath()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok (2 backends, 2 routes)"));
}

TEST(CheckConfigTest, InvalidFileNamesTheFieldAndExitsTwo) {
  TurnoutProcess t;
  std::string yaml = RelayConfig(FreePort(), FreePort(), "  max_connections: -4\n");
  t.WriteConfig(yaml);
  auto r = RunProgram({TURNOUT_BINARY, "--check-config", t.ConfigPath()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("limits.max_connections: must be between 1 and 1000000, got -4"));
  // And the same file stops a real start with the same message.
  auto start = RunProgram({TURNOUT_BINARY, "--config", t.ConfigPath()});
  EXPECT_EQ(start.exit_code, 2);
  EXPECT_THAT(start.err, HasSubstr("limits.max_connections"));
}

TEST(CheckConfigTest, MissingFileIsReported) {
  auto r = RunProgram({TURNOUT_BINARY, "--check-config", "/nonexistent/turnout.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot read /nonexistent/turnout.yaml"));
}

}  // namespace
}  // namespace turnout::testing
