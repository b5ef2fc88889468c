#include "routing/plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"
#include "routing/request.h"

namespace turnout::routing {

std::string_view RequestClassName(RequestClass c) noexcept {
  switch (c) {
    case RequestClass::kRead: return "read";
    case RequestClass::kWrite: return "write";
    case RequestClass::kDdl: return "ddl";
    case RequestClass::kTxnControl: return "txn_control";
    case RequestClass::kSession: return "session";
    case RequestClass::kAdmin: return "admin";
  }
  return "unknown";
}

std::string_view DdlRiskName(DdlRisk r) noexcept {
  switch (r) {
    case DdlRisk::kNone: return "none";
    case DdlRisk::kSafe: return "safe";
    case DdlRisk::kMedium: return "medium";
    case DdlRisk::kHigh: return "high";
  }
  return "unknown";
}

std::string_view SideName(Side s) noexcept { return s == Side::kOld ? "old" : "new"; }

std::string_view SecondaryRoleName(SecondaryRole r) noexcept {
  return r == SecondaryRole::kDualWrite ? "dual_write" : "shadow";
}

std::string_view ApplyName(Apply a) noexcept { return a == Apply::kSync ? "sync" : "async"; }

void Plan::RemoveSecondariesOn(Side s) noexcept {
  std::uint8_t kept = 0;
  for (std::uint8_t i = 0; i < count_; ++i)
    if (secondaries_[i].side != s) secondaries_[kept++] = secondaries_[i];
  count_ = kept;
}

void Plan::RemoveSecondaries(Side s, SecondaryRole r) noexcept {
  std::uint8_t kept = 0;
  for (std::uint8_t i = 0; i < count_; ++i)
    if (secondaries_[i].side != s || secondaries_[i].role != r) secondaries_[kept++] = secondaries_[i];
  count_ = kept;
}

std::string Plan::DebugString() const {
  std::string out = absl::StrCat("primary=", Av(SideName(primary_)), " secondaries=[");
  for (std::uint8_t i = 0; i < count_; ++i) {
    const Secondary& s = secondaries_[i];
    absl::StrAppend(&out, i ? ", " : "", Av(SideName(s.side)), " ", Av(SecondaryRoleName(s.role)),
                    " ", Av(ApplyName(s.apply)));
  }
  out += "]";
  if (refused()) out += " refused";
  if (has(kPlanCrossScope)) out += " cross_scope";
  if (has(kPlanAtomic)) out += " atomic";
  if (has(kPlanFenceable)) absl::StrAppend(&out, " fence=", Av(SideName(fence_side_)));
  if (has(kPlanFenced)) out += " fenced";
  return out;
}

bool operator==(const Plan& a, const Plan& b) noexcept {
  if (a.primary_ != b.primary_ || a.flags_ != b.flags_ || a.count_ != b.count_) return false;
  if (a.has(kPlanFenceable) && a.fence_side_ != b.fence_side_) return false;
  return std::equal(a.secondaries_.begin(), a.secondaries_.begin() + a.count_,
                    b.secondaries_.begin());
}

Plan ApplyReadYourWritesFence(Plan plan, bool session_has_unapplied_writes) noexcept {
  if (!session_has_unapplied_writes || !plan.has(kPlanFenceable)) return plan;
  if (plan.primary() == plan.fence_side()) return plan;
  plan.set_primary(plan.fence_side());
  plan.RemoveSecondariesOn(plan.fence_side());
  plan.set(kPlanFenced);
  return plan;
}

}  // namespace turnout::routing
