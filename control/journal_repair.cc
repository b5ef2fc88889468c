#include "control/journal_repair.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "control/redis_client.h"
#include "control/backend_inspector.h"
#include "control/pg_table_repair.h"
#include "control/redis_verify.h"
#include "control/strategy_json.h"

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

// One table of a repair's result: `found_by` is "journal" (an entry named
// it) or "verify" (the verifier found it different).
json::value RepairedTableJson(const std::string& route, const PgTableRepair& t, const std::string& from,
                              const std::string& to, const char* found_by) {
  return json::object{{"route", route},
                      {"table", t.resolved},
                      {"from", from},
                      {"to", to},
                      {"found_by", found_by},
                      {"primary_key", t.has_primary_key},
                      {"method", t.method},
                      {"rows_differing", t.rows_differing},
                      {"source_rows", t.source_rows},
                      {"upserted", t.upserted},
                      {"deleted", t.deleted},
                      {"seconds", t.seconds},
                      {"equal", t.equal}};
}

// Keys a repair copies per Redis route from what the verifier found; the
// rest (a whole keyspace lost) is a data-movement pass's work.
constexpr std::size_t kMaxKeysFoundByVerify = 100000;

// RepairProgress as the repair moves: one place keeps the figures, the
// steps below only say what happened.
class Tracker {
 public:
  explicit Tracker(const RepairProgressFn& fn) : fn_(fn) {}
  void Phase(const char* phase) {
    p_.phase = phase;
    p_.compared = 0;
    Tell();
  }
  void AddTotal(std::size_t n) { p_.tables_total += static_cast<int>(n); }
  void KeysStart(const std::string& route) {
    p_.route = route;
    p_.table = "keys";
    p_.table_rows = 0;
    Tell();
  }
  void KeyCopied() {
    ++p_.table_rows;
    p_.rows = ++committed_;
    p_.committed = 1;
    Tell();
    p_.committed = 0;
  }
  void KeysDone() {
    ++p_.tables_done;
    Tell();
  }
  // RepairPostgresTables' progress on `route`: a table's rows count for
  // good once it committed.
  PgTableRepairProgress Tables(const std::string& route) {
    if (!fn_) return {};
    return [this, route](const PgTableRepairStep& s) {
      p_.route = route;
      p_.table = s.table;
      p_.table_rows = s.rows;
      if (s.done) {
        committed_ += s.rows;
        ++p_.tables_done;
        p_.committed = s.rows;
      }
      p_.rows = committed_ + (s.done ? 0 : s.rows);
      Tell();
      p_.committed = 0;
    };
  }
  // A verification pass over the Postgres routes that says where it is
  // (the Redis routes' keys are compared by the repair's own Redis step).
  VerifyOptions PostgresPass() {
    VerifyOptions o;
    o.only = routing::Protocol::kPostgres;
    if (fn_)
      o.progress = [this](const VerifyProgress& v) {
        p_.route = v.route;
        p_.table = v.table;
        p_.table_rows = 0;
        p_.compared = v.rows;
        Tell();
        return absl::OkStatus();
      };
    return o;
  }

 private:
  void Tell() {
    if (fn_) fn_(p_);
  }
  const RepairProgressFn& fn_;
  RepairProgress p_;
  std::int64_t committed_ = 0;
};

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
                                   {"database", e.database},
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
                                              routing::Journal& journal, const RepairProgressFn& progress) {
  Tracker track(progress);
  const auto entries = journal.Pending(m.id);
  std::vector<std::uint64_t> repaired;
  json::array copied, failed, tables_to_verify, tables_repaired;
  // Redis: group keys by (route, missing backend).
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::vector<std::uint64_t>>> redis_keys;
  // Postgres: the tables of each (route, missing backend, database), and the
  // entries naming them (an entry clears once every table it names is equal).
  using PgWhere = std::tuple<std::string, std::string, std::string>;
  std::map<PgWhere, std::set<std::string>> pg_tables;
  std::vector<const routing::JournalEntry*> pg_entries;
  std::set<std::string> pg_routes;
  for (const auto& e : entries) {
    const routing::Route* r = config.FindRoute(e.route);
    if (r == nullptr) continue;
    if (r->protocol == routing::Protocol::kRedis) {
      for (const auto& k : e.targets) redis_keys[{e.route, e.backend}][k].push_back(e.seq);
      if (e.targets.empty()) failed.emplace_back(absl::StrCat("entry ", e.seq, ": no keys recorded"));
    } else {
      pg_routes.insert(e.route);
      if (e.targets.empty()) {
        failed.emplace_back(absl::StrCat("entry ", e.seq, " (route ", e.route,
                                         "): no tables recorded; a full data-movement pass is needed"));
        continue;
      }
      pg_entries.push_back(&e);
      pg_tables[{e.route, e.backend, e.database}].insert(e.targets.begin(), e.targets.end());
    }
  }
  // The route's new side: the migration's endpoint for it, else the config's.
  auto new_side = [&](const std::string& route_name) {
    for (const auto& i : m.interlays)
      if (i.route == route_name) return i.endpoint;
    return config.FindRoute(route_name)->new_backend;
  };
  // The backend that applied the writes missed by `missing` on `route_name`.
  auto source_of = [&](const std::string& route_name, const std::string& missing) {
    const routing::Route* r = config.FindRoute(route_name);
    return missing == r->old_backend ? new_side(route_name) : r->old_backend;
  };
  track.AddTotal(redis_keys.size());
  for (const auto& [where, tables] : pg_tables) track.AddTotal(tables.size());
  track.Phase("journal");
  for (const auto& [where, keys] : redis_keys) {
    const auto& [route_name, missing] = where;
    track.KeysStart(route_name);
    const std::string source = source_of(route_name, missing);
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
        track.KeyCopied();
      } else {
        failed.emplace_back(absl::StrCat("key ", key, ": ", st.message()));
      }
    }
    track.KeysDone();
  }
  // Postgres: each named table resynchronised on the side that missed the
  // writes, in the database the sessions wrote in. Keyed by (route, missing
  // backend, database, journal name): equal after it.
  std::map<std::tuple<std::string, std::string, std::string, std::string>, PgTableRepair> pg_results;
  for (const auto& [where, tables] : pg_tables) {
    const auto& [route_name, missing, database] = where;
    const std::string source = source_of(route_name, missing);
    const routing::Backend* from_b = config.FindBackend(source);
    const routing::Backend* to_b = config.FindBackend(missing);
    const routing::Route* r = config.FindRoute(route_name);
    if (!from_b || !to_b || (missing != r->old_backend && missing != new_side(route_name))) {
      failed.emplace_back(absl::StrCat("route ", route_name, ": backend ", missing,
                                       " is not a side of the migration; tables not repaired"));
      continue;
    }
    routing::Backend from = *from_b, to = *to_b;
    if (!database.empty()) from.database = to.database = database;
    auto results = RepairPostgresTables(from, to, std::vector<std::string>(tables.begin(), tables.end()),
                                        track.Tables(route_name));
    if (!results.ok()) {
      failed.emplace_back(absl::StrCat("route ", route_name, ": ", results.status().message()));
      continue;
    }
    std::set<std::string> listed;
    for (auto& t : *results) {
      if (t.ok && listed.insert(t.resolved).second)
        tables_repaired.push_back(RepairedTableJson(route_name, t, source, missing, "journal"));
      if (!t.error.empty()) failed.emplace_back(absl::StrCat("table ", t.table, " on ", missing, ": ", t.error));
      else if (t.ok && !t.equal)
        failed.emplace_back(absl::StrCat("table ", t.table, " on ", missing, ": still differs after the repair"));
      pg_results.emplace(std::make_tuple(route_name, missing, database, t.table), std::move(t));
    }
  }
  // The side that holds the migration's writes now: what the verifier finds
  // is copied from there.
  const auto strategy = StrategyFromJson(m.strategy);
  const bool new_holds_writes = strategy.ok() && WritesToNew(*strategy);
  // Tables that differ with no entry naming them (a write the journal never
  // heard of: a sidecar killed between the two sides, a write made on one
  // side directly): the verifier finds them, and each is repaired by rows
  // from the side that holds the migration's writes.
  std::set<std::pair<std::string, std::string>> repaired_here;  // (route, schema.table)
  for (const auto& [where, result] : pg_results)
    if (result.ok) repaired_here.emplace(std::get<0>(where), result.resolved);
  std::vector<std::string> pg_interlays;
  for (const auto& i : m.interlays) {
    const routing::Route* r = config.FindRoute(i.route);
    if (r != nullptr && r->protocol == routing::Protocol::kPostgres) pg_interlays.push_back(i.route);
  }
  if (!pg_interlays.empty()) {
    track.Phase("verifying");
    auto found = Verify(config, m, track.PostgresPass());
    if (!found.ok()) {
      failed.emplace_back(absl::StrCat("verify before the repair: ", found.status().message()));
    } else {
      // What to repair, listed first so tables_total counts it.
      struct Found {
        std::string route, table, source, target;
      };
      std::vector<Found> work;
      for (const auto& route : found->at("routes").as_array()) {
        const std::string name(route.at("route").as_string());
        const routing::Route* r = config.FindRoute(name);
        const auto* tables = route.as_object().if_contains("tables");
        if (r == nullptr || r->protocol != routing::Protocol::kPostgres || tables == nullptr) continue;
        const std::string old_name = r->old_backend, new_name = new_side(name);
        const std::string source = new_holds_writes ? new_name : old_name;
        const std::string target = new_holds_writes ? old_name : new_name;
        if (config.FindBackend(source) == nullptr || config.FindBackend(target) == nullptr) continue;
        for (const auto& t : tables->as_array()) {
          const auto* eq = t.as_object().if_contains("equal");
          const std::string table(t.at("table").as_string());
          if ((eq != nullptr && eq->is_bool() && eq->as_bool()) || repaired_here.contains({name, table})) continue;
          work.push_back({name, table, source, target});
        }
      }
      track.AddTotal(work.size());
      track.Phase("found");
      for (const auto& w : work) {
        pg_routes.insert(w.route);  // the verifier's verdict below covers it
        auto results = RepairPostgresTables(*config.FindBackend(w.source), *config.FindBackend(w.target), {w.table},
                                            track.Tables(w.route));
        if (!results.ok()) {
          failed.emplace_back(absl::StrCat("route ", w.route, ": ", results.status().message()));
          continue;
        }
        for (const auto& rt : *results) {
          if (rt.ok) tables_repaired.push_back(RepairedTableJson(w.route, rt, w.source, w.target, "verify"));
          if (!rt.error.empty()) failed.emplace_back(absl::StrCat("table ", rt.table, " on ", w.target, ": ", rt.error));
        }
      }
    }
  }

  // Redis keys that differ with no entry naming them: the verifier compares
  // the migration's keys on both sides (again after a moment, so a write in
  // flight is not taken for a difference), and each key that still differs
  // is copied from the side that holds the migration's writes. Then the
  // route is compared once more for the verdict.
  bool redis_equal = true;
  json::array keys_found;
  for (const auto& i : m.interlays) {
    const routing::Route* r = config.FindRoute(i.route);
    if (r == nullptr || r->protocol != routing::Protocol::kRedis) continue;
    const routing::Backend* old_b = config.FindBackend(r->old_backend);
    const routing::Backend* new_b = config.FindBackend(i.endpoint);
    if (old_b == nullptr || new_b == nullptr) continue;
    auto oc = RedisConnect(*old_b);
    if (!oc.ok()) {
      redis_equal = false;
      failed.emplace_back(absl::StrCat("route ", r->name, ": old: ", oc.status().message()));
      continue;
    }
    auto nc = RedisConnect(*new_b);
    if (!nc.ok()) {
      redis_equal = false;
      failed.emplace_back(absl::StrCat("route ", r->name, ": new: ", nc.status().message()));
      continue;
    }
    const std::vector<std::string> globs = RedisKeyGlobs(m);
    RedisVerifyOptions options;
    options.max_reported = kMaxKeysFoundByVerify;
    track.Phase("verifying");
    auto found = VerifyRedisKeys(oc->get(), nc->get(), globs, options);
    if (!found.ok()) {
      redis_equal = false;
      failed.emplace_back(absl::StrCat("route ", r->name, ": verify before the repair: ", found.status().message()));
      continue;
    }
    redisContext* from = new_holds_writes ? nc->get() : oc->get();
    redisContext* to = new_holds_writes ? oc->get() : nc->get();
    track.AddTotal(1);
    track.Phase("found");
    track.KeysStart(r->name);
    for (const auto& d : found->differences) {
      if (auto st = CopyKey(from, to, d.key); st.ok()) {
        const std::string& source = new_holds_writes ? i.endpoint : r->old_backend;
        const std::string& target = new_holds_writes ? r->old_backend : i.endpoint;
        keys_found.push_back(json::object{{"route", r->name},
                                          {"key", d.key},
                                          {"reason", RedisDifferenceReasonName(d.reason)},
                                          {"from", source},
                                          {"to", target}});
        track.KeyCopied();
      } else {
        failed.emplace_back(absl::StrCat("key ", d.key, ": ", st.message()));
      }
    }
    track.KeysDone();
    track.Phase("checking");
    auto after = VerifyRedisKeys(oc->get(), nc->get(), globs);
    if (!after.ok() || after->keys_differing != 0) {
      redis_equal = false;
      failed.emplace_back(absl::StrCat("route ", r->name, ": ",
                                       after.ok() ? absl::StrCat(after->keys_differing, " keys still differ")
                                                  : std::string(after.status().message())));
    }
  }

  // Then the verifier, as before the repair existed: its verdict on a table
  // it covers (the migration's scope) must agree too.
  bool pg_equal = true;
  std::set<std::pair<std::string, std::string>> verified_unequal;  // (route, schema.table)
  if (!pg_routes.empty()) {
    track.Phase("checking");
    auto report = Verify(config, m, track.PostgresPass());
    if (!report.ok()) {
      pg_equal = false;
      failed.emplace_back(absl::StrCat("verify: ", report.status().message()));
    } else {
      for (const auto& route : report->at("routes").as_array()) {
        const std::string name(route.at("route").as_string());
        if (!pg_routes.contains(name)) continue;
        if (!route.at("equal").as_bool()) {
          pg_equal = false;
          for (const auto& d : route.at("differences").as_array()) tables_to_verify.push_back(d);
        }
        if (const auto* tables = route.as_object().if_contains("tables"))
          for (const auto& t : tables->as_array()) {
            const auto* eq = t.as_object().if_contains("equal");
            if (eq == nullptr || !eq->is_bool() || !eq->as_bool())
              verified_unequal.emplace(name, std::string(t.at("table").as_string()));
          }
      }
    }
  }
  for (const auto* e : pg_entries) {
    const bool all_equal = std::all_of(e->targets.begin(), e->targets.end(), [&](const std::string& table) {
      auto it = pg_results.find({e->route, e->backend, e->database, table});
      // The verifier looked at the backend's own database only.
      const routing::Backend* b = config.FindBackend(e->backend);
      const bool verified_here = e->database.empty() || (b != nullptr && b->database == e->database);
      return it != pg_results.end() && it->second.ok && it->second.equal &&
             !(verified_here && verified_unequal.contains({e->route, it->second.resolved}));
    });
    if (all_equal) repaired.push_back(e->seq);
  }
  journal.MarkRepaired(repaired);
  if (auto st = journal.Flush(); !st.ok()) return st;
  return json::value(json::object{{"migration", m.id},
                                  {"repaired_entries", repaired.size()},
                                  {"keys_copied", std::move(copied)},
                                  {"keys_found_by_verify", std::move(keys_found)},
                                  {"redis_equal", redis_equal},
                                  {"tables_repaired", std::move(tables_repaired)},
                                  {"failures", std::move(failed)},
                                  {"postgres_equal", pg_equal},
                                  {"postgres_differences", std::move(tables_to_verify)},
                                  {"pending", journal.PendingCount(m.id)}});
}

}  // namespace turnout::control
