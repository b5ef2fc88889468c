// The Redis backfill's key copies are ordered with live dual-writes of the
// same keys (issue 13 item 18): a copy waits while a live write holds the
// key (routing::KeyStripes, the stripes a session takes from before old gets
// its write until new applied it), so a RESTORE never lands over a newer
// write and never brings back a key a live DEL removed. The backfill runs
// here in-process, as it runs in turnout; the test plays the live write.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "control/data_movement.h"
#include "control/redis_backfill.h"
#include "routing/key_stripes.h"
#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

class Ctx final : public control::BackfillContext {
 public:
  absl::Status Checkpoint(control::RouteProgress&) override { return absl::OkStatus(); }
  bool ShouldContinue() override { return true; }
  void Sleep(std::chrono::milliseconds) override {}
  void Log(const std::string&) override {}
};

routing::Backend Harness(const std::string& name, int port) {
  const auto& b = TestBackends::Get();
  routing::Backend be;
  be.name = name;
  be.protocol = routing::Protocol::kRedis;
  be.address = {"127.0.0.1", static_cast<std::uint16_t>(port)};
  be.user = b.redis_user;
  be.password = b.redis_password;
  return be;
}

void CopyAgainstALiveWrite(const std::string& rule, bool del) {
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix("bforder-" + rule);
  DeleteOn(b.redis_old_port, prefix + "*");
  DeleteOn(b.redis_new_port, prefix + "*");
  RespConn old_side(b.redis_old_port), new_side(b.redis_new_port);
  LoggedIn(old_side);
  LoggedIn(new_side);
  const std::string key = prefix + "hot";
  ASSERT_EQ(old_side.Call({"SET", key, "v1"}), "+OK\r\n");
  ASSERT_EQ(old_side.Call({"SET", prefix + "cold", "c"}), "+OK\r\n");

  // A live dual-write of `key` is in flight: it holds the key's stripe.
  routing::KeyStripes::Stripes stripes;
  routing::KeyStripes::AddStripe(key, stripes);
  constexpr std::uint64_t kSession = 4242;
  ASSERT_TRUE(routing::KeyStripes::Global().TryAcquire(stripes, kSession));

  control::DataSpec spec;
  spec.mode = control::DataSpec::Mode::kScan;
  spec.rule = rule == "replace" ? control::ConflictRule::kReplace : control::ConflictRule::kNone;
  spec.sleep = std::chrono::milliseconds(0);
  auto copy = std::async(std::launch::async, [&] {
    control::RouteProgress progress;
    Ctx ctx;
    return control::CopyRedis(Harness("redis-old", b.redis_old_port), Harness("redis-new", b.redis_new_port),
                              {prefix + "*"}, spec, progress, ctx);
  });
  // The copy waits for the key (the page holding it is not copied yet).
  EXPECT_EQ(copy.wait_for(std::chrono::milliseconds(700)), std::future_status::timeout);
  EXPECT_EQ(new_side.Call({"EXISTS", key}), ":0\r\n");
  // The live write lands on both sides, then lets go of the key.
  if (del) {
    EXPECT_EQ(old_side.Call({"DEL", key}), ":1\r\n");
    EXPECT_EQ(new_side.Call({"DEL", key}), ":0\r\n");
  } else {
    EXPECT_EQ(old_side.Call({"SET", key, "v2"}), "+OK\r\n");
    EXPECT_EQ(new_side.Call({"SET", key, "v2"}), "+OK\r\n");
  }
  routing::KeyStripes::Global().Release(stripes, kSession);
  ASSERT_EQ(copy.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const auto st = copy.get();
  EXPECT_TRUE(st.ok()) << st;
  // After the live write, never before it: the DEL stays, v2 stays.
  EXPECT_EQ(new_side.Call({"GET", key}), del ? "$-1\r\n" : "$2\r\nv2\r\n");
  EXPECT_EQ(new_side.Call({"GET", prefix + "cold"}), "$1\r\nc\r\n");
  DeleteOn(b.redis_old_port, prefix + "*");
  DeleteOn(b.redis_new_port, prefix + "*");
}

TEST(RedisBackfillOrder, ACopyWaitsForALiveDelOfItsKey) { CopyAgainstALiveWrite("replace", true); }
TEST(RedisBackfillOrder, ACopyWaitsForALiveWriteOfItsKeyReplace) { CopyAgainstALiveWrite("replace", false); }
TEST(RedisBackfillOrder, ACopyWaitsForALiveWriteOfItsKeyNone) { CopyAgainstALiveWrite("none", false); }

}  // namespace
}  // namespace turnout::testing
