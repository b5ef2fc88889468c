// kill -9 of turnout under Redis sync dual-write load (issue 14 item 2): the
// intent record names every key with a write in flight between the two
// sides, the next start journals them, and repair makes both sides equal.
//
// Determinism without timing: new is paused for writes (CLIENT PAUSE WRITE)
// while the load runs, so writes are applied on old and held on their way to
// new; a probe key written through turnout is seen on old before the kill.
// Without the intent record that probe (and every held write) would be on old
// only with no trace anywhere.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

using RedisCrashTest = RedisMigrationTest;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ExistsOn(int port, const std::string& key) {
  RespConn c(port);
  LoggedIn(c);
  return c.Call({"EXISTS", key}) == ":1\r\n";
}

TEST_F(RedisCrashTest, KillNineUnderSyncDualWriteThenRepairMakesBothSidesEqual) {
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix("crash");
  Cleanup(prefix + "*");
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kSync);
  ASSERT_FALSE(HasFatalFailure());

  // Load: writers pipelining deterministic writes of several types.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> replies{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w) {
    writers.emplace_back([&, w] {
      RespConn c(port_, 15000);
      if (!c.connected()) return;
      for (int round = 0; !stop; ++round) {
        std::string batch;
        constexpr int kDepth = 32;
        for (int i = 0; i < kDepth; ++i) {
          const std::string n = std::to_string((round * kDepth + i) % 500);
          switch (i % 4) {
            case 0: batch += Cmd({"SET", prefix + "s:" + std::to_string(w) + ":" + n, "v" + std::to_string(round)}); break;
            case 1: batch += Cmd({"INCR", prefix + "c:" + std::to_string(i % 7)}); break;
            case 2: batch += Cmd({"HSET", prefix + "h:" + std::to_string(w), "f" + n, std::to_string(round)}); break;
            default: batch += Cmd({"RPUSH", prefix + "l:" + std::to_string(i % 5), n}); break;
          }
        }
        c.Send(batch);
        const auto got = c.Read(kDepth, 15000);
        replies += got.size();
        if (got.size() < static_cast<std::size_t>(kDepth)) return;  // turnout is gone
      }
    });
  }
  // Let the load run a while (by work done, not by time).
  for (int i = 0; i < 3000 && replies < 20000; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(replies.load(), 20000u) << turnout_.Log();

  // Hold new's writes: what turnout sends there now waits, already applied on old.
  RespConn pause(b.redis_new_port);
  LoggedIn(pause);
  ASSERT_EQ(pause.Call({"CLIENT", "PAUSE", "20000", "WRITE"}), "+OK\r\n");
  RespConn probe(port_);
  probe.Send(Cmd({"SET", prefix + "probe", "applied-on-old-only"}));
  bool on_old = false;
  for (int i = 0; i < 1000 && !on_old; ++i) {
    on_old = ExistsOn(b.redis_old_port, prefix + "probe");
    if (!on_old) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(on_old) << turnout_.Log();

  turnout_.Signal(SIGKILL);
  ASSERT_EQ(turnout_.Wait(10000), 128 + SIGKILL);
  ASSERT_EQ(pause.Call({"CLIENT", "UNPAUSE"}), "+OK\r\n");
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_FALSE(ExistsOn(b.redis_new_port, prefix + "probe")) << "the probe reached new before the kill";

  // The same config, the same journal and intent record.
  ASSERT_TRUE(turnout_.Start(ReadFile(turnout_.ConfigPath()), {port_, admin_port_})) << turnout_.Log();
  const double recovered = admin_.Metric("turnout_intents_recovered_total");
  EXPECT_GE(recovered, 1) << turnout_.Log();
  EXPECT_GE(Pending(), 1) << JournalText();

  // The repair compares and copies every key of the migration's scope; the
  // harness' Redis is shared with the tests running beside this one.
  ASSERT_EQ(admin_.Post("/api/v1/migrations/ri/api/keys", R"({"keys":[")" + prefix + R"(*"]})").status, 200);
  auto repair = admin_.Post("/api/v1/migrations/ri/repair");
  ASSERT_EQ(repair.status, 200) << repair.body;
  EXPECT_EQ(Pending(), 0) << repair.body;

  EXPECT_TRUE(ExistsOn(b.redis_new_port, prefix + "probe")) << repair.body;
  auto [equal, report] = Compare(prefix + "*");
  EXPECT_TRUE(equal) << report << "\nrepair: " << repair.body;
  Cleanup(prefix + "*");
}

}  // namespace
}  // namespace turnout::testing
