// Sticky splits: one connection / client / key always lands on one side, the
// observed share over 100,000 distinct ones is within 1 point of the
// setting, 0 and 1 are exact, and raising the percentage only adds to new.

#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "routing/policy.h"

namespace turnout::routing {
namespace {

constexpr int kPopulation = 100000;
const absl::Time kNow = absl::FromUnixSeconds(1705284000);

std::shared_ptr<const Policy> Canary(double read, Stickiness stickiness) {
  CanarySpec c{read};
  c.stickiness = stickiness;
  c.write_mode.mode = WriteMode::kCutover;
  c.write_mode.write_percentage = read;
  PolicyInputs in;
  in.route = "r";
  in.protocol = stickiness == Stickiness::kKey ? Protocol::kRedis : Protocol::kPostgres;
  in.strategy = c;
  in.phase = MigrationPhase::kExecuting;
  auto p = Policy::Compile(in);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

// Member i of the population, as a request of class `c`. Clients are
// realistic identities: a fleet of app instances with numbered names.
struct Member {
  std::string name;
  std::string_view target;
  Request r;
  Member(Stickiness s, int i, RequestClass c) {
    r.request_class = c;
    r.connection_id = 1000 + static_cast<std::uint64_t>(i);  // sequential, as a session counter
    switch (s) {
      case Stickiness::kConnection: break;
      case Stickiness::kClient:
        name = "worker-" + std::to_string(i);
        r.client = {"app", name, "127.0.0.1"};
        r.connection_id = 7;  // the connection must not matter
        break;
      case Stickiness::kKey:
        name = "user:" + std::to_string(i);
        target = name;
        r.targets = {&target, 1};
        r.connection_id = 7;
        break;
    }
  }
};

class StickinessShareTest
    : public ::testing::TestWithParam<std::tuple<Stickiness, double, RequestClass>> {};

TEST_P(StickinessShareTest, ShareWithinOnePointAndStable) {
  const auto [stickiness, fraction, cls] = GetParam();
  auto p = Canary(fraction, stickiness);
  int on_new = 0;
  for (int i = 0; i < kPopulation; ++i) {
    Member m(stickiness, i, cls);
    const Side s = p->Decide(m.r, kNow).primary();
    on_new += s == Side::kNew;
    if (i % 97 == 0) {
      // Same member again (a new Request, same identity): same side.
      Member again(stickiness, i, cls);
      if (stickiness != Stickiness::kConnection) again.r.connection_id = 99;
      EXPECT_EQ(p->Decide(again.r, kNow + absl::Hours(1)).primary(), s) << i;
    }
  }
  const double share = static_cast<double>(on_new) / kPopulation;
  EXPECT_NEAR(share, fraction, 0.01) << StickinessName(stickiness);
}

std::string ShareTestName(
    const ::testing::TestParamInfo<StickinessShareTest::ParamType>& param_info) {
  const auto& [stickiness, fraction, cls] = param_info.param;
  return std::string(StickinessName(stickiness)) + "_" +
         std::to_string(static_cast<int>(fraction * 100 + 0.5)) + "_" +
         std::string(RequestClassName(cls));
}

INSTANTIATE_TEST_SUITE_P(
    Shares, StickinessShareTest,
    ::testing::Combine(::testing::Values(Stickiness::kConnection, Stickiness::kClient,
                                         Stickiness::kKey),
                       ::testing::Values(0.05, 0.25, 0.30, 0.75),
                       ::testing::Values(RequestClass::kRead, RequestClass::kWrite)),
    ShareTestName);

TEST(StickinessTest, ZeroAndOneAreExact) {
  for (Stickiness s : {Stickiness::kConnection, Stickiness::kClient, Stickiness::kKey}) {
    auto none = Canary(0.0, s);
    auto all = Canary(1.0, s);
    for (int i = 0; i < kPopulation; ++i) {
      Member m(s, i, RequestClass::kRead);
      ASSERT_EQ(none->Decide(m.r, kNow).primary(), Side::kOld) << i;
      ASSERT_EQ(all->Decide(m.r, kNow).primary(), Side::kNew) << i;
    }
  }
}

TEST(StickinessTest, RaisingThePercentageOnlyAddsToNew) {
  const double steps[] = {0.05, 0.25, 0.30, 0.75, 1.0};
  for (Stickiness s : {Stickiness::kConnection, Stickiness::kClient, Stickiness::kKey}) {
    std::vector<std::shared_ptr<const Policy>> policies;
    for (double f : steps) policies.push_back(Canary(f, s));
    for (int i = 0; i < 20000; ++i) {
      Member m(s, i, RequestClass::kRead);
      bool was_new = false;
      for (const auto& p : policies) {
        const bool is_new = p->Decide(m.r, kNow).primary() == Side::kNew;
        ASSERT_TRUE(is_new || !was_new) << "member " << i << " left new as the share grew";
        was_new = is_new;
      }
    }
  }
}

TEST(StickinessTest, ReadAndWriteOfOneConnectionAgree) {
  auto p = Canary(0.3, Stickiness::kConnection);
  for (int i = 0; i < 10000; ++i) {
    Member r(Stickiness::kConnection, i, RequestClass::kRead);
    Member w(Stickiness::kConnection, i, RequestClass::kWrite);
    ASSERT_EQ(p->Decide(r.r, kNow).primary(), p->Decide(w.r, kNow).primary());
  }
}

}  // namespace
}  // namespace turnout::routing
