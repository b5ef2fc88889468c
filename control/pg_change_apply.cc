#include "control/pg_change_apply.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <poll.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "protocol/pg/sql_classifier.h"

namespace turnout::control {
namespace pgo = protocol::pg::pgoutput;
namespace ppg = protocol::pg;
namespace {

// A large transaction is sent in pieces of about this size, each answered
// before the next: one source transaction of millions of rows never sits in
// memory whole.
constexpr std::size_t kSendAt = 4u << 20;
// Groups sent and not yet answered. Two: the next group is on its way while
// new commits the one before (no round trip between them), and whatever
// arrives meanwhile joins a group that is sent once one of them returns.
constexpr std::size_t kGroupsInFlight = 2;
// Statements prepared once per applier connection (Open).
constexpr const char* kMarkStatement = "turnout_mark";
constexpr const char* kPositionStatement = "turnout_position";
constexpr const char* kNotifyStatement = "turnout_notify";
// BEGIN and COMMIT, once per group: prepared, so new does not parse them
// for every group (sync dual-write commits a group of about one source
// transaction per client commit).
constexpr const char* kBeginStatement = "turnout_begin";
constexpr const char* kCommitStatement = "turnout_commit";
// In a transaction on a connection that commits without flushing
// (Durability::kAtAnnouncements): this one's COMMIT flushes.
constexpr const char* kFlushThisCommit = "set local synchronous_commit = on";
// The stored position: once alone after the copy (StorePosition), and in
// each group's transaction (kGroupPositionSql, prepared as
// kPositionStatement: a plain UPDATE of the row Open() made sure exists,
// cheaper on new than an upsert per group), with whether the applier marks
// its transactions (ChangeApplier::MarkFromNowOn).
constexpr const char* kPositionSql =
    "insert into _turnout.stream_position (slot, lsn) values ($1, $2::pg_lsn) "
    "on conflict (slot) do update set lsn = excluded.lsn, updated_at = now()";
constexpr const char* kGroupPositionSql =
    "update _turnout.stream_position set lsn = $2::pg_lsn, marks = $3::boolean, updated_at = now() "
    "where slot = $1";

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

ChangeApplier::ChangeApplier(PgSide target, std::string slot, ConflictRule rule, Marks marks, Durability durability)
    : target_(std::move(target)), slot_(std::move(slot)), rule_(rule), marks_policy_(marks), durability_(durability) {}

absl::Status ChangeApplier::SetSynchronousCommit(bool on) {
  const std::string setting = absl::StrCat("synchronous_commit = ", on ? "on" : "off");
  return Exec("set " + setting, setting);
}

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
  // The slot forgets what is confirmed, and only what a flushed commit
  // covers is confirmed (durable()): each group's (kEachGroup), or each
  // announcement's (kAtAnnouncements, see the header), whatever the
  // server's default. On until the position row is written below.
  if (auto st = SetSynchronousCommit(true); !st.ok()) return st;
  // The rows arrive printed with these settings (ReplicationConnection).
  if (auto st = PgFixOutputSettings(target_); !st.ok()) return st;
  // Marks this applier's transactions where the target keeps logical WAL
  // (see the header): a stream from there skips them.
  auto level = PgExec(target_, "select current_setting('wal_level')", {}, "read wal_level");
  if (!level.ok()) return level.status();
  can_mark_ = PgValue(*level, 0, 0) == "logical";
  // `marks`: this applier marks its transactions (MarkFromNowOn), stored
  // with the position so a restart goes on marking.
  if (auto st = Exec("create schema if not exists _turnout; "
                     "create table if not exists _turnout.stream_position (slot text primary key, lsn pg_lsn not null, "
                     "updated_at timestamptz not null default now()); "
                     "alter table _turnout.stream_position add column if not exists marks boolean not null default false",
                     "create _turnout.stream_position");
      !st.ok())
    return st;
  // The row each group updates ("0/0": nothing stored yet). Written, and
  // flushed, even when it exists: the stored position read below may be
  // that of a group an earlier connection committed without a flush, and
  // it becomes durable() here.
  if (auto r = PgExec(target_,
                      "insert into _turnout.stream_position (slot, lsn) values ($1, '0/0') "
                      "on conflict (slot) do update set updated_at = now()",
                      {slot_}, "make the position row");
      !r.ok())
    return r.status();
  if (durability_ == Durability::kAtAnnouncements)
    if (auto st = SetSynchronousCommit(false); !st.ok()) return st;
  const struct {
    const char* name;
    const char* sql;
  } statements[] = {
      {kMarkStatement, "select pg_logical_emit_message(true, $1, $2)"},
      {kPositionStatement, kGroupPositionSql},
      {kNotifyStatement, "select pg_notify($1, $2)"},
      {kBeginStatement, "begin"},
      {kCommitStatement, "commit"},
  };
  for (const auto& s : statements) {
    PgResult r(PQprepare(target_.get(), s.name, s.sql, 0, nullptr));
    if (!PgOk(r.get())) return PgFailed(target_, r.get(), absl::StrCat("prepare ", s.name));
  }
  auto r = PgExec(target_, "select lsn::text, marks from _turnout.stream_position where slot = $1", {slot_},
                  "read position");
  if (!r.ok()) return r.status();
  applied_ = 0;
  if (PQntuples(r->get()) == 1 && !pgo::ParseLsn(PgValue(*r, 0, 0), &applied_))
    return absl::InternalError(absl::StrCat("new: unreadable stored position ", PgValue(*r, 0, 0)));
  reached_ = sent_end_ = durable_ = applied_;
  applied_mark_ = can_mark_ && (marks_policy_ == Marks::kAlways || PgValue(*r, 0, 1) == "t");
  marks_stored_ = applied_mark_;
  return applied_;
}

absl::Status ChangeApplier::StorePosition(std::uint64_t lsn) {
  if (auto st = LeavePipeline(); !st.ok()) return st;
  // Flushed: the copy before it is on disk (its connections commit so).
  const bool flush = durability_ != Durability::kEachGroup;
  if (flush)
    if (auto st = SetSynchronousCommit(true); !st.ok()) return st;
  auto r = PgExec(target_, kPositionSql, {slot_, pgo::FormatLsn(lsn)}, "store position");
  if (!r.ok()) return r.status();
  if (flush)
    if (auto st = SetSynchronousCommit(false); !st.ok()) return st;
  applied_ = sent_end_ = lsn;
  reached_ = std::max(reached_, lsn);
  durable_ = std::max(durable_, lsn);
  return absl::OkStatus();
}

bool ChangeApplier::MarkFromNowOn() {
  if (!can_mark_ || applied_mark_) return false;
  applied_mark_ = true;
  marks_stored_ = false;
  return true;
}

// ---- The pipeline.

absl::Status ChangeApplier::EnterPipeline() {
  if (!broken_.ok()) return broken_;
  if (pipeline_) return absl::OkStatus();
  if (PQenterPipelineMode(target_.get()) != 1) return PgFailed(target_, nullptr, "enter pipeline mode");
  pipeline_ = true;
  return absl::OkStatus();
}

absl::Status ChangeApplier::LeavePipeline() {
  if (!pipeline_) return broken_;
  if (auto st = Drain(); !st.ok()) return st;
  // Drain() took every result; libpq leaves pipeline mode only when idle.
  while (PgResult r{PQgetResult(target_.get())}) {
  }
  if (PQexitPipelineMode(target_.get()) != 1) return PgFailed(target_, nullptr, "leave pipeline mode");
  pipeline_ = false;
  return absl::OkStatus();
}

void ChangeApplier::Broken(const char* what) {
  if (broken_.ok()) broken_ = PgFailed(target_, nullptr, what);
}

void ChangeApplier::Queue(const std::string& sql) {
  queued_bytes_ += sql.size();
  if (!broken_.ok()) return;
  if (PQsendQueryParams(target_.get(), sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
    Broken("apply changes");
}

void ChangeApplier::AddValue(std::string_view v) {
  value_offsets_.push_back(static_cast<int>(values_.size()));
  values_.append(v);
  values_.push_back('\0');
}

void ChangeApplier::AddNull() { value_offsets_.push_back(-1); }

void ChangeApplier::QueuePrepared(const std::string& name) {
  // Pointers only now: values_ may have moved while it grew.
  value_pointers_.clear();
  for (int off : value_offsets_) value_pointers_.push_back(off < 0 ? nullptr : values_.data() + off);
  queued_bytes_ += values_.size() + name.size();
  if (broken_.ok() && PQsendQueryPrepared(target_.get(), name.c_str(), static_cast<int>(value_pointers_.size()),
                                          value_pointers_.data(), nullptr, nullptr, 0) != 1)
    Broken("apply changes");
  values_.clear();
  value_offsets_.clear();
}

void ChangeApplier::Sync(Unit unit) {
  queued_bytes_ = 0;
  if (broken_.ok() && PQpipelineSync(target_.get()) != 1) Broken("apply changes");
  units_.push_back(std::move(unit));
}

void ChangeApplier::QueueBegin() {
  QueuePrepared(kBeginStatement);
  if (applied_mark_) {
    AddValue(kAppliedMarkPrefix);
    AddValue(slot_);
    QueuePrepared(kMarkStatement);
  }
  open_on_target_ = true;
}

void ChangeApplier::QueueNotify(std::uint64_t lsn) {
  AddValue(kAppliedChannel);
  AddValue(absl::StrCat(slot_, " ", pgo::FormatLsn(lsn)));
  QueuePrepared(kNotifyStatement);
}

bool ChangeApplier::can_send() const { return units_.size() < kGroupsInFlight; }

void ChangeApplier::Completed(Unit& u) {
  if (u.end > applied_) applied_ = u.end;
  reached_ = std::max({reached_, applied_, u.reached});
  // A flushed commit flushed every commit before it.
  if (u.durable) durable_ = std::max(durable_, reached_);
  applied_commit_time_ = std::max(applied_commit_time_, u.commit_time);
  transactions_ += u.transactions;
  rows_ += u.rows;
}

absl::Status ChangeApplier::Poll() {
  if (!broken_.ok()) return broken_;
  if (units_.empty()) return absl::OkStatus();
  if (PQconsumeInput(target_.get()) != 1) {
    Broken("read what new applied");
    return broken_;
  }
  // In pipeline mode each statement's results end with a null result, and
  // each Sync answers with PGRES_PIPELINE_SYNC (libpq-pipeline-results).
  int nulls = 0;
  while (!units_.empty() && PQisBusy(target_.get()) == 0) {
    PgResult r(PQgetResult(target_.get()));
    if (!r) {
      if (++nulls > 1) break;  // nothing more is queued
      continue;
    }
    nulls = 0;
    Unit& u = units_.front();
    switch (PQresultStatus(r.get())) {
      case PGRES_PIPELINE_SYNC: {
        Unit done = std::move(units_.front());
        units_.pop_front();
        if (!done.error.ok()) {
          broken_ = done.error;
          ForgetPrepared();
          return broken_;
        }
        Completed(done);
        break;
      }
      case PGRES_FATAL_ERROR:
        if (u.error.ok()) u.error = PgFailed(target_, r.get(), "apply changes");
        break;
      case PGRES_PIPELINE_ABORTED:
        if (u.error.ok()) u.error = absl::InternalError("new: apply changes: the pipeline was aborted");
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status ChangeApplier::WaitAnswers(bool all) {
  const std::size_t goal = all ? 0 : kGroupsInFlight - 1;
  while (units_.size() > goal) {
    if (auto st = Poll(); !st.ok()) return st;
    if (units_.size() <= goal) break;
    pollfd p{socket(), POLLIN, 0};
    if (::poll(&p, 1, 1000) < 0 && errno != EINTR) return absl::UnavailableError("new: poll on the applier failed");
  }
  return broken_;
}

absl::Status ChangeApplier::WaitForRoom() { return WaitAnswers(/*all=*/false); }
absl::Status ChangeApplier::Drain() { return WaitAnswers(/*all=*/true); }

std::string ChangeApplier::Literal(std::string_view v) { return PgLiteral(target_.get(), v); }

void ChangeApplier::AppendValue(const pgo::TupleColumn& c) {
  if (c.kind == 'n') stmt_ += "NULL";
  else stmt_ += Literal(c.value);
}

ChangeApplier::Table* ChangeApplier::Find(std::uint32_t relation) {
  auto it = relations_.find(relation);
  return it == relations_.end() ? nullptr : &it->second;
}

// Row changes by key run as prepared statements: a group of small
// transactions (sync dual-write commits a group per client commit) would
// otherwise spend most of new's time parsing and planning the same few
// statements. The parameters are the source's text output, typed by the
// columns they are compared with or stored in, as literals were.
template <typename Body>
const std::string& ChangeApplier::Prepared(Table& t, const std::string& shape, Body body) {
  auto it = t.statements.find(shape);
  if (it == t.statements.end()) {
    std::string name = absl::StrCat("turnout_apply_", ++statements_prepared_);
    stmt_.clear();
    body();
    queued_bytes_ += stmt_.size();
    if (broken_.ok() && PQsendPrepare(target_.get(), name.c_str(), stmt_.c_str(), 0, nullptr) != 1)
      Broken("prepare a change");
    it = t.statements.emplace(shape, std::move(name)).first;
  }
  return it->second;
}

template <typename Use>
void ChangeApplier::AddArguments(const pgo::Tuple& tuple, Use use) {
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    if (!use(i)) continue;
    if (tuple[i].kind == 'n') AddNull();
    else AddValue(tuple[i].value);
  }
}

const std::string& ChangeApplier::ShapeOf(char kind, const pgo::Tuple& row) {
  shape_.assign(1, kind);
  for (const auto& c : row) shape_ += c.kind != 'u' ? '1' : '0';
  return shape_;
}

void ChangeApplier::ForgetPrepared() {
  for (auto& [oid, t] : relations_) t.statements.clear();
}

absl::Status ChangeApplier::Commit(std::uint64_t reached, bool announce) {
  if (!broken_.ok()) return broken_;
  // Marking from now on is stored before anything after it counts as
  // applied: a group of its own when nothing else goes.
  const bool store_marks = applied_mark_ && !marks_stored_;
  if (group_transactions_ == 0 && !open_on_target_ && !store_marks)
    return reached > 0 ? Reach(reached, announce) : absl::OkStatus();
  if (auto st = WaitForRoom(); !st.ok()) return st;
  if (auto st = EnterPipeline(); !st.ok()) return st;
  if (!open_on_target_) QueueBegin();
  if (group_end_ > sent_end_ || store_marks) {
    sent_end_ = std::max(sent_end_, group_end_);
    AddValue(slot_);
    AddValue(pgo::FormatLsn(sent_end_));
    AddValue(applied_mark_ ? "true" : "false");
    QueuePrepared(kPositionStatement);
    marks_stored_ = applied_mark_;
  }
  // Delivered when the group commits, not before; a fence received after
  // the group's last transaction is announced with it (no second round
  // trip for it). A group alone is not announced (see Commit in the
  // header).
  const std::uint64_t announced = std::max(group_end_, reached);
  const bool notify = announce && announced > announced_;
  if (notify) {
    QueueNotify(announced);
    announced_ = announced;
  }
  // Whoever hears the NOTIFY may rely on new having it on disk.
  if (notify && durability_ == Durability::kAtAnnouncements) Queue(kFlushThisCommit);
  QueuePrepared(kCommitStatement);
  Unit u;
  u.durable = durability_ == Durability::kEachGroup || notify;
  u.end = group_end_;
  u.reached = reached;
  u.commit_time = group_commit_time_;
  u.transactions = static_cast<std::int64_t>(group_transactions_);
  u.rows = group_rows_;
  Sync(std::move(u));
  open_on_target_ = false;
  oldest_pending_commit_time_ = in_transaction_ ? oldest_pending_commit_time_ : 0;
  group_transactions_ = 0;
  group_rows_ = 0;
  return broken_;
}

absl::Status ChangeApplier::Reach(std::uint64_t lsn, bool announce) {
  if (!broken_.ok()) return broken_;
  if (applied_mark_ && !marks_stored_) return Commit(lsn, announce);
  if (announce && lsn > announced_ && durability_ != Durability::kEachGroup && !open_on_target_) {
    // Reached once the announcement flushed what came before it: whoever
    // waits for `lsn` hears of it no sooner.
    if (auto st = EnterPipeline(); !st.ok()) return st;
    announced_ = lsn;
    SendAnnouncement(lsn, lsn);
    return broken_;
  }
  if (units_.empty()) reached_ = std::max(reached_, lsn);  // everything sent is committed
  else units_.back().reached = std::max(units_.back().reached, lsn);
  if (!announce || lsn <= announced_) return absl::OkStatus();
  announced_ = lsn;
  return Announce(lsn);
}

absl::Status ChangeApplier::Announce(std::uint64_t lsn) {
  // Queued after the groups sent: it runs once they committed.
  if (auto st = EnterPipeline(); !st.ok()) return st;
  if (open_on_target_) {
    // Inside a large transaction's pieces: its rows are not committed.
    return absl::OkStatus();
  }
  SendAnnouncement(lsn, /*reached=*/0);
  return broken_;
}

void ChangeApplier::SendAnnouncement(std::uint64_t lsn, std::uint64_t reached) {
  const bool own_block = durability_ != Durability::kEachGroup;
  if (own_block) {
    QueuePrepared(kBeginStatement);
    Queue(kFlushThisCommit);
  }
  QueueNotify(lsn);
  if (own_block) QueuePrepared(kCommitStatement);
  Unit u;
  u.reached = reached;
  u.durable = true;
  Sync(std::move(u));
}

absl::Status ChangeApplier::MakeDurable() {
  if (!broken_.ok()) return broken_;
  if ((durable_ < reached_ || !units_.empty()) && !open_on_target_) {
    if (auto st = EnterPipeline(); !st.ok()) return st;
    SendAnnouncement(reached_, reached_);
  }
  return Drain();
}

absl::Status ChangeApplier::Take(const pgo::LogicalMessage& m) {
  if (const auto* b = std::get_if<pgo::Begin>(&m)) {
    in_transaction_ = true;
    skipping_ = b->final_lsn < std::max(applied_, group_end_);
    begin_commit_time_ = -1;
    if (!skipping_ && oldest_pending_commit_time_ == 0) oldest_pending_commit_time_ = begin_commit_time_ = b->commit_time;
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
  if (!open_on_target_) {
    // BEGIN with the first change (a transaction skipped after its Begin,
    // for its applied mark, opens nothing on the target).
    if (auto st = EnterPipeline(); !st.ok()) return st;
    QueueBegin();
  }
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
  if (queued_bytes_ >= kSendAt) {
    // A piece of a large transaction: answered before more is queued.
    Sync(Unit{});
    return Drain();
  }
  return broken_;
}

absl::Status ChangeApplier::Insert(const pgo::Insert& m) {
  Table* t = Find(m.relation);
  if (t == nullptr) return absl::InternalError(absl::StrCat("old: insert into unknown relation ", m.relation));
  if (t->internal) return absl::OkStatus();
  if (m.row.size() != t->columns.size())
    return absl::InternalError(absl::StrCat("old: insert into ", t->name, ": column count differs from its relation"));
  const auto present = [&](std::size_t i) { return m.row[i].kind != 'u'; };
  const std::string& name = Prepared(*t, ShapeOf('i', m.row), [&] { AppendInsert(*t, m.row, /*parameters=*/true); });
  AddArguments(m.row, present);
  QueuePrepared(name);
  ++group_rows_;
  return absl::OkStatus();
}

void ChangeApplier::AppendInsert(const Table& t, const pgo::Tuple& row, bool parameters) {
  absl::StrAppend(&stmt_, "insert into ", t.name, " as turnout_target (");
  int n = 0;
  for (std::size_t i = 0; i < row.size(); ++i)
    if (row[i].kind != 'u') absl::StrAppend(&stmt_, n++ ? ", " : "", t.columns[i].name);
  stmt_ += ") overriding system value values (";
  if (parameters) {
    for (int i = 1; i <= n; ++i) absl::StrAppend(&stmt_, i > 1 ? ", $" : "$", i);
  } else {
    bool first = true;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (row[i].kind == 'u') continue;
      if (!first) stmt_ += ", ";
      AppendValue(row[i]);
      first = false;
    }
  }
  stmt_ += ")";
  AppendConflictRule(t);
}

// The conflict rule, for rows new held before the copy (by primary key).
void ChangeApplier::AppendConflictRule(const Table& t) {
  std::vector<const Column*> keys, rest;
  for (const auto& c : t.columns) (c.key ? keys : rest).push_back(&c);
  if (t.identity != 'd' || keys.empty()) return;
  stmt_ += " on conflict (";
  for (std::size_t i = 0; i < keys.size(); ++i) absl::StrAppend(&stmt_, i ? ", " : "", keys[i]->name);
  stmt_ += ") do ";
  if (rule_ == ConflictRule::kNone || rest.empty()) {
    stmt_ += "nothing";
    return;
  }
  stmt_ += "update set ";
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const std::string& c = rest[i]->name;
    if (rule_ == ConflictRule::kReplace) absl::StrAppend(&stmt_, i ? ", " : "", c, " = excluded.", c);
    else absl::StrAppend(&stmt_, i ? ", " : "", c, " = coalesce(turnout_target.", c, ", excluded.", c, ")");
  }
}

absl::Status ChangeApplier::AppendWhere(const Table& t, const pgo::Tuple& tuple, bool full_row) {
  if (tuple.size() != t.columns.size())
    return absl::InternalError(absl::StrCat("old: a row of ", t.name, " whose column count differs from its relation"));
  bool first = true;
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    const bool use = full_row ? tuple[i].kind != 'u' : t.columns[i].key;
    if (!use) continue;
    if (!first) stmt_ += " and ";
    first = false;
    if (tuple[i].kind == 'n') {
      absl::StrAppend(&stmt_, t.columns[i].name, " is null");
    } else if (full_row) {
      // Every type has an output function; not every type has "=" (json,
      // point). format('%s') prints a value by its output function, as
      // pgoutput did (a cast to text may not: bool, bpchar, inet). Where the
      // type has "=", it comes first so that an index on the column (a key
      // added after the table was made FULL) finds the row instead of a
      // scan of the table; the text keeps the match exact (numeric 1.0 =
      // 1.00, but their text differs).
      const std::string literal = Literal(tuple[i].value);
      if (t.columns[i].indexed_equality) absl::StrAppend(&stmt_, t.columns[i].name, " = ", literal, " and ");
      absl::StrAppend(&stmt_, "format('%s', ", t.columns[i].name, ") = ", literal);
    } else {
      absl::StrAppend(&stmt_, t.columns[i].name, " = ", Literal(tuple[i].value));
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
    absl::StrAppend(&stmt_, n == first ? "" : " and ", c.name, " = $", n);
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
  if (!full && ByPreparedKey(*t, who)) {
    const std::string& name = Prepared(*t, ShapeOf('u', m.row), [&] {
      absl::StrAppend(&stmt_, "update ", t->name, " set ");
      int p = 0;
      for (std::size_t i = 0; i < m.row.size(); ++i) {
        if (!set(i)) continue;
        ++p;
        absl::StrAppend(&stmt_, p > 1 ? ", " : "", t->columns[i].name, " = $", p);
      }
      stmt_ += " where ";
      AppendKeyParameters(*t, n + 1);
    });
    AddArguments(m.row, set);
    AddArguments(who, [&](std::size_t i) { return t->columns[i].key; });
    QueuePrepared(name);
    ++group_rows_;
    return absl::OkStatus();
  }
  stmt_.clear();
  absl::StrAppend(&stmt_, "update ", t->name, " set ");
  bool any = false;
  for (std::size_t i = 0; i < m.row.size(); ++i) {
    if (!set(i)) continue;
    absl::StrAppend(&stmt_, any ? ", " : "", t->columns[i].name, " = ");
    AppendValue(m.row[i]);
    any = true;
  }
  if (full) absl::StrAppend(&stmt_, " where ctid = (select ctid from ", t->name, " where ");
  else stmt_ += " where ";
  if (auto st = AppendWhere(*t, who, full); !st.ok()) return st;
  if (full) stmt_ += " limit 1)";
  Queue(stmt_);
  ++group_rows_;
  return absl::OkStatus();
}

absl::Status ChangeApplier::Delete(const pgo::Delete& m) {
  Table* t = Find(m.relation);
  if (t == nullptr) return absl::InternalError(absl::StrCat("old: delete from unknown relation ", m.relation));
  if (t->internal) return absl::OkStatus();
  const bool full = m.old_kind == 'O';
  if (!full && ByPreparedKey(*t, m.old_tuple)) {
    const std::string& name = Prepared(*t, "d", [&] {
      absl::StrAppend(&stmt_, "delete from ", t->name, " where ");
      AppendKeyParameters(*t, 1);
    });
    AddArguments(m.old_tuple, [&](std::size_t i) { return t->columns[i].key; });
    QueuePrepared(name);
    ++group_rows_;
    return absl::OkStatus();
  }
  stmt_.clear();
  absl::StrAppend(&stmt_, "delete from ", t->name, " where ");
  if (full) absl::StrAppend(&stmt_, "ctid = (select ctid from ", t->name, " where ");
  if (auto st = AppendWhere(*t, m.old_tuple, full); !st.ok()) return st;
  if (full) stmt_ += " limit 1)";
  Queue(stmt_);
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
  Queue(absl::StrCat("truncate ", names, m.restart_identity ? " restart identity" : "", m.cascade ? " cascade" : ""));
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
      Queue(std::string(s.text));
      continue;
    }
    // Commit what came before (earlier transactions of the group with their
    // position), run the statement alone, and reopen for the rest of this
    // transaction. Run again after a crash, it finds its object there.
    if (auto st = Commit(); !st.ok()) return st;
    if (auto st = LeavePipeline(); !st.ok()) return st;
    auto r = PgExec(target_, std::string(s.text), {}, "apply DDL");
    if (!r.ok() && !absl::StrContains(r.status().message(), "already exists")) return r.status();
    if (auto st = EnterPipeline(); !st.ok()) return st;
    QueueBegin();
  }
  return broken_;
}

}  // namespace turnout::control
