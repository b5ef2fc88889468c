#include "control/journal_repair.h"

#include <boost/json.hpp>

#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "control/backend_clients.h"
#include "control/backend_inspector.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

// Copies one key from `from` to `to` as it is now (or deletes it on `to`
// when it no longer exists on `from`).
absl::Status CopyKey(redisContext* from, redisContext* to, const std::string& key) {
  RedisReply dump = RedisCommand(from, {"DUMP", key});
  if (!dump) return absl::UnavailableError("DUMP failed");
  if (dump->type == REDIS_REPLY_NIL) {
    RedisCommand(to, {"DEL", key});
    return absl::OkStatus();
  }
  RedisReply ttl = RedisCommand(from, {"PTTL", key});
  const long long pttl = ttl && ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0 ? ttl->integer : 0;
  RedisReply restored = RedisCommand(to, {"RESTORE", key, std::to_string(pttl), std::string(dump->str, dump->len), "REPLACE"});
  if (!restored || restored->type == REDIS_REPLY_ERROR)
    return absl::InternalError(absl::StrCat("RESTORE ", key, ": ", restored ? restored->str : "no reply"));
  return absl::OkStatus();
}

}  // namespace

json::value JournalToJson(const routing::Journal& journal, const Migration& m, std::size_t limit) {
  json::array entries;
  for (const auto& e : journal.Pending(m.id, limit)) {
    json::array params, targets;
    for (const auto& p : e.params) params.emplace_back(p);
    for (const auto& t : e.targets) targets.emplace_back(t);
    entries.push_back(json::object{{"seq", e.seq},
                                   {"at", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", e.at, absl::UTCTimeZone())},
                                   {"route", e.route},
                                   {"backend", e.backend},
                                   {"session", e.session},
                                   {"kind", routing::JournalKindName(e.kind)},
                                   {"statement", e.statement},
                                   {"params", std::move(params)},
                                   {"targets", std::move(targets)},
                                   {"primary", e.primary_outcome},
                                   {"secondary", e.secondary_outcome}});
  }
  return json::object{{"migration", m.id},
                      {"pending", journal.PendingCount(m.id)},
                      {"full", journal.full()},
                      {"entries", std::move(entries)}};
}

json::value ShadowSamplesToJson(const routing::ShadowSamples& samples, const Migration& m) {
  json::array out;
  for (const auto& i : m.interlays)
    for (const auto& s : samples.Recent(i.route))
      out.push_back(json::object{{"at", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", s.at, absl::UTCTimeZone())},
                                 {"route", s.route},
                                 {"kind", s.kind},
                                 {"request", s.request},
                                 {"primary", s.primary},
                                 {"secondary", s.secondary},
                                 {"primary_latency_us", s.primary_latency_us},
                                 {"secondary_latency_us", s.secondary_latency_us}});
  return json::object{{"migration", m.id}, {"mismatches", std::move(out)}};
}

absl::StatusOr<json::value> RepairFromJournal(const routing::Config& config, const Migration& m,
                                              routing::Journal& journal) {
  const auto entries = journal.Pending(m.id);
  std::vector<std::uint64_t> repaired;
  json::array copied, failed, tables_to_verify;
  // Redis: group keys by (route, missing backend).
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::vector<std::uint64_t>>> redis_keys;
  std::map<std::string, std::vector<std::uint64_t>> pg_entries_by_route;
  for (const auto& e : entries) {
    const routing::Route* r = config.FindRoute(e.route);
    if (r == nullptr) continue;
    if (r->protocol == routing::Protocol::kRedis) {
      for (const auto& k : e.targets) redis_keys[{e.route, e.backend}][k].push_back(e.seq);
      if (e.targets.empty()) failed.emplace_back(absl::StrCat("entry ", e.seq, ": no keys recorded"));
    } else {
      pg_entries_by_route[e.route].push_back(e.seq);
    }
  }
  for (const auto& [where, keys] : redis_keys) {
    const auto& [route_name, missing] = where;
    const routing::Route* r = config.FindRoute(route_name);
    std::string endpoint;
    for (const auto& i : m.interlays)
      if (i.route == route_name) endpoint = i.endpoint;
    // The side that applied the write is the one that is not `missing`.
    const std::string source = missing == r->old_backend ? endpoint : r->old_backend;
    const routing::Backend* from_b = config.FindBackend(source);
    const routing::Backend* to_b = config.FindBackend(missing);
    if (!from_b || !to_b) return absl::FailedPreconditionError(absl::StrCat("route ", route_name, ": backends not configured"));
    auto from = RedisConnect(*from_b);
    if (!from.ok()) return from.status();
    auto to = RedisConnect(*to_b);
    if (!to.ok()) return to.status();
    for (const auto& [key, seqs] : keys) {
      if (auto st = CopyKey(from->get(), to->get(), key); st.ok()) {
        copied.emplace_back(key);
        repaired.insert(repaired.end(), seqs.begin(), seqs.end());
      } else {
        failed.emplace_back(absl::StrCat("key ", key, ": ", st.message()));
      }
    }
  }
  // Postgres: verify the migration's tables; entries clear when both agree.
  bool pg_equal = true;
  if (!pg_entries_by_route.empty()) {
    auto report = Verify(config, m);
    if (!report.ok()) return report.status();
    for (const auto& route : report->at("routes").as_array()) {
      const std::string name(route.at("route").as_string());
      auto it = pg_entries_by_route.find(name);
      if (it == pg_entries_by_route.end()) continue;
      if (route.at("equal").as_bool()) {
        repaired.insert(repaired.end(), it->second.begin(), it->second.end());
      } else {
        pg_equal = false;
        for (const auto& d : route.at("differences").as_array()) tables_to_verify.push_back(d);
      }
    }
  }
  journal.MarkRepaired(repaired);
  if (auto st = journal.Flush(); !st.ok()) return st;
  return json::value(json::object{{"migration", m.id},
                                  {"repaired_entries", repaired.size()},
                                  {"keys_copied", std::move(copied)},
                                  {"failures", std::move(failed)},
                                  {"postgres_equal", pg_equal},
                                  {"postgres_differences", std::move(tables_to_verify)},
                                  {"pending", journal.PendingCount(m.id)}});
}

}  // namespace turnout::control
