#include "control/strategy_json.h"

#include <boost/json.hpp>

#include <initializer_list>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using routing::StrategySpec;

std::string_view ToStd(json::string_view s) { return {s.data(), s.size()}; }
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Reads fields of one JSON object, remembering which were used so that the
// leftovers can be reported as unknown.
class Fields {
 public:
  Fields(const json::object& o, std::string path) : o_(o), path_(std::move(path)) {}

  std::string Path(std::string_view key) const { return absl::StrCat(path_, ".", ToAbsl(key)); }

  const json::value* Get(std::string_view key) {
    used_.emplace_back(key);
    return o_.if_contains(json::string_view(key.data(), key.size()));
  }

  absl::Status Number(std::string_view key, double& out, bool required = false) {
    const auto* v = Get(key);
    if (v == nullptr) return required ? absl::InvalidArgumentError(Path(key) + ": required") : absl::OkStatus();
    if (!v->is_number()) return absl::InvalidArgumentError(Path(key) + ": expected a number");
    out = v->to_number<double>();
    return absl::OkStatus();
  }

  absl::Status Integer(std::string_view key, int& out, bool required = false) {
    const auto* v = Get(key);
    if (v == nullptr) return required ? absl::InvalidArgumentError(Path(key) + ": required") : absl::OkStatus();
    boost::system::error_code ec;
    const auto n = v->is_number() ? v->to_number<std::int64_t>(ec) : 0;
    if (!v->is_number() || ec || n < 0 || n > 1000000)
      return absl::InvalidArgumentError(Path(key) + ": expected a whole number from 0 to 1000000");
    out = static_cast<int>(n);
    return absl::OkStatus();
  }

  absl::Status Bool(std::string_view key, bool& out) {
    const auto* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_bool()) return absl::InvalidArgumentError(Path(key) + ": expected true or false");
    out = v->as_bool();
    return absl::OkStatus();
  }

  absl::Status String(std::string_view key, std::string& out, bool required = false) {
    const auto* v = Get(key);
    if (v == nullptr) return required ? absl::InvalidArgumentError(Path(key) + ": required") : absl::OkStatus();
    if (!v->is_string()) return absl::InvalidArgumentError(Path(key) + ": expected a string");
    out = std::string(ToStd(v->as_string()));
    return absl::OkStatus();
  }

  absl::Status Toggles(std::string_view key, routing::ToggleMap& out) {
    const auto* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_object()) return absl::InvalidArgumentError(Path(key) + ": expected an object of name: true|false");
    for (const auto& kv : v->as_object()) {
      if (!kv.value().is_bool())
        return absl::InvalidArgumentError(absl::StrCat(Path(key), ".", ToAbsl(ToStd(kv.key())), ": expected true or false"));
      out[std::string(ToStd(kv.key()))] = kv.value().as_bool();
    }
    return absl::OkStatus();
  }

  absl::Status Strings(std::string_view key, std::vector<std::string>& out) {
    const auto* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_array()) return absl::InvalidArgumentError(Path(key) + ": expected an array of strings");
    for (std::size_t i = 0; i < v->as_array().size(); ++i) {
      const auto& e = v->as_array()[i];
      if (!e.is_string()) return absl::InvalidArgumentError(absl::StrCat(Path(key), "[", i, "]: expected a string"));
      out.emplace_back(ToStd(e.as_string()));
    }
    return absl::OkStatus();
  }

  // Any field not read is unknown.
  absl::Status CheckNoOthers() const {
    for (const auto& kv : o_) {
      const std::string_view key = ToStd(kv.key());
      bool known = false;
      for (const auto& u : used_) known |= (u == key);
      if (!known)
        return absl::InvalidArgumentError(absl::StrCat(Path(key), ": unknown field (allowed: ",
                                                       absl::StrJoin(used_, ", "), ")"));
    }
    return absl::OkStatus();
  }

 private:
  const json::object& o_;
  std::string path_;
  std::vector<std::string> used_;
};

#define RETURN_IF_ERROR(expr)            \
  do {                                   \
    if (auto _st = (expr); !_st.ok()) return _st; \
  } while (0)

// routing's parsers take std::string_view and word their own errors.
template <typename T>
absl::Status Parsed(absl::StatusOr<T> r, T& out) {
  if (!r.ok()) return r.status();
  out = *r;
  return absl::OkStatus();
}

absl::Status ReadWriteMode(Fields& f, routing::WriteModeSpec& w) {
  const auto* v = f.Get("write_mode");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return absl::InvalidArgumentError(f.Path("write_mode") + ": expected an object");
  Fields wf(v->as_object(), f.Path("write_mode"));
  std::string mode, policy, apply;
  RETURN_IF_ERROR(wf.String("mode", mode));
  RETURN_IF_ERROR(wf.String("policy", policy));
  RETURN_IF_ERROR(wf.String("apply", apply));
  RETURN_IF_ERROR(wf.Bool("atomic", w.atomic));
  double pct = -1;
  RETURN_IF_ERROR(wf.Number("write_percentage", pct));
  RETURN_IF_ERROR(wf.CheckNoOthers());
  if (!mode.empty()) RETURN_IF_ERROR(Parsed(routing::ParseWriteMode(mode), w.mode));
  if (!policy.empty()) RETURN_IF_ERROR(Parsed(routing::ParseAuthority(policy), w.policy));
  if (!apply.empty()) RETURN_IF_ERROR(Parsed(routing::ParseDualWriteApply(apply), w.apply));
  if (pct >= 0 || wf.Get("write_percentage") != nullptr) w.write_percentage = pct;
  return absl::OkStatus();
}

// "ddl": {"high_risk": "allow_outside_scope" | "refuse" | "allow"}, any strategy.
absl::Status ReadDdl(Fields& f, routing::DdlPolicy& d) {
  const auto* v = f.Get("ddl");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return absl::InvalidArgumentError(f.Path("ddl") + ": expected an object");
  Fields df(v->as_object(), f.Path("ddl"));
  std::string high_risk;
  RETURN_IF_ERROR(df.String("high_risk", high_risk));
  RETURN_IF_ERROR(df.CheckNoOthers());
  if (!high_risk.empty()) RETURN_IF_ERROR(Parsed(routing::ParseHighRiskDdl(high_risk), d.high_risk));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StrategySpec> StrategyFromJson(const json::value& v) {
  if (!v.is_object()) return absl::InvalidArgumentError("strategy: expected an object with a \"type\"");
  Fields f(v.as_object(), "strategy");
  std::string type_name;
  RETURN_IF_ERROR(f.String("type", type_name, /*required=*/true));
  routing::StrategyType type;
  RETURN_IF_ERROR(Parsed(routing::ParseStrategyType(type_name), type));
  StrategySpec spec = routing::DefaultSpec(type);
  absl::Status st = std::visit(
      [&](auto& s) -> absl::Status {
        using T = std::decay_t<decltype(s)>;
        RETURN_IF_ERROR(ReadDdl(f, s.ddl));
        if constexpr (std::is_same_v<T, routing::CanarySpec>) {
          RETURN_IF_ERROR(f.Number("read_percentage", s.read_percentage));
          std::string stickiness;
          RETURN_IF_ERROR(f.String("stickiness", stickiness));
          if (!stickiness.empty()) RETURN_IF_ERROR(Parsed(routing::ParseStickiness(stickiness), s.stickiness));
          RETURN_IF_ERROR(ReadWriteMode(f, s.write_mode));
        } else if constexpr (std::is_same_v<T, routing::BlueGreenSpec>) {
          RETURN_IF_ERROR(f.Bool("active_is_new", s.active_is_new));
          RETURN_IF_ERROR(f.Bool("keep_standby", s.keep_standby));
        } else if constexpr (std::is_same_v<T, routing::ShadowTrafficSpec>) {
          RETURN_IF_ERROR(f.Bool("shadow_writes", s.shadow_writes));
          RETURN_IF_ERROR(f.String("scratch_key_prefix", s.scratch_key_prefix));
        } else if constexpr (std::is_same_v<T, routing::RollingUpdateSpec>) {
          RETURN_IF_ERROR(f.Strings("migrated_instances", s.migrated_instances));
          RETURN_IF_ERROR(f.Integer("total_instances", s.total_instances));
        } else if constexpr (std::is_same_v<T, routing::StranglerFigSpec>) {
          RETURN_IF_ERROR(f.Toggles("features", s.features));
        } else if constexpr (std::is_same_v<T, routing::FeatureFlagSpec>) {
          RETURN_IF_ERROR(f.Toggles("flags", s.flags));
          RETURN_IF_ERROR(f.Number("rollout_percentage", s.rollout_percentage));
        } else if constexpr (std::is_same_v<T, routing::GeographicSpec>) {
          RETURN_IF_ERROR(f.Toggles("regions", s.regions));
        } else if constexpr (std::is_same_v<T, routing::TimeWindowSpec>) {
          std::string start, end;
          RETURN_IF_ERROR(f.String("window_start", start, true));
          RETURN_IF_ERROR(f.String("window_end", end, true));
          RETURN_IF_ERROR(Parsed(routing::ParseInstant("strategy.window_start", start), s.window_start));
          RETURN_IF_ERROR(Parsed(routing::ParseInstant("strategy.window_end", end), s.window_end));
          RETURN_IF_ERROR(f.Bool("executed", s.executed));
        }
        return absl::OkStatus();
      },
      spec);
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(f.CheckNoOthers());
  RETURN_IF_ERROR(routing::Validate(spec));
  return spec;
}

json::object StrategyToJson(const StrategySpec& spec) {
  json::object o;
  o["type"] = std::string(routing::StrategyTypeName(routing::TypeOf(spec)));
  auto toggles = [](const routing::ToggleMap& m) {
    json::object t;
    for (const auto& [k, v] : m) t[k] = v;
    return t;
  };
  std::visit(
      [&](const auto& s) {
        using T = std::decay_t<decltype(s)>;
        // Only when set, so strategies without it read back as they were sent.
        if (s.ddl != routing::DdlPolicy{})
          o["ddl"] = json::object{{"high_risk", std::string(routing::HighRiskDdlName(s.ddl.high_risk))}};
        if constexpr (std::is_same_v<T, routing::CanarySpec>) {
          o["read_percentage"] = s.read_percentage;
          o["stickiness"] = std::string(routing::StickinessName(s.stickiness));
          json::object w{{"mode", std::string(routing::WriteModeName(s.write_mode.mode))}};
          if (s.write_mode.mode == routing::WriteMode::kDualWrite) {
            w["policy"] = std::string(routing::AuthorityName(s.write_mode.policy));
            w["apply"] = std::string(routing::DualWriteApplyName(s.write_mode.apply));
            w["atomic"] = s.write_mode.atomic;
          }
          if (s.write_mode.write_percentage) w["write_percentage"] = *s.write_mode.write_percentage;
          o["write_mode"] = std::move(w);
        } else if constexpr (std::is_same_v<T, routing::BlueGreenSpec>) {
          o["active_is_new"] = s.active_is_new;
          o["keep_standby"] = s.keep_standby;
        } else if constexpr (std::is_same_v<T, routing::ShadowTrafficSpec>) {
          o["shadow_writes"] = s.shadow_writes;
          o["scratch_key_prefix"] = s.scratch_key_prefix;
        } else if constexpr (std::is_same_v<T, routing::RollingUpdateSpec>) {
          json::array a;
          for (const auto& i : s.migrated_instances) a.emplace_back(i);
          o["migrated_instances"] = std::move(a);
          o["total_instances"] = s.total_instances;
        } else if constexpr (std::is_same_v<T, routing::StranglerFigSpec>) {
          o["features"] = toggles(s.features);
        } else if constexpr (std::is_same_v<T, routing::FeatureFlagSpec>) {
          o["flags"] = toggles(s.flags);
          o["rollout_percentage"] = s.rollout_percentage;
        } else if constexpr (std::is_same_v<T, routing::GeographicSpec>) {
          o["regions"] = toggles(s.regions);
        } else if constexpr (std::is_same_v<T, routing::TimeWindowSpec>) {
          o["window_start"] = routing::FormatInstant(s.window_start);
          o["window_end"] = routing::FormatInstant(s.window_end);
          o["executed"] = s.executed;
        }
      },
      spec);
  return o;
}

// Everything to new: canary at 100 % reads with writes to new only, an active
// new side without standby, big_bang after migrate.
bool IsFullCutover(const routing::StrategySpec& spec) {
  if (const auto* c = std::get_if<routing::CanarySpec>(&spec)) {
    const auto& w = c->write_mode;
    const bool writes_new = w.mode == routing::WriteMode::kNewOnly ||
                            (w.mode == routing::WriteMode::kCutover && w.write_percentage.value_or(0) >= 1.0);
    return c->read_percentage >= 1.0 && writes_new;
  }
  if (const auto* b = std::get_if<routing::BlueGreenSpec>(&spec)) return b->active_is_new && !b->keep_standby;
  return std::holds_alternative<routing::BigBangSpec>(spec);
}

bool WritesToNew(const routing::StrategySpec& spec) {
  if (const auto* c = std::get_if<routing::CanarySpec>(&spec)) {
    const auto& w = c->write_mode;
    switch (w.mode) {
      case routing::WriteMode::kOldOnly: return false;
      case routing::WriteMode::kDualWrite: return w.policy == routing::Authority::kNewAuthoritative;
      case routing::WriteMode::kCutover: return w.write_percentage.value_or(0) > 0;
      case routing::WriteMode::kNewOnly: return true;
    }
    return false;
  }
  if (const auto* b = std::get_if<routing::BlueGreenSpec>(&spec)) return b->active_is_new;
  return std::holds_alternative<routing::BigBangSpec>(spec);
}

// Writes reach both sides while the strategy runs: canary dual_write, or a
// blue_green standby kept.
bool DualWrites(const routing::StrategySpec& spec) {
  if (const auto* c = std::get_if<routing::CanarySpec>(&spec)) return c->write_mode.mode == routing::WriteMode::kDualWrite;
  if (const auto* b = std::get_if<routing::BlueGreenSpec>(&spec)) return b->keep_standby;
  return false;
}

}  // namespace turnout::control
