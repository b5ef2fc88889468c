#include "routing/strategy.h"

#include <array>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"
#include "absl/strings/str_join.h"
#include "routing/policy_rules.h"

namespace turnout::routing {
namespace {

template <typename E, std::size_t N>
absl::StatusOr<E> ParseName(std::string_view field, std::string_view text,
                            const std::array<std::pair<std::string_view, E>, N>& names) {
  for (const auto& [name, value] : names)
    if (name == text) return value;
  std::vector<absl::string_view> accepted;
  for (const auto& entry : names) accepted.push_back(Av(entry.first));
  return absl::InvalidArgumentError(absl::StrCat(Av(field), ": unknown value \"", Av(text),
                                                 "\", expected one of ",
                                                 absl::StrJoin(accepted, ", ")));
}

constexpr std::array<std::pair<std::string_view, StrategyType>, 9> kStrategyNames{{
    {"big_bang", StrategyType::kBigBang},
    {"canary", StrategyType::kCanary},
    {"blue_green", StrategyType::kBlueGreen},
    {"shadow_traffic", StrategyType::kShadowTraffic},
    {"rolling_update", StrategyType::kRollingUpdate},
    {"strangler_fig", StrategyType::kStranglerFig},
    {"feature_flag", StrategyType::kFeatureFlag},
    {"geographic", StrategyType::kGeographic},
    {"time_window", StrategyType::kTimeWindow},
}};
constexpr std::array<std::pair<std::string_view, WriteMode>, 4> kWriteModeNames{{
    {"old_only", WriteMode::kOldOnly},
    {"dual_write", WriteMode::kDualWrite},
    {"cutover", WriteMode::kCutover},
    {"new_only", WriteMode::kNewOnly},
}};
constexpr std::array<std::pair<std::string_view, Authority>, 2> kAuthorityNames{{
    {"old_authoritative", Authority::kOldAuthoritative},
    {"new_authoritative", Authority::kNewAuthoritative},
}};
constexpr std::array<std::pair<std::string_view, DualWriteApply>, 2> kApplyNames{{
    {"sync", DualWriteApply::kSync},
    {"async", DualWriteApply::kAsync},
}};
constexpr std::array<std::pair<std::string_view, Stickiness>, 3> kStickinessNames{{
    {"connection", Stickiness::kConnection},
    {"client", Stickiness::kClient},
    {"key", Stickiness::kKey},
}};

template <typename E, std::size_t N>
std::string_view NameOf(E value, const std::array<std::pair<std::string_view, E>, N>& names) {
  for (const auto& [name, v] : names)
    if (v == value) return name;
  return "unknown";
}

}  // namespace

std::string_view StrategyTypeName(StrategyType t) noexcept { return NameOf(t, kStrategyNames); }
std::string_view WriteModeName(WriteMode m) noexcept { return NameOf(m, kWriteModeNames); }
std::string_view AuthorityName(Authority a) noexcept { return NameOf(a, kAuthorityNames); }
std::string_view DualWriteApplyName(DualWriteApply a) noexcept { return NameOf(a, kApplyNames); }
std::string_view StickinessName(Stickiness s) noexcept { return NameOf(s, kStickinessNames); }

absl::StatusOr<StrategyType> ParseStrategyType(std::string_view text) {
  return ParseName("strategy.type", text, kStrategyNames);
}
absl::StatusOr<WriteMode> ParseWriteMode(std::string_view text) {
  return ParseName("strategy.write_mode.mode", text, kWriteModeNames);
}
absl::StatusOr<Authority> ParseAuthority(std::string_view text) {
  return ParseName("strategy.write_mode.policy", text, kAuthorityNames);
}
absl::StatusOr<DualWriteApply> ParseDualWriteApply(std::string_view text) {
  return ParseName("strategy.write_mode.apply", text, kApplyNames);
}
absl::StatusOr<Stickiness> ParseStickiness(std::string_view text) {
  return ParseName("strategy.stickiness", text, kStickinessNames);
}

absl::StatusOr<absl::Time> ParseInstant(std::string_view field, std::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, Av(text), &t, &err))
    return absl::InvalidArgumentError(
        absl::StrCat(Av(field), ": not an RFC 3339 time (\"", Av(text), "\"): ", err));
  return t;
}

std::string FormatInstant(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

StrategyType TypeOf(const StrategySpec& spec) noexcept {
  static_assert(std::variant_size_v<StrategySpec> == kStrategyNames.size());
  return static_cast<StrategyType>(spec.index());
}

StrategySpec DefaultSpec(StrategyType type) {
  switch (type) {
    case StrategyType::kBigBang: return BigBangSpec{};
    case StrategyType::kCanary: return CanarySpec{};
    case StrategyType::kBlueGreen: return BlueGreenSpec{};
    case StrategyType::kShadowTraffic: return ShadowTrafficSpec{};
    case StrategyType::kRollingUpdate: return RollingUpdateSpec{};
    case StrategyType::kStranglerFig: return StranglerFigSpec{};
    case StrategyType::kFeatureFlag: return FeatureFlagSpec{};
    case StrategyType::kGeographic: return GeographicSpec{};
    case StrategyType::kTimeWindow: return TimeWindowSpec{};
  }
  return BigBangSpec{};
}

absl::Status Validate(const StrategySpec& spec) {
  return std::visit([](const auto& s) { return s.Validate(); }, spec);
}

namespace internal {

absl::Status CheckFraction(std::string_view field, double v) {
  // Written so that NaN fails too.
  if (v >= 0.0 && v <= 1.0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("strategy.", Av(field), ": must be between 0 and 1, got ", v));
}

}  // namespace internal
}  // namespace turnout::routing
