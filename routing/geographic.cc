// geographic (DESIGN.md §2): this sidecar routes everything to new iff its
// region is true in `regions`. A sidecar with no region, or one the map does
// not list, stays on old.

#include "absl/strings/str_cat.h"
#include "routing/policy.h"
#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status GeographicSpec::Validate() const {
  for (const auto& [name, enabled] : regions)
    if (name.empty())
      return absl::InvalidArgumentError("strategy.regions: region name must not be empty");
  return absl::OkStatus();
}

namespace internal {

absl::Status CompileGeographic(const GeographicSpec& spec, const CompileContext& ctx,
                               Rules& out) {
  const std::string& region = ctx.sidecar->region;
  auto it = spec.regions.find(region);
  const bool migrated = !region.empty() && it != spec.regions.end() && it->second;
  out.SetAllFixed(To(migrated ? Side::kNew : Side::kOld));
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
