// The intent record (proxy/intent_ring.h): its slot format, what a process
// killed mid-write leaves and the next one reads back, a full ring, and the
// start-up reconcile into journal entries.

#include "proxy/intent_ring.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "proxy/journal_file.h"
#include "routing/journal.h"

namespace turnout::proxy {
namespace {

namespace fs = std::filesystem;
using namespace intent_format;

class IntentRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("intent_ring_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path() const { return (dir_ / "journal.log.intents").string(); }
  fs::path dir_;
};

IntentWhere RedisWhere() {
  return {IntentProtocol::kRedis, "m1", "cache", "redis-new", ""};
}

TEST(IntentFormat, RoundTripsOneSlot) {
  std::array<std::byte, kSlotSize> slot{};
  const IntentWhere w{IntentProtocol::kPostgres, "mig", "orders-db", "pg-new", "shop"};
  const std::string targets[] = {"public.orders", "public.order_items"};
  const std::size_t len = EncodeBody(w, std::span<const std::string>(targets), std::span(slot).subspan(kSlotHeaderSize));
  ASSERT_GT(len, 0u);
  // The header as IntentRing writes it.
  const std::uint64_t seq = 77;
  const std::uint32_t sum = Checksum(seq, std::span(slot).subspan(kSlotHeaderSize, len));
  const std::uint16_t body_len = static_cast<std::uint16_t>(len), count = 2;
  std::memcpy(slot.data(), &seq, 8);
  std::memcpy(slot.data() + 16, &sum, 4);
  std::memcpy(slot.data() + 20, &body_len, 2);
  slot[22] = std::byte{1};
  std::memcpy(slot.data() + 24, &count, 2);
  bool bad = true;
  auto in = ParseSlot(slot, &bad);
  ASSERT_TRUE(in.has_value());
  EXPECT_FALSE(bad);
  EXPECT_EQ(in->seq, 77u);
  EXPECT_EQ(in->protocol, IntentProtocol::kPostgres);
  EXPECT_EQ(in->migration_id, "mig");
  EXPECT_EQ(in->route, "orders-db");
  EXPECT_EQ(in->backend, "pg-new");
  EXPECT_EQ(in->database, "shop");
  EXPECT_EQ(in->targets, (std::vector<std::string>{"public.orders", "public.order_items"}));

  // Any flipped body byte fails the checksum: unreadable, never misread.
  for (std::size_t i = 0; i < len; ++i) {
    auto torn = slot;
    torn[kSlotHeaderSize + i] ^= std::byte{0x40};
    EXPECT_FALSE(ParseSlot(torn, &bad).has_value()) << i;
    EXPECT_TRUE(bad) << i;
  }
  // Free, and being written (the primary not asked yet): not an intent.
  for (std::uint64_t state : {kFree, kWriting}) {
    auto s = slot;
    std::memcpy(s.data(), &state, 8);
    EXPECT_FALSE(ParseSlot(s, &bad).has_value());
    EXPECT_FALSE(bad);
  }
}

TEST(IntentFormat, NamesThatDoNotFitAreRefused) {
  std::array<std::byte, kBodyCapacity> body{};
  const std::string big(kBodyCapacity, 'k');
  const std::string_view one[] = {big};
  EXPECT_EQ(EncodeBody(RedisWhere(), std::span<const std::string_view>(one), body), 0u);
  const std::string_view small[] = {"a", "b"};
  EXPECT_GT(EncodeBody(RedisWhere(), std::span<const std::string_view>(small), body), 0u);
  // Empty names and no targets are fine (a keyless write still names its route).
  EXPECT_GT(EncodeBody(IntentWhere{}, std::span<const std::string_view>(), body), 0u);
}

TEST_F(IntentRingTest, RecordClearAndReopen) {
  {
    auto ring = IntentRing::Open(Path(), 64);
    ASSERT_TRUE(ring.ok()) << ring.status();
    const std::string_view k1[] = {"user:1"};
    const std::string_view k2[] = {"user:2", "user:3"};
    const auto a = (*ring)->Record(RedisWhere(), k1);
    const auto b = (*ring)->Record(RedisWhere(), k2);
    ASSERT_NE(a, IntentRing::kNoSlot);
    ASSERT_NE(b, IntentRing::kNoSlot);
    EXPECT_NE(a, b);
    (*ring)->Clear(a);
    auto live = (*ring)->Live();
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0].targets, (std::vector<std::string>{"user:2", "user:3"}));
  }
  // A new process maps the same file: the live slot is still there.
  auto again = IntentRing::Open(Path(), 4096);  // an existing ring keeps its shape
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->slots(), 64u);
  auto live = (*again)->Live();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].route, "cache");
  EXPECT_EQ(live[0].backend, "redis-new");
}

// The property the ring exists for: a process killed with SIGKILL between
// Record and Clear leaves its intents to the next one. The child records
// intents, reports, and is killed while it waits.
TEST_F(IntentRingTest, SurvivesKillDashNine) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto ring = IntentRing::Open(Path(), 256);
    if (!ring.ok()) ::_exit(2);
    for (int i = 0; i < 100; ++i) {
      const std::string key = "key:" + std::to_string(i);
      const std::string_view keys[] = {key};
      const auto slot = (*ring)->Record(RedisWhere(), keys);
      if (slot == IntentRing::kNoSlot) ::_exit(3);
      // Every other write "applied": cleared; the rest are in flight.
      if (i % 2 == 0) (*ring)->Clear(slot);
    }
    char c = 'x';
    if (::write(ready[1], &c, 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto ring = IntentRing::Open(Path(), 256);
  ASSERT_TRUE(ring.ok());
  std::size_t unreadable = 99;
  auto live = (*ring)->Live(&unreadable);
  EXPECT_EQ(unreadable, 0u);
  std::set<std::string> keys;
  for (const auto& in : live) {
    ASSERT_EQ(in.targets.size(), 1u);
    keys.insert(in.targets[0]);
  }
  std::set<std::string> want;
  for (int i = 1; i < 100; i += 2) want.insert("key:" + std::to_string(i));
  EXPECT_EQ(keys, want);

  // The reconcile journals each of them, durably, then empties the ring.
  auto journal = OpenJournalFile((dir_ / "journal.log").string(), {});
  ASSERT_TRUE(journal.ok());
  auto n = ReconcileIntents(**ring, **journal);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 50u);
  EXPECT_TRUE((*ring)->Live().empty());
  auto reread = OpenJournalFile((dir_ / "journal.log").string(), {});
  ASSERT_TRUE(reread.ok());
  const auto pending = (*reread)->Pending("m1");
  ASSERT_EQ(pending.size(), 50u);
  std::set<std::string> journaled;
  for (const auto& e : pending) {
    EXPECT_EQ(e.route, "cache");
    EXPECT_EQ(e.backend, "redis-new");
    EXPECT_EQ(e.kind, routing::JournalKind::kDropped);
    for (const auto& t : e.targets) journaled.insert(t);
  }
  EXPECT_EQ(journaled, want);
}

TEST_F(IntentRingTest, PartlyWrittenSlotIsNotAnIntent) {
  auto ring = IntentRing::Open(Path(), 8);
  ASSERT_TRUE(ring.ok());
  const std::string_view k[] = {"a"};
  ASSERT_NE((*ring)->Record(RedisWhere(), k), IntentRing::kNoSlot);
  // Mark every slot kWriting behind the ring's back, as a process killed
  // inside Record leaves one.
  {
    std::fstream f(Path(), std::ios::in | std::ios::out | std::ios::binary);
    for (std::size_t i = 1; i < 8; ++i) {
      f.seekp(static_cast<std::streamoff>(kHeaderSize + i * kSlotSize));
      const std::uint64_t writing = kWriting;
      f.write(reinterpret_cast<const char*>(&writing), 8);
    }
  }
  auto reopened = IntentRing::Open(Path(), 8);
  ASSERT_TRUE(reopened.ok());
  std::size_t unreadable = 99;
  EXPECT_EQ((*reopened)->Live(&unreadable).size(), 1u);
  EXPECT_EQ(unreadable, 0u);
}

TEST_F(IntentRingTest, FullRingSaysSoAndJournaledSlotsFreeAfterTheFlush) {
  auto ring = IntentRing::Open(Path(), 4);
  ASSERT_TRUE(ring.ok());
  const std::string_view k[] = {"x"};
  std::vector<std::uint32_t> slots;
  for (int i = 0; i < 4; ++i) slots.push_back((*ring)->Record(RedisWhere(), k));
  for (auto s : slots) ASSERT_NE(s, IntentRing::kNoSlot);
  // Full: the caller is told, and journals the write itself (never dropped).
  EXPECT_EQ((*ring)->Record(RedisWhere(), k), IntentRing::kNoSlot);
  // Journaled as entry 10: the slot stays live until the journal's flush passes 10.
  (*ring)->Journaled(slots[0], 10);
  EXPECT_EQ((*ring)->ClearFlushed(9), 0u);
  EXPECT_EQ((*ring)->Live().size(), 4u);
  EXPECT_EQ((*ring)->ClearFlushed(10), 1u);
  EXPECT_EQ((*ring)->Live().size(), 3u);
  EXPECT_NE((*ring)->Record(RedisWhere(), k), IntentRing::kNoSlot);
  // Too large for a slot: refused, and the ring is unchanged.
  const std::string big(kBodyCapacity, 'k');
  const std::string_view bigs[] = {big};
  (*ring)->Clear(slots[1]);
  EXPECT_EQ((*ring)->Record(RedisWhere(), bigs), IntentRing::kNoSlot);
  EXPECT_EQ((*ring)->Live().size(), 3u);
}

TEST_F(IntentRingTest, ManyKeysSpreadOverSeveralSlots) {
  auto ring = IntentRing::Open(Path(), 64);
  ASSERT_TRUE(ring.ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("some:rather:long:key:" + std::to_string(i));
  EXPECT_EQ((*ring)->Record(RedisWhere(), std::span<const std::string>(keys)), IntentRing::kNoSlot);
  std::vector<std::uint32_t> slots;
  ASSERT_TRUE((*ring)->RecordSpread(RedisWhere(), std::span<const std::string>(keys), slots));
  EXPECT_GT(slots.size(), 1u);
  std::vector<std::string> named;
  for (const auto& in : (*ring)->Live()) named.insert(named.end(), in.targets.begin(), in.targets.end());
  std::sort(named.begin(), named.end());
  auto want = keys;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(named, want);
  for (auto s : slots) (*ring)->Clear(s);
  // Too few free slots: nothing is kept.
  std::vector<std::uint32_t> taken;
  const std::string_view one[] = {"x"};
  while (true) {
    const auto s = (*ring)->Record(RedisWhere(), one);
    if (s == IntentRing::kNoSlot) break;
    taken.push_back(s);
  }
  for (std::size_t i = 0; i < 3; ++i) (*ring)->Clear(taken[i]);
  slots.clear();
  EXPECT_FALSE((*ring)->RecordSpread(RedisWhere(), std::span<const std::string>(keys), slots));
  EXPECT_TRUE(slots.empty());
  EXPECT_EQ((*ring)->Live().size(), taken.size() - 3);
  // One name longer than a slot: refused.
  for (auto s : taken) (*ring)->Clear(s);
  const std::string huge(kBodyCapacity, 'k');
  const std::string_view hk[] = {"a", huge};
  EXPECT_FALSE((*ring)->RecordSpread(RedisWhere(), hk, slots));
  EXPECT_TRUE((*ring)->Live().empty());
}

TEST_F(IntentRingTest, ThreadsClaimDistinctSlots) {
  auto ring = IntentRing::Open(Path(), 1024);
  ASSERT_TRUE(ring.ok());
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::vector<std::uint32_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = std::to_string(t) + ":" + std::to_string(i);
        const std::string_view k[] = {key};
        got[t].push_back((*ring)->Record(RedisWhere(), k));
      }
    });
  for (auto& th : threads) th.join();
  std::set<std::uint32_t> all;
  for (const auto& v : got)
    for (auto s : v) {
      ASSERT_NE(s, IntentRing::kNoSlot);
      all.insert(s);
    }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ((*ring)->Live().size(), static_cast<std::size_t>(kThreads * kEach));
}

TEST_F(IntentRingTest, ForeignFileIsMovedAsideNotReused) {
  {
    std::ofstream f(Path());
    f << "not a ring";
  }
  auto ring = IntentRing::Open(Path(), 16);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_TRUE((*ring)->Live().empty());
  int aside = 0;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().find(".unreadable.") != std::string::npos) ++aside;
  EXPECT_EQ(aside, 1);
}

}  // namespace
}  // namespace turnout::proxy
