#include "control/pg_table_repair.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "control/backend_clients.h"

namespace turnout::control {
namespace {

// A connection and the name messages use for it ("source" or "target").
struct Side {
  PGconn* conn;
  const char* name;
};

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

absl::Status Failed(const Side& s, const PGresult* r, const std::string& what) {
  const std::string msg = Trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(s.conn));
  if (PQstatus(s.conn) != CONNECTION_OK)
    return absl::UnavailableError(absl::StrCat(s.name, ": ", what, ": ", msg.empty() ? "connection lost" : msg));
  return absl::InternalError(absl::StrCat(s.name, ": ", what, ": ", msg));
}

absl::StatusOr<PgResult> Exec(const Side& s, const std::string& sql, const std::vector<std::string>& params = {},
                              const std::string& what = "") {
  std::vector<const char*> p;
  for (const auto& v : params) p.push_back(v.c_str());
  PgResult r(PQexecParams(s.conn, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return Failed(s, r.get(), what.empty() ? sql : what);
  return r;
}

std::string Value(const PgResult& r, int row, int col) { return PQgetvalue(r.get(), row, col); }

// Reads what is left of a COPY OUT so the connection can be used again.
void DrainCopyOut(const Side& s) {
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(s.conn, &buf, 0);
    if (buf) PQfreemem(buf);
    if (n < 0) break;
  }
  while (PGresult* r = PQgetResult(s.conn)) PQclear(r);
}

// Runs `copy_out` on `from` and `copy_in` on `to` and moves the rows across;
// returns the rows the target took.
absl::StatusOr<std::int64_t> CopyAcross(const Side& from, const std::string& copy_out, const Side& to,
                                        const std::string& copy_in) {
  PgResult in(PQexec(to.conn, copy_in.c_str()));
  if (PQresultStatus(in.get()) != PGRES_COPY_IN) return Failed(to, in.get(), "copy in");
  auto abort_in = [&](const char* why) {
    PQputCopyEnd(to.conn, why);
    while (PGresult* r = PQgetResult(to.conn)) PQclear(r);
  };
  PgResult out(PQexec(from.conn, copy_out.c_str()));
  if (PQresultStatus(out.get()) != PGRES_COPY_OUT) {
    absl::Status st = Failed(from, out.get(), "copy out");
    abort_in("source failed");
    return st;
  }
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(from.conn, &buf, 0);
    if (n == -1) break;
    if (n < 0) {
      absl::Status st = Failed(from, nullptr, "copy out");
      abort_in("source failed");
      return st;
    }
    const int put = PQputCopyData(to.conn, buf, n);
    PQfreemem(buf);
    if (put != 1) {
      absl::Status st = Failed(to, nullptr, "copy in");
      DrainCopyOut(from);
      return st;
    }
  }
  for (PgResult r(PQgetResult(from.conn)); r; r.reset(PQgetResult(from.conn)))
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      absl::Status st = Failed(from, r.get(), "copy out");
      abort_in("source failed");
      return st;
    }
  if (PQputCopyEnd(to.conn, nullptr) != 1) return Failed(to, nullptr, "copy in");
  std::int64_t rows = 0;
  absl::Status st = absl::OkStatus();
  for (PgResult r(PQgetResult(to.conn)); r; r.reset(PQgetResult(to.conn))) {
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) st = Failed(to, r.get(), "copy in");
    else rows = std::atoll(PQcmdTuples(r.get()));
  }
  if (!st.ok()) return st;
  return rows;
}

struct Table {
  std::string oid;     // on the source
  std::string quoted;  // "schema"."table"
  std::vector<std::string> columns;  // quoted: the source's, not generated, present on the target
  std::vector<std::string> pk;       // quoted
};

// The journal's name as the classifier wrote it (unquoted parts folded to
// lower case, quoted ones verbatim): a schema-qualified match first, else
// the table the search path shows, else the only table of that name.
absl::Status Resolve(const Side& source, PgTableRepair& r, Table& t) {
  auto found = Exec(source,
                    "select c.oid, n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                    "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                    "where c.relkind in ('r', 'p') and c.relpersistence <> 't' "
                    "and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' "
                    "and (n.nspname || '.' || c.relname = $1 or c.relname = $1) "
                    "order by n.nspname || '.' || c.relname = $1 desc, pg_table_is_visible(c.oid) desc",
                    {r.table}, "find table");
  if (!found.ok()) return found.status();
  const int n = PQntuples(found->get());
  if (n == 0) return absl::NotFoundError("does not exist on the source");
  const bool exact = Value(*found, 0, 1) == r.table;
  if (!exact && n > 1) {
    auto visible = Exec(source, "select pg_table_is_visible($1::oid)", {Value(*found, 0, 0)}, "find table");
    if (!visible.ok()) return visible.status();
    if (Value(*visible, 0, 0) != "t")
      return absl::FailedPreconditionError("ambiguous: several schemas hold it and none is on the search path");
  }
  t.oid = Value(*found, 0, 0);
  r.resolved = Value(*found, 0, 1);
  t.quoted = Value(*found, 0, 2);
  return absl::OkStatus();
}

absl::Status Describe(const Side& source, const Side& target, Table& t) {
  auto on_target = Exec(target, "select to_regclass($1)::oid", {t.quoted}, "find table");
  if (!on_target.ok()) return on_target.status();
  if (PQgetisnull(on_target->get(), 0, 0)) return absl::FailedPreconditionError("does not exist on the target");
  const std::string columns_sql =
      "select quote_ident(attname) from pg_attribute where attrelid = $1::oid and attnum > 0 "
      "and not attisdropped and attgenerated = '' order by attnum";
  auto src_cols = Exec(source, columns_sql, {t.oid}, "read columns");
  if (!src_cols.ok()) return src_cols.status();
  auto dst_cols = Exec(target, columns_sql, {Value(*on_target, 0, 0)}, "read columns");
  if (!dst_cols.ok()) return dst_cols.status();
  std::vector<std::string> on_dst;
  for (int k = 0; k < PQntuples(dst_cols->get()); ++k) on_dst.push_back(Value(*dst_cols, k, 0));
  for (int k = 0; k < PQntuples(src_cols->get()); ++k) {
    std::string c = Value(*src_cols, k, 0);
    if (std::find(on_dst.begin(), on_dst.end(), c) != on_dst.end()) t.columns.push_back(std::move(c));
  }
  if (t.columns.empty()) return absl::FailedPreconditionError("no column in common");
  auto pk = Exec(source,
                 "select quote_ident(a.attname) from pg_index i "
                 "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                 "where i.indrelid = $1::oid and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)",
                 {t.oid}, "read primary key");
  if (!pk.ok()) return pk.status();
  for (int k = 0; k < PQntuples(pk->get()); ++k) t.pk.push_back(Value(*pk, k, 0));
  for (const auto& k : t.pk)
    if (std::find(t.columns.begin(), t.columns.end(), k) == t.columns.end())
      return absl::FailedPreconditionError(absl::StrCat("primary key column ", k, " does not exist on the target"));
  return absl::OkStatus();
}

// Upsert of the staged rows; a row already equal is not rewritten. Values
// are compared as text: json, point, xml have no equality operator.
std::string UpsertSql(const Table& t, const std::string& stage) {
  const std::string cols = absl::StrJoin(t.columns, ", ");
  std::string sql = absl::StrCat("insert into ", t.quoted, " as turnout_target (", cols, ") overriding system value select ",
                                 cols, " from ", stage, " on conflict (", absl::StrJoin(t.pk, ", "), ") do ");
  std::vector<std::string> sets, mine, theirs;
  for (const auto& c : t.columns) {
    if (std::find(t.pk.begin(), t.pk.end(), c) != t.pk.end()) continue;
    sets.push_back(absl::StrCat(c, " = excluded.", c));
    mine.push_back("turnout_target." + c);
    theirs.push_back("excluded." + c);
  }
  if (sets.empty()) return sql + "nothing";
  return absl::StrCat(sql, "update set ", absl::StrJoin(sets, ", "), " where row(", absl::StrJoin(mine, ", "),
                      ")::text is distinct from row(", absl::StrJoin(theirs, ", "), ")::text");
}

// The table's transaction on the target. Every statement of it fails the table.
absl::Status Resync(const Side& source, const Side& target, const Table& t, PgTableRepair& r) {
  const std::string cols = absl::StrJoin(t.columns, ", ");
  const std::string copy_out = absl::StrCat("copy (select ", cols, " from ", t.quoted, ") to stdout");
  // Writes wait for the repair (reads do not); a lock held elsewhere for long
  // fails this table rather than the whole repair.
  for (const char* sql : {"begin", "set local lock_timeout = '10s'"})
    if (auto st = Exec(target, sql); !st.ok()) return st.status();
  if (auto st = Exec(target, absl::StrCat("lock table ", t.quoted, " in share row exclusive mode"), {}, "lock"); !st.ok())
    return st.status();
  if (t.pk.empty()) {
    auto deleted = Exec(target, "delete from " + t.quoted, {}, "delete");
    if (!deleted.ok()) return deleted.status();
    r.deleted = std::atoll(PQcmdTuples(deleted->get()));
    auto rows = CopyAcross(source, copy_out, target, absl::StrCat("copy ", t.quoted, " (", cols, ") from stdin"));
    if (!rows.ok()) return rows.status();
    r.source_rows = r.upserted = *rows;
  } else {
    const std::string stage = "turnout_repair_stage";
    if (auto st = Exec(target, absl::StrCat("create temp table ", stage, " on commit drop as select ", cols, " from ",
                                            t.quoted, " with no data"),
                       {}, "staging table");
        !st.ok())
      return st.status();
    auto rows = CopyAcross(source, copy_out, target, absl::StrCat("copy ", stage, " (", cols, ") from stdin"));
    if (!rows.ok()) return rows.status();
    r.source_rows = *rows;
    // Statistics, so the anti-join below is planned as a hash join.
    if (auto st = Exec(target, "analyze " + stage, {}, "analyze staging table"); !st.ok()) return st.status();
    std::vector<std::string> match;
    for (const auto& k : t.pk) match.push_back(absl::StrCat("s.", k, " = t.", k));
    auto deleted = Exec(target,
                        absl::StrCat("delete from ", t.quoted, " t where not exists (select 1 from ", stage, " s where ",
                                     absl::StrJoin(match, " and "), ")"),
                        {}, "delete rows absent from the source");
    if (!deleted.ok()) return deleted.status();
    r.deleted = std::atoll(PQcmdTuples(deleted->get()));
    auto upserted = Exec(target, UpsertSql(t, stage), {}, "upsert");
    if (!upserted.ok()) return upserted.status();
    r.upserted = std::atoll(PQcmdTuples(upserted->get()));
  }
  if (auto st = Exec(target, "commit"); !st.ok()) return st.status();
  return absl::OkStatus();
}

// Sequences owned by the table (serial, identity) set on the target past the
// source's value, as data movement does.
absl::Status AdvanceSequences(const Side& source, const Side& target, const Table& t) {
  auto seqs = Exec(source,
                   "select quote_ident(sn.nspname) || '.' || quote_ident(s.relname), ps.last_value "
                   "from pg_class s join pg_namespace sn on sn.oid = s.relnamespace "
                   "join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = s.oid "
                   " and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i') "
                   "join pg_sequences ps on ps.schemaname = sn.nspname and ps.sequencename = s.relname "
                   "where s.relkind = 'S' and d.refobjid = $1::oid and ps.last_value is not null "
                   "and ps.increment_by > 0",
                   {t.oid}, "read sequences");
  if (!seqs.ok()) return seqs.status();
  for (int i = 0; i < PQntuples(seqs->get()); ++i) {
    const std::string name = Value(*seqs, i, 0), value = Value(*seqs, i, 1);
    auto exists = Exec(target, "select to_regclass($1) is not null", {name}, "find sequence " + name);
    if (!exists.ok()) return exists.status();
    if (Value(*exists, 0, 0) != "t") continue;
    // The name comes quoted from quote_ident on the source.
    if (auto st = Exec(target,
                       absl::StrCat("select setval($1::regclass, $2::bigint, true) from ", name,
                                    " where not is_called or last_value < $2::bigint"),
                       {name, value}, "advance sequence " + name);
        !st.ok())
      return st.status();
  }
  return absl::OkStatus();
}

// The verifier's comparison (control/backend_inspector.cc): row count and a
// sum of row hashes, so row order does not matter.
absl::StatusOr<bool> Equal(const Side& source, const Side& target, const Table& t) {
  const std::string sql = "select count(*), coalesce(sum(hashtext(t::text)::bigint), 0) from " + t.quoted + " t";
  auto a = Exec(source, sql, {}, "checksum");
  if (!a.ok()) return a.status();
  auto b = Exec(target, sql, {}, "checksum");
  if (!b.ok()) return b.status();
  return Value(*a, 0, 0) == Value(*b, 0, 0) && Value(*a, 0, 1) == Value(*b, 0, 1);
}

absl::Status RepairOne(const Side& source, const Side& target, Table& t, PgTableRepair& r) {
  if (auto st = Describe(source, target, t); !st.ok()) return st;
  r.has_primary_key = !t.pk.empty();
  if (auto st = Resync(source, target, t, r); !st.ok()) {
    if (PQtransactionStatus(target.conn) != PQTRANS_IDLE) (void)Exec(target, "rollback");
    return st;
  }
  r.ok = true;
  auto equal = Equal(source, target, t);
  if (!equal.ok()) return equal.status();
  r.equal = *equal;
  return AdvanceSequences(source, target, t);
}

}  // namespace

absl::StatusOr<std::vector<PgTableRepair>> RepairPostgresTables(const routing::Backend& source,
                                                                const routing::Backend& target,
                                                                const std::vector<std::string>& tables) {
  auto src = PgConnect(source, "turnout-repair");
  if (!src.ok()) return src.status();
  auto dst = PgConnect(target, "turnout-repair");
  if (!dst.ok()) return dst.status();
  for (PGconn* c : {src->get(), dst->get()}) PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  const Side from{src->get(), "source"}, to{dst->get(), "target"};
  // As logical replication: foreign keys and user triggers do not fire for
  // rows that only catch up with the source. Refused for a role that may not
  // set it; then they apply.
  (void)Exec(to, "set session_replication_role = replica");
  std::vector<PgTableRepair> out;
  std::map<std::string, std::size_t> done;  // resolved name -> its result
  for (const auto& name : tables) {
    PgTableRepair& r = out.emplace_back();
    r.table = name;
    if (PQstatus(from.conn) != CONNECTION_OK || PQstatus(to.conn) != CONNECTION_OK) {
      r.error = "connection lost";
      continue;
    }
    const absl::Time start = absl::Now();
    Table t;
    if (auto st = Resolve(from, r, t); !st.ok()) {
      r.error = std::string(st.message());
      continue;
    }
    // "accounts" and "public.accounts" are one table: repaired once.
    if (auto it = done.find(r.resolved); it != done.end()) {
      r = out[it->second];
      r.table = name;
      continue;
    }
    done.emplace(r.resolved, out.size() - 1);
    if (auto st = RepairOne(from, to, t, r); !st.ok()) r.error = std::string(st.message());
    r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  }
  return out;
}

}  // namespace turnout::control
