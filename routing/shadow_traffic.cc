// shadow_traffic (DESIGN.md §2): every reply comes from old. Reads are
// mirrored to new as shadow work (reply compared, then dropped). With
// shadow_writes, writes are mirrored too: the Postgres session runs them on
// new inside a transaction it always rolls back (comparing tag and row
// count); the Redis session rewrites their keys under scratch_key_prefix.
// DDL, transaction control, session and admin requests are not mirrored:
// the session wraps each shadow write in its own transaction and replays
// session state itself.

#include "absl/strings/str_cat.h"
#include "routing/policy_rules.h"

namespace turnout::routing {

absl::Status ShadowTrafficSpec::Validate() const {
  if (shadow_writes && scratch_key_prefix.find_first_of("*?[\\") != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat(
        "strategy.scratch_key_prefix: must not contain glob characters, got \"",
        scratch_key_prefix, "\""));
  return absl::OkStatus();
}

namespace internal {

absl::Status CompileShadowTraffic(const ShadowTrafficSpec& spec, const CompileContext& ctx,
                                  Rules& out) {
  if (spec.shadow_writes && ctx.protocol == Protocol::kRedis && spec.scratch_key_prefix.empty())
    return absl::InvalidArgumentError(
        "strategy.scratch_key_prefix: must not be empty when shadow_writes is true on a redis "
        "route");
  out.SetAllFixed(To(Side::kOld));
  out[RequestClass::kRead].a = WithShadow(Side::kOld);
  if (spec.shadow_writes) out[RequestClass::kWrite].a = WithShadow(Side::kOld);
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace turnout::routing
