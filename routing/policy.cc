#include "routing/policy.h"

#include <utility>
#include <variant>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"
#include "routing/stable_hash.h"

namespace turnout::routing {
namespace internal {

void Rules::SetAllFixed(const Plan& p) {
  for (ClassRule& r : by_class) {
    r = ClassRule{};
    r.a = p;
  }
}

void Rules::SetAllSelected(Selector s) {
  for (ClassRule& r : by_class) {
    r = ClassRule{};
    r.selector = s;
    r.a = To(Side::kOld);
    r.b = To(Side::kNew);
  }
}

Plan To(Side primary) { return Plan(primary); }

Plan WithDualWrite(Side primary, Apply apply) {
  Plan p(primary);
  p.AddSecondary({Other(primary), SecondaryRole::kDualWrite, apply});
  return p;
}

Plan WithShadow(Side primary) {
  Plan p(primary);
  p.AddSecondary({Other(primary), SecondaryRole::kShadow, Apply::kAsync});
  return p;
}

Apply ToApply(DualWriteApply a) { return a == DualWriteApply::kSync ? Apply::kSync : Apply::kAsync; }

Side AuthoritySide(Authority a) {
  return a == Authority::kOldAuthoritative ? Side::kOld : Side::kNew;
}

PreparedDualWrite PreparedDualWriteOf(const StrategySpec& spec) {
  PreparedDualWrite out;
  if (const auto* c = std::get_if<CanarySpec>(&spec)) {
    if (c->write_mode.mode == WriteMode::kDualWrite) {
      out.enabled = true;
      out.apply = ToApply(c->write_mode.apply);
      out.atomic = c->write_mode.atomic;
    }
  } else if (const auto* bg = std::get_if<BlueGreenSpec>(&spec)) {
    out.enabled = bg->keep_standby;
  }
  return out;
}

namespace {

absl::Status CompileStrategy(const StrategySpec& spec, const CompileContext& ctx, Rules& out) {
  switch (TypeOf(spec)) {
    case StrategyType::kBigBang: return CompileBigBang(std::get<BigBangSpec>(spec), ctx, out);
    case StrategyType::kCanary: return CompileCanary(std::get<CanarySpec>(spec), ctx, out);
    case StrategyType::kBlueGreen:
      return CompileBlueGreen(std::get<BlueGreenSpec>(spec), ctx, out);
    case StrategyType::kShadowTraffic:
      return CompileShadowTraffic(std::get<ShadowTrafficSpec>(spec), ctx, out);
    case StrategyType::kRollingUpdate:
      return CompileRollingUpdate(std::get<RollingUpdateSpec>(spec), ctx, out);
    case StrategyType::kStranglerFig:
      return CompileStranglerFig(std::get<StranglerFigSpec>(spec), ctx, out);
    case StrategyType::kFeatureFlag:
      return CompileFeatureFlag(std::get<FeatureFlagSpec>(spec), ctx, out);
    case StrategyType::kGeographic:
      return CompileGeographic(std::get<GeographicSpec>(spec), ctx, out);
    case StrategyType::kTimeWindow:
      return CompileTimeWindow(std::get<TimeWindowSpec>(spec), ctx, out);
  }
  return absl::InternalError("unknown strategy type");
}

std::string_view SelectorName(Selector s) {
  switch (s) {
    case Selector::kFixed: return "fixed";
    case Selector::kSplit: return "split";
    case Selector::kScope: return "scope";
    case Selector::kFlag: return "flag";
    case Selector::kWindow: return "window";
  }
  return "?";
}

// With the change stream carrying writes from old to new, a dual-write to
// new becomes a mark on the plan: the session sends nothing to new and only
// learns when new has the commit (plan.h kPlanStreamSync/Async). A
// dual-write to old (new authoritative) stays a statement: the stream does
// not flow that way.
void CarryDualWriteByStream(Plan& p) {
  for (const Secondary& s : p.secondaries()) {
    if (s.role != SecondaryRole::kDualWrite || s.side != Side::kNew) continue;
    p.set(s.apply == Apply::kSync ? kPlanStreamSync : kPlanStreamAsync);
    p.RemoveSecondaries(Side::kNew, SecondaryRole::kDualWrite);
    return;
  }
}

}  // namespace
}  // namespace internal

std::string_view MigrationPhaseName(MigrationPhase p) noexcept {
  switch (p) {
    case MigrationPhase::kNotStarted: return "not_started";
    case MigrationPhase::kPrepared: return "prepared";
    case MigrationPhase::kExecuting: return "executing";
    case MigrationPhase::kPaused: return "paused";
    case MigrationPhase::kCompleted: return "completed";
    case MigrationPhase::kRolledBack: return "rolled_back";
  }
  return "unknown";
}

Policy::Policy(PrivateTag, PolicyInputs inputs) : inputs_(std::move(inputs)) {}

absl::StatusOr<std::shared_ptr<const Policy>> Policy::Compile(PolicyInputs inputs) {
  using internal::Rules;
  if (auto s = Validate(inputs.strategy); !s.ok()) return s;
  absl::flat_hash_set<std::string_view> names;
  for (const Scope& scope : inputs.scopes) {
    if (auto s = scope.Validate(inputs.protocol); !s.ok()) return s;
    if (!names.insert(scope.name).second)
      return absl::InvalidArgumentError(
          absl::StrCat("scopes[", scope.name, "]: duplicate scope name"));
  }

  auto policy = std::make_shared<Policy>(PrivateTag{}, std::move(inputs));
  const PolicyInputs& in = policy->inputs_;
  internal::CompileContext ctx{in.protocol, &in.scopes, &in.sidecar};

  // The strategy compiles in every phase, so a bad spec is refused when it is
  // submitted, not when the migration starts.
  Rules strategy;
  if (auto s = internal::CompileStrategy(in.strategy, ctx, strategy); !s.ok()) return s;

  Rules& rules = policy->rules_;
  switch (in.phase) {
    case MigrationPhase::kNotStarted:
    case MigrationPhase::kRolledBack:
      rules.SetAllFixed(internal::To(Side::kOld));
      break;
    case MigrationPhase::kCompleted:
      rules.SetAllFixed(internal::To(Side::kNew));
      break;
    case MigrationPhase::kPrepared: {
      rules.SetAllFixed(internal::To(Side::kOld));
      const internal::PreparedDualWrite dw = internal::PreparedDualWriteOf(in.strategy);
      if (dw.enabled) {
        Plan write = internal::WithDualWrite(Side::kOld, dw.apply);
        Plan ddl = internal::WithDualWrite(Side::kOld, Apply::kSync);
        if (dw.atomic) {
          write.set(kPlanAtomic);
          ddl.set(kPlanAtomic);
        }
        rules[RequestClass::kWrite].a = write;
        rules[RequestClass::kTxnControl].a = write;
        rules[RequestClass::kDdl].a = ddl;
      }
      break;
    }
    case MigrationPhase::kExecuting:
    case MigrationPhase::kPaused:
      rules = std::move(strategy);
      break;
  }

  if (in.hold_writes) {
    for (RequestClass c : {RequestClass::kWrite, RequestClass::kDdl, RequestClass::kTxnControl}) {
      rules[c].a.set(kPlanHoldWrites);
      rules[c].b.set(kPlanHoldWrites);
    }
  }
  if (in.writes_by_stream) {
    for (internal::ClassRule& r : rules.by_class) {
      internal::CarryDualWriteByStream(r.a);
      internal::CarryDualWriteByStream(r.b);
    }
  }

  policy->high_risk_ddl_ = in.allow_high_risk_ddl
                              ? HighRiskDdl::kAllow
                              : std::visit([](const auto& s) { return s.ddl.high_risk; }, in.strategy);
  policy->refuse_high_risk_ddl_ =
      policy->high_risk_ddl_ != HighRiskDdl::kAllow &&
      (in.phase == MigrationPhase::kPrepared || in.phase == MigrationPhase::kExecuting ||
       in.phase == MigrationPhase::kPaused);
  if (in.protocol == Protocol::kPostgres) {
    for (const Scope& scope : in.scopes) {
      if (scope.tables.empty()) continue;
      if (auto s = policy->ddl_tables_.Add(scope, in.protocol); !s.ok()) return s;
      policy->ddl_all_tables_ = false;
    }
  }
  if (const auto* shadow = std::get_if<ShadowTrafficSpec>(&in.strategy);
      shadow != nullptr && shadow->shadow_writes && in.protocol == Protocol::kRedis)
    policy->scratch_key_prefix_ = shadow->scratch_key_prefix;
  return std::shared_ptr<const Policy>(std::move(policy));
}

std::shared_ptr<const Policy> Policy::Passthrough(std::string route, Protocol protocol,
                                                  std::uint64_t version) {
  PolicyInputs in;
  in.route = std::move(route);
  in.protocol = protocol;
  in.version = version;
  auto policy = std::make_shared<Policy>(PrivateTag{}, std::move(in));
  policy->rules_.SetAllFixed(internal::To(Side::kOld));
  return policy;
}

std::uint64_t StickyHash(const Request& request, Stickiness stickiness) noexcept {
  switch (stickiness) {
    case Stickiness::kConnection: break;
    case Stickiness::kClient:
      return request.client_hash ? *request.client_hash : ClientHash(request.client);
    case Stickiness::kKey:
      if (!request.targets.empty()) return StableHash(request.targets.front());
      break;
  }
  return StableHash(request.connection_id);
}

Plan Policy::Decide(const Request& request, absl::Time now) const noexcept {
  using internal::Selector;
  auto index = static_cast<unsigned>(request.request_class);
  // Defensive: an out-of-range class is treated as the unknown it is, a write.
  if (index >= static_cast<unsigned>(kRequestClassCount))
    index = static_cast<unsigned>(RequestClass::kWrite);
  const internal::ClassRule& rule = rules_.by_class[index];

  Plan plan;
  switch (rule.selector) {
    case Selector::kFixed:
      plan = rule.a;
      break;
    case Selector::kSplit:
      plan = StickyHash(request, rule.stickiness) < rule.threshold ? rule.b : rule.a;
      break;
    case Selector::kScope:
    case Selector::kFlag: {
      bool eligible = false;
      bool cross = false;
      if (rule.selector == Selector::kFlag && rules_.flag_all_traffic) {
        eligible = true;
      } else {
        const ScopeMatcher::Coverage c = rules_.scope.Cover(request.targets);
        eligible = c == ScopeMatcher::Coverage::kAll;
        cross = c == ScopeMatcher::Coverage::kSome;
      }
      if (eligible && rule.selector == Selector::kFlag)
        eligible = StickyHash(request, Stickiness::kClient) < rule.threshold;
      plan = eligible ? rule.b : rule.a;
      if (cross) plan.set(kPlanCrossScope);
      break;
    }
    case Selector::kWindow:
      plan = (now >= rules_.window_start && now <= rules_.window_end) ? rule.b : rule.a;
      break;
  }
  if (request.request_class == RequestClass::kDdl && request.ddl_risk == DdlRisk::kHigh &&
      refuse_high_risk_ddl_ && RefusesHighRiskDdl(request.targets))
    plan.set(kPlanRefused);
  return plan;
}

bool Policy::RefusesHighRiskDdl(std::span<const std::string_view> targets) const noexcept {
  if (!refuse_high_risk_ddl_) return false;
  // A HIGH statement that names no table (CASCADE, ALTER SCHEMA ...) may
  // reach any table: refused in either mode.
  if (high_risk_ddl_ == HighRiskDdl::kRefuse || targets.empty() || ddl_all_tables_) return true;
  for (std::string_view t : targets)
    if (ddl_tables_.Matches(t)) return true;
  return false;
}

std::string Policy::DebugString() const {
  std::string out = absl::StrCat("route=", inputs_.route, " version=", inputs_.version,
                                 " migration=", inputs_.migration_id,
                                 " phase=", Av(MigrationPhaseName(inputs_.phase)),
                                 " strategy=", Av(StrategyTypeName(strategy_type())));
  if (refuse_high_risk_ddl_) absl::StrAppend(&out, " refuse_high_risk_ddl=", Av(HighRiskDdlName(high_risk_ddl_)));
  for (int i = 0; i < kRequestClassCount; ++i) {
    const internal::ClassRule& r = rules_.by_class[i];
    absl::StrAppend(&out, "\n  ", Av(RequestClassName(static_cast<RequestClass>(i))), ": ",
                    Av(internal::SelectorName(r.selector)), " a={", r.a.DebugString(), "}");
    if (r.selector != internal::Selector::kFixed)
      absl::StrAppend(&out, " b={", r.b.DebugString(), "}");
    if (r.selector == internal::Selector::kSplit)
      absl::StrAppend(&out, " stickiness=", Av(StickinessName(r.stickiness)));
  }
  return out;
}

}  // namespace turnout::routing
