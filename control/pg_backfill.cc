#include "control/pg_backfill.h"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/pg_client.h"
#include "control/pg_copy_ranges.h"
#include "control/pg_sequences.h"
#include "control/pg_set_aside_indexes.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

// One side of the copy: its own connection, named "old" or "new" in messages.
using Side = PgOwnedSide;

absl::StatusOr<Side> Connect(const routing::Backend& b, const char* name) {
  return PgConnectSide(b, name, "turnout-data-movement");
}

std::string Literal(const Side& s, const std::string& v) { return PgLiteral(s.get(), v); }

// Session settings on new: foreign keys and user triggers off (the order
// tables are copied in must not matter), as logical replication does.
absl::Status PrepareTarget(const Side& to, RouteProgress& progress, std::mutex* mu) {
  if (auto r = PgExec(to, "SET session_replication_role = replica"); !r.ok()) {
    if (PgConnectionLost(to.get())) return r.status();
    const std::string note = "session_replication_role = replica refused on new: foreign keys and triggers apply";
    std::unique_lock<std::mutex> l;
    if (mu) l = std::unique_lock<std::mutex>(*mu);
    if (std::find(progress.notes.begin(), progress.notes.end(), note) == progress.notes.end())
      progress.notes.push_back(note);
  }
  return absl::OkStatus();
}

struct Table {
  std::string oid;     // on old
  std::string name;    // schema.table, the checkpoint's key
  std::string quoted;  // "schema"."table"
  std::vector<std::string> columns;   // quoted; copied (old's, not generated, present on new)
  std::vector<std::string> pk;        // quoted
  std::vector<std::string> pk_types;  // format_type()
  // COPY in binary: the spec asks for it and every copied column has the
  // same built-in type on both sides (see FormatClause).
  bool binary = true;
  // Per copied column: character(n) on both sides, its padding cut on the
  // way when the COPY is binary (PgCopyAcross).
  std::vector<bool> trim_padding;
  // Checkpoint state.
  bool done = false;
  std::vector<std::string> last;  // text of the last key copied; empty: from the start
  std::int64_t copied = 0;
  std::int64_t written = 0;
  std::int64_t total = -1;
};

bool InScope(const std::string& qualified, const std::string& bare, const std::vector<std::string>& scope) {
  if (scope.empty()) return true;
  return std::any_of(scope.begin(), scope.end(), [&](const std::string& t) { return t == qualified || t == bare; });
}

// The state store's own tables never travel with the data.
bool IsStateStoreTable(const std::string& bare) { return bare == "turnout_migrations" || bare == "turnout_audit"; }

// Tables to copy, with their columns and keys; tables without a primary key
// are noted and left out. `skip_missing`: a table not on new is left out
// too (for the sequences at a stream's catch-up: a table created on old
// since reaches new by its place in the stream, later), else an error.
absl::StatusOr<std::vector<Table>> Discover(const Side& from, const Side& to, const std::vector<std::string>& scope,
                                            RouteProgress& progress, bool skip_missing = false) {
  auto rel = PgExec(from,
                  "select c.oid, n.nspname || '.' || c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
                  "c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                  "where c.relkind in ('r', 'p') and not c.relispartition "
                  "and n.nspname not in ('information_schema', '_turnout') and n.nspname not like 'pg\\_%' order by 2",
                  {}, "list tables");
  if (!rel.ok()) return rel.status();
  std::vector<Table> tables;
  std::vector<std::string> found;
  for (int i = 0; i < PQntuples(rel->get()); ++i) {
    Table t;
    t.oid = PgValue(*rel, i, 0);
    t.name = PgValue(*rel, i, 1);
    t.quoted = PgValue(*rel, i, 2);
    const std::string bare = PgValue(*rel, i, 3);
    if (!InScope(t.name, bare, scope) || (scope.empty() && IsStateStoreTable(bare))) continue;
    found.push_back(t.name);
    found.push_back(bare);
    auto pk = PgExec(from,
                   "select quote_ident(a.attname), format_type(a.atttypid, a.atttypmod) from pg_index i "
                   "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                   "where i.indrelid = $1::oid and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)",
                   {t.oid}, "primary key of " + t.name);
    if (!pk.ok()) return pk.status();
    if (PQntuples(pk->get()) == 0) {
      AddNote(progress, absl::StrCat("table ", t.name, " has no primary key: not copied"));
      continue;
    }
    for (int k = 0; k < PQntuples(pk->get()); ++k) {
      t.pk.push_back(PgValue(*pk, k, 0));
      t.pk_types.push_back(PgValue(*pk, k, 1));
    }
    auto target = PgExec(to, "select to_regclass($1)::oid", {t.quoted}, "find " + t.name);
    if (!target.ok()) return target.status();
    if (PQgetisnull(target->get(), 0, 0)) {
      if (skip_missing) continue;
      return absl::FailedPreconditionError(absl::StrCat("table ", t.name, " does not exist on new"));
    }
    // Name, type, whether the type is built in (an OID below
    // FirstNormalObjectId, 16384: the same on every server), and whether it
    // is character(n) (bpchar, 1042, with a length).
    const std::string columns_sql =
        "select quote_ident(attname), format_type(atttypid, atttypmod), atttypid < 16384, "
        "atttypid = 1042 and atttypmod >= 0 from pg_attribute "
        "where attrelid = $1::oid and attnum > 0 and not attisdropped and attgenerated = '' order by attnum";
    auto old_cols = PgExec(from, columns_sql, {t.oid}, "columns of " + t.name);
    if (!old_cols.ok()) return old_cols.status();
    auto new_cols = PgExec(to, columns_sql, {PgValue(*target, 0, 0)}, "columns of " + t.name);
    if (!new_cols.ok()) return new_cols.status();
    std::vector<std::string> on_new, new_types;
    for (int k = 0; k < PQntuples(new_cols->get()); ++k) {
      on_new.push_back(PgValue(*new_cols, k, 0));
      new_types.push_back(PgValue(*new_cols, k, 1));
    }
    for (int k = 0; k < PQntuples(old_cols->get()); ++k) {
      std::string c = PgValue(*old_cols, k, 0);
      auto at = std::find(on_new.begin(), on_new.end(), c);
      if (at == on_new.end()) {
        AddNote(progress, absl::StrCat("column ", t.name, ".", c, " does not exist on new: not copied"));
        continue;
      }
      if (PgValue(*old_cols, k, 2) != "t" || PgValue(*old_cols, k, 1) != new_types[at - on_new.begin()]) t.binary = false;
      t.trim_padding.push_back(PgValue(*old_cols, k, 3) == "t");
      t.columns.push_back(std::move(c));
    }
    for (const auto& k : t.pk)
      if (std::find(t.columns.begin(), t.columns.end(), k) == t.columns.end())
        return absl::FailedPreconditionError(absl::StrCat("table ", t.name, ": primary key column ", k, " does not exist on new"));
    tables.push_back(std::move(t));
  }
  for (const auto& s : scope)
    if (std::find(found.begin(), found.end(), s) == found.end())
      AddNote(progress, absl::StrCat("scope table ", s, " does not exist on old"));
  return tables;
}

// Row-count estimate: exact below a million rows, the planner's above.
absl::StatusOr<std::int64_t> Estimate(const Side& from, const Table& t) {
  auto est = PgExec(from, "select reltuples::bigint from pg_class where oid = $1::oid", {t.oid}, "estimate " + t.name);
  if (!est.ok()) return est.status();
  const std::int64_t planner = std::atoll(PgValue(*est, 0, 0).c_str());
  if (planner >= 1000000) return planner;
  auto count = PgExec(from, "select count(*) from " + t.quoted, {}, "count " + t.name);
  if (!count.ok()) return count.status();
  return std::atoll(PgValue(*count, 0, 0).c_str());
}

// The checkpoint: the pass (scan) and per table done / last key / counters.
json::value CheckpointOf(const std::vector<Table>& tables, int pass) {
  json::array a;
  for (const auto& t : tables) {
    json::array last;
    for (const auto& v : t.last) last.emplace_back(v);
    a.push_back(json::object{{"table", t.name},     {"done", t.done},       {"last", std::move(last)},
                             {"copied", t.copied},  {"written", t.written}, {"total", t.total}});
  }
  return json::object{{"pass", pass}, {"tables", std::move(a)}};
}

void RestoreCheckpoint(const json::value& cp, std::vector<Table>& tables, int& pass) {
  pass = 1;
  if (!cp.is_object()) return;
  if (auto* s = cp.as_object().if_contains("pass"); s && s->is_number()) pass = std::max(1, s->to_number<int>());
  auto* arr = cp.as_object().if_contains("tables");
  if (arr == nullptr || !arr->is_array()) return;
  auto num = [](const json::object& o, const char* k) -> std::int64_t {
    auto* f = o.if_contains(k);
    return f && f->is_number() ? f->to_number<std::int64_t>() : 0;
  };
  for (const auto& e : arr->as_array()) {
    if (!e.is_object()) continue;
    const auto& o = e.as_object();
    auto* name = o.if_contains("table");
    if (name == nullptr || !name->is_string()) continue;
    for (auto& t : tables) {
      if (t.name != name->as_string()) continue;
      if (auto* d = o.if_contains("done"); d && d->is_bool()) t.done = d->as_bool();
      if (auto* l = o.if_contains("last"); l && l->is_array())
        for (const auto& v : l->as_array())
          if (v.is_string()) t.last.emplace_back(v.as_string());
      if (t.last.size() != t.pk.size()) t.last.clear();  // key changed: start the table over
      t.copied = num(o, "copied");
      t.written = num(o, "written");
      if (o.contains("total")) t.total = num(o, "total");
    }
  }
}

// Route counters from the tables'; `passes` scan passes read each table again.
void Summarize(const std::vector<Table>& tables, RouteProgress& progress, int passes = 1) {
  progress.copied = progress.written = progress.total = 0;
  for (const auto& t : tables) {
    progress.copied += t.copied;
    progress.written += t.written;
    progress.total += std::max<std::int64_t>(t.total * passes, t.done ? t.copied : 0);
  }
}

std::string KeyList(const Table& t, const char* suffix = "") {
  std::vector<std::string> v;
  for (const auto& k : t.pk) v.push_back(k + suffix);
  return absl::StrJoin(v, ", ");
}

// ($1::type, ...) as literals: COPY takes no parameters.
std::string KeyLiteral(const Side& s, const Table& t, const std::vector<std::string>& values) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < values.size(); ++i) v.push_back(Literal(s, values[i]) + "::" + t.pk_types[i]);
  return "(" + absl::StrJoin(v, ", ") + ")";
}

// The statement that applies the staged rows to the table by the rule.
std::string ApplySql(const Table& t, const std::string& stage, ConflictRule rule) {
  const std::string cols = absl::StrJoin(t.columns, ", ");
  std::string sql = absl::StrCat("insert into ", t.quoted, " as turnout_target (", cols, ") overriding system value select ",
                                 cols, " from ", stage, " on conflict (", KeyList(t), ") do ");
  std::vector<std::string> sets;
  for (const auto& c : t.columns) {
    if (std::find(t.pk.begin(), t.pk.end(), c) != t.pk.end()) continue;
    if (rule == ConflictRule::kReplace) sets.push_back(absl::StrCat(c, " = excluded.", c));
    if (rule == ConflictRule::kMerge) sets.push_back(absl::StrCat(c, " = coalesce(turnout_target.", c, ", excluded.", c, ")"));
  }
  if (rule == ConflictRule::kNone || sets.empty()) return sql + "nothing";
  return sql + "update set " + absl::StrJoin(sets, ", ");
}

// Binary COPY skips text output and input parsing on both servers, but a
// value's binary form is only read back by the same type: int4 is not read
// as int8, and arrays and records carry their element types' OIDs, which
// differ between servers for user-defined types (enums, composites,
// domains, extensions). Text is read by the target's input functions, which
// also convert between compatible types. So: binary when the spec allows it
// and every copied column has the same built-in type on both sides.
std::string FormatClause(const DataSpec& spec, const Table& t) {
  return spec.binary && t.binary ? " (format binary)" : "";
}

// The columns PgCopyAcross trims: only a binary COPY is rewritten (the
// same type on both sides, so a character(n) column is one on new too).
std::vector<bool> TrimPadding(const DataSpec& spec, const Table& t) {
  return spec.binary && t.binary ? t.trim_padding : std::vector<bool>{};
}

// One keyset batch of `t` (scan): rows after t.last up to the batch's last
// key, read in one REPEATABLE READ transaction on old and applied in one
// transaction on new. Returns false once the table has no rows left.
absl::StatusOr<bool> ScanBatch(const Side& from, const Side& to, Table& t, const std::string& stage,
                               const DataSpec& spec) {
  const std::string pk = KeyList(t);
  const std::string after = t.last.empty() ? "" : absl::StrCat("(", pk, ") > ", KeyLiteral(from, t, t.last));
  if (auto r = PgExec(from, "begin isolation level repeatable read read only"); !r.ok()) return r.status();
  std::vector<std::string> texts;
  for (const auto& k : t.pk) texts.push_back("s." + k + "::text");
  auto upper = PgExec(from,
                    absl::StrCat("select ", absl::StrJoin(texts, ", "), " from (select ", pk, " from ", t.quoted,
                                 after.empty() ? "" : " where " + after, " order by ", pk, " limit ",
                                 spec.batch_size > 0 ? spec.batch_size : DataSpec::kPgBatch,
                                 ") s order by ", KeyList(t, " desc"), " limit 1"),
                    {}, "read keys of " + t.name);
  if (!upper.ok()) return upper.status();
  if (PQntuples(upper->get()) == 0) {
    (void)PgExec(from, "commit");
    return false;
  }
  std::vector<std::string> last;
  for (std::size_t k = 0; k < t.pk.size(); ++k) last.push_back(PgValue(*upper, 0, static_cast<int>(k)));
  const std::string range = absl::StrCat(after.empty() ? "" : after + " and ", "(", pk, ") <= ", KeyLiteral(from, t, last));
  if (auto r = PgExec(to, "begin"); !r.ok()) return r.status();
  const std::string cols = absl::StrJoin(t.columns, ", ");
  auto rows = PgCopyAcross(from,
                           absl::StrCat("copy (select ", cols, " from ", t.quoted, " where ", range, " order by ", pk,
                                        ") to stdout", FormatClause(spec, t)),
                           to, absl::StrCat("copy ", stage, " (", cols, ") from stdin", FormatClause(spec, t)),
                           "copy " + t.name, "copy into staging for " + t.name, {}, TrimPadding(spec, t));
  if (!rows.ok()) {
    (void)PgExec(to, "rollback");
    (void)PgExec(from, "rollback");
    return rows.status();
  }
  auto applied = PgExec(to, ApplySql(t, stage, spec.rule), {}, "apply rows to " + t.name);
  if (!applied.ok()) {
    (void)PgExec(to, "rollback");
    (void)PgExec(from, "rollback");
    return applied.status();
  }
  if (auto r = PgExec(to, "commit", {}, "commit on new"); !r.ok()) return r.status();
  (void)PgExec(from, "commit");
  t.last = std::move(last);
  t.copied += *rows;
  t.written += PgAffected(*applied);
  return true;
}

// What one piece of a table's snapshot copy moved.
struct PieceResult {
  std::int64_t copied = 0;
  std::int64_t written = 0;
};

// One range of `t` (the whole table when `range` is "") under the shared
// snapshot (the worker's transaction on old), applied in one transaction on
// new. `direct`: the rows go straight into the table (see CopySnapshot).
absl::StatusOr<PieceResult> SnapshotPiece(const Side& from, const Side& to, const Table& t, const std::string& range,
                                          bool direct, const DataSpec& spec, BackfillContext& ctx) {
  const std::string stage = "turnout_stage";
  const std::string cols = absl::StrJoin(t.columns, ", ");
  if (auto r = PgExec(to, "begin"); !r.ok()) return r.status();
  auto rollback = [&](absl::Status st) {
    (void)PgExec(to, "rollback");
    return st;
  };
  if (!direct) {
    if (auto r = PgExec(to, absl::StrCat("create temp table ", stage, " on commit drop as select ", cols, " from ",
                                         t.quoted, " with no data"),
                        {}, "staging table for " + t.name);
        !r.ok())
      return rollback(r.status());
  }
  // A long copy stops at the job's word (the caller drops both connections).
  auto rows = PgCopyAcross(
      from,
      absl::StrCat("copy (select ", cols, " from ", t.quoted, range.empty() ? "" : " where " + range, ") to stdout",
                   FormatClause(spec, t)),
      to, absl::StrCat("copy ", direct ? t.quoted : stage, " (", cols, ") from stdin", FormatClause(spec, t)),
      "copy " + t.name, (direct ? "copy into " : "copy into staging for ") + t.name,
      [&ctx] { return ctx.ShouldContinue() ? absl::OkStatus() : StoppedAtBatchBoundary(); }, TrimPadding(spec, t));
  if (!rows.ok()) return rollback(rows.status());
  PieceResult out{*rows, *rows};
  if (!direct) {
    auto applied = PgExec(to, ApplySql(t, stage, spec.rule), {}, "apply rows to " + t.name);
    if (!applied.ok()) return rollback(applied.status());
    out.written = PgAffected(*applied);
  }
  if (auto r = PgExec(to, "commit", {}, "commit on new"); !r.ok()) return r.status();
  return out;
}

// Every sequence owned by a copied table (pg_sequences.h), noted.
absl::Status AdvanceSequences(const Side& from, const Side& to, const std::vector<Table>& tables, RouteProgress& progress) {
  std::vector<std::string> oids;
  for (const auto& t : tables) oids.push_back(t.oid);
  auto seqs = PgAdvanceSequences(from, to, oids);
  if (!seqs.ok()) return seqs.status();
  for (const auto& s : *seqs) {
    if (s.missing) AddNote(progress, absl::StrCat("sequence ", s.name, " does not exist on new: not advanced"));
    else if (s.advanced) AddNote(progress, absl::StrCat("sequence ", s.name, " set to ", s.value, " on new"));
  }
  return absl::OkStatus();
}

absl::Status CopyScan(const routing::Backend& old_backend, const routing::Backend& new_backend,
                      const std::vector<std::string>& scope, const DataSpec& spec, RouteProgress& progress,
                      BackfillContext& ctx) {
  auto from = Connect(old_backend, "old");
  if (!from.ok()) return from.status();
  auto to = Connect(new_backend, "new");
  if (!to.ok()) return to.status();
  if (auto st = PrepareTarget(*to, progress, nullptr); !st.ok()) return st;
  auto tables = Discover(*from, *to, scope, progress);
  if (!tables.ok()) return tables.status();
  int pass = 1;
  RestoreCheckpoint(progress.checkpoint, *tables, pass);
  for (auto& t : *tables) {
    if (t.total >= 0) continue;
    auto n = Estimate(*from, t);
    if (!n.ok()) return n.status();
    t.total = *n;
  }
  const int passes = std::max(1, spec.passes);
  Summarize(*tables, progress, passes);
  progress.checkpoint = CheckpointOf(*tables, pass);
  if (auto st = ctx.Checkpoint(progress); !st.ok()) return st;

  // Each pass reads every table from its first key again: rows written on
  // old behind the cursor of an earlier pass are picked up.
  for (; pass <= passes; ++pass) {
    for (std::size_t i = 0; i < tables->size(); ++i) {
      Table& t = (*tables)[i];
      if (t.done) continue;
      const std::string stage = absl::StrCat("turnout_stage_", i);
      if (auto r = PgExec(*to, absl::StrCat("create temp table if not exists ", stage, " on commit delete rows as select ",
                                          absl::StrJoin(t.columns, ", "), " from ", t.quoted, " with no data"),
                        {}, "staging table for " + t.name);
          !r.ok())
        return r.status();
      for (;;) {
        if (!ctx.ShouldContinue()) return StoppedAtBatchBoundary();
        auto more = ScanBatch(*from, *to, t, stage, spec);
        if (!more.ok()) return more.status();
        if (!*more) t.done = true;
        Summarize(*tables, progress, passes);
        progress.checkpoint = CheckpointOf(*tables, pass);
        if (auto st = ctx.Checkpoint(progress); !st.ok()) return st;
        if (t.done) break;
        ctx.Sleep(spec.sleep);
      }
      (void)PgExec(*to, "drop table if exists " + stage);
    }
    if (pass == passes) break;
    for (auto& t : *tables) {
      t.done = false;
      t.last.clear();
    }
    ctx.Log(absl::StrCat("scan pass ", pass, " of ", passes, " done"));
  }
  if (auto st = AdvanceSequences(*from, *to, *tables, progress); !st.ok()) return st;
  progress.checkpoint = CheckpointOf(*tables, passes);
  return absl::OkStatus();
}

absl::Status CopySnapshot(const routing::Backend& old_backend, const routing::Backend& new_backend,
                          const std::vector<std::string>& scope, const DataSpec& spec, RouteProgress& progress,
                          BackfillContext& ctx, const std::string& exported_snapshot, const PgCopySplit& split) {
  // The exporting transaction stays open until every worker has copied.
  auto coordinator = Connect(old_backend, "old");
  if (!coordinator.ok()) return coordinator.status();
  auto target = Connect(new_backend, "new");
  if (!target.ok()) return target.status();
  if (auto r = PgExec(*coordinator, "begin isolation level repeatable read read only"); !r.ok()) return r.status();
  std::string snapshot_id = exported_snapshot;
  if (snapshot_id.empty()) {
    auto snapshot = PgExec(*coordinator, "select pg_export_snapshot()", {}, "export snapshot");
    if (!snapshot.ok()) return snapshot.status();
    snapshot_id = PgValue(*snapshot, 0, 0);
  } else if (auto r = PgExec(*coordinator, "set transaction snapshot " + Literal(*coordinator, snapshot_id), {},
                             "import the slot's snapshot");
             !r.ok()) {
    return r.status();
  }
  // The stream's copy (a slot's snapshot): nothing else writes the tables on
  // new meanwhile (statement dual-write is off).
  const bool quiet_target = !exported_snapshot.empty();
  auto tables = Discover(*coordinator, *target, scope, progress);
  if (!tables.ok()) return tables.status();
  std::vector<std::string> quoted;
  for (const auto& t : *tables) quoted.push_back(t.quoted);
  // Indexes an earlier copy set aside and could not build again (it was cut
  // short): built first, before anything reads or writes these tables.
  if (auto again = RebuildSetAsideIndexes(*target, quoted); !again.ok()) return again.status();
  else if (!again->empty())
    ctx.Log(absl::StrCat("snapshot copy: built the indexes an earlier copy set aside on ", absl::StrJoin(*again, ", ")));
  int pass = 1;
  RestoreCheckpoint(progress.checkpoint, *tables, pass);
  const int workers = std::max(1, spec.workers);
  // Per table not done: its ranges and whether they go straight into it.
  std::vector<std::vector<CtidRange>> ranges(tables->size());
  std::vector<bool> direct(tables->size(), false);
  std::vector<bool> set_aside(tables->size(), false);  // its indexes, until its last range is in
  std::vector<int> ranges_left(tables->size(), 0);
  for (std::size_t i = 0; i < tables->size(); ++i) {
    Table& t = (*tables)[i];
    if (t.done) continue;
    // Counted in a subtransaction: rolling it back releases the table's lock
    // (a worker must never wait behind DDL queued behind this transaction,
    // which waits for the workers).
    if (auto r = PgExec(*coordinator, "savepoint turnout_estimate"); !r.ok()) return r.status();
    auto n = Estimate(*coordinator, t);
    if (!n.ok()) return n.status();
    if (auto r = PgExec(*coordinator, "rollback to savepoint turnout_estimate"); !r.ok()) return r.status();
    t.total = *n;
    t.copied = t.written = 0;  // a table not done is copied whole again
    auto split_ranges = SplitByPages(*coordinator, t.oid, workers, split);
    if (!split_ranges.ok()) return split_ranges.status();
    ranges[i] = *std::move(split_ranges);
    ranges_left[i] = static_cast<int>(ranges[i].size());
    // A quiet table new holds no row of has no conflicts to resolve: the rows
    // go straight into it, written once instead of twice (staging, then
    // INSERT … ON CONFLICT). Decided here, once for all its ranges: the
    // ranges are disjoint, and the first one committed must not send the
    // others to staging.
    if (quiet_target) {
      auto empty = PgExec(*target, absl::StrCat("select not exists (select 1 from ", t.quoted, ")"), {},
                          "look into " + t.name);
      if (!empty.ok()) return empty.status();
      direct[i] = PgValue(*empty, 0, 0) == "t";
    }
    // Rows going straight into an empty table: its indexes are built once
    // they are all in (control/pg_set_aside_indexes.h).
    if (direct[i]) {
      auto aside = SetIndexesAside(*target, t.quoted);
      if (!aside.ok()) return aside.status();
      set_aside[i] = *aside > 0;
      if (*aside > 0)
        ctx.Log(absl::StrCat("snapshot copy: ", *aside, " indexes of ", t.name, " set aside until it is copied"));
    }
  }
  Summarize(*tables, progress);
  progress.checkpoint = CheckpointOf(*tables, 1);
  if (auto st = ctx.Checkpoint(progress); !st.ok()) return st;

  // The work: one piece per range, the largest first, so one big table does
  // not start last and its ranges run side by side.
  struct Piece {
    std::size_t table;
    std::string range;  // CtidCondition
    std::int64_t size;  // estimated rows
  };
  std::vector<Piece> todo;
  std::vector<std::string> split_tables;  // quoted, those with more than one range
  for (std::size_t i = 0; i < tables->size(); ++i) {
    if ((*tables)[i].done) continue;
    const auto n = static_cast<std::int64_t>(ranges[i].size());
    if (n > 1) split_tables.push_back((*tables)[i].quoted);
    for (const auto& r : ranges[i]) todo.push_back(Piece{i, CtidCondition(r), (*tables)[i].total / n});
  }
  std::stable_sort(todo.begin(), todo.end(), [](const Piece& a, const Piece& b) { return a.size > b.size; });
  ctx.Log(absl::StrCat("snapshot copy: ", todo.size(), " pieces for ", workers, " workers",
                       split_tables.empty() ? "" : "; split by pages: ", absl::StrJoin(split_tables, ", ")));
  const auto started = std::chrono::steady_clock::now();
  std::mutex mu;  // guards tables, progress, next, first_error, locked, lock_error; serializes checkpoints
  std::size_t next = 0;
  absl::Status first_error = absl::OkStatus();
  int locked = 0;                           // workers holding the split tables' locks
  absl::Status lock_error = absl::OkStatus();  // why a worker could not take them
  auto worker = [&] {
    auto fail = [&](absl::Status st) {
      std::lock_guard<std::mutex> l(mu);
      if (first_error.ok()) first_error = std::move(st);
    };
    auto from = Connect(old_backend, "old");
    if (!from.ok()) return fail(from.status());
    auto to = Connect(new_backend, "new");
    if (!to.ok()) return fail(to.status());
    if (auto st = PrepareTarget(*to, progress, &mu); !st.ok()) return fail(st);
    // The stream's copy is not resumed: a copy cut short starts again under
    // a new slot, and the stream stores its position on new (a commit that
    // flushes the WAL before it, these commits' too) only once every piece
    // is in. Nothing waits for each piece's flush.
    if (quiet_target)
      if (auto r = PgExec(*to, "set synchronous_commit = off"); !r.ok()) return fail(r.status());
    if (auto r = PgExec(*from, "begin isolation level repeatable read read only"); !r.ok()) return fail(r.status());
    if (auto r = PgExec(*from, "set transaction snapshot " + Literal(*from, snapshot_id), {}, "import snapshot"); !r.ok())
      return fail(r.status());
    // A split table's ranges address rows by ctid, which a rewrite (VACUUM
    // FULL, CLUSTER, ALTER TABLE) changes: every worker holds ACCESS SHARE
    // on the split tables from before its first piece to its end, so no
    // rewrite lands between two ranges. NOWAIT: a worker that cannot have
    // the locks at once (DDL holds or awaits one) copies nothing, rather
    // than wait behind DDL that waits for the other workers.
    if (!split_tables.empty()) {
      auto r = PgExec(*from, absl::StrCat("lock table ", absl::StrJoin(split_tables, ", "), " in access share mode nowait"),
                      {}, "lock the tables to split");
      std::lock_guard<std::mutex> l(mu);
      if (!r.ok()) {
        if (PgConnectionLost(from->get())) {
          if (first_error.ok()) first_error = r.status();
        } else {
          lock_error = r.status();
        }
        return;
      }
      ++locked;
    }
    for (;;) {
      const Piece* piece = nullptr;
      {
        std::lock_guard<std::mutex> l(mu);
        if (!first_error.ok() || next == todo.size()) break;
        piece = &todo[next++];
      }
      if (!ctx.ShouldContinue()) return fail(StoppedAtBatchBoundary());
      // Read outside the lock: a table's name and columns never change
      // while the workers run; its counters do, under the lock.
      const Table& t = (*tables)[piece->table];
      auto done = SnapshotPiece(*from, *to, t, piece->range, direct[piece->table], spec, ctx);
      if (!done.ok()) return fail(done.status());
      std::unique_lock<std::mutex> l(mu);
      Table& counted = (*tables)[piece->table];
      counted.copied += done->copied;
      counted.written += done->written;
      if (--ranges_left[piece->table] == 0) {
        if (set_aside[piece->table]) {
          // Its last range is in: this worker builds its indexes (the
          // server sorts with parallel workers of its own) while the other
          // workers go on with other tables.
          l.unlock();
          const auto began = std::chrono::steady_clock::now();
          auto built = RebuildSetAsideIndexes(*to, {t.quoted});
          if (!built.ok()) return fail(built.status());
          ctx.Log(absl::StrCat("snapshot copy: indexes of ", t.name, " built in ",
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - began)
                                   .count(),
                               " ms"));
          l.lock();
        }
        counted.done = true;
      }
      Summarize(*tables, progress);
      progress.checkpoint = CheckpointOf(*tables, 1);
      if (auto st = ctx.Checkpoint(progress); !st.ok()) {
        if (first_error.ok()) first_error = st;
        break;
      }
    }
    (void)PgExec(*from, "commit");
  };
  const int n = std::max(1, std::min<int>(workers, static_cast<int>(todo.size())));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(worker);
  for (auto& th : threads) th.join();
  (void)PgExec(*coordinator, "commit");
  // A copy that stopped or failed builds the indexes it set aside before it
  // returns; what it cannot build (new is gone) stays recorded for the next.
  auto leftover = RebuildSetAsideIndexes(*target, quoted);
  if (!first_error.ok()) return first_error;
  if (!leftover.ok()) return leftover.status();
  ctx.Log(absl::StrCat("snapshot copy: ", progress.copied, " rows in ",
                       std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                           .count(),
                       " ms"));
  if (!split_tables.empty() && locked == 0)
    return absl::UnavailableError(
        absl::StrCat("old: no copy worker could lock the tables to copy (DDL in progress?); the copy starts again: ",
                     lock_error.message()));
  if (auto st = AdvanceSequences(*coordinator, *target, *tables, progress); !st.ok()) return st;
  progress.checkpoint = CheckpointOf(*tables, 1);
  return absl::OkStatus();
}

}  // namespace

absl::Status CopyPostgres(const routing::Backend& old_backend, const routing::Backend& new_backend,
                          const std::vector<std::string>& scope_tables, const DataSpec& spec, RouteProgress& progress,
                          BackfillContext& ctx, const std::string& exported_snapshot) {
  return CopyPostgres(old_backend, new_backend, scope_tables, spec, progress, ctx, exported_snapshot, PgCopySplit{});
}

absl::Status CopyPostgres(const routing::Backend& old_backend, const routing::Backend& new_backend,
                          const std::vector<std::string>& scope_tables, const DataSpec& spec, RouteProgress& progress,
                          BackfillContext& ctx, const std::string& exported_snapshot, const PgCopySplit& split) {
  if (spec.mode == DataSpec::Mode::kSnapshot || !exported_snapshot.empty())
    return CopySnapshot(old_backend, new_backend, scope_tables, spec, progress, ctx, exported_snapshot, split);
  return CopyScan(old_backend, new_backend, scope_tables, spec, progress, ctx);
}

namespace {

// Both sides connected and the tables data movement moves, discovered.
struct Discovered {
  Side from, to;
  std::vector<Table> tables;
};

absl::StatusOr<Discovered> ConnectAndDiscover(const routing::Backend& old_backend, const routing::Backend& new_backend,
                                              const std::vector<std::string>& scope_tables, RouteProgress& progress,
                                              bool skip_missing = false) {
  auto from = Connect(old_backend, "old");
  if (!from.ok()) return from.status();
  auto to = Connect(new_backend, "new");
  if (!to.ok()) return to.status();
  auto tables = Discover(*from, *to, scope_tables, progress, skip_missing);
  if (!tables.ok()) return tables.status();
  return Discovered{*std::move(from), *std::move(to), *std::move(tables)};
}

}  // namespace

absl::Status AdvancePostgresSequences(const routing::Backend& old_backend, const routing::Backend& new_backend,
                                      const std::vector<std::string>& scope_tables, RouteProgress& progress) {
  auto d = ConnectAndDiscover(old_backend, new_backend, scope_tables, progress, /*skip_missing=*/true);
  if (!d.ok()) return d.status();
  return AdvanceSequences(d->from, d->to, d->tables, progress);
}

absl::StatusOr<std::vector<std::string>> PostgresTablesToMove(const routing::Backend& old_backend,
                                                              const routing::Backend& new_backend,
                                                              const std::vector<std::string>& scope_tables,
                                                              RouteProgress& progress) {
  auto d = ConnectAndDiscover(old_backend, new_backend, scope_tables, progress);
  if (!d.ok()) return d.status();
  std::vector<std::string> out;
  for (const auto& t : d->tables) out.push_back(t.quoted);
  return out;
}

}  // namespace turnout::control
