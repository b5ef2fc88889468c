#include "control/backend_inspector.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "control/pg_change_stream.h"
#include "control/pg_client.h"
#include "control/pg_verify.h"
#include "control/redis_client.h"
#include "control/redis_verify.h"
#include "control/verify_pace.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

// table -> column -> "type [not null]"; plus "primary key" -> columns.
using Schema = std::map<std::string, std::map<std::string, std::string>>;

absl::StatusOr<Schema> ReadSchema(const PgSide& c) {
  Schema s;
  auto cols = PgExec(c,
                      "select table_schema || '.' || table_name, column_name, data_type || "
                      "coalesce('(' || character_maximum_length || ')', '') || "
                      "case when is_nullable = 'NO' then ' not null' else '' end "
                      "from information_schema.columns "
                      "where table_schema not in ('pg_catalog', 'information_schema') and table_schema not like 'pg\\_toast%' "
                      "order by 1, ordinal_position",
                     {}, "read columns");
  if (!cols.ok()) return cols.status();
  for (int i = 0; i < PQntuples(cols->get()); ++i)
    s[PQgetvalue(cols->get(), i, 0)][PQgetvalue(cols->get(), i, 1)] = PQgetvalue(cols->get(), i, 2);
  auto pks = PgExec(c,
                     "select n.nspname || '.' || t.relname, string_agg(a.attname, ',' order by a.attnum) "
                     "from pg_index i join pg_class t on t.oid = i.indrelid "
                     "join pg_namespace n on n.oid = t.relnamespace "
                     "join pg_attribute a on a.attrelid = t.oid and a.attnum = any(i.indkey) "
                     "where i.indisprimary and n.nspname not in ('pg_catalog', 'information_schema') "
                     "and n.nspname not like 'pg\\_toast%' group by 1",
                    {}, "read primary keys");
  if (!pks.ok()) return pks.status();
  for (int i = 0; i < PQntuples(pks->get()); ++i)
    s[PQgetvalue(pks->get(), i, 0)]["(primary key)"] = PQgetvalue(pks->get(), i, 1);
  return s;
}

// "orders" matches public.orders and any schema's orders; "s.orders" itself.
bool InScope(const std::string& qualified, const std::vector<std::string>& tables) {
  if (tables.empty()) return true;
  const std::string bare = qualified.substr(qualified.find('.') + 1);
  return std::any_of(tables.begin(), tables.end(), [&](const std::string& t) { return t == qualified || t == bare; });
}

std::vector<std::string> ScopeTables(const Migration& m) {
  std::vector<std::string> t;
  for (const auto& a : m.apis) t.insert(t.end(), a.tables.begin(), a.tables.end());
  return t;
}

std::string RedisVersion(redisContext* c) {
  RedisReply r = RedisCommand(c, {"INFO", "server"});
  if (!r || r->type != REDIS_REPLY_STRING) return "";
  for (absl::string_view line : absl::StrSplit(absl::string_view(r->str, r->len), "\r\n"))
    if (absl::ConsumePrefix(&line, "redis_version:")) return std::string(line);
  return "";
}

json::object Side(const routing::Backend& b) { return {{"backend", b.name}}; }

std::set<std::string> Names(const PgSide& c, const char* sql) {
  std::set<std::string> out;
  auto r = PgExec(c, sql);
  if (!r.ok()) return out;
  for (int i = 0; i < PQntuples(r->get()); ++i) out.insert(PQgetvalue(r->get(), i, 0));
  return out;
}

// What new lacks that sessions replayed on it would use: roles (SET ROLE,
// owners, grants), extensions, and the database's own settings
// (ALTER DATABASE … SET), plus encoding and collation that change results.
void CompareServers(const PgSide& old_c, const PgSide& new_c, json::array& warnings) {
  const char* kRoles = "select rolname from pg_roles where rolname !~ '^pg_' order by 1";
  const char* kExtensions = "select extname from pg_extension order by 1";
  const char* kSettings =
      "select unnest(setconfig) from pg_db_role_setting where setrole = 0 and "
      "setdatabase = (select oid from pg_database where datname = current_database())";
  const char* kLocale =
      "select 'encoding ' || pg_encoding_to_char(encoding) || ', collation ' || datcollate || ', ctype ' || datctype "
      "from pg_database where datname = current_database()";
  const auto new_roles = Names(new_c, kRoles);
  for (const auto& r : Names(old_c, kRoles))
    if (!new_roles.count(r)) warnings.emplace_back(absl::StrCat("role ", r, " exists on old, not on new"));
  const auto new_ext = Names(new_c, kExtensions);
  for (const auto& e : Names(old_c, kExtensions))
    if (!new_ext.count(e)) warnings.emplace_back(absl::StrCat("extension ", e, " is installed on old, not on new"));
  const auto new_settings = Names(new_c, kSettings);
  for (const auto& s : Names(old_c, kSettings))
    if (!new_settings.count(s)) warnings.emplace_back(absl::StrCat("database setting ", s, " is set on old, not on new"));
  const auto old_locale = Names(old_c, kLocale), new_locale = Names(new_c, kLocale);
  if (old_locale != new_locale && !old_locale.empty() && !new_locale.empty())
    warnings.emplace_back(absl::StrCat("database ", *old_locale.begin(), " on old; ", *new_locale.begin(), " on new"));
}

// How the route's data and writes will reach new (docs/change-stream.md).
json::object DataPath(const routing::Backend& old_b, const Migration& m, json::array& blocking, json::array& warnings) {
  std::string method = "auto";
  if (m.data.is_object())
    if (const auto* f = m.data.as_object().if_contains("method"); f && f->is_string()) method = f->as_string().c_str();
  // `dual_write`: how a dual_write strategy's writes reach new on this
  // route: carried by the change stream, or re-run as statements.
  if (method == "copy") return {{"method", "copy"}, {"dual_write", "statement"}, {"reason", "data.method is copy"}};
  auto missing = StreamPrerequisitesMissing(old_b);
  if (!missing.ok()) return {{"method", "unknown"}, {"error", std::string(missing.status().message())}};
  json::array what;
  for (const auto& x : *missing) what.emplace_back(x);
  if (missing->empty()) return {{"method", "stream"}, {"dual_write", "stream"}};
  const std::string why = absl::StrJoin(*missing, "; ");
  if (method == "stream") blocking.emplace_back(absl::StrCat("old cannot stream changes: ", why));
  else
    warnings.emplace_back(absl::StrCat("old cannot stream changes (", why,
                                       "): data moves by the copier and writes are dual-written as statements"));
  return {{"method", method == "stream" ? "stream" : "copy"},
          {"dual_write", method == "stream" ? "stream" : "statement"},
          {"missing", std::move(what)}};
}

}  // namespace

std::vector<std::string> RedisKeyGlobs(const Migration& m) {
  std::vector<std::string> k;
  for (const auto& a : m.apis) k.insert(k.end(), a.keys.begin(), a.keys.end());
  if (k.empty()) k.push_back("*");
  return k;
}

absl::StatusOr<json::value> DryRun(const routing::Config& config, const Migration& m) {
  json::array routes;
  bool all_ok = true;
  for (const auto& i : m.interlays) {
    const routing::Route* r = config.FindRoute(i.route);
    const routing::Backend* old_b = r ? config.FindBackend(r->old_backend) : nullptr;
    const routing::Backend* new_b = config.FindBackend(i.endpoint);
    if (!r || !old_b || !new_b) return absl::FailedPreconditionError(absl::StrCat("route ", i.route, " is not configured"));
    json::object out{{"route", r->name}, {"protocol", routing::ProtocolName(r->protocol)}};
    json::object o = Side(*old_b), n = Side(*new_b);
    json::array blocking, warnings;
    if (r->protocol == routing::Protocol::kPostgres) {
      auto oc = PgConnect(*old_b);
      auto nc = PgConnect(*new_b);
      o["reachable"] = oc.ok();
      n["reachable"] = nc.ok();
      if (!oc.ok()) blocking.emplace_back(absl::StrCat("old: ", oc.status().message()));
      if (!nc.ok()) blocking.emplace_back(absl::StrCat("new: ", nc.status().message()));
      if (oc.ok() && nc.ok()) {
        o["version"] = PQparameterStatus(oc->get(), "server_version");
        n["version"] = PQparameterStatus(nc->get(), "server_version");
        const PgSide old_side{oc->get(), "old"}, new_side{nc->get(), "new"};
        auto os = ReadSchema(old_side);
        auto ns = ReadSchema(new_side);
        if (!os.ok() || !ns.ok()) return absl::InternalError("reading schemas failed");
        const auto scope = ScopeTables(m);
        int compared = 0;
        for (const auto& [table, cols] : *os) {
          if (!InScope(table, scope)) continue;
          ++compared;
          auto it = ns->find(table);
          if (it == ns->end()) {
            blocking.emplace_back(absl::StrCat("table ", table, " is missing on new"));
            continue;
          }
          for (const auto& [col, type] : cols) {
            auto nt = it->second.find(col);
            if (nt == it->second.end())
              blocking.emplace_back(absl::StrCat(table, ".", col, " is missing on new"));
            else if (nt->second != type)
              blocking.emplace_back(absl::StrCat(table, ".", col, ": ", type, " on old, ", nt->second, " on new"));
          }
          for (const auto& [col, type] : it->second)
            if (!cols.count(col)) warnings.emplace_back(absl::StrCat(table, ".", col, " exists only on new"));
        }
        out["tables_compared"] = compared;
        CompareServers(old_side, new_side, warnings);
        out["data_path"] = DataPath(*old_b, m, blocking, warnings);
        for (const auto& t : scope) {
          bool found = false;
          for (const auto& [table, cols] : *os) found |= InScope(table, {t});
          if (!found) warnings.emplace_back(absl::StrCat("scope table ", t, " does not exist on old"));
        }
      }
    } else {
      auto oc = RedisConnect(*old_b);
      auto nc = RedisConnect(*new_b);
      o["reachable"] = oc.ok();
      n["reachable"] = nc.ok();
      if (!oc.ok()) blocking.emplace_back(absl::StrCat("old: ", oc.status().message()));
      if (!nc.ok()) blocking.emplace_back(absl::StrCat("new: ", nc.status().message()));
      if (oc.ok() && nc.ok()) {
        const std::string ov = RedisVersion(oc->get()), nv = RedisVersion(nc->get());
        o["version"] = ov;
        n["version"] = nv;
        // RESTORE of a DUMP from a newer major version fails: new must not be older.
        const int om = std::atoi(ov.c_str()), nm = std::atoi(nv.c_str());
        if (nm < om) blocking.emplace_back(absl::StrCat("new runs Redis ", nv, ", older than old's ", ov));
        else if (ov != nv) warnings.emplace_back(absl::StrCat("versions differ: old ", ov, ", new ", nv));
      }
    }
    out["old"] = std::move(o);
    out["new"] = std::move(n);
    out["ok"] = blocking.empty();
    all_ok &= blocking.empty();
    out["blocking"] = std::move(blocking);
    out["warnings"] = std::move(warnings);
    routes.push_back(std::move(out));
  }
  if (m.interlays.empty()) return absl::FailedPreconditionError(absl::StrCat("migration ", m.id, " has no route to test"));
  return json::value(json::object{{"migration", m.id}, {"ok", all_ok}, {"routes", std::move(routes)}});
}

absl::StatusOr<json::value> Verify(const routing::Config& config, const Migration& m) {
  return Verify(config, m, VerifyOptions{});
}

absl::StatusOr<json::value> Verify(const routing::Config& config, const Migration& m, const VerifyOptions& run) {
  VerifyPace pace(run.rows_per_second, run.stopping);
  // After each chunk: the throttle's wait, then the progress.
  auto took = [&](const std::string& route, const std::string& table, std::int64_t rows) -> absl::Status {
    if (!pace.Took(rows)) return absl::CancelledError("verification stopped");
    if (!run.progress) return absl::OkStatus();
    return run.progress(VerifyProgress{route, table, pace.rows(), pace.elapsed_seconds(), pace.rate(), pace.limit()});
  };
  json::array routes;
  bool all_equal = true;
  for (const auto& i : m.interlays) {
    const routing::Route* r = config.FindRoute(i.route);
    const routing::Backend* old_b = r ? config.FindBackend(r->old_backend) : nullptr;
    const routing::Backend* new_b = config.FindBackend(i.endpoint);
    if (!r || !old_b || !new_b) return absl::FailedPreconditionError(absl::StrCat("route ", i.route, " is not configured"));
    if (run.only && r->protocol != *run.only) continue;
    json::object out{{"route", r->name}};
    json::array differences;
    if (r->protocol == routing::Protocol::kPostgres) {
      auto oc = PgConnect(*old_b);
      if (!oc.ok()) return absl::UnavailableError(absl::StrCat("old: ", oc.status().message()));
      auto nc = PgConnect(*new_b);
      if (!nc.ok()) return absl::UnavailableError(absl::StrCat("new: ", nc.status().message()));
      const PgSide old_side{oc->get(), "old"}, new_side{nc->get(), "new"};
      auto os = ReadSchema(old_side);
      if (!os.ok()) return os.status();
      for (const PgSide* side : {&old_side, &new_side})
        if (auto st = PrepareVerifySession(*side); !st.ok()) return st;
      PgVerifyOptions options;
      // A chunk is at most one second of the throttle's budget.
      if (run.rows_per_second > 0) options.chunk_rows = std::min(options.chunk_rows, run.rows_per_second);
      // "lsn" mode while the route's change stream runs (the route streams,
      // or its stream does; a stream that stopped meanwhile makes the wait
      // run out, and the table falls back to "recheck", saying so).
      for (const auto& p : m.progress.routes)
        if (p.route == i.route && !p.stream.slot.empty() && p.phase != "done" && p.phase != "failed" &&
            (p.phase == "streaming" || p.stream.phase == "streaming"))
          options.wait_new_applied_past = StreamPositionWait(old_side, new_side, p.stream.slot, run.lsn_wait);
      std::string consistency = options.wait_new_applied_past ? "lsn" : "recheck";
      json::array tables;
      for (const auto& [table, cols] : *os) {
        if (!InScope(table, ScopeTables(m))) continue;
        options.after_chunk = [&, table = table](std::int64_t rows) { return took(r->name, table, rows); };
        auto v = VerifyPgTable(old_side, new_side, table, options);
        if (!v.ok()) return v.status();
        if (!v->equal) differences.emplace_back(PgTableVerifySummary(*v));
        if (v->mode == "recheck" && consistency == "lsn") consistency = "lsn, recheck where the stream lagged";
        tables.push_back(PgTableVerifyToJson(*v, options.max_reported));
      }
      out["mode"] = consistency;
      out["consistency"] = consistency;
      out["tables"] = std::move(tables);
    } else {
      auto oc = RedisConnect(*old_b);
      if (!oc.ok()) return absl::UnavailableError(absl::StrCat("old: ", oc.status().message()));
      auto nc = RedisConnect(*new_b);
      if (!nc.ok()) return absl::UnavailableError(absl::StrCat("new: ", nc.status().message()));
      const std::vector<std::string> globs = RedisKeyGlobs(m);
      RedisVerifyOptions options;
      if (run.rows_per_second > 0)
        options.batch = static_cast<std::size_t>(std::min<std::int64_t>(options.batch, run.rows_per_second));
      options.after_batch = [&](std::int64_t keys) { return took(r->name, "keys", keys); };
      auto v = VerifyRedisKeys(oc->get(), nc->get(), globs, options);
      if (!v.ok()) return v.status();
      json::array keys;
      for (const auto& d : v->differences) {
        differences.emplace_back(absl::StrCat("key ", d.key));
        keys.push_back(RedisKeyDifferenceToJson(d));
      }
      out["mode"] = v->mode;
      out["keys_compared"] = v->keys_compared;
      out["keys_differing"] = v->keys_differing;
      out["keys"] = std::move(keys);
    }
    out["equal"] = differences.empty();
    all_equal &= differences.empty();
    out["differences"] = std::move(differences);
    routes.push_back(std::move(out));
  }
  return json::value(json::object{{"migration", m.id}, {"equal", all_equal}, {"routes", std::move(routes)}});
}

}  // namespace turnout::control
