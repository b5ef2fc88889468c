// rolling_update (DESIGN.md §2): this sidecar routes everything to new iff
// its instance id is in migrated_instances; resolved at compile time, so a
// PATCH adding an instance republishes the policy on every sidecar and only
// the named ones move.

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "routing/policy.h"
#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status RollingUpdateSpec::Validate() const {
  if (total_instances < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("strategy.total_instances: must be at least 1, got ", total_instances));
  if (migrated_instances.size() > static_cast<std::size_t>(total_instances))
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.migrated_instances: lists ", migrated_instances.size(),
        " instances, more than total_instances (", total_instances, ")"));
  absl::flat_hash_set<std::string_view> seen;
  for (std::size_t i = 0; i < migrated_instances.size(); ++i) {
    const std::string& id = migrated_instances[i];
    if (id.empty())
      return absl::InvalidArgumentError(
          absl::StrCat("strategy.migrated_instances[", i, "]: must not be empty"));
    if (!seen.insert(id).second)
      return absl::InvalidArgumentError(
          absl::StrCat("strategy.migrated_instances[", i, "]: duplicate instance id \"", id, "\""));
  }
  return absl::OkStatus();
}

namespace internal {

absl::Status CompileRollingUpdate(const RollingUpdateSpec& spec, const CompileContext& ctx,
                                  Rules& out) {
  const std::string& me = ctx.sidecar->instance_id;
  const bool migrated = !me.empty() && std::find(spec.migrated_instances.begin(),
                                                 spec.migrated_instances.end(),
                                                 me) != spec.migrated_instances.end();
  out.SetAllFixed(To(migrated ? Side::kNew : Side::kOld));
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
