#pragma once
// Applies a decoded pgoutput stream (protocol/pg/pgoutput.h) to the target
// server, one source transaction after another in commit order.
//
// Consecutive source transactions are grouped into one transaction on the
// target (the order inside is kept); the group also writes the position it
// reached into _turnout.stream_position, so the rows and the position commit
// together: after any restart the stream resumes from the stored position
// and skips transactions that committed before it (exactly once).
//
// The target connection runs in libpq's pipeline mode
// (libpq-pipeline-mode): a group is sent (its statements, then a Sync) and
// Commit() returns without waiting; the stream goes on receiving and builds
// the next group, which may be sent while earlier ones still run (at most
// kGroupsInFlight). The server runs a connection's groups one after another,
// in the order sent, so they commit in stream order; a group that fails
// leaves its transaction aborted, and every later group in the pipeline
// fails with it (nothing after a failure commits). Poll() reads what new
// answered without blocking: a group counts as applied (applied(),
// reached()) only once its COMMIT returned, and only then may the caller
// confirm the slot or tell waiting sessions.
//
// Rows are addressed by replica identity (the key columns the Relation
// message flags; all columns for REPLICA IDENTITY FULL). A change by key is
// a prepared statement (Parse once per shape, then Bind/Execute with the
// source's text output as parameters the target casts to the column's
// type); the rest (REPLICA IDENTITY FULL, a NULL key) are statements with
// literals. The session runs with session_replication_role = replica:
// foreign keys and user triggers stay off, as in logical replication, since
// a trigger's own writes arrive in the stream too.
//
// Durability (Durability::kAtAnnouncements, the forward stream): a group
// commits with synchronous_commit off. It counts as applied (reached(): a
// sync commit waiting for it is released) once it is visible on new; it is
// on new's disk only after a later commit that flushed the WAL. Every
// announcement (the heartbeat once a second, a fence another process or a
// cutover waits for) commits with synchronous_commit on, which flushes every
// earlier commit too, and only what that covers is durable(): what the
// slot may forget. A crash of new loses at most the groups after the last
// flush, and the stored position with them: the stream applies them again
// from the slot. Nobody else hears of a position before it is durable, so
// a cutover never flips to a new that could still lose what it was told
// new holds. Before, every group waited for new's WAL flush, and so did
// every sync commit (with fsync on, a disk flush on new per client commit).
// The stream back (kEachGroup) flushes each group: a cutover back reads its
// stored position on old (WaitAppliedOn), and the volume is small.
//
// Inserts follow the migration's conflict rule for rows the target held
// before the copy: none (keep the target's), replace, merge (fill NULLs).
//
// Where the target keeps logical WAL, each transaction the applier commits
// there starts with a transactional logical message (kAppliedMarkPrefix,
// the slot), and a stream in the other direction (new -> old after a
// cutover) skips every transaction that starts with one, so no change ever
// travels back to where it came from. (A replication origin would do the
// same, but holds one of the server's max_replication_slots state entries
// until it is dropped, and needs privileges the stream does not otherwise.)
// The forward stream marks only from the first cutover fence on
// (Marks::kFromCutover, MarkFromNowOn): a stream back can exist only after
// a cutover caught up past that fence, and a mark cost new a WAL record
// and a statement per group, a tenth of its CPU per pgbench transaction.
//
// DDL arrives as a transactional logical message (prefix kDdlMessagePrefix,
// from the event trigger control/pg_change_stream.cc installs): its DDL
// statements run at their place among the rows. CREATE INDEX CONCURRENTLY
// and the like cannot run in a transaction (nor in a pipeline): the groups
// sent are waited for first, and the statement runs alone.

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/data_movement.h"
#include "control/pg_client.h"
#include "protocol/pg/pgoutput.h"

namespace turnout::control {

inline constexpr std::string_view kDdlMessagePrefix = "turnout.ddl";
// turnout's own objects on the target. Not "turnout": a schema named like a
// role lands first on that role's search_path ("$user", public), and every
// unqualified CREATE of that user would go there.
inline constexpr std::string_view kInternalSchema = "_turnout";
// The NOTIFY channel on the target where the applier says how far it got,
// "<slot> <lsn>", once a second while streaming and when it applied past a
// fence of another process (a cutover's, another sidecar's feeder's): every
// sidecar's StreamFeeder listens (control/stream_feeder.h).
inline constexpr std::string_view kAppliedChannel = "turnout_applied";
// A fence in old's WAL (a non-transactional logical message naming the
// slot, flushed at once): every transaction that committed before it is
// received before it, so once the applier commits what it received, new
// holds all of them (pg_change_stream.cc; control/stream_feeder.h and
// cutover.h write them).
inline constexpr std::string_view kFencePrefix = "turnout.fence";
// The mark at the start of each transaction an applier commits (above).
inline constexpr std::string_view kAppliedMarkPrefix = "turnout.applied";

class ChangeApplier {
 public:
  // Whether the applier marks its transactions (above): always (the stream
  // back), or once a cutover's fence arrived (the forward stream).
  enum class Marks { kAlways, kFromCutover };
  // When a commit on the target is flushed before it counts (above).
  enum class Durability { kEachGroup, kAtAnnouncements };
  ChangeApplier(PgSide target, std::string slot, ConflictRule rule, Marks marks = Marks::kAlways,
                Durability durability = Durability::kEachGroup);

  // Session settings, the applied mark and the position table; the stored
  // position, or 0.
  absl::StatusOr<std::uint64_t> Open();
  // Records `lsn` as applied (the initial copy's consistent point).
  absl::Status StorePosition(std::uint64_t lsn);
  // A cutover's fence arrived (at a transaction boundary): every
  // transaction after it is marked, and the next group (one of its own, if
  // nothing else is sent before the fence is reached) stores that, so
  // nothing counts as applied past the fence before a restart would go on
  // marking. True when this turned marking on (the target keeps logical
  // WAL and did not mark yet).
  bool MarkFromNowOn();

  // Takes the next message in stream order.
  absl::Status Take(const protocol::pg::pgoutput::LogicalMessage& m);

  // Between source transactions (the group may be committed now).
  bool AtTransactionBoundary() const { return !in_transaction_; }
  // Transactions and bytes received but not yet sent to the target.
  std::size_t pending_transactions() const { return group_transactions_; }
  std::size_t pending_bytes() const { return queued_bytes_; }
  // Sends the group, with its position, without waiting for it to commit;
  // a no-op when empty. Waits first while kGroupsInFlight groups are in
  // flight. `reached`: a position before which everything received is in
  // the group. With `announce` (a fence another process waits for),
  // kAppliedChannel hears of the group's position or `reached`, whichever
  // is further, when the group commits. A group alone is not announced:
  // the sessions of the process that runs the stream hear of it directly,
  // and every other sidecar's waiting session asked for a fence, which is
  // announced; a NOTIFY per group cost new a write and woke every listening
  // feeder for nothing. The heartbeat (Announce) keeps them live.
  absl::Status Commit(std::uint64_t reached = 0, bool announce = false);
  // Everything received before `lsn` is in the groups sent (none pending):
  // reached() passes `lsn` once they committed; with `announce`,
  // kAppliedChannel hears it then (else with the next group or Announce).
  absl::Status Reach(std::uint64_t lsn, bool announce);
  // Notifies kAppliedChannel, after the groups sent, that everything before
  // `lsn` is applied (a heartbeat).
  absl::Status Announce(std::uint64_t lsn);
  // What was sent and is not answered yet (groups, notifications).
  std::size_t in_flight() const { return units_.size(); }
  // Whether another group may be sent now without waiting.
  bool can_send() const;
  // The target connection's socket, to wait on while in_flight().
  int socket() const { return PQsocket(target_.get()); }
  // Reads new's answers without blocking: completed groups become applied.
  absl::Status Poll();
  // Waits until everything sent is answered.
  absl::Status Drain();
  // The furthest position announced or to be announced (Commit, Reach).
  std::uint64_t announced() const { return announced_; }
  // Everything of the source before reached() is committed on the target:
  // applied(), or a position Reach()ed once the groups before it committed.
  std::uint64_t reached() const { return reached_; }

  // Everything of the source before durable() is on the target's disk too
  // (<= reached()): what the slot may be told to forget.
  std::uint64_t durable() const { return durable_; }
  // Makes reached() durable (a flushed commit of its own, when the last
  // was not) and waits for it: before the stream ends and its slot may go.
  absl::Status MakeDurable();

  std::uint64_t applied() const { return applied_; }
  std::int64_t applied_commit_time() const { return applied_commit_time_; }
  // Commit time (µs since 2000) of the oldest transaction received and not
  // yet committed on the target; 0 when none.
  std::int64_t oldest_pending_commit_time() const { return oldest_pending_commit_time_; }
  std::int64_t transactions() const { return transactions_; }
  std::int64_t rows() const { return rows_; }

 private:
  struct Column {
    std::string name;  // quoted
    bool key = false;
    // A built-in type whose "=" an index can serve (see AppendWhere).
    bool indexed_equality = false;
  };
  struct Table {
    std::string name;  // schema.table, quoted
    bool internal = false;  // turnout's own tables: never applied
    char identity = 'd';
    std::vector<Column> columns;
    // Statements prepared on the target for this relation, by shape (the
    // change's kind and which columns it carries): name. A new Relation
    // message (DDL) replaces the table, and with it these.
    std::unordered_map<std::string, std::string> statements;
  };
  // What one Sync of the pipeline answers: a group (its COMMIT), a piece of
  // a large transaction, or a notification.
  struct Unit {
    std::uint64_t end = 0;      // the group's position (0: not a group)
    std::uint64_t reached = 0;  // known applied once this unit is answered
    std::int64_t commit_time = 0;
    std::int64_t transactions = 0;
    std::int64_t rows = 0;
    bool durable = false;       // committed with synchronous_commit on
    absl::Status error;         // the first failure among its statements
  };

  absl::Status Exec(const std::string& sql, const std::string& what);
  absl::Status SetSynchronousCommit(bool on);
  // The pipeline: entered on the first statement sent; left (after
  // Drain()) for what runs alone (StorePosition, CONCURRENTLY DDL).
  absl::Status EnterPipeline();
  absl::Status LeavePipeline();
  // Queues `sql` (one statement, no parameters; literals in the text).
  void Queue(const std::string& sql);
  // Queues the prepared statement `name` with the parameters collected in
  // values_ (AddValue) since the last call.
  void QueuePrepared(const std::string& name);
  void AddValue(std::string_view v);
  void AddNull();
  // Ends the statements queued with a Sync answered as `unit`.
  void Sync(Unit unit);
  // BEGIN and the applied mark, once per target transaction.
  void QueueBegin();
  // NOTIFY kAppliedChannel of `lsn` ("<slot> <lsn>"), delivered when the
  // transaction it is queued in commits.
  void QueueNotify(std::uint64_t lsn);
  // The NOTIFY of `lsn` in a flushed transaction of its own, answered as a
  // unit that reaches `reached`.
  void SendAnnouncement(std::uint64_t lsn, std::uint64_t reached);
  // A send that failed: the connection's error, kept for every later call.
  void Broken(const char* what);
  absl::Status WaitForRoom();
  absl::Status WaitAnswers(bool all);
  void Completed(Unit& u);
  Table* Find(std::uint32_t relation);
  // The prepared statement of `shape` on `t`, prepared first (in the
  // pipeline) from the text `body` writes into stmt_ when it is new.
  template <typename Body>
  const std::string& Prepared(Table& t, const std::string& shape, Body body);
  // The shape of a row change into shape_: its kind ('i', 'u') and which
  // columns it carries (an unchanged TOASTed value, 'u', is not sent). The
  // buffer keeps its capacity: no allocation per row.
  const std::string& ShapeOf(char kind, const protocol::pg::pgoutput::Tuple& row);
  // Adds the values of `tuple` where `use(i)` as parameters.
  template <typename Use>
  void AddArguments(const protocol::pg::pgoutput::Tuple& tuple, Use use);
  // After a failure nothing prepared can be trusted to exist.
  void ForgetPrepared();
  // "insert into … values (…)" of `row` into stmt_, with parameters or
  // literals, and the conflict rule.
  void AppendInsert(const Table& t, const protocol::pg::pgoutput::Tuple& row, bool parameters);
  std::string Literal(std::string_view v);
  void AppendValue(const protocol::pg::pgoutput::TupleColumn& c);
  // "a = 'x' AND b IS NULL": the row `tuple` names by identity.
  absl::Status AppendWhere(const Table& t, const protocol::pg::pgoutput::Tuple& tuple, bool full_row);
  void AppendConflictRule(const Table& t);
  bool ByPreparedKey(const Table& t, const protocol::pg::pgoutput::Tuple& tuple) const;
  // "k1 = $first and k2 = $first+1 ...": the key columns, in order.
  void AppendKeyParameters(const Table& t, int first);
  absl::Status Insert(const protocol::pg::pgoutput::Insert& m);
  absl::Status Update(const protocol::pg::pgoutput::Update& m);
  absl::Status Delete(const protocol::pg::pgoutput::Delete& m);
  absl::Status Truncate(const protocol::pg::pgoutput::Truncate& m);
  absl::Status Ddl(std::string_view text);

  PgSide target_;
  const std::string slot_;
  const ConflictRule rule_;
  std::unordered_map<std::uint32_t, Table> relations_;
  std::uint64_t statements_prepared_ = 0;  // names are never reused

  bool in_transaction_ = false;
  bool skipping_ = false;       // a transaction applied before the stored position, or by turnout
  std::int64_t begin_commit_time_ = -1;  // the current transaction's, when it set oldest_pending_commit_time_
  const Marks marks_policy_;
  const Durability durability_;
  bool can_mark_ = false;       // the target keeps logical WAL
  bool applied_mark_ = false;   // mark each transaction (from here on)
  bool marks_stored_ = false;   // the stored position says so
  bool pipeline_ = false;
  bool open_on_target_ = false; // BEGIN queued, COMMIT not yet
  absl::Status broken_;         // a send failed: the connection is unusable
  std::string stmt_;            // the statement being written
  std::string shape_;           // the row change's shape (ShapeOf)
  std::string values_;          // its parameters, each ended by a NUL
  std::vector<int> value_offsets_;  // into values_; -1 for NULL
  std::vector<const char*> value_pointers_;
  std::size_t queued_bytes_ = 0;  // statement bytes queued since the last Sync
  std::deque<Unit> units_;        // sent, in order, not yet answered
  std::size_t group_transactions_ = 0;
  std::int64_t group_rows_ = 0;
  std::uint64_t group_end_ = 0;  // end LSN of the last transaction received
  std::uint64_t sent_end_ = 0;   // the position the last group sent stores
  std::int64_t group_commit_time_ = 0;
  std::int64_t oldest_pending_commit_time_ = 0;
  std::uint64_t announced_ = 0;

  std::uint64_t applied_ = 0;
  std::uint64_t reached_ = 0;
  std::uint64_t durable_ = 0;
  std::int64_t applied_commit_time_ = 0;
  std::int64_t transactions_ = 0;
  std::int64_t rows_ = 0;
};

}  // namespace turnout::control
