#include "control/migration.h"

#include <algorithm>

#include <boost/json.hpp>
#include <openssl/sha.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace turnout::control {
namespace json = boost::json;

namespace {
constexpr const char* kStateNames[] = {"Pending", "Ready",  "Running",     "Paused",
                                       "Completed", "Failed", "RollingBack", "RolledBack"};

json::array StringsToJson(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

absl::StatusOr<std::vector<std::string>> StringsFromJson(const json::value* v, const char* field) {
  std::vector<std::string> out;
  if (v == nullptr) return out;
  if (!v->is_array()) return absl::InvalidArgumentError(absl::StrCat(field, ": expected an array"));
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) return absl::InvalidArgumentError(absl::StrCat(field, ": expected strings"));
    out.emplace_back(e.as_string());
  }
  return out;
}

// What an audit body too large to keep is recorded as.
json::object TruncatedBody(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return json::object{{"truncated", true},
                      {"bytes", static_cast<std::uint64_t>(text.size())},
                      {"sha256", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest), sizeof digest))}};
}

// Keeps the newest kMaxAuditEntries entries, counting the rest.
void TrimHistory(Migration& m) {
  if (m.history.size() <= kMaxAuditEntries) return;
  const std::size_t drop = m.history.size() - kMaxAuditEntries;
  m.history.erase(m.history.begin(), m.history.begin() + static_cast<std::ptrdiff_t>(drop));
  m.history_dropped += drop;
}

std::string StringOr(const json::object& o, const char* key, std::string fallback = "") {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return fallback;
  return std::string(it->value().as_string());
}

double NumberOr0(const json::object& o, const char* key) {
  auto* f = o.if_contains(key);
  return f && f->is_number() ? f->to_number<double>() : 0.0;
}

// One shape for both directions of a route's stream (`stream`, `stream_back`).
json::object StreamToJson(const StreamProgress& s) {
  json::object o{{"slot", s.slot},
                 {"phase", s.phase},
                 {"applied_lsn", s.applied_lsn},
                 {"lag_bytes", s.lag_bytes},
                 {"lag_seconds", s.lag_seconds},
                 {"retained_wal_bytes", s.retained_wal_bytes},
                 {"transactions", s.transactions},
                 {"rows", s.rows}};
  if (!s.error.empty()) o["error"] = s.error;
  if (!s.updated_at.empty()) o["updated_at"] = s.updated_at;
  return o;
}

StreamProgress StreamFromJson(const json::object& o) {
  StreamProgress s;
  s.slot = StringOr(o, "slot");
  s.phase = StringOr(o, "phase");
  s.applied_lsn = StringOr(o, "applied_lsn");
  s.lag_bytes = static_cast<std::int64_t>(NumberOr0(o, "lag_bytes"));
  s.lag_seconds = NumberOr0(o, "lag_seconds");
  s.retained_wal_bytes = static_cast<std::int64_t>(NumberOr0(o, "retained_wal_bytes"));
  s.transactions = static_cast<std::int64_t>(NumberOr0(o, "transactions"));
  s.rows = static_cast<std::int64_t>(NumberOr0(o, "rows"));
  s.error = StringOr(o, "error");
  s.updated_at = StringOr(o, "updated_at");
  return s;
}
}  // namespace

void AddNote(RouteProgress& p, const std::string& note) {
  if (std::find(p.notes.begin(), p.notes.end(), note) == p.notes.end()) p.notes.push_back(note);
}

double DataProgress::Ratio() const {
  if (routes.empty()) return status == "done" ? 1.0 : 0.0;
  double sum = 0;
  for (const auto& r : routes) sum += r.ratio;
  return sum / static_cast<double>(routes.size());
}

json::object DataProgressToJson(const DataProgress& p) {
  json::array routes;
  for (const auto& r : p.routes) {
    json::object o{{"route", r.route},     {"phase", r.phase}, {"copied", r.copied},
                   {"written", r.written}, {"total", r.total}, {"ratio", r.ratio},
                   {"rate", r.rate},       {"attempts", r.attempts}};
    if (!r.checkpoint.is_null()) o["checkpoint"] = r.checkpoint;
    if (!r.notes.empty()) o["notes"] = StringsToJson(r.notes);
    if (!r.error.empty()) o["error"] = r.error;
    if (!r.updated_at.empty()) o["updated_at"] = r.updated_at;
    if (!r.stream.slot.empty() || !r.stream.phase.empty()) o["stream"] = StreamToJson(r.stream);
    if (!r.stream_back.slot.empty() || !r.stream_back.phase.empty()) o["stream_back"] = StreamToJson(r.stream_back);
    routes.push_back(std::move(o));
  }
  json::object o{{"status", p.status}, {"runner", p.runner}, {"ratio", p.Ratio()}, {"routes", std::move(routes)}};
  if (!p.started_at.empty()) o["started_at"] = p.started_at;
  if (!p.finished_at.empty()) o["finished_at"] = p.finished_at;
  if (!p.verification.is_null()) o["verification"] = p.verification;
  if (!p.continuous_verification.is_null()) {
    o["continuous_verification"] = p.continuous_verification;
    o["verify_runs"] = p.verify_runs;
    o["verify_rows"] = p.verify_rows;
  }
  return o;
}

DataProgress DataProgressFromJson(const json::value& v) {
  DataProgress p;
  if (!v.is_object()) return p;
  const auto& o = v.as_object();
  auto num = [](const json::object& obj, const char* key) -> double {
    auto* f = obj.if_contains(key);
    return f && f->is_number() ? f->to_number<double>() : 0.0;
  };
  p.status = StringOr(o, "status");
  p.runner = StringOr(o, "runner");
  p.started_at = StringOr(o, "started_at");
  p.finished_at = StringOr(o, "finished_at");
  if (auto* f = o.if_contains("verification")) p.verification = *f;
  if (auto* f = o.if_contains("continuous_verification")) p.continuous_verification = *f;
  p.verify_runs = static_cast<std::int64_t>(num(o, "verify_runs"));
  p.verify_rows = static_cast<std::int64_t>(num(o, "verify_rows"));
  if (auto* routes = o.if_contains("routes"); routes && routes->is_array()) {
    for (const auto& e : routes->as_array()) {
      if (!e.is_object()) continue;
      const auto& ro = e.as_object();
      RouteProgress r;
      r.route = StringOr(ro, "route");
      r.phase = StringOr(ro, "phase", "pending");
      r.copied = static_cast<std::int64_t>(num(ro, "copied"));
      r.written = static_cast<std::int64_t>(num(ro, "written"));
      r.total = static_cast<std::int64_t>(num(ro, "total"));
      r.ratio = num(ro, "ratio");
      r.rate = num(ro, "rate");
      r.attempts = static_cast<int>(num(ro, "attempts"));
      if (auto* c = ro.if_contains("checkpoint")) r.checkpoint = *c;
      if (auto notes = StringsFromJson(ro.if_contains("notes"), "notes"); notes.ok()) r.notes = *std::move(notes);
      r.error = StringOr(ro, "error");
      r.updated_at = StringOr(ro, "updated_at");
      if (auto* st = ro.if_contains("stream"); st && st->is_object()) r.stream = StreamFromJson(st->as_object());
      if (auto* st = ro.if_contains("stream_back"); st && st->is_object()) r.stream_back = StreamFromJson(st->as_object());
      p.routes.push_back(std::move(r));
    }
  }
  return p;
}

json::value BoundAuditBody(json::value body) {
  std::string text = json::serialize(body);
  if (text.size() <= kMaxAuditBodyBytes) return body;
  if (body.is_object()) {
    // Summarise the largest members until the rest fits: a 900 kB
    // description leaves the state and strategy of the entry readable.
    auto& o = body.as_object();
    std::vector<std::pair<std::size_t, std::string>> sizes;
    for (const auto& kv : o) sizes.emplace_back(json::serialize(kv.value()).size(), std::string(kv.key()));
    std::sort(sizes.rbegin(), sizes.rend());
    std::size_t total = text.size();
    for (const auto& [size, key] : sizes) {
      if (total <= kMaxAuditBodyBytes) break;
      json::object summary = TruncatedBody(json::serialize(o.at(key)));
      total = total - size + json::serialize(summary).size();
      o[key] = std::move(summary);
    }
    if (total <= kMaxAuditBodyBytes) return body;
  }
  return TruncatedBody(text);
}

void AppendAudit(Migration& m, AuditEntry e) {
  e.before = BoundAuditBody(std::move(e.before));
  e.after = BoundAuditBody(std::move(e.after));
  m.history.push_back(std::move(e));
  TrimHistory(m);
}

const char* MigrationStateName(MigrationState s) { return kStateNames[static_cast<int>(s)]; }

absl::StatusOr<MigrationState> ParseMigrationState(absl::string_view text) {
  for (int i = 0; i < 8; ++i)
    if (text == kStateNames[i]) return static_cast<MigrationState>(i);
  return absl::InvalidArgumentError(absl::StrCat("unknown migration state \"", text, "\""));
}

std::string CutoverPhase(const Migration& m) {
  if (!m.cutover.is_object()) return "";
  const auto* phase = m.cutover.as_object().if_contains("phase");
  return phase != nullptr && phase->is_string() ? std::string(phase->as_string()) : "";
}

std::int64_t CutoverEpoch(const Migration& m) {
  if (!m.cutover.is_object()) return 0;
  const auto* epoch = m.cutover.as_object().if_contains("epoch");
  return epoch != nullptr && epoch->is_int64() ? epoch->as_int64() : 0;
}

namespace {
bool CutoverFlag(const Migration& m, const char* field, const char* value) {
  if (!m.cutover.is_object()) return false;
  const auto* v = m.cutover.as_object().if_contains(field);
  if (v == nullptr) return false;
  if (value == nullptr) return v->is_bool() && v->as_bool();
  return v->is_string() && v->as_string() == value;
}
}  // namespace

bool CutoverBack(const Migration& m) { return CutoverFlag(m, "direction", "back"); }

bool CutoverPending(const Migration& m) {
  const std::string phase = CutoverPhase(m);
  return phase == "waiting_for_data" || phase == "catching_up" || phase == "holding";
}

bool StreamBackWanted(const Migration& m) {
  if (m.state != MigrationState::kRunning && m.state != MigrationState::kPaused) return false;
  if (!CutoverFlag(m, "stream_back", nullptr)) return false;
  return !(CutoverBack(m) && CutoverPhase(m) == "done");
}

json::object MigrationToJson(const Migration& m, bool verbose) {
  json::object o;
  o["id"] = m.id;
  o["uuid"] = m.uuid;
  o["description"] = m.description;
  o["state"] = MigrationStateName(m.state);
  o["strategy"] = m.strategy;
  o["data"] = m.data;
  o["failure_handling"] = m.failure_handling;
  json::array routes;
  for (const auto& i : m.interlays) routes.emplace_back(i.route);
  o["interlays"] = std::move(routes);
  json::array apis;
  for (const auto& a : m.apis) apis.emplace_back(a.name);
  o["apis"] = std::move(apis);
  o["revision"] = m.revision;
  if (!m.last_error.empty()) o["error"] = m.last_error;
  if (!m.cutover.is_null()) o["cutover"] = m.cutover;
  // Bounded (a summary, never the full result): shown without X-Verbose.
  if (!m.repair.is_null()) o["repair"] = m.repair;
  o["created_at"] = m.created_at;
  o["updated_at"] = m.updated_at;
  if (verbose) {
    if (m.progress.shown()) o["progress"] = DataProgressToJson(m.progress);
    json::array interlays;
    for (const auto& i : m.interlays) interlays.push_back(json::object{{"route", i.route}, {"endpoint", i.endpoint}});
    o["routes"] = std::move(interlays);
    json::array scopes;
    for (const auto& a : m.apis) {
      json::object s{{"id", a.name}};
      if (!a.tables.empty()) s["tables"] = StringsToJson(a.tables);
      if (!a.keys.empty()) s["keys"] = StringsToJson(a.keys);
      scopes.push_back(std::move(s));
    }
    o["scopes"] = std::move(scopes);
    o["synced"] = m.synced;
    json::array history;
    for (const auto& h : m.history)
      history.push_back(json::object{{"at", h.at}, {"actor", h.actor}, {"action", h.action},
                                     {"before", h.before}, {"after", h.after}});
    o["history"] = std::move(history);
    if (m.history_dropped != 0) o["history_dropped"] = m.history_dropped;
  }
  return o;
}

json::object MigrationToStored(const Migration& m) {
  json::object o = MigrationToJson(m, /*verbose=*/true);
  o.erase("interlays");
  o.erase("apis");
  if (m.policy_revision != 0) o["policy_revision"] = m.policy_revision;
  return o;
}

absl::StatusOr<Migration> MigrationFromStored(const json::value& v) {
  if (!v.is_object()) return absl::InvalidArgumentError("migration: expected an object");
  const auto& o = v.as_object();
  Migration m;
  m.id = StringOr(o, "id");
  if (m.id.empty()) return absl::InvalidArgumentError("migration: missing id");
  m.uuid = StringOr(o, "uuid");
  m.description = StringOr(o, "description");
  auto state = ParseMigrationState(StringOr(o, "state"));
  if (!state.ok()) return absl::InvalidArgumentError(absl::StrCat("migration ", m.id, ": ", state.status().message()));
  m.state = *state;
  if (auto* s = o.if_contains("strategy")) m.strategy = *s;
  if (auto* d = o.if_contains("data")) m.data = *d;
  if (auto* f = o.if_contains("failure_handling")) m.failure_handling = *f;
  if (auto* s = o.if_contains("synced"); s && s->is_bool()) m.synced = s->as_bool();
  if (auto* r = o.if_contains("revision"); r && r->is_number()) m.revision = r->to_number<std::uint64_t>();
  if (auto* r = o.if_contains("policy_revision"); r && r->is_number())
    m.policy_revision = r->to_number<std::uint64_t>();
  m.last_error = StringOr(o, "error");
  if (auto* c = o.if_contains("cutover"); c && c->is_object()) m.cutover = *c;
  if (auto* r = o.if_contains("repair"); r && r->is_object()) m.repair = *r;
  if (auto* p = o.if_contains("progress")) m.progress = DataProgressFromJson(*p);
  m.created_at = StringOr(o, "created_at");
  m.updated_at = StringOr(o, "updated_at");
  if (auto* routes = o.if_contains("routes"); routes && routes->is_array()) {
    for (const auto& r : routes->as_array()) {
      if (!r.is_object()) return absl::InvalidArgumentError(absl::StrCat("migration ", m.id, ": bad route"));
      m.interlays.push_back({StringOr(r.as_object(), "route"), StringOr(r.as_object(), "endpoint")});
    }
  }
  if (auto* scopes = o.if_contains("scopes"); scopes && scopes->is_array()) {
    for (const auto& s : scopes->as_array()) {
      if (!s.is_object()) return absl::InvalidArgumentError(absl::StrCat("migration ", m.id, ": bad scope"));
      ApiScope a;
      a.name = StringOr(s.as_object(), "id");
      auto tables = StringsFromJson(s.as_object().if_contains("tables"), "tables");
      auto keys = StringsFromJson(s.as_object().if_contains("keys"), "keys");
      if (!tables.ok()) return tables.status();
      if (!keys.ok()) return keys.status();
      a.tables = *std::move(tables);
      a.keys = *std::move(keys);
      m.apis.push_back(std::move(a));
    }
  }
  if (auto* history = o.if_contains("history"); history && history->is_array()) {
    for (const auto& h : history->as_array()) {
      if (!h.is_object()) continue;
      const auto& ho = h.as_object();
      AuditEntry e{StringOr(ho, "at"), StringOr(ho, "actor"), StringOr(ho, "action"), nullptr, nullptr};
      if (auto* b = ho.if_contains("before")) e.before = *b;
      if (auto* a = ho.if_contains("after")) e.after = *a;
      m.history.push_back(std::move(e));
    }
  }
  if (auto* d = o.if_contains("history_dropped"); d && d->is_number())
    m.history_dropped = d->to_number<std::uint64_t>();
  // A record written before the history was bounded is bounded as it loads,
  // so its next save is small again.
  for (auto& e : m.history) {
    e.before = BoundAuditBody(std::move(e.before));
    e.after = BoundAuditBody(std::move(e.after));
  }
  TrimHistory(m);
  return m;
}

std::string NowRfc3339() { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()); }

}  // namespace turnout::control
