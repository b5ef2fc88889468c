#include "routing/stable_hash.h"

#include <limits>

#include "gtest/gtest.h"

namespace turnout::routing {
namespace {

// FNV-1a 64 reference vectors (http://www.isthe.com/chongo/tech/comp/fnv/).
TEST(StableHashTest, Fnv1aReferenceVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
}

// SplitMix64 of 0 (first output of the generator seeded with 0).
TEST(StableHashTest, SplitMixReference) { EXPECT_EQ(SplitMix64(0), 0xe220a8397b1dcdafull); }

// Pinned values: these are part of the routing contract (changing them moves
// clients between sides mid-rollout). If this test fails, the hash changed.
TEST(StableHashTest, PinnedValues) {
  static_assert(StableHash(std::string_view("user:1")) == Fmix64(Fnv1a64("user:1")));
  EXPECT_EQ(StableHash(std::uint64_t{1}), SplitMix64(1));
  EXPECT_EQ(StableHash(std::string_view("user:1")), Fmix64(Fnv1a64("user:1")));
  const ClientIdentity c{"app", "billing", "10.0.0.7"};
  EXPECT_EQ(ClientHash(c), Fmix64(Fnv1a64("app\x1f" "billing\x1f" "10.0.0.7\x1f")));
}

TEST(StableHashTest, ClientHashSeparatesFields) {
  EXPECT_NE(ClientHash({"ab", "c", ""}), ClientHash({"a", "bc", ""}));
  EXPECT_NE(ClientHash({"a", "", "b"}), ClientHash({"a", "b", ""}));
}

TEST(StableHashTest, PercentageThreshold) {
  EXPECT_EQ(PercentageThreshold(0.0), 0u);
  EXPECT_EQ(PercentageThreshold(-1.0), 0u);
  EXPECT_EQ(PercentageThreshold(std::numeric_limits<double>::quiet_NaN()), 0u);
  EXPECT_EQ(PercentageThreshold(1.0), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(PercentageThreshold(0.5), 1ull << 63);
  EXPECT_EQ(PercentageThreshold(0.25), 1ull << 62);
  EXPECT_LT(PercentageThreshold(0.05), PercentageThreshold(0.25));
}

}  // namespace
}  // namespace turnout::routing
