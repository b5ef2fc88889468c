#include "routing/policy_table.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace turnout::routing {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1705284000);

std::shared_ptr<const Policy> CanaryAt(double read, std::uint64_t version) {
  PolicyInputs in;
  in.route = "db";
  in.version = version;
  in.strategy = CanarySpec{read};
  in.phase = MigrationPhase::kExecuting;
  auto p = Policy::Compile(in);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(RouteTableTest, StartsEmptyAtVersionZero) {
  RouteTablePublisher pub;
  auto t = pub.Load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->version(), 0u);
  EXPECT_EQ(t->Find("db"), nullptr);
  EXPECT_EQ(pub.version(), 0u);
}

TEST(RouteTableTest, PublishUpdateRemoveAreVersioned) {
  RouteTablePublisher pub;
  auto p1 = CanaryAt(0.05, 1);
  EXPECT_EQ(pub.Update("db", p1), 1u);
  EXPECT_EQ(pub.Load()->Find("db"), p1.get());
  auto p2 = CanaryAt(0.25, 2);
  EXPECT_EQ(pub.Update("cache", p2), 2u);
  EXPECT_EQ(pub.Load()->size(), 2u);
  EXPECT_EQ(pub.Remove("db"), 3u);
  EXPECT_EQ(pub.Load()->Find("db"), nullptr);
  EXPECT_EQ(pub.Load()->Find("cache"), p2.get());
  RouteTable::Map m;
  m["db"] = p1;
  m["gone"] = nullptr;  // null entries are dropped
  EXPECT_EQ(pub.Publish(std::move(m)), 4u);
  EXPECT_EQ(pub.Load()->size(), 1u);
  EXPECT_EQ(pub.Load()->version(), 4u);
}

TEST(RouteTableTest, PinnedPolicySurvivesPublication) {
  RouteTablePublisher pub;
  pub.Update("db", CanaryAt(0.0, 1));
  RouteTableReader reader(pub, "db");
  std::shared_ptr<const Policy> pinned = reader.shared_policy();  // a transaction starts
  pub.Update("db", CanaryAt(1.0, 2));
  pub.Remove("db");
  // The pinned policy is intact and still decides as it did.
  EXPECT_EQ(pinned->version(), 1u);
  Request r;
  r.request_class = RequestClass::kRead;
  EXPECT_EQ(pinned->Decide(r, kNow).primary(), Side::kOld);
  // The reader itself only moves on Refresh.
  EXPECT_EQ(reader.policy().version(), 1u);
  EXPECT_TRUE(reader.Refresh());
  EXPECT_EQ(reader.policy().migration_id(), "");  // passthrough now
  EXPECT_FALSE(reader.Refresh());
}

TEST(RouteTableTest, ReaderSeesOnlyItsRoute) {
  RouteTablePublisher pub;
  RouteTableReader reader(pub, "db");
  EXPECT_EQ(reader.policy().route(), "db");  // passthrough
  pub.Update("other", CanaryAt(0.5, 1));
  EXPECT_FALSE(reader.Refresh());  // table changed, our policy did not
  EXPECT_EQ(reader.table()->version(), 1u);
  pub.Update("db", CanaryAt(0.5, 2));
  EXPECT_TRUE(reader.Refresh());
  EXPECT_EQ(reader.policy().version(), 2u);
}

// Readers on several threads while the control plane publishes: every table
// a reader sees is complete and versions never go backwards. Run under TSan
// (see the report) to check for data races.
TEST(RouteTableTest, ConcurrentPublishAndLoad) {
  RouteTablePublisher pub;
  constexpr int kPublications = 2000;
  constexpr int kReaders = 4;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      RouteTableReader reader(pub, "db");
      std::uint64_t last_table = 0;
      std::uint64_t last_policy = 0;
      Request r;
      r.request_class = RequestClass::kRead;
      while (!done.load(std::memory_order_acquire)) {
        if (t % 2 == 0) {
          auto table = pub.Load();
          if (table->version() < last_table) failures.fetch_add(1);
          last_table = table->version();
          if (const Policy* p = table->Find("db")) {
            if (p->version() < last_policy) failures.fetch_add(1);
            last_policy = p->version();
            (void)p->Decide(r, kNow);
          }
        } else {
          reader.Refresh();
          const Policy& p = reader.policy();
          if (p.version() < last_policy && p.version() != 0) failures.fetch_add(1);
          last_policy = p.version();
          r.connection_id++;
          (void)p.Decide(r, kNow);
        }
      }
    });
  }
  std::uint64_t last = 0;
  for (int i = 1; i <= kPublications; ++i) {
    const std::uint64_t v = pub.Update("db", CanaryAt((i % 100) / 100.0, i));
    EXPECT_EQ(v, last + 1);
    last = v;
  }
  done.store(true, std::memory_order_release);
  for (auto& th : readers) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(pub.Load()->Find("db")->version(), static_cast<std::uint64_t>(kPublications));
}

}  // namespace
}  // namespace turnout::routing
