#include "control/pg_change_apply.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "protocol/pg/sql_classifier.h"

namespace turnout::control {
namespace pgo = protocol::pg::pgoutput;
namespace ppg = protocol::pg;
namespace {

// A group is sent in pieces of about this size; one source transaction of
// millions of rows never sits in memory whole.
constexpr std::size_t kSendAt = 4u << 20;
// Row changes of one target transaction that run as prepared statements
// (see AppendExecute); the rest run as plain statements.
constexpr std::size_t kPreparedPerTransaction = 256;

// CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, REINDEX … CONCURRENTLY:
// refused inside a transaction block.
// Built-in types (pg_type.dat OIDs) whose text form, read back, compares
// equal by "=" under their default btree class: bool, int2/4/8, oid, text,
// varchar, bpchar, numeric, date, timestamp, timestamptz, uuid.
bool HasIndexedEquality(std::uint32_t type_oid) {
  switch (type_oid) {
    case 16: case 20: case 21: case 23: case 25: case 26: case 1042: case 1043:
    case 1082: case 1114: case 1184: case 1700: case 2950:
      return true;
    default:
      return false;
  }
}

bool NeedsOwnTransaction(std::string_view statement) {
  return absl::StrContains(absl::AsciiStrToLower(std::string(statement)), "concurrently");
}

}  // namespace

ChangeApplier::ChangeApplier(PgSide target, std::string slot, ConflictRule rule)
    : target_(std::move(target)), slot_(std::move(slot)), rule_(rule) {}

absl::Status ChangeApplier::Exec(const std::string& sql, const std::string& what) {
  auto r = PgExecScript(target_, sql, what);
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::StatusOr<std::uint64_t> ChangeApplier::Open() {
  // Not every role may set it (superuser or, from 15, a granted parameter);
  // without it triggers on new would run twice: refuse rather than diverge.
  if (auto st = Exec("set session_replication_role = replica", "session_replication_role = replica"); !st.ok())
    return absl::FailedPreconditionError(absl::StrCat(
        st.message(), " (the change stream applies with triggers and foreign keys off, as logical replication "
                      "does: the new backend's user must be allowed to set session_replication_role)"));
  // The slot forgets what is confirmed, and it is confirmed once COMMIT
  // returns: that must mean on disk, whatever the server's default (a
  // crash of new would otherwise lose transactions old no longer has).
  if (auto st = Exec("set synchronous_commit = on", "synchronous_commit = on"); !st.ok()) return st;
  // The rows arrive printed with these settings (ReplicationConnection).
  if (auto st = PgFixOutputSettings(target_); !st.ok()) return st;
  // Marks this applier's transactions where the target keeps logical WAL
  // (see the header): a stream from there skips them.
  auto level = PgExec(target_, "select current_setting('wal_level')", {}, "read wal_level");
  if (!level.ok()) return level.status();
  begin_sql_ = "begin;";
  if (PgValue(*level, 0, 0) == "logical")
    absl::StrAppend(&begin_sql_, "select pg_logical_emit_message(true, ", Literal(kAppliedMarkPrefix), ", ",
                    Literal(slot_), ");");
  if (auto st = Exec("create schema if not exists _turnout; "
                     "create table if not exists _turnout.stream_position (slot text primary key, lsn pg_lsn not null, "
                     "updated_at timestamptz not null default now())",
                     "create _turnout.stream_position");
      !st.ok())
    return st;
  auto r = PgExec(target_, "select lsn::text from _turnout.stream_position where slot = $1", {slot_}, "read position");
  if (!r.ok()) return r.status();
  applied_ = 0;
  if (PQntuples(r->get()) == 1 && !pgo::ParseLsn(PgValue(*r, 0, 0), &applied_))
    return absl::InternalError(absl::StrCat("new: unreadable stored position ", PgValue(*r, 0, 0)));
  return applied_;
}

absl::Status ChangeApplier::StorePosition(std::uint64_t lsn) {
  auto r = PgExec(target_,
                  "insert into _turnout.stream_position (slot, lsn) values ($1, $2::pg_lsn) "
                  "on conflict (slot) do update set lsn = excluded.lsn, updated_at = now()",
                  {slot_, pgo::FormatLsn(lsn)}, "store position");
  if (!r.ok()) return r.status();
  applied_ = lsn;
  return absl::OkStatus();
}

std::string ChangeApplier::Literal(std::string_view v) { return PgLiteral(target_.get(), v); }

void ChangeApplier::AppendValue(const pgo::TupleColumn& c) {
  if (c.kind == 'n') sql_ += "NULL";
  else sql_ += Literal(c.value);
}

ChangeApplier::Table* ChangeApplier::Find(std::uint32_t relation) {
  auto it = relations_.find(relation);
  return it == relations_.end() ? nullptr : &it->second;
}

// Row changes by key run as prepared statements: a group of small
// transactions (sync dual-write commits a group per client commit) would
// otherwise spend most of new's time parsing and planning the same few
// statements. PREPARE and EXECUTE travel in the group's one simple Query;
// values stay literals, typed by the parameters' inferred column types as
// they were by the columns before. Only the first kPreparedPerTransaction
// changes of a target transaction: each EXECUTE in a transaction costs
// more than the one before (40,000 in one transaction took 7 s where as
// many INSERTs took 0.6 s, PostgreSQL 15), and a large transaction gains
// nothing from saving a parse per row.
template <typename Body>
void ChangeApplier::AppendExecute(Table& t, const std::string& shape, Body body) {
  ++executes_in_transaction_;
  auto it = t.statements.find(shape);
  if (it == t.statements.end()) {
    std::string name = absl::StrCat("turnout_apply_", ++statements_prepared_);
    absl::StrAppend(&sql_, "prepare ", name, " as ");
    body();
    sql_ += ";";
    it = t.statements.emplace(shape, std::move(name)).first;
  }
  absl::StrAppend(&sql_, "execute ", it->second, "(");
}

template <typename Use>
void ChangeApplier::AppendArguments(const pgo::Tuple& tuple, Use use) {
  bool first = true;
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    if (!use(i)) continue;
    if (!first) sql_ += ", ";
    AppendValue(tuple[i]);
    first = false;
  }
}

bool ChangeApplier::PreparedLeft() const { return executes_in_transaction_ < kPreparedPerTransaction; }

void ChangeApplier::ForgetPrepared() {
  for (auto& [oid, t] : relations_) t.statements.clear();
}

absl::Status ChangeApplier::Send(bool final) {
  if (sql_.empty()) return absl::OkStatus();
  if (auto r = PgExecScript(target_, sql_, "apply changes"); !r.ok()) {
    absl::Status err = std::move(r).status();
    ForgetPrepared();
    executes_in_transaction_ = 0;
    if (!PgConnectionLost(target_.get())) (void)Exec("rollback", "rollback");
    sql_.clear();
    open_on_target_ = false;
    group_transactions_ = 0;
    group_rows_ = 0;
    oldest_pending_commit_time_ = 0;
    return err;
  }
  sql_.clear();
  open_on_target_ = !final;
  if (final) executes_in_transaction_ = 0;
  return absl::OkStatus();
}

absl::Status ChangeApplier::Commit(std::uint64_t reached) {
  if (group_transactions_ == 0 && !open_on_target_ && sql_.empty()) return absl::OkStatus();
  if (!open_on_target_ && sql_.empty()) sql_ = begin_sql_;
  if (group_end_ > applied_)
    absl::StrAppend(&sql_, "insert into _turnout.stream_position (slot, lsn) values (", Literal(slot_), ", ",
                    Literal(pgo::FormatLsn(group_end_)),
                    "::pg_lsn) on conflict (slot) do update set lsn = excluded.lsn, updated_at = now();");
  // Delivered when the group commits, not before; a fence received after
  // the group's last transaction is announced with it (no second round
  // trip for it).
  if (const std::uint64_t announced = std::max(group_end_, reached); announced > applied_)
    absl::StrAppend(&sql_, "select pg_notify(", Literal(kAppliedChannel), ", ",
                    Literal(absl::StrCat(slot_, " ", pgo::FormatLsn(announced))), ");");
  sql_ += "commit;";
  if (auto st = Send(true); !st.ok()) return st;
  if (group_end_ > applied_) applied_ = group_end_;
  applied_commit_time_ = std::max(applied_commit_time_, group_commit_time_);
  transactions_ += static_cast<std::int64_t>(group_transactions_);
  rows_ += group_rows_;
  oldest_pending_commit_time_ = in_transaction_ ? oldest_pending_commit_time_ : 0;
  group_transactions_ = 0;
  group_rows_ = 0;
  return absl::OkStatus();
}

absl::Status ChangeApplier::Announce(std::uint64_t lsn) {
  auto r = PgExec(target_, "select pg_notify($1, $2)",
                  {std::string(kAppliedChannel), absl::StrCat(slot_, " ", pgo::FormatLsn(lsn))}, "announce position");
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status ChangeApplier::Take(const pgo::LogicalMessage& m) {
  if (const auto* b = std::get_if<pgo::Begin>(&m)) {
    in_transaction_ = true;
    skipping_ = b->final_lsn < std::max(applied_, group_end_);
    begin_commit_time_ = -1;
    if (!skipping_ && oldest_pending_commit_time_ == 0) oldest_pending_commit_time_ = begin_commit_time_ = b->commit_time;
    if (!skipping_ && !open_on_target_ && sql_.empty()) sql_ = begin_sql_;
    return absl::OkStatus();
  }
  if (const auto* msg = std::get_if<pgo::Message>(&m);
      msg != nullptr && msg->transactional && in_transaction_ && msg->prefix == kAppliedMarkPrefix) {
    // Applied there by a turnout stream in the other direction: it came
    // from the side this stream applies to.
    if (!skipping_) {
      skipping_ = true;
      if (oldest_pending_commit_time_ == begin_commit_time_) oldest_pending_commit_time_ = 0;
    }
    return absl::OkStatus();
  }
  if (const auto* c = std::get_if<pgo::Commit>(&m)) {
    if (!skipping_) {
      ++group_transactions_;
      group_end_ = std::max(group_end_, c->end_lsn);
      group_commit_time_ = c->commit_time;
    }
    in_transaction_ = skipping_ = false;
    return absl::OkStatus();
  }
  if (const auto* r = std::get_if<pgo::Relation>(&m)) {
    Table t;
    t.name = absl::StrCat(PgIdentifier(target_.get(), r->nspname), ".", PgIdentifier(target_.get(), r->relname));
    t.internal = r->nspname == kInternalSchema;
    t.identity = r->replica_identity;
    for (const auto& c : r->columns)
      t.columns.push_back({PgIdentifier(target_.get(), c.name), c.key, HasIndexedEquality(c.type_oid)});
    relations_[r->oid] = std::move(t);
    return absl::OkStatus();
  }
  if (std::holds_alternative<pgo::Origin>(m) || std::holds_alternative<pgo::Type>(m)) return absl::OkStatus();
  if (!in_transaction_) {
    // Non-transactional logical messages arrive outside Begin/Commit.
    if (std::holds_alternative<pgo::Message>(m)) return absl::OkStatus();
    return absl::InternalError("old: a row change outside a transaction in the replication stream");
  }
  if (skipping_) return absl::OkStatus();
  absl::Status st = absl::OkStatus();
  if (const auto* i = std::get_if<pgo::Insert>(&m)) st = Insert(*i);
  else if (const auto* u = std::get_if<pgo::Update>(&m)) st = Update(*u);
  else if (const auto* d = std::get_if<pgo::Delete>(&m)) st = Delete(*d);
  else if (const auto* t = std::get_if<pgo::Truncate>(&m)) st = Truncate(*t);
  else if (const auto* msg = std::get_if<pgo::Message>(&m)) {
    if (msg->transactional && msg->prefix == kDdlMessagePrefix) st = Ddl(ppg::AsText(msg->content));
  } else {
    // Streaming and two-phase messages are never asked for (Start).
    st = absl::InternalError("old: an unexpected message in the replication stream");
  }
  if (!st.ok()) return st;
  if (sql_.size() >= kSendAt) return Send(false);
  return absl::OkStatus();
}

absl::Status ChangeApplier::Insert(const pgo::Insert& m) {
  Table* t = Find(m.relation);
  if (t == nullptr) return absl::InternalError(absl::StrCat("old: insert into unknown relation ", m.relation));
  if (t->internal) return absl::OkStatus();
  if (m.row.size() != t->columns.size())
    return absl::InternalError(absl::StrCat("old: insert into ", t->name, ": column count differs from its relation"));
  const auto present = [&](std::size_t i) { return m.row[i].kind != 'u'; };
  if (PreparedLeft()) {
    std::string shape = "i";
    for (std::size_t i = 0; i < m.row.size(); ++i) shape += present(i) ? '1' : '0';
    AppendExecute(*t, shape, [&] { AppendInsert(*t, m.row, /*parameters=*/true); });
    AppendArguments(m.row, present);
    sql_ += ");";
  } else {
    AppendInsert(*t, m.row, /*parameters=*/false);
    sql_ += ";";
  }
  ++group_rows_;
  return absl::OkStatus();
}

void ChangeApplier::AppendInsert(const Table& t, const pgo::Tuple& row, bool parameters) {
  absl::StrAppend(&sql_, "insert into ", t.name, " as turnout_target (");
  int n = 0;
  for (std::size_t i = 0; i < row.size(); ++i)
    if (row[i].kind != 'u') absl::StrAppend(&sql_, n++ ? ", " : "", t.columns[i].name);
  sql_ += ") overriding system value values (";
  if (parameters) {
    for (int i = 1; i <= n; ++i) absl::StrAppend(&sql_, i > 1 ? ", $" : "$", i);
  } else {
    AppendArguments(row, [&](std::size_t i) { return row[i].kind != 'u'; });
  }
  sql_ += ")";
  AppendConflictRule(t);
}

// The conflict rule, for rows new held before the copy (by primary key).
void ChangeApplier::AppendConflictRule(const Table& t) {
  std::vector<const Column*> keys, rest;
  for (const auto& c : t.columns) (c.key ? keys : rest).push_back(&c);
  if (t.identity != 'd' || keys.empty()) return;
  sql_ += " on conflict (";
  for (std::size_t i = 0; i < keys.size(); ++i) absl::StrAppend(&sql_, i ? ", " : "", keys[i]->name);
  sql_ += ") do ";
  if (rule_ == ConflictRule::kNone || rest.empty()) {
    sql_ += "nothing";
    return;
  }
  sql_ += "update set ";
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const std::string& c = rest[i]->name;
    if (rule_ == ConflictRule::kReplace) absl::StrAppend(&sql_, i ? ", " : "", c, " = excluded.", c);
    else absl::StrAppend(&sql_, i ? ", " : "", c, " = coalesce(turnout_target.", c, ", excluded.", c, ")");
  }
}

absl::Status ChangeApplier::AppendWhere(const Table& t, const pgo::Tuple& tuple, bool full_row) {
  if (tuple.size() != t.columns.size())
    return absl::InternalError(absl::StrCat("old: a row of ", t.name, " whose column count differs from its relation"));
  bool first = true;
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    const bool use = full_row ? tuple[i].kind != 'u' : t.columns[i].key;
    if (!use) continue;
    if (!first) sql_ += " and ";
    first = false;
    if (tuple[i].kind == 'n') {
      absl::StrAppend(&sql_, t.columns[i].name, " is null");
    } else if (full_row) {
      // Every type has an output function; not every type has "=" (json,
      // point). format('%s') prints a value by its output function, as
      // pgoutput did (a cast to text may not: bool, bpchar, inet). Where the
      // type has "=", it comes first so that an index on the column (a key
      // added after the table was made FULL) finds the row instead of a
      // scan of the table; the text keeps the match exact (numeric 1.0 =
      // 1.00, but their text differs).
      const std::string literal = Literal(tuple[i].value);
      if (t.columns[i].indexed_equality) absl::StrAppend(&sql_, t.columns[i].name, " = ", literal, " and ");
      absl::StrAppend(&sql_, "format('%s', ", t.columns[i].name, ") = ", literal);
    } else {
      absl::StrAppend(&sql_, t.columns[i].name, " = ", Literal(tuple[i].value));
    }
  }
  if (first) return absl::FailedPreconditionError(absl::StrCat("table ", t.name, " has no replica identity on old"));
  return absl::OkStatus();
}

// Whether the row `tuple` names can be found by its key columns alone,
// with a prepared statement (a NULL key value needs "is null").
bool ChangeApplier::ByPreparedKey(const Table& t, const pgo::Tuple& tuple) const {
  if (tuple.size() != t.columns.size()) return false;
  bool any = false;
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    if (!t.columns[i].key) continue;
    if (tuple[i].kind != 't') return false;
    any = true;
  }
  return any;
}

void ChangeApplier::AppendKeyParameters(const Table& t, int first) {
  int n = first;
  for (const auto& c : t.columns) {
    if (!c.key) continue;
    absl::StrAppend(&sql_, n == first ? "" : " and ", c.name, " = $", n);
    ++n;
  }
}

absl::Status ChangeApplier::Update(const pgo::Update& m) {
  Table* t = Find(m.relation);
  if (t == nullptr) return absl::InternalError(absl::StrCat("old: update of unknown relation ", m.relation));
  if (t->internal) return absl::OkStatus();
  if (m.row.size() != t->columns.size())
    return absl::InternalError(absl::StrCat("old: update of ", t->name, ": column count differs from its relation"));
  // An unchanged TOASTed value ('u') is not sent: new keeps its own.
  const auto set = [&](std::size_t i) { return m.row[i].kind != 'u'; };
  int n = 0;
  for (std::size_t i = 0; i < m.row.size(); ++i) n += set(i) ? 1 : 0;
  if (n == 0) return absl::OkStatus();
  const bool full = m.old_kind == 'O';
  const pgo::Tuple& who = m.old_kind != 0 ? m.old_tuple : m.row;
  if (!full && ByPreparedKey(*t, who) && PreparedLeft()) {
    std::string shape = "u";
    for (std::size_t i = 0; i < m.row.size(); ++i) shape += set(i) ? '1' : '0';
    AppendExecute(*t, shape, [&] {
      absl::StrAppend(&sql_, "update ", t->name, " set ");
      int p = 0;
      for (std::size_t i = 0; i < m.row.size(); ++i) {
        if (!set(i)) continue;
        ++p;
        absl::StrAppend(&sql_, p > 1 ? ", " : "", t->columns[i].name, " = $", p);
      }
      sql_ += " where ";
      AppendKeyParameters(*t, n + 1);
    });
    AppendArguments(m.row, set);
    sql_ += ", ";
    AppendArguments(who, [&](std::size_t i) { return t->columns[i].key; });
    sql_ += ");";
    ++group_rows_;
    return absl::OkStatus();
  }
  const std::size_t mark = sql_.size();
  absl::StrAppend(&sql_, "update ", t->name, " set ");
  bool any = false;
  for (std::size_t i = 0; i < m.row.size(); ++i) {
    if (!set(i)) continue;
    absl::StrAppend(&sql_, any ? ", " : "", t->columns[i].name, " = ");
    AppendValue(m.row[i]);
    any = true;
  }
  if (full) absl::StrAppend(&sql_, " where ctid = (select ctid from ", t->name, " where ");
  else sql_ += " where ";
  if (auto st = AppendWhere(*t, who, full); !st.ok()) {
    sql_.resize(mark);
    return st;
  }
  sql_ += full ? " limit 1);" : ";";
  ++group_rows_;
  return absl::OkStatus();
}

absl::Status ChangeApplier::Delete(const pgo::Delete& m) {
  Table* t = Find(m.relation);
  if (t == nullptr) return absl::InternalError(absl::StrCat("old: delete from unknown relation ", m.relation));
  if (t->internal) return absl::OkStatus();
  const bool full = m.old_kind == 'O';
  if (!full && ByPreparedKey(*t, m.old_tuple) && PreparedLeft()) {
    AppendExecute(*t, "d", [&] {
      absl::StrAppend(&sql_, "delete from ", t->name, " where ");
      AppendKeyParameters(*t, 1);
    });
    AppendArguments(m.old_tuple, [&](std::size_t i) { return t->columns[i].key; });
    sql_ += ");";
    ++group_rows_;
    return absl::OkStatus();
  }
  const std::size_t mark = sql_.size();
  absl::StrAppend(&sql_, "delete from ", t->name, " where ");
  if (full) absl::StrAppend(&sql_, "ctid = (select ctid from ", t->name, " where ");
  if (auto st = AppendWhere(*t, m.old_tuple, full); !st.ok()) {
    sql_.resize(mark);
    return st;
  }
  sql_ += full ? " limit 1);" : ";";
  ++group_rows_;
  return absl::OkStatus();
}

absl::Status ChangeApplier::Truncate(const pgo::Truncate& m) {
  std::string names;
  for (auto oid : m.relations) {
    const Table* t = Find(oid);
    if (t == nullptr) return absl::InternalError(absl::StrCat("old: truncate of unknown relation ", oid));
    if (t->internal) continue;
    absl::StrAppend(&names, names.empty() ? "" : ", ", t->name);
  }
  if (names.empty()) return absl::OkStatus();
  absl::StrAppend(&sql_, "truncate ", names, m.restart_identity ? " restart identity" : "", m.cascade ? " cascade" : "",
                  ";");
  ++group_rows_;
  return absl::OkStatus();
}

absl::Status ChangeApplier::Ddl(std::string_view text) {
  // The message holds the client's whole query string (current_query()):
  // only its DDL statements run here; its rows arrive as row changes, and a
  // TRUNCATE arrives as its own message.
  const ppg::Classification c = ppg::ClassifySql(text);
  for (const auto& s : c.statements) {
    if (s.statement_class != ppg::StatementClass::kDdl) continue;
    if (absl::EqualsIgnoreCase(std::string(s.command), "truncate")) continue;
    if (!NeedsOwnTransaction(s.text)) {
      sql_.append(s.text);
      sql_ += ";";
      continue;
    }
    // Commit what came before (earlier transactions of the group with their
    // position), run the statement alone, and reopen for the rest of this
    // transaction. Run again after a crash, it finds its object there.
    if (auto st = Commit(); !st.ok()) return st;
    sql_.clear();
    auto r = PgExec(target_, std::string(s.text), {}, "apply DDL");
    if (!r.ok() && !absl::StrContains(r.status().message(), "already exists")) return r.status();
    sql_ = begin_sql_;
  }
  return absl::OkStatus();
}

}  // namespace turnout::control
