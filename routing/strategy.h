#pragma once
// The nine migration strategies as plain values: the `strategy` object of the
// migration API (reference/migrations-api-guide.md) and DESIGN.md §2. The
// control plane parses JSON into these structs (routing/ has no JSON parser)
// and calls Validate(); Policy::Compile turns one into a decision table.
//
// JSON shapes, field by field (defaults in brackets):
//   {"type":"big_bang"}
//   {"type":"canary", "read_percentage":0.05, "stickiness":"connection"|"client"|"key" [connection],
//    "write_mode":{"mode":"old_only"|"dual_write"|"cutover"|"new_only" [dual_write],
//                  "policy":"old_authoritative"|"new_authoritative" [old_authoritative],
//                  "apply":"sync"|"async" [sync],
//                  "atomic":false,                 (Postgres dual_write + sync only)
//                  "write_percentage":0.25}}       (cutover only, required there)
//   {"type":"blue_green", "active_is_new":false, "keep_standby":false}
//   {"type":"shadow_traffic", "shadow_writes":false, "scratch_key_prefix":"turnout:shadow:"}
//   {"type":"rolling_update", "migrated_instances":["turnout-0"], "total_instances":5}
//   {"type":"strangler_fig", "features":{"user_auth":true,"payments":false}}
//   {"type":"feature_flag", "flags":{"new_database":true}, "rollout_percentage":0.25}
//   {"type":"geographic", "regions":{"us-east-1":true,"eu-west-1":false}}
//   {"type":"time_window", "window_start":"2024-01-15T02:00:00Z",
//    "window_end":"2024-01-15T04:00:00Z", "executed":false}
// Every type also takes "ddl":{"high_risk":"allow_outside_scope"|"refuse"|"allow"}
// [allow_outside_scope] (routing/ddl_policy.h).
//
// Decisions where the guide and DESIGN.md differ or are silent:
//  - Fields sit directly in `strategy`, as in the guide's JSON, so a field
//    error reads "strategy.read_percentage: ...", and nested ones
//    "strategy.write_mode.write_percentage: ...".
//  - write_mode also takes old_only and new_only (DESIGN.md §2; the guide
//    names only dual_write and cutover). A missing write_mode is dual_write,
//    old_authoritative, sync: the guide calls dual_write the safest, and a
//    canary that reads from new needs new to receive the writes.
//  - The sync/async choice of DESIGN.md §2 is `write_mode.apply`; `atomic`
//    is DESIGN.md §3's two-phase-commit option.
//  - canary `stickiness` comes from DESIGN.md §2 (not in the guide).
//  - shadow_traffic's `shadow_writes` and `scratch_key_prefix` come from
//    DESIGN.md §2; the guide has no sample percentage, so there is none:
//    every eligible request is mirrored and the bounded shadow queue sheds
//    load.
//  - blue_green `keep_standby` comes from DESIGN.md §2.
//  - Percentages are fractions in [0, 1], as the guide's examples (0.05).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "routing/ddl_policy.h"

namespace turnout::routing {

enum class StrategyType : std::uint8_t {
  kBigBang,
  kCanary,
  kBlueGreen,
  kShadowTraffic,
  kRollingUpdate,
  kStranglerFig,
  kFeatureFlag,
  kGeographic,
  kTimeWindow,
};

enum class WriteMode : std::uint8_t { kOldOnly, kDualWrite, kCutover, kNewOnly };
enum class Authority : std::uint8_t { kOldAuthoritative, kNewAuthoritative };
enum class DualWriteApply : std::uint8_t { kSync, kAsync };
enum class Stickiness : std::uint8_t { kConnection, kClient, kKey };

// Names as they appear in JSON, and their inverses. Parse errors name the
// field and list the accepted values.
std::string_view StrategyTypeName(StrategyType t) noexcept;
std::string_view WriteModeName(WriteMode m) noexcept;
std::string_view AuthorityName(Authority a) noexcept;
std::string_view DualWriteApplyName(DualWriteApply a) noexcept;
std::string_view StickinessName(Stickiness s) noexcept;
absl::StatusOr<StrategyType> ParseStrategyType(std::string_view text);  // "strategy.type: ..."
absl::StatusOr<WriteMode> ParseWriteMode(std::string_view text);  // "strategy.write_mode.mode: ..."
absl::StatusOr<Authority> ParseAuthority(std::string_view text);  // "strategy.write_mode.policy: ..."
absl::StatusOr<DualWriteApply> ParseDualWriteApply(std::string_view text);  // "...apply: ..."
absl::StatusOr<Stickiness> ParseStickiness(std::string_view text);  // "strategy.stickiness: ..."
// RFC 3339 / ISO 8601 instant ("2024-01-15T02:00:00Z"), for time_window;
// `field` names the field in the error ("strategy.window_start").
absl::StatusOr<absl::Time> ParseInstant(std::string_view field, std::string_view text);
std::string FormatInstant(absl::Time t);

// All traffic to old before `migrate`, all to new after.
struct BigBangSpec {
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const BigBangSpec&, const BigBangSpec&) = default;
};

struct WriteModeSpec {
  WriteMode mode = WriteMode::kDualWrite;
  Authority policy = Authority::kOldAuthoritative;  // dual_write only
  DualWriteApply apply = DualWriteApply::kSync;      // dual_write only
  bool atomic = false;                               // dual_write + sync, Postgres only
  std::optional<double> write_percentage;            // cutover only, required there
  friend bool operator==(const WriteModeSpec&, const WriteModeSpec&) = default;
};

struct CanarySpec {
  double read_percentage = 0.0;
  Stickiness stickiness = Stickiness::kConnection;
  WriteModeSpec write_mode;
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const CanarySpec&, const CanarySpec&) = default;
};

struct BlueGreenSpec {
  bool active_is_new = false;  // false: blue (old) active, true: green (new)
  bool keep_standby = false;   // dual-write to the standby for instant rollback
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const BlueGreenSpec&, const BlueGreenSpec&) = default;
};

inline constexpr std::string_view kDefaultScratchKeyPrefix = "turnout:shadow:";

struct ShadowTrafficSpec {
  bool shadow_writes = false;
  // Redis shadow writes touch only keys under this prefix on new.
  std::string scratch_key_prefix = std::string(kDefaultScratchKeyPrefix);
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const ShadowTrafficSpec&, const ShadowTrafficSpec&) = default;
};

struct RollingUpdateSpec {
  std::vector<std::string> migrated_instances;  // sidecar instance ids
  int total_instances = 0;
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const RollingUpdateSpec&, const RollingUpdateSpec&) = default;
};

// Name → enabled. std::less<> for lookups by string_view.
using ToggleMap = std::map<std::string, bool, std::less<>>;

// Feature names are scope names.
struct StranglerFigSpec {
  ToggleMap features;
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const StranglerFigSpec&, const StranglerFigSpec&) = default;
};

// Flag names are scope names; an enabled flag that names no scope covers all
// traffic (DESIGN.md §2 "an enabled flag's scope (or all traffic)").
struct FeatureFlagSpec {
  ToggleMap flags;
  double rollout_percentage = 0.0;
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const FeatureFlagSpec&, const FeatureFlagSpec&) = default;
};

struct GeographicSpec {
  ToggleMap regions;
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const GeographicSpec&, const GeographicSpec&) = default;
};

// InfinitePast marks an unset instant (both are required).
struct TimeWindowSpec {
  absl::Time window_start = absl::InfinitePast();
  absl::Time window_end = absl::InfinitePast();
  bool executed = false;
  DdlPolicy ddl{};  // the strategy's "ddl" (DESIGN.md §3)
  absl::Status Validate() const;
  friend bool operator==(const TimeWindowSpec&, const TimeWindowSpec&) = default;
};

using StrategySpec =
    std::variant<BigBangSpec, CanarySpec, BlueGreenSpec, ShadowTrafficSpec, RollingUpdateSpec,
                 StranglerFigSpec, FeatureFlagSpec, GeographicSpec, TimeWindowSpec>;

// The variant index and StrategyType agree.
StrategyType TypeOf(const StrategySpec& spec) noexcept;
// A default spec of the given type (for PATCH merges in the control plane).
StrategySpec DefaultSpec(StrategyType type);
absl::Status Validate(const StrategySpec& spec);

}  // namespace turnout::routing
