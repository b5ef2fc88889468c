// An admin request's body and names, checked and parsed into typed commands
// before the service sees them: the rule for names, the fields a body may
// carry, and the shapes of `data`, `failure_handling` and a scope's table
// and key lists. Every refusal is INVALID_ARGUMENT (HTTP 400) naming the
// field; its text is part of the API (tests and operators read it), and the
// order of the checks decides which one a body with several faults gets.
#include "control/migration_request.h"

#include <boost/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "control/api_status.h"
#include "control/strategy_json.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

std::string ToStd(json::string_view s) { return std::string(s.data(), s.size()); }

}  // namespace

// Table names and key globs of a scope: free text, but bounded and printable
// (they are shown in replies and stored in the state file).
absl::Status CheckPattern(const std::string& field, const std::string& text) {
  if (text.size() > 512) return absl::InvalidArgumentError(absl::StrCat(field, ": at most 512 bytes"));
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return absl::InvalidArgumentError(absl::StrCat(field, ": control characters are not allowed"));
  return absl::OkStatus();
}

// `data`: "none" | {"type": "none"|"snapshot"|"scan", "replace": "none"|"replace"|"merge",
//                   "batch_size": n, "sleep_ms": n, "passes": n, "workers": n, "format": "binary"|"text"}
// The last five tune the copy (control/data_movement.h, DataSpec).
absl::Status ValidateData(const json::value& v) {
  auto type_ok = [](json::string_view t) { return t == "none" || t == "snapshot" || t == "scan"; };
  if (v.is_string()) {
    if (!type_ok(v.as_string()))
      return absl::InvalidArgumentError(absl::StrCat("data: expected none, snapshot or scan, got \"", ToStd(v.as_string()), "\""));
    return absl::OkStatus();
  }
  if (!v.is_object()) return absl::InvalidArgumentError("data: expected \"none\" or {\"type\": ..., \"replace\": ...}");
  auto whole = [](const json::value& n, const char* field, std::int64_t lo, std::int64_t hi) -> absl::Status {
    if (!n.is_int64() || n.as_int64() < lo || n.as_int64() > hi)
      return absl::InvalidArgumentError(absl::StrCat("data.", field, ": expected a whole number from ", lo, " to ", hi));
    return absl::OkStatus();
  };
  for (const auto& kv : v.as_object()) {
    if (kv.key() == "type") {
      if (!kv.value().is_string() || !type_ok(kv.value().as_string()))
        return absl::InvalidArgumentError("data.type: expected none, snapshot or scan");
    } else if (kv.key() == "replace") {
      const auto& r = kv.value();
      if (!r.is_string() || !(r.as_string() == "none" || r.as_string() == "replace" || r.as_string() == "merge"))
        return absl::InvalidArgumentError("data.replace: expected none, replace or merge");
    } else if (kv.key() == "batch_size") {
      if (auto st = whole(kv.value(), "batch_size", 1, 1000000); !st.ok()) return st;
    } else if (kv.key() == "sleep_ms") {
      if (auto st = whole(kv.value(), "sleep_ms", 0, 60000); !st.ok()) return st;
    } else if (kv.key() == "passes") {
      if (auto st = whole(kv.value(), "passes", 1, 100); !st.ok()) return st;
    } else if (kv.key() == "workers") {
      if (auto st = whole(kv.value(), "workers", 1, 16); !st.ok()) return st;
    } else if (kv.key() == "format") {
      const auto& f = kv.value();
      if (!f.is_string() || !(f.as_string() == "binary" || f.as_string() == "text"))
        return absl::InvalidArgumentError("data.format: expected binary or text");
    } else if (kv.key() == "method") {
      const auto& f = kv.value();
      if (!f.is_string() || !(f.as_string() == "auto" || f.as_string() == "stream" || f.as_string() == "copy"))
        return absl::InvalidArgumentError("data.method: expected auto, stream or copy");
    } else if (kv.key() == "verify") {
      // Continuous verification (control/continuous_verify.h).
      const auto& f = kv.value();
      if (!f.is_object())
        return absl::InvalidArgumentError(
            "data.verify: expected {\"continuous\": true, \"interval_s\": n, \"rows_per_second\": n}");
      for (const auto& sub : f.as_object()) {
        if (sub.key() == "continuous") {
          if (!sub.value().is_bool()) return absl::InvalidArgumentError("data.verify.continuous: expected true or false");
        } else if (sub.key() == "interval_s") {
          if (auto st = whole(sub.value(), "verify.interval_s", 5, 86400); !st.ok()) return st;
        } else if (sub.key() == "rows_per_second") {
          // The throttle of continuous verification; absent: unthrottled.
          if (auto st = whole(sub.value(), "verify.rows_per_second", 1, 1000000000); !st.ok()) return st;
        } else {
          return absl::InvalidArgumentError(absl::StrCat(
              "data.verify.", ToStd(sub.key()), ": unknown field (allowed: continuous, interval_s, rows_per_second)"));
        }
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("data.", ToStd(kv.key()),
                                                     ": unknown field (allowed: type, replace, batch_size, sleep_ms, "
                                                     "passes, workers, format, method, verify)"));
    }
  }
  if (!v.as_object().contains("type")) return absl::InvalidArgumentError("data.type: required");
  return absl::OkStatus();
}

// `failure_handling`: "rollback_all" | "allow_partial" | {"type": "retry_then_all", "retry_count": n}
absl::Status ValidateFailureHandling(const json::value& v) {
  auto name_ok = [](json::string_view t) { return t == "rollback_all" || t == "allow_partial" || t == "retry_then_all"; };
  if (v.is_string()) {
    if (!name_ok(v.as_string()))
      return absl::InvalidArgumentError("failure_handling: expected rollback_all, retry_then_all or allow_partial");
    return absl::OkStatus();
  }
  if (!v.is_object()) return absl::InvalidArgumentError("failure_handling: expected a string or an object");
  for (const auto& kv : v.as_object()) {
    if (kv.key() == "type") {
      if (!kv.value().is_string() || !name_ok(kv.value().as_string()))
        return absl::InvalidArgumentError("failure_handling.type: expected rollback_all, retry_then_all or allow_partial");
    } else if (kv.key() == "retry_count") {
      if (!kv.value().is_int64() || kv.value().as_int64() < 0 || kv.value().as_int64() > 100)
        return absl::InvalidArgumentError("failure_handling.retry_count: expected a whole number from 0 to 100");
    } else {
      return absl::InvalidArgumentError(absl::StrCat("failure_handling.", ToStd(kv.key()),
                                                     ": unknown field (allowed: type, retry_count)"));
    }
  }
  if (!v.as_object().contains("type")) return absl::InvalidArgumentError("failure_handling.type: required");
  return absl::OkStatus();
}

// Only the listed keys may appear in a request body.
absl::Status CheckBody(const json::value& body, std::initializer_list<const char*> allowed) {
  if (!body.is_object()) return absl::InvalidArgumentError("body: expected a JSON object");
  for (const auto& kv : body.as_object()) {
    bool ok = false;
    for (const char* a : allowed) ok |= (kv.key() == a);
    if (!ok) {
      std::string list;
      for (const char* a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", a);
      return absl::InvalidArgumentError(absl::StrCat(ToStd(kv.key()), ": unknown field (allowed: ", list, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StringList(const json::value& v, const std::string& field) {
  if (!v.is_array()) return absl::InvalidArgumentError(field + ": expected an array of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.as_array().size(); ++i) {
    const auto& e = v.as_array()[i];
    if (!e.is_string() || e.as_string().empty())
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: expected a non-empty string"));
    if (auto st = CheckPattern(absl::StrCat(field, "[", i, "]"), ToStd(e.as_string())); !st.ok()) return st;
    out.push_back(ToStd(e.as_string()));
  }
  return out;
}

absl::StatusOr<CreateMigrationCommand> ParseCreateMigration(const json::value& body) {
  if (auto st = CheckBody(body, {"id", "description", "strategy", "data", "failure_handling"}); !st.ok()) return st;
  const auto& o = body.as_object();
  CreateMigrationCommand c;
  if (!o.contains("id") || !o.at("id").is_string())
    return absl::InvalidArgumentError("id: required, a string");
  c.id = ToStd(o.at("id").as_string());
  if (auto st = CheckName("id", c.id); !st.ok()) return st;
  if (auto* d = o.if_contains("description")) {
    if (!d->is_string()) return absl::InvalidArgumentError("description: expected a string");
    c.description = ToStd(d->as_string());
  }
  if (auto* s = o.if_contains("strategy")) c.strategy = *s;
  if (auto spec = StrategyFromJson(c.strategy); !spec.ok()) return spec.status();
  if (auto* d = o.if_contains("data")) c.data = *d;
  if (auto st = ValidateData(c.data); !st.ok()) return st;
  if (auto* f = o.if_contains("failure_handling")) c.failure_handling = *f;
  if (auto st = ValidateFailureHandling(c.failure_handling); !st.ok()) return st;
  return c;
}

absl::StatusOr<PatchMigrationCommand> ParsePatchMigration(const json::value& body) {
  if (auto st = CheckBody(body, {"strategy", "description", "data", "failure_handling"}); !st.ok()) return st;
  const auto& o = body.as_object();
  if (o.empty()) return absl::InvalidArgumentError("body: nothing to change (strategy, description, data, failure_handling)");
  PatchMigrationCommand c;
  if (auto* s = o.if_contains("strategy")) {
    if (auto spec = StrategyFromJson(*s); !spec.ok()) return spec.status();
    c.strategy = *s;
  }
  if (auto* d = o.if_contains("data")) {
    if (auto st = ValidateData(*d); !st.ok()) return st;
    c.data = *d;
  }
  if (auto* f = o.if_contains("failure_handling")) {
    if (auto st = ValidateFailureHandling(*f); !st.ok()) return st;
    c.failure_handling = *f;
  }
  if (auto* d = o.if_contains("description")) {
    if (!d->is_string()) return absl::InvalidArgumentError("description: expected a string");
    c.description = ToStd(d->as_string());
  }
  return c;
}

absl::StatusOr<AddInterlayCommand> ParseAddInterlay(const json::value& body) {
  if (auto st = CheckBody(body, {"endpoint"}); !st.ok()) return st;
  const auto* endpoint = body.as_object().if_contains("endpoint");
  if (endpoint == nullptr || !endpoint->is_string())
    return absl::InvalidArgumentError("endpoint: required, the name of the backend the route moves to");
  AddInterlayCommand c{ToStd(endpoint->as_string())};
  if (auto st = CheckName("endpoint", c.endpoint); !st.ok()) return st;
  return c;
}

absl::StatusOr<ApiScope> ParseScope(const std::string& scope, const json::value& body) {
  if (auto st = CheckBody(body, {"id", "tables", "keys"}); !st.ok()) return st;
  const auto& o = body.as_object();
  if (auto* bid = o.if_contains("id"); bid && (!bid->is_string() || bid->as_string() != scope))
    return absl::InvalidArgumentError(absl::StrCat("id: must equal the scope in the path (\"", scope, "\")"));
  ApiScope s{scope, {}, {}};
  if (auto* t = o.if_contains("tables")) {
    auto v = StringList(*t, "tables");
    if (!v.ok()) return v.status();
    s.tables = *std::move(v);
  }
  if (auto* k = o.if_contains("keys")) {
    auto v = StringList(*k, "keys");
    if (!v.ok()) return v.status();
    s.keys = *std::move(v);
  }
  if (s.tables.empty() == s.keys.empty())
    return absl::InvalidArgumentError("body: give either tables (Postgres) or keys (Redis globs)");
  return s;
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  for (char c : name)
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  return true;
}

absl::Status CheckName(absl::string_view field, absl::string_view name) {
  if (ValidName(name)) return absl::OkStatus();
  return WithDetails(absl::InvalidArgumentError(absl::StrCat(
                         field, ": 1 to 128 characters of letters, digits, '_', '-' or '.' (not \".\" or \"..\")")),
                     "names are checked before anything is stored; nothing was changed");
}

}  // namespace turnout::control
