// Indexes set aside during the initial copy: what is eligible, the record on
// new, and building them again. Why and the guarantees: the header.

#include "control/pg_set_aside_indexes.h"

#include "absl/strings/str_cat.h"

namespace turnout::control {
namespace {

constexpr const char* kRecordTable = "_turnout.set_aside_indexes";

// Definitions are read and run with only pg_catalog on the search path, so
// pg_get_indexdef and pg_get_constraintdef qualify every name they print
// (functions and operator classes of expression indexes included) and the
// statements mean the same on whichever connection builds them again.
constexpr const char* kCatalogOnly = "set local search_path = pg_catalog";

// One row when every index of $1 can be set aside; its columns say why not
// otherwise (the query is about the table as a whole: an index it cannot
// rebuild exactly keeps all of them, so nothing is left half-indexed).
constexpr const char* kEligibleSql = R"sql(
select c.relkind = 'r' and not c.relispartition,
       exists (select 1 from pg_index i where i.indrelid = c.oid),
       not exists (
         select 1 from pg_index i join pg_class ic on ic.oid = i.indexrelid
          where i.indrelid = c.oid
            and (not i.indisvalid or not i.indisready or i.indisreplident or i.indisclustered
                 or ic.reltablespace <> 0
                 or obj_description(i.indexrelid, 'pg_class') is not null
                 or exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid)
                 or exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                             and d.objid = i.indexrelid and d.deptype = 'e')
                 or exists (select 1 from pg_attribute a where a.attrelid = i.indexrelid and a.attstattarget > 0)
                 or exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = i.indexrelid)
                 or exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.conindid = i.indexrelid
                             and (k.contype not in ('p', 'u') or k.conname <> ic.relname
                                  or obj_description(k.oid, 'pg_constraint') is not null))))
  from pg_class c where c.oid = $1::oid)sql";

// Per index: the statement that builds it again and the one that drops it.
// A primary key or unique constraint is added back as a constraint (its
// index comes with it, under the same name); any other index by its own
// CREATE INDEX.
constexpr const char* kDefinitionsSql = R"sql(
select case when k.oid is null then pg_get_indexdef(i.indexrelid)
            else format('alter table %s add constraint %I %s', i.indrelid::regclass, k.conname,
                        pg_get_constraintdef(k.oid)) end,
       case when k.oid is null then format('drop index %s', i.indexrelid::regclass)
            else format('alter table %s drop constraint %I', i.indrelid::regclass, k.conname) end
  from pg_index i
  left join pg_constraint k on k.conrelid = i.indrelid and k.conindid = i.indexrelid and k.contype in ('p', 'u')
 where i.indrelid = $1::oid
 order by k.contype nulls last, i.indexrelid)sql";

// Runs `steps` in one transaction on `to`; rolls back on the first failure.
absl::Status InTransaction(const PgSide& to, const std::vector<std::pair<std::string, std::vector<std::string>>>& steps,
                           const std::string& what) {
  if (auto r = PgExec(to, "begin"); !r.ok()) return r.status();
  for (const auto& [sql, params] : steps) {
    if (auto r = PgExec(to, sql, params, what); !r.ok()) {
      (void)PgExec(to, "rollback");
      return r.status();
    }
  }
  if (auto r = PgExec(to, "commit", {}, what); !r.ok()) return r.status();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int> SetIndexesAside(const PgSide& to, const std::string& table) {
  const std::string what = "set aside the indexes of " + table;
  if (auto r = PgExec(to, "begin"); !r.ok()) return r.status();
  auto fail = [&](absl::Status st) {
    (void)PgExec(to, "rollback");
    return st;
  };
  // The name as the caller's search path resolves it, before it narrows.
  auto resolved = PgExec(to, "select $1::regclass::oid", {table}, what);
  if (!resolved.ok()) return fail(resolved.status());
  const std::string oid = PgValue(*resolved, 0, 0);
  if (auto r = PgExec(to, kCatalogOnly); !r.ok()) return fail(r.status());
  auto eligible = PgExec(to, kEligibleSql, {oid}, what);
  if (!eligible.ok()) return fail(eligible.status());
  if (PgValue(*eligible, 0, 0) != "t" || PgValue(*eligible, 0, 1) != "t" || PgValue(*eligible, 0, 2) != "t") {
    (void)PgExec(to, "rollback");
    return 0;
  }
  auto defs = PgExec(to, kDefinitionsSql, {oid}, what);
  if (!defs.ok()) return fail(defs.status());
  for (const char* sql :
       {"create schema if not exists _turnout",
        "create table if not exists _turnout.set_aside_indexes (table_oid oid, position int, table_name text not null, "
        "statement text not null, primary key (table_oid, position))"}) {
    if (auto r = PgExec(to, sql, {}, what); !r.ok()) return fail(r.status());
  }
  const int n = PQntuples(defs->get());
  for (int i = 0; i < n; ++i) {
    auto recorded = PgExec(to, absl::StrCat("insert into ", kRecordTable, " values ($1, $2, $3, $4)"),
                           {oid, std::to_string(i), table, PgValue(*defs, i, 0)}, what);
    if (!recorded.ok()) return fail(recorded.status());
    if (auto r = PgExec(to, PgValue(*defs, i, 1), {}, what); !r.ok()) return fail(r.status());
  }
  if (auto r = PgExec(to, "commit", {}, what); !r.ok()) return r.status();
  return n;
}

absl::StatusOr<std::vector<std::string>> RebuildSetAsideIndexes(const PgSide& to,
                                                                const std::vector<std::string>& tables) {
  std::vector<std::string> rebuilt;
  auto exists = PgExec(to, absl::StrCat("select to_regclass('", kRecordTable, "') is not null"), {},
                       "look for set-aside indexes");
  if (!exists.ok()) return exists.status();
  if (PgValue(*exists, 0, 0) != "t") return rebuilt;
  // By oid: the names a caller holds may be quoted otherwise than when the
  // indexes were set aside.
  auto recorded = PgExec(to,
                         absl::StrCat("select table_oid, table_name, statement from ", kRecordTable,
                                      " where cardinality($1::text[]) = 0"
                                      " or table_oid in (select to_regclass(t)::oid from unnest($1::text[]) t)"
                                      " order by table_oid, position"),
                         {PgArray(tables)}, "read the set-aside indexes");
  if (!recorded.ok()) return recorded.status();
  const int n = PQntuples(recorded->get());
  for (int i = 0; i < n;) {
    const std::string oid = PgValue(*recorded, i, 0), table = PgValue(*recorded, i, 1);
    const std::string what = "build again the indexes of " + table + " set aside for the copy";
    std::vector<std::pair<std::string, std::vector<std::string>>> steps;
    steps.push_back({kCatalogOnly, {}});
    // Sorting in memory where the server allows it (the server's setting
    // when it is larger).
    steps.push_back({"select set_config('maintenance_work_mem', greatest(pg_size_bytes(current_setting("
                     "'maintenance_work_mem')), 256 * 1024 * 1024) / 1024 || 'kB', true)",
                     {}});
    for (; i < n && PgValue(*recorded, i, 0) == oid; ++i) steps.push_back({PgValue(*recorded, i, 2), {}});
    steps.push_back({absl::StrCat("delete from ", kRecordTable, " where table_oid = $1"), {oid}});
    if (auto st = InTransaction(to, steps, what); !st.ok()) return st;
    rebuilt.push_back(table);
  }
  return rebuilt;
}

absl::StatusOr<std::vector<std::string>> RebuildSetAsideIndexes(const routing::Backend& target) {
  auto side = PgConnectSide(target, "new", "turnout clean-up");
  if (!side.ok()) return side.status();
  return RebuildSetAsideIndexes(*side, {});
}

}  // namespace turnout::control
