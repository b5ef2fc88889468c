#include "routing/ddl_policy.h"

#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"

namespace turnout::routing {

std::string_view HighRiskDdlName(HighRiskDdl h) noexcept {
  switch (h) {
    case HighRiskDdl::kAllowOutsideScope: return "allow_outside_scope";
    case HighRiskDdl::kRefuse: return "refuse";
    case HighRiskDdl::kAllow: return "allow";
  }
  return "allow_outside_scope";
}

absl::StatusOr<HighRiskDdl> ParseHighRiskDdl(std::string_view text) {
  for (HighRiskDdl h : {HighRiskDdl::kAllowOutsideScope, HighRiskDdl::kRefuse, HighRiskDdl::kAllow})
    if (HighRiskDdlName(h) == text) return h;
  return absl::InvalidArgumentError(absl::StrCat("strategy.ddl.high_risk: unknown value \"", Av(text),
                                                 "\", expected one of allow_outside_scope, refuse, allow"));
}

}  // namespace turnout::routing
