// turnout's own cancel keys: lookup by (pid, secret), which backends a
// cancel reaches, and use from many threads at once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "proxy/pg/cancel_registry.h"

namespace turnout::proxy::pg {
namespace {

CancelTarget Target(int port, std::int32_t pid) {
  return CancelTarget{routing::HostPort{"127.0.0.1", static_cast<std::uint16_t>(port)}, pid, pid * 7};
}

TEST(CancelRegistryTest, FindsOnlyTheExactKeyAndForgetsEndedSessions) {
  CancelRegistry reg;
  auto slots = std::make_shared<CancelSlots>();
  const auto key = reg.Register(slots);
  EXPECT_GT(key.process_id, 0);
  EXPECT_EQ(reg.Find(key.process_id, key.secret_key), slots);
  EXPECT_EQ(reg.Find(key.process_id, key.secret_key ^ 1), nullptr);
  EXPECT_EQ(reg.Find(key.process_id + 1, key.secret_key), nullptr);
  reg.Unregister(key.process_id);
  EXPECT_EQ(reg.Find(key.process_id, key.secret_key), nullptr);
  EXPECT_EQ(reg.size(), 0u);
}

TEST(CancelRegistryTest, KeysAreUniqueAmongLiveSessions) {
  CancelRegistry reg;
  std::set<std::int32_t> pids;
  for (int i = 0; i < 1000; ++i) pids.insert(reg.Register(std::make_shared<CancelSlots>()).process_id);
  EXPECT_EQ(pids.size(), 1000u);
}

TEST(CancelSlotsTest, TargetsAreTheBusyBackendsOrEveryOpenOne) {
  CancelSlots slots;
  EXPECT_TRUE(slots.Targets().empty());
  slots.Set(0, Target(1, 10));
  slots.Set(1, Target(2, 20));
  EXPECT_EQ(slots.Targets().size(), 2u);  // nothing marked busy: both
  slots.SetBusy(1, true);
  auto t = slots.Targets();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].process_id, 20);
  EXPECT_EQ(t[0].secret_key, 140);
  slots.Clear(1);
  t = slots.Targets();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].process_id, 10);
}

TEST(CancelRegistryTest, ManyThreadsRegisterFindAndUnregister) {
  CancelRegistry reg;
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        auto slots = std::make_shared<CancelSlots>();
        slots->Set(0, Target(t, i));
        const auto key = reg.Register(slots);
        if (auto s = reg.Find(key.process_id, key.secret_key); s && s->Targets().size() == 1) ++found;
        reg.Unregister(key.process_id);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(found.load(), 8000);
  EXPECT_EQ(reg.size(), 0u);
}

}  // namespace
}  // namespace turnout::proxy::pg
