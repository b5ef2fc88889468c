// Validation: every bad field is refused with an error that names it.

#include "routing/strategy.h"

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "routing/policy.h"

namespace turnout::routing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ErrorOf(const StrategySpec& spec) {
  absl::Status s = Validate(spec);
  EXPECT_FALSE(s.ok()) << "expected an error for " << StrategyTypeName(TypeOf(spec));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(StrategyValidateTest, DefaultsOfEveryTypeAreValidExceptRequiredFields) {
  for (int i = 0; i < 9; ++i) {
    const auto type = static_cast<StrategyType>(i);
    const StrategySpec spec = DefaultSpec(type);
    EXPECT_EQ(TypeOf(spec), type);
    const absl::Status s = Validate(spec);
    if (type == StrategyType::kRollingUpdate || type == StrategyType::kTimeWindow) {
      EXPECT_FALSE(s.ok()) << StrategyTypeName(type);  // total_instances, window_start
    } else {
      EXPECT_TRUE(s.ok()) << StrategyTypeName(type) << ": " << s;
    }
  }
}

TEST(StrategyValidateTest, CanaryReadPercentage) {
  CanarySpec c;
  c.read_percentage = 1.5;
  EXPECT_EQ(ErrorOf(c), "strategy.read_percentage: must be between 0 and 1, got 1.5");
  c.read_percentage = -0.1;
  EXPECT_EQ(ErrorOf(c), "strategy.read_percentage: must be between 0 and 1, got -0.1");
  c.read_percentage = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(ErrorOf(c), StartsWith("strategy.read_percentage: must be between 0 and 1"));
  c.read_percentage = 0.0;
  EXPECT_TRUE(c.Validate().ok());
  c.read_percentage = 1.0;
  EXPECT_TRUE(c.Validate().ok());
}

TEST(StrategyValidateTest, CanaryWritePercentage) {
  CanarySpec c;
  c.write_mode.mode = WriteMode::kCutover;
  EXPECT_EQ(ErrorOf(c), "strategy.write_mode.write_percentage: required when mode is cutover");
  c.write_mode.write_percentage = 2.0;
  EXPECT_EQ(ErrorOf(c), "strategy.write_mode.write_percentage: must be between 0 and 1, got 2");
  c.write_mode.write_percentage = 0.5;
  EXPECT_TRUE(c.Validate().ok());
  c.write_mode.mode = WriteMode::kDualWrite;
  EXPECT_EQ(ErrorOf(c),
            "strategy.write_mode.write_percentage: only valid when mode is cutover, mode is "
            "dual_write");
}

TEST(StrategyValidateTest, CanaryAtomic) {
  CanarySpec c;
  c.write_mode.atomic = true;
  EXPECT_TRUE(c.Validate().ok());
  c.write_mode.apply = DualWriteApply::kAsync;
  EXPECT_THAT(ErrorOf(c), StartsWith("strategy.write_mode.atomic: needs apply sync"));
  c.write_mode.apply = DualWriteApply::kSync;
  c.write_mode.mode = WriteMode::kNewOnly;
  EXPECT_EQ(ErrorOf(c),
            "strategy.write_mode.atomic: only valid when mode is dual_write, mode is new_only");
}

TEST(StrategyValidateTest, ShadowScratchPrefix) {
  ShadowTrafficSpec s;
  s.shadow_writes = true;
  EXPECT_TRUE(s.Validate().ok());
  s.scratch_key_prefix = "shadow:*";
  EXPECT_EQ(ErrorOf(s),
            "strategy.scratch_key_prefix: must not contain glob characters, got \"shadow:*\"");
}

TEST(StrategyValidateTest, RollingUpdate) {
  RollingUpdateSpec r;
  EXPECT_EQ(ErrorOf(r), "strategy.total_instances: must be at least 1, got 0");
  r.total_instances = 2;
  r.migrated_instances = {"a", "b", "c"};
  EXPECT_EQ(ErrorOf(r),
            "strategy.migrated_instances: lists 3 instances, more than total_instances (2)");
  r.total_instances = 5;
  r.migrated_instances = {"a", "", "c"};
  EXPECT_EQ(ErrorOf(r), "strategy.migrated_instances[1]: must not be empty");
  r.migrated_instances = {"a", "b", "a"};
  EXPECT_EQ(ErrorOf(r), "strategy.migrated_instances[2]: duplicate instance id \"a\"");
  r.migrated_instances = {};
  EXPECT_TRUE(r.Validate().ok());  // the guide's example: [] of 5
}

TEST(StrategyValidateTest, NamedToggles) {
  StranglerFigSpec s;
  s.features = {{"", true}};
  EXPECT_EQ(ErrorOf(s), "strategy.features: feature name must not be empty");
  FeatureFlagSpec f;
  f.flags = {{"", true}};
  EXPECT_EQ(ErrorOf(f), "strategy.flags: flag name must not be empty");
  GeographicSpec g;
  g.regions = {{"", true}};
  EXPECT_EQ(ErrorOf(g), "strategy.regions: region name must not be empty");
}

TEST(StrategyValidateTest, FeatureFlagRollout) {
  FeatureFlagSpec f;
  f.rollout_percentage = 25;  // a percent where a fraction belongs
  EXPECT_EQ(ErrorOf(f), "strategy.rollout_percentage: must be between 0 and 1, got 25");
}

TEST(StrategyValidateTest, TimeWindow) {
  TimeWindowSpec t;
  EXPECT_EQ(ErrorOf(t), "strategy.window_start: required");
  t.window_start = absl::FromUnixSeconds(1705284000);  // 2024-01-15T02:00:00Z
  EXPECT_EQ(ErrorOf(t), "strategy.window_end: required");
  t.window_end = t.window_start;
  EXPECT_EQ(ErrorOf(t),
            "strategy.window_end: must be after window_start (2024-01-15T02:00:00+00:00), got "
            "2024-01-15T02:00:00+00:00");
  t.window_end = absl::InfiniteFuture();
  EXPECT_EQ(ErrorOf(t), "strategy.window_end: must be a finite time");
  t.window_end = t.window_start + absl::Hours(2);
  EXPECT_TRUE(t.Validate().ok());
}

TEST(StrategyNamesTest, RoundTrip) {
  for (int i = 0; i < 9; ++i) {
    const auto t = static_cast<StrategyType>(i);
    auto parsed = ParseStrategyType(StrategyTypeName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  for (auto m : {WriteMode::kOldOnly, WriteMode::kDualWrite, WriteMode::kCutover,
                 WriteMode::kNewOnly})
    EXPECT_EQ(*ParseWriteMode(WriteModeName(m)), m);
  for (auto s : {Stickiness::kConnection, Stickiness::kClient, Stickiness::kKey})
    EXPECT_EQ(*ParseStickiness(StickinessName(s)), s);
  EXPECT_EQ(*ParseAuthority("new_authoritative"), Authority::kNewAuthoritative);
  EXPECT_EQ(*ParseDualWriteApply("async"), DualWriteApply::kAsync);
}

TEST(StrategyNamesTest, ParseErrorsNameFieldAndChoices) {
  EXPECT_EQ(ParseStrategyType("canery").status().message(),
            "strategy.type: unknown value \"canery\", expected one of big_bang, canary, "
            "blue_green, shadow_traffic, rolling_update, strangler_fig, feature_flag, "
            "geographic, time_window");
  EXPECT_THAT(std::string(ParseWriteMode("dual").status().message()),
              StartsWith("strategy.write_mode.mode: unknown value \"dual\""));
  EXPECT_THAT(std::string(ParseAuthority("old").status().message()),
              StartsWith("strategy.write_mode.policy: unknown value"));
  EXPECT_THAT(std::string(ParseDualWriteApply("later").status().message()),
              StartsWith("strategy.write_mode.apply: unknown value"));
  EXPECT_THAT(std::string(ParseStickiness("session").status().message()),
              StartsWith("strategy.stickiness: unknown value"));
}

TEST(StrategyNamesTest, Instants) {
  auto t = ParseInstant("strategy.window_start", "2024-01-15T02:00:00Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, absl::FromUnixSeconds(1705284000));
  auto bad = ParseInstant("strategy.window_end", "tomorrow");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              StartsWith("strategy.window_end: not an RFC 3339 time (\"tomorrow\")"));
}

TEST(ScopeValidateTest, FieldsAreNamed) {
  Scope s{"orders", {}, {}};
  EXPECT_EQ(s.Validate(Protocol::kPostgres).message(),
            "scopes[orders].tables: must list at least one entry");
  s.tables = {"orders", ""};
  EXPECT_EQ(s.Validate(Protocol::kPostgres).message(), "scopes[orders].tables[1]: must not be empty");
  s.tables = {"orders"};
  s.keys = {"order:*"};
  EXPECT_EQ(s.Validate(Protocol::kPostgres).message(),
            "scopes[orders].keys: not allowed on a postgres route; use tables");
  Scope r{"users", {}, {"user:*", "sess:[ab"}};
  EXPECT_EQ(r.Validate(Protocol::kRedis).message(),
            "scopes[users].keys[1]: unterminated '[' at offset 5 in pattern \"sess:[ab\"");
  Scope unnamed{"", {"t"}, {}};
  EXPECT_EQ(unnamed.Validate(Protocol::kPostgres).message(), "scopes[].name: must not be empty");
}

TEST(PolicyCompileErrorsTest, ProtocolSpecificFields) {
  PolicyInputs in;
  in.route = "cache";
  in.protocol = Protocol::kRedis;
  CanarySpec c;
  c.write_mode.atomic = true;
  in.strategy = c;
  EXPECT_EQ(Policy::Compile(in).status().message(),
            "strategy.write_mode.atomic: only for postgres routes, this route is redis");

  ShadowTrafficSpec s;
  s.shadow_writes = true;
  s.scratch_key_prefix = "";
  in.strategy = s;
  EXPECT_THAT(std::string(Policy::Compile(in).status().message()),
              StartsWith("strategy.scratch_key_prefix: must not be empty"));

  in.strategy = BigBangSpec{};
  in.scopes = {{"a", {}, {"a:*"}}, {"a", {}, {"b:*"}}};
  EXPECT_EQ(Policy::Compile(in).status().message(), "scopes[a]: duplicate scope name");

  // A bad strategy is refused in every phase, not only when executing.
  CanarySpec bad;
  bad.read_percentage = 1.5;
  in.scopes.clear();
  in.strategy = bad;
  in.phase = MigrationPhase::kNotStarted;
  EXPECT_EQ(Policy::Compile(in).status().message(),
            "strategy.read_percentage: must be between 0 and 1, got 1.5");
}

}  // namespace
}  // namespace turnout::routing
