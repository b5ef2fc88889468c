// The SQL and libpq side of a table verification (pg_verify_sql.h): the
// catalog read of a table's columns and one statement on both servers at once.
#include "control/pg_verify_sql.h"

namespace turnout::control::pg_verify {

absl::StatusOr<std::vector<Column>> ReadColumns(const PgSide& s, const std::string& table) {
  auto r = PgExec(s,
                  "select a.attname, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), "
                  "case when c.collname = 'default' then (select datcollate from pg_database "
                  "where datname = current_database()) else coalesce(c.collname, '') end "
                  "from pg_attribute a join pg_type t on t.oid = a.atttypid "
                  "left join pg_collation c on c.oid = a.attcollation "
                  "where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped order by a.attnum",
                  {table}, "read columns of " + table);
  if (!r.ok()) return r.status();
  std::vector<Column> out;
  for (int i = 0; i < PQntuples(r->get()); ++i)
    out.push_back({PgValue(*r, i, 0), PgValue(*r, i, 1), PgValue(*r, i, 2), PgValue(*r, i, 3)});
  return out;
}

// `sql` on both servers at once (libpq's asynchronous calls): each works
// while the other does, so a comparison takes the slower side's time, not
// the sum of both.
absl::StatusOr<std::pair<PgResult, PgResult>> ExecBoth(const PgSide& a, const PgSide& b, const std::string& sql,
                                                       const std::vector<std::string>& params, const std::string& what) {
  if (auto st = PgSend(a, sql, params, what); !st.ok()) return st;
  if (auto st = PgSend(b, sql, params, what); !st.ok()) {
    (void)PgCollect(a, what);
    return st;
  }
  auto ra = PgCollect(a, what);
  auto rb = PgCollect(b, what);
  if (!ra.ok()) return ra.status();
  if (!rb.ok()) return rb.status();
  return std::make_pair(*std::move(ra), *std::move(rb));
}
}  // namespace turnout::control::pg_verify
