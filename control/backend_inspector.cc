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
#include "control/backend_clients.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

// table -> column -> "type [not null]"; plus "primary key" -> columns.
using Schema = std::map<std::string, std::map<std::string, std::string>>;

absl::StatusOr<Schema> ReadSchema(PGconn* c) {
  Schema s;
  auto cols = PgQuery(c,
                      "select table_schema || '.' || table_name, column_name, data_type || "
                      "coalesce('(' || character_maximum_length || ')', '') || "
                      "case when is_nullable = 'NO' then ' not null' else '' end "
                      "from information_schema.columns "
                      "where table_schema not in ('pg_catalog', 'information_schema') and table_schema not like 'pg\\_toast%' "
                      "order by 1, ordinal_position");
  if (!cols.ok()) return cols.status();
  for (int i = 0; i < PQntuples(cols->get()); ++i)
    s[PQgetvalue(cols->get(), i, 0)][PQgetvalue(cols->get(), i, 1)] = PQgetvalue(cols->get(), i, 2);
  auto pks = PgQuery(c,
                     "select n.nspname || '.' || t.relname, string_agg(a.attname, ',' order by a.attnum) "
                     "from pg_index i join pg_class t on t.oid = i.indrelid "
                     "join pg_namespace n on n.oid = t.relnamespace "
                     "join pg_attribute a on a.attrelid = t.oid and a.attnum = any(i.indkey) "
                     "where i.indisprimary and n.nspname not in ('pg_catalog', 'information_schema') "
                     "and n.nspname not like 'pg\\_toast%' group by 1");
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

std::vector<std::string> ScopeKeys(const Migration& m) {
  std::vector<std::string> k;
  for (const auto& a : m.apis) k.insert(k.end(), a.keys.begin(), a.keys.end());
  return k;
}

std::string RedisVersion(redisContext* c) {
  RedisReply r = RedisCommand(c, {"INFO", "server"});
  if (!r || r->type != REDIS_REPLY_STRING) return "";
  for (absl::string_view line : absl::StrSplit(absl::string_view(r->str, r->len), "\r\n"))
    if (absl::ConsumePrefix(&line, "redis_version:")) return std::string(line);
  return "";
}

// The command that reads a key of type `t` (TYPE's answer) for CanonicalValue.
std::vector<std::string> ValueCommand(const std::string& t, const std::string& key) {
  if (t == "string") return {"GET", key};
  if (t == "list") return {"LRANGE", key, "0", "-1"};
  if (t == "set") return {"SMEMBERS", key};
  if (t == "zset") return {"ZRANGE", key, "0", "-1", "WITHSCORES"};
  if (t == "hash") return {"HGETALL", key};
  return {"DUMP", key};
}

// A canonical text of a key's value, independent of encoding and order,
// from the reply to ValueCommand(t, key).
std::string CanonicalValue(const std::string& t, const RedisReply& r) {
  std::vector<std::string> items;
  bool sort = true;
  if (t == "list" || t == "set" || t == "zset") {
    if (r && r->type == REDIS_REPLY_ARRAY)
      for (size_t i = 0; i < r->elements; ++i) items.emplace_back(r->element[i]->str, r->element[i]->len);
    sort = t == "set";
  } else if (t == "hash") {
    if (r && r->type == REDIS_REPLY_ARRAY)
      for (size_t i = 0; i + 1 < r->elements; i += 2)
        items.push_back(absl::StrCat(absl::string_view(r->element[i]->str, r->element[i]->len), "=",
                                     absl::string_view(r->element[i + 1]->str, r->element[i + 1]->len)));
  } else {
    // string (GET) and every other type (DUMP).
    return t + ":" + (r && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string());
  }
  if (sort) std::sort(items.begin(), items.end());
  return t + ":" + absl::StrJoin(items, "\x1f");
}

// Pipelining (hiredis): commands are appended to the output buffer, sent
// together, and their replies read back in order. After a connection error
// every reply is null, as RedisCommand's would be.
void AppendCommand(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
}
// Sends what was appended without waiting for replies, so both servers work
// on a batch at once.
void Flush(redisContext* c) {
  int done = 0;
  while (!done && redisBufferWrite(c, &done) == REDIS_OK) {
  }
}
RedisReply NextReply(redisContext* c) {
  void* r = nullptr;
  if (redisGetReply(c, &r) != REDIS_OK) return nullptr;
  return RedisReply(static_cast<redisReply*>(r));
}

// Keys compared per round trip. Values are read one key at a time from both
// servers (the rest of a batch waits in the sockets and Redis' output
// buffers), so a batch of large values is not held here at once.
constexpr std::size_t kCompareBatch = 512;

// Compares `keys` on both servers: TYPE for the whole batch, then each
// key's value command; two round trips per batch. `differs(key)` is called
// for every key whose canonical values differ, in order.
template <typename OnDiffer>
void CompareBatch(redisContext* old_c, redisContext* new_c, const std::vector<const std::string*>& keys,
                  OnDiffer differs) {
  redisContext* const sides[2] = {old_c, new_c};
  for (redisContext* c : sides) {
    for (const std::string* key : keys) AppendCommand(c, {"TYPE", *key});
    Flush(c);
  }
  // "" where TYPE did not answer with a status: that side's value is "?".
  std::vector<std::string> types[2];
  for (auto& t : types) t.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    for (int s = 0; s < 2; ++s) {
      RedisReply r = NextReply(sides[s]);
      types[s].push_back(r && r->type == REDIS_REPLY_STATUS ? std::string(r->str, r->len) : std::string());
    }
  }
  for (int s = 0; s < 2; ++s) {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (!types[s][i].empty()) AppendCommand(sides[s], ValueCommand(types[s][i], *keys[i]));
    Flush(sides[s]);
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::string values[2];
    for (int s = 0; s < 2; ++s)
      values[s] = types[s][i].empty() ? "?" : CanonicalValue(types[s][i], NextReply(sides[s]));
    if (values[0] != values[1]) differs(*keys[i]);
  }
}

json::object Side(const routing::Backend& b) { return {{"backend", b.name}}; }

}  // namespace

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
        auto os = ReadSchema(oc->get());
        auto ns = ReadSchema(nc->get());
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
  json::array routes;
  bool all_equal = true;
  for (const auto& i : m.interlays) {
    const routing::Route* r = config.FindRoute(i.route);
    const routing::Backend* old_b = r ? config.FindBackend(r->old_backend) : nullptr;
    const routing::Backend* new_b = config.FindBackend(i.endpoint);
    if (!r || !old_b || !new_b) return absl::FailedPreconditionError(absl::StrCat("route ", i.route, " is not configured"));
    json::object out{{"route", r->name}};
    json::array differences;
    if (r->protocol == routing::Protocol::kPostgres) {
      auto oc = PgConnect(*old_b);
      if (!oc.ok()) return absl::UnavailableError(absl::StrCat("old: ", oc.status().message()));
      auto nc = PgConnect(*new_b);
      if (!nc.ok()) return absl::UnavailableError(absl::StrCat("new: ", nc.status().message()));
      auto os = ReadSchema(oc->get());
      if (!os.ok()) return os.status();
      json::array tables;
      for (const auto& [table, cols] : *os) {
        if (!InScope(table, ScopeTables(m))) continue;
        const auto dot = table.find('.');
        // Identifiers quoted by the server; the checksum is a sum of row
        // hashes, so it does not depend on row order.
        const std::string sql = "select count(*), coalesce(sum(hashtext(t::text)::bigint), 0) from " +
                                std::string("\"") + table.substr(0, dot) + "\".\"" + table.substr(dot + 1) + "\" t";
        auto ores = PgQuery(oc->get(), sql);
        auto nres = PgQuery(nc->get(), sql);
        json::object t{{"table", table}};
        if (!ores.ok()) return ores.status();
        t["old_rows"] = std::atoll(PQgetvalue(ores->get(), 0, 0));
        if (!nres.ok()) {
          t["error_new"] = std::string(nres.status().message());
          differences.emplace_back(absl::StrCat("table ", table, ": cannot read on new"));
        } else {
          t["new_rows"] = std::atoll(PQgetvalue(nres->get(), 0, 0));
          const bool same = std::string(PQgetvalue(ores->get(), 0, 0)) == PQgetvalue(nres->get(), 0, 0) &&
                            std::string(PQgetvalue(ores->get(), 0, 1)) == PQgetvalue(nres->get(), 0, 1);
          t["equal"] = same;
          if (!same)
            differences.emplace_back(absl::StrCat("table ", table, ": ", PQgetvalue(ores->get(), 0, 0), " rows on old, ",
                                                  PQgetvalue(nres->get(), 0, 0), " on new or checksums differ"));
        }
        tables.push_back(std::move(t));
      }
      out["tables"] = std::move(tables);
    } else {
      auto oc = RedisConnect(*old_b);
      if (!oc.ok()) return absl::UnavailableError(absl::StrCat("old: ", oc.status().message()));
      auto nc = RedisConnect(*new_b);
      if (!nc.ok()) return absl::UnavailableError(absl::StrCat("new: ", nc.status().message()));
      std::vector<std::string> globs = ScopeKeys(m);
      if (globs.empty()) globs.push_back("*");
      std::int64_t compared = 0, differing = 0;
      constexpr std::int64_t kMaxReported = 100;
      for (const auto& glob : globs) {
        std::set<std::string> seen;
        // Keys of both sides, so a key missing on either is found.
        for (redisContext* c : {oc->get(), nc->get()}) {
          std::string cursor = "0";
          do {
            RedisReply page = RedisCommand(c, {"SCAN", cursor, "MATCH", glob, "COUNT", "1000"});
            if (!page || page->type != REDIS_REPLY_ARRAY || page->elements != 2) break;
            cursor = std::string(page->element[0]->str, page->element[0]->len);
            for (size_t k = 0; k < page->element[1]->elements; ++k)
              seen.emplace(page->element[1]->element[k]->str, page->element[1]->element[k]->len);
          } while (cursor != "0");
        }
        std::vector<const std::string*> batch;
        batch.reserve(kCompareBatch);
        for (auto it = seen.begin(); it != seen.end();) {
          batch.clear();
          for (; it != seen.end() && batch.size() < kCompareBatch; ++it) batch.push_back(&*it);
          compared += static_cast<std::int64_t>(batch.size());
          CompareBatch(oc->get(), nc->get(), batch, [&](const std::string& key) {
            ++differing;
            if (differing <= kMaxReported) differences.emplace_back(absl::StrCat("key ", key));
          });
        }
      }
      out["keys_compared"] = compared;
      out["keys_differing"] = differing;
    }
    out["equal"] = differences.empty();
    all_equal &= differences.empty();
    out["differences"] = std::move(differences);
    routes.push_back(std::move(out));
  }
  return json::value(json::object{{"migration", m.id}, {"equal", all_equal}, {"routes", std::move(routes)}});
}

}  // namespace turnout::control
