#include "control/pg_table_repair.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "control/pg_client.h"
#include "control/pg_sequences.h"
#include "control/pg_verify.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

// A table's moving figure (PgTableRepairStep), told to the caller's progress.
class Step {
 public:
  Step(const PgTableRepairProgress& progress, std::string table) : progress_(progress), table_(std::move(table)) {}
  void Add(std::int64_t n) { At(rows_ + n); }
  // Never backwards: a COPY counted in steps of 20,000 ends at its exact count.
  void At(std::int64_t rows) {
    rows_ = std::max(rows_, rows);
    if (progress_) progress_({table_, rows_, false});
  }
  std::int64_t rows() const { return rows_; }

 private:
  const PgTableRepairProgress& progress_;
  const std::string table_;
  std::int64_t rows_ = 0;
};

struct Table {
  std::string oid;     // on the source
  std::string quoted;  // "schema"."table"
  std::vector<std::string> columns;  // quoted: the source's, not generated, present on the target
  std::vector<std::string> types;    // of `columns`, on the target (format_type)
  std::vector<std::string> pk;       // quoted
};

// The journal's name as the classifier wrote it (unquoted parts folded to
// lower case, quoted ones verbatim): a schema-qualified match first, else
// the table the search path shows, else the only table of that name.
absl::Status Resolve(const PgSide& source, PgTableRepair& r, Table& t) {
  auto found = PgExec(source,
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
  const bool exact = PgValue(*found, 0, 1) == r.table;
  if (!exact && n > 1) {
    auto visible = PgExec(source, "select pg_table_is_visible($1::oid)", {PgValue(*found, 0, 0)}, "find table");
    if (!visible.ok()) return visible.status();
    if (PgValue(*visible, 0, 0) != "t")
      return absl::FailedPreconditionError("ambiguous: several schemas hold it and none is on the search path");
  }
  t.oid = PgValue(*found, 0, 0);
  r.resolved = PgValue(*found, 0, 1);
  t.quoted = PgValue(*found, 0, 2);
  return absl::OkStatus();
}

absl::Status Describe(const PgSide& source, const PgSide& target, Table& t) {
  auto on_target = PgExec(target, "select to_regclass($1)::oid", {t.quoted}, "find table");
  if (!on_target.ok()) return on_target.status();
  if (PQgetisnull(on_target->get(), 0, 0)) return absl::FailedPreconditionError("does not exist on the target");
  const std::string columns_sql =
      "select quote_ident(attname), format_type(atttypid, atttypmod) from pg_attribute "
      "where attrelid = $1::oid and attnum > 0 "
      "and not attisdropped and attgenerated = '' order by attnum";
  auto src_cols = PgExec(source, columns_sql, {t.oid}, "read columns");
  if (!src_cols.ok()) return src_cols.status();
  auto dst_cols = PgExec(target, columns_sql, {PgValue(*on_target, 0, 0)}, "read columns");
  if (!dst_cols.ok()) return dst_cols.status();
  std::map<std::string, std::string> on_dst;  // column -> type
  for (int k = 0; k < PQntuples(dst_cols->get()); ++k) on_dst[PgValue(*dst_cols, k, 0)] = PgValue(*dst_cols, k, 1);
  for (int k = 0; k < PQntuples(src_cols->get()); ++k) {
    std::string c = PgValue(*src_cols, k, 0);
    if (auto it = on_dst.find(c); it != on_dst.end()) {
      t.columns.push_back(std::move(c));
      t.types.push_back(it->second);
    }
  }
  if (t.columns.empty()) return absl::FailedPreconditionError("no column in common");
  auto pk = PgExec(source,
                 "select quote_ident(a.attname) from pg_index i "
                 "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                 "where i.indrelid = $1::oid and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)",
                 {t.oid}, "read primary key");
  if (!pk.ok()) return pk.status();
  for (int k = 0; k < PQntuples(pk->get()); ++k) t.pk.push_back(PgValue(*pk, k, 0));
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

// Opens the table's transaction on the target with the table locked: writes
// wait for the repair (reads do not); a lock held elsewhere for long fails
// this table rather than the whole repair.
absl::Status BeginLocked(const PgSide& target, const Table& t) {
  for (const char* sql : {"begin", "set local lock_timeout = '10s'"})
    if (auto st = PgExec(target, sql); !st.ok()) return st.status();
  return PgExec(target, absl::StrCat("lock table ", t.quoted, " in share row exclusive mode"), {}, "lock").status();
}

// An empty copy of the table's copied columns, dropped at commit.
absl::Status CreateStage(const PgSide& target, const Table& t, const std::string& stage) {
  return PgExec(target,
                absl::StrCat("create temp table ", stage, " on commit drop as select ", absl::StrJoin(t.columns, ", "),
                             " from ", t.quoted, " with no data"),
                {}, "staging table")
      .status();
}

// The table's transaction on the target. Every statement of it fails the table.
absl::Status Resync(const PgSide& source, const PgSide& target, const Table& t, PgTableRepair& r, Step& step) {
  const std::string cols = absl::StrJoin(t.columns, ", ");
  const std::string copy_out = absl::StrCat("copy (select ", cols, " from ", t.quoted, ") to stdout");
  // PgCopyAcross asks every 20,000 chunks; a text COPY sends one row a chunk.
  const auto copied = [&step] {
    step.Add(20000);
    return absl::OkStatus();
  };
  if (auto st = BeginLocked(target, t); !st.ok()) return st;
  if (t.pk.empty()) {
    auto deleted = PgExec(target, "delete from " + t.quoted, {}, "delete");
    if (!deleted.ok()) return deleted.status();
    r.deleted = PgAffected(*deleted);
    step.Add(r.deleted);
    auto rows = PgCopyAcross(source, copy_out, target, absl::StrCat("copy ", t.quoted, " (", cols, ") from stdin"),
                             "copy out", "copy in", copied);
    if (!rows.ok()) return rows.status();
    r.source_rows = r.upserted = *rows;
    step.At(r.deleted + *rows);
  } else {
    const std::string stage = "turnout_repair_stage";
    if (auto st = CreateStage(target, t, stage); !st.ok()) return st;
    auto rows = PgCopyAcross(source, copy_out, target, absl::StrCat("copy ", stage, " (", cols, ") from stdin"),
                             "copy out", "copy in", copied);
    if (!rows.ok()) return rows.status();
    r.source_rows = *rows;
    step.At(*rows);
    // Statistics, so the anti-join below is planned as a hash join.
    if (auto st = PgExec(target, "analyze " + stage, {}, "analyze staging table"); !st.ok()) return st.status();
    std::vector<std::string> match;
    for (const auto& k : t.pk) match.push_back(absl::StrCat("s.", k, " = t.", k));
    auto deleted = PgExec(target,
                        absl::StrCat("delete from ", t.quoted, " t where not exists (select 1 from ", stage, " s where ",
                                     absl::StrJoin(match, " and "), ")"),
                        {}, "delete rows absent from the source");
    if (!deleted.ok()) return deleted.status();
    r.deleted = PgAffected(*deleted);
    step.Add(r.deleted);
    auto upserted = PgExec(target, UpsertSql(t, stage), {}, "upsert");
    if (!upserted.ok()) return upserted.status();
    r.upserted = PgAffected(*upserted);
  }
  if (auto st = PgExec(target, "commit"); !st.ok()) return st.status();
  return absl::OkStatus();
}

// The verifier's comparison (control/pg_verify.h), in one pass: equal row
// multisets on both.
absl::StatusOr<bool> Equal(const PgSide& source, const PgSide& target, const PgTableRepair& r) {
  PgVerifyOptions o;
  o.recheck_delay = absl::ZeroDuration();
  o.describe_columns = false;
  o.max_keys = 0;
  auto v = VerifyPgTable(source, target, r.resolved, o);
  if (!v.ok()) return v.status();
  return v->equal;
}

// Rows of a verification's keys as JSON text ([["k1", "k2"], …]), from
// `from` on, at most kRowBatch of them; `from` is moved past them.
constexpr std::size_t kRowBatch = 1000;
std::string KeyBatch(const std::vector<PgRowDifference>& rows, std::size_t& from) {
  json::array keys;
  for (; from < rows.size() && keys.size() < kRowBatch; ++from) {
    json::array k;
    for (const auto& v : rows[from].key) k.emplace_back(v);
    keys.push_back(std::move(k));
  }
  return json::serialize(keys);
}

// `(e->>0)::type0, (e->>1)::type1, …`: JSON array elements of text cast
// to `types`, so every type reads back from its own text form.
// The rows of `r` as a JSON array of arrays of text (null for NULL), the
// form Casts() reads back on the other side.
json::array RowsAsJson(const PgResult& r, int columns) {
  json::array rows;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    json::array row;
    for (int c = 0; c < columns; ++c)
      if (PQgetisnull(r.get(), i, c)) row.emplace_back(nullptr);
      else row.emplace_back(PgValue(r, i, c));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string Casts(const std::vector<std::string>& types) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < types.size(); ++i) out.push_back(absl::StrCat("(e->>", i, ")::", types[i]));
  return absl::StrJoin(out, ", ");
}

// The table's transaction on the target, for the rows `v` found: the
// source's current version of each listed key is staged, listed keys the
// source no longer has are deleted, staged rows upserted. Rows not listed
// are not read, locked beyond the table lock, or written.
absl::Status ResyncRows(const PgSide& source, const PgSide& target, const Table& t, const PgTableVerify& v,
                        PgTableRepair& r, Step& step) {
  const std::string cols = absl::StrJoin(t.columns, ", ");
  const std::string pk = "(" + absl::StrJoin(t.pk, ", ") + ")";
  const std::string listed = absl::StrCat("(select ", Casts(v.key_types), " from jsonb_array_elements($1::jsonb) e)");
  std::vector<std::string> text_cols;
  for (const auto& c : t.columns) text_cols.push_back(c + "::text");
  if (auto st = BeginLocked(target, t); !st.ok()) return st;
  const std::string stage = "turnout_repair_rows";
  if (auto st = CreateStage(target, t, stage); !st.ok()) return st;
  std::vector<std::string> match;
  for (const auto& k : t.pk) match.push_back(absl::StrCat("s.", k, " = t.", k));
  for (std::size_t next = 0; next < v.differences.size();) {
    const std::size_t first = next;
    const std::string keys = KeyBatch(v.differences, next);
    auto rows = PgExec(source,
                       absl::StrCat("select ", absl::StrJoin(text_cols, ", "), " from ", t.quoted, " where ", pk, " in ",
                                    listed),
                       {keys}, "read differing rows");
    if (!rows.ok()) return rows.status();
    const json::array staged = RowsAsJson(*rows, static_cast<int>(t.columns.size()));
    if (auto st = PgExec(target,
                       absl::StrCat("insert into ", stage, " (", cols, ") select ", Casts(t.types),
                                    " from jsonb_array_elements($1::jsonb) e"),
                       {json::serialize(staged)}, "stage differing rows");
        !st.ok())
      return st.status();
    auto deleted = PgExec(target,
                          absl::StrCat("delete from ", t.quoted, " t where ", pk, " in ", listed,
                                       " and not exists (select 1 from ", stage, " s where ",
                                       absl::StrJoin(match, " and "), ")"),
                          {keys}, "delete rows absent from the source");
    if (!deleted.ok()) return deleted.status();
    r.deleted += PgAffected(*deleted);
    step.Add(static_cast<std::int64_t>(next - first));
  }
  auto upserted = PgExec(target, UpsertSql(t, stage), {}, "upsert");
  if (!upserted.ok()) return upserted.status();
  r.upserted = PgAffected(*upserted);
  if (auto st = PgExec(target, "commit"); !st.ok()) return st.status();
  return absl::OkStatus();
}

// A table without a key, for the rows `v` found (as multisets, by the md5
// of each row's text): of a row the target holds `count` copies too many,
// exactly that many are deleted (by ctid); of a row the source holds more
// copies of, `count` copies are read there and inserted. Other rows are not
// read or written.
absl::Status ResyncMultiset(const PgSide& source, const PgSide& target, const Table& t, const PgTableVerify& v,
                            PgTableRepair& r, Step& step) {
  const std::string cols = absl::StrJoin(t.columns, ", ");
  // The verifier's digest text of a row, on either side (same session settings).
  const std::string row_md5 = absl::StrCat("md5(row(", absl::StrJoin(v.row_columns, ", "), ")::text)");
  std::vector<std::string> text_cols;
  for (const auto& c : t.columns) text_cols.push_back(c + "::text");
  if (auto st = BeginLocked(target, t); !st.ok()) return st;
  for (const auto& d : v.differences) {
    const std::string count = std::to_string(d.count);
    if (d.kind == PgRowDifference::Kind::kOnlyNew) {
      auto deleted = PgExec(target,
                            absl::StrCat("delete from ", t.quoted, " where ctid = any(array(select ctid from ", t.quoted,
                                         " where ", row_md5, " = $1 limit $2::bigint))"),
                            {d.row_md5, count}, "delete extra copies");
      if (!deleted.ok()) return deleted.status();
      r.deleted += PgAffected(*deleted);
      step.Add(d.count);
      continue;
    }
    auto rows = PgExec(source,
                       absl::StrCat("select ", absl::StrJoin(text_cols, ", "), " from ", t.quoted, " where ", row_md5,
                                    " = $1 limit $2::bigint"),
                       {d.row_md5, count}, "read missing copies");
    if (!rows.ok()) return rows.status();
    const json::array staged = RowsAsJson(*rows, static_cast<int>(t.columns.size()));
    auto inserted = PgExec(target,
                           absl::StrCat("insert into ", t.quoted, " (", cols, ") overriding system value select ",
                                        Casts(t.types), " from jsonb_array_elements($1::jsonb) e"),
                           {json::serialize(staged)}, "insert missing copies");
    if (!inserted.ok()) return inserted.status();
    r.upserted += PgAffected(*inserted);
    step.Add(d.count);
  }
  if (auto st = PgExec(target, "commit"); !st.ok()) return st.status();
  return absl::OkStatus();
}

// The rows that differ, when the verifier can name every one of them (by
// primary key, or as whole rows of a table without one; the same columns on
// both sides, at most kMaxRowRepair rows);
// otherwise nothing, and the table is resynchronised whole.
constexpr std::size_t kMaxRowRepair = 20000;
absl::StatusOr<std::optional<PgTableVerify>> DifferingRows(const PgSide& source, const PgSide& target, const Table& t,
                                                           const PgTableRepair& r) {
  PgVerifyOptions o;
  // The repair copies each listed row as the source holds it when copied,
  // so a row that was only in flight is rewritten with equal values: no
  // need to wait and recheck.
  o.recheck_delay = absl::ZeroDuration();
  o.describe_columns = false;
  o.max_keys = kMaxRowRepair;
  auto v = VerifyPgTable(source, target, r.resolved, o);
  if (!v.ok()) return v.status();
  if (!v->error_new.empty() || !v->complete() || !v->columns_only_old.empty() || !v->columns_only_new.empty() ||
      v->primary_key.size() != t.pk.size())
    return std::optional<PgTableVerify>();
  return std::optional<PgTableVerify>(*std::move(v));
}

absl::Status RepairOne(const PgSide& source, const PgSide& target, Table& t, PgTableRepair& r, Step& step) {
  if (auto st = Describe(source, target, t); !st.ok()) return st;
  r.has_primary_key = !t.pk.empty();
  auto rows = DifferingRows(source, target, t, r);
  if (!rows.ok()) return rows.status();
  absl::Status st;
  if (*rows) {
    r.method = "rows";
    r.source_rows = (*rows)->old_rows;
    r.rows_differing = (*rows)->differences_total;
    if ((*rows)->differences_total > 0)
      st = t.pk.empty() ? ResyncMultiset(source, target, t, **rows, r, step)
                        : ResyncRows(source, target, t, **rows, r, step);
  } else {
    r.method = "table";
    st = Resync(source, target, t, r, step);
  }
  if (!st.ok()) {
    if (PQtransactionStatus(target.conn) != PQTRANS_IDLE) (void)PgExec(target, "rollback");
    return st;
  }
  r.ok = true;
  auto equal = Equal(source, target, r);
  if (!equal.ok()) return equal.status();
  r.equal = *equal;
  return PgAdvanceSequences(source, target, {t.oid}).status();
}

}  // namespace

absl::StatusOr<std::vector<PgTableRepair>> RepairPostgresTables(const routing::Backend& source,
                                                                const routing::Backend& target,
                                                                const std::vector<std::string>& tables,
                                                                const PgTableRepairProgress& progress) {
  auto src = PgConnect(source, "turnout-repair");
  if (!src.ok()) return src.status();
  auto dst = PgConnect(target, "turnout-repair");
  if (!dst.ok()) return dst.status();
  for (PGconn* c : {src->get(), dst->get()}) PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  const PgSide from{src->get(), "source"}, to{dst->get(), "target"};
  // Values travel as text between the two (verifier, row repair, COPY):
  // both print and parse them alike.
  for (const PgSide* side : {&from, &to})
    if (auto st = PrepareVerifySession(*side); !st.ok()) return st;
  // As logical replication: foreign keys and user triggers do not fire for
  // rows that only catch up with the source. Refused for a role that may not
  // set it; then they apply.
  (void)PgExec(to, "set session_replication_role = replica");
  std::vector<PgTableRepair> out;
  std::map<std::string, std::size_t> done;  // resolved name -> its result
  for (const auto& name : tables) {
    PgTableRepair& r = out.emplace_back();
    r.table = name;
    // Every name ends once; its rows count only when its transaction committed.
    std::int64_t committed = 0;
    auto end = [&](const PgTableRepair& res) {
      if (progress) progress({res.resolved.empty() ? res.table : res.resolved, committed, true});
    };
    if (PgConnectionLost(from.conn) || PgConnectionLost(to.conn)) {
      r.error = "connection lost";
      end(r);
      continue;
    }
    const absl::Time start = absl::Now();
    Table t;
    if (auto st = Resolve(from, r, t); !st.ok()) {
      r.error = std::string(st.message());
      end(r);
      continue;
    }
    // "accounts" and "public.accounts" are one table: repaired once.
    if (auto it = done.find(r.resolved); it != done.end()) {
      r = out[it->second];
      r.table = name;
      end(r);
      continue;
    }
    done.emplace(r.resolved, out.size() - 1);
    Step step(progress, r.resolved);
    step.At(0);
    if (auto st = RepairOne(from, to, t, r, step); !st.ok()) r.error = std::string(st.message());
    if (r.ok) committed = step.rows();
    r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    end(r);
  }
  return out;
}

}  // namespace turnout::control
