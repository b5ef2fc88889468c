// Policy::Decide and ApplyReadYourWritesFence never allocate. This binary
// links the counting operator new (tests/support/allocation_counter.h), so it
// is its own test executable.

#include <memory>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "routing/policy.h"
#include "routing/stable_hash.h"
#include "tests/support/allocation_counter.h"

namespace turnout::routing {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1705284000);

TEST(DecideAllocTest, NoHeapAllocation) {
  std::vector<PolicyInputs> inputs;
  auto base = [] {
    PolicyInputs in;
    in.route = "r";
    in.phase = MigrationPhase::kExecuting;
    return in;
  };
  for (Stickiness s : {Stickiness::kConnection, Stickiness::kClient, Stickiness::kKey}) {
    CanarySpec c{0.3};
    c.stickiness = s;
    c.write_mode.apply = DualWriteApply::kAsync;
    PolicyInputs in = base();
    in.strategy = c;
    inputs.push_back(in);
  }
  {
    PolicyInputs in = base();
    in.strategy = StranglerFigSpec{{{"a", true}, {"b", true}}};
    in.scopes = {{"a", {"users", "sessions", "t_*"}, {}}, {"b", {"sales.x?"}, {}}};
    inputs.push_back(in);
  }
  {
    PolicyInputs in = base();
    in.protocol = Protocol::kRedis;
    in.strategy = FeatureFlagSpec{{{"a", true}}, 0.5};
    in.scopes = {{"a", {}, {"user:*", "s:[0-9]*x"}}};
    inputs.push_back(in);
  }
  {
    PolicyInputs in = base();
    in.strategy = TimeWindowSpec{kNow, kNow + absl::Hours(1), false};
    inputs.push_back(in);
  }
  std::vector<std::shared_ptr<const Policy>> policies;
  for (auto& in : inputs) {
    auto p = Policy::Compile(in);
    ASSERT_TRUE(p.ok()) << p.status();
    policies.push_back(*p);
  }
  const std::string_view targets[] = {"users", "public.sessions", "user:17", "s:12x", "zzz"};
  const std::size_t before = turnout::testing::AllocationCount();
  long sink = 0;
  for (const auto& p : policies) {
    for (int c = 0; c < kRequestClassCount; ++c) {
      for (std::size_t n = 0; n <= std::size(targets); ++n) {
        Request r;
        r.request_class = static_cast<RequestClass>(c);
        r.targets = {targets, n};
        r.client = {"app", "billing-worker-with-a-long-name", "10.1.2.3"};
        r.connection_id = n * 31 + c;
        r.ddl_risk = DdlRisk::kHigh;
        const Plan plan = ApplyReadYourWritesFence(p->Decide(r, kNow), true);
        sink += static_cast<long>(plan.primary()) + plan.flags();
      }
    }
  }
  EXPECT_EQ(turnout::testing::AllocationCount() - before, 0u);
  EXPECT_GE(sink, 0);
  // The counter does count.
  auto probe = std::make_unique<std::string>(100, 'x');
  EXPECT_GT(turnout::testing::AllocationCount() - before, 0u);
}

}  // namespace
}  // namespace turnout::routing
