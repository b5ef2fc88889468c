#pragma once
// Classifies SQL text for routing (DESIGN §3): per statement, its class,
// DDL risk, the tables it names, whether its result is ordered, and the
// transaction-control or session-state detail. Pure and allocation-free in
// the common case: results hold views into the input text, so they live as
// long as it does.
//
// It is a classifier, not a parser: it reads the leading keywords and a few
// clause shapes. Whatever it cannot place is kUnknown, which callers treat
// as a write (IsWriteLike).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "protocol/pg/sql_lexer.h"

namespace turnout::protocol::pg {

enum class StatementClass : std::uint8_t {
  kRead,        // SELECT, VALUES, TABLE, SHOW, EXPLAIN (without ANALYZE of a write), COPY ... TO
  kWrite,       // DML, SELECT ... FOR UPDATE / INTO / nextval(), CALL, DO, NOTIFY, COPY ... FROM, LOCK
  kDdl,         // CREATE, ALTER, DROP, TRUNCATE, COMMENT, GRANT, REVOKE (see DdlRisk)
  kTxnControl,  // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PREPARE TRANSACTION, ...
  kSession,     // SET, RESET, DISCARD, LISTEN, UNLISTEN, PREPARE, DEALLOCATE, CLOSE, LOAD
  kAdmin,       // VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, REFRESH MATERIALIZED VIEW, ALTER SYSTEM
  kUnknown,     // anything else, lexing errors, EXECUTE of a prepared statement
};

// Write, DDL, admin and unknown must reach the authoritative side.
constexpr bool IsWriteLike(StatementClass c) noexcept {
  return c == StatementClass::kWrite || c == StatementClass::kDdl || c == StatementClass::kAdmin ||
         c == StatementClass::kUnknown;
}

// Order used for the aggregate of a multi-statement query:
// read < session < txn-control < write < admin < unknown < ddl.
int Strength(StatementClass c) noexcept;
std::string_view ToString(StatementClass c) noexcept;

// Risk of a schema change (reference/schema-migration-risk-levels.md):
// SAFE: CREATE TABLE/INDEX/VIEW..., ADD COLUMN nullable (with or without a
//   default), SET/DROP DEFAULT, DROP NOT NULL, VALIDATE CONSTRAINT, COMMENT.
// MEDIUM: ADD COLUMN NOT NULL DEFAULT, ADD CONSTRAINT / FOREIGN KEY, ALTER
//   COLUMN TYPE to a wider type (text, bigint, numeric, double precision,
//   unbounded varchar), SET NOT NULL, CREATE OR REPLACE, triggers, DROP INDEX.
// HIGH: DROP TABLE/COLUMN/SCHEMA..., TRUNCATE, RENAME, SET SCHEMA, ALTER
//   COLUMN TYPE to any other type or with USING, ADD COLUMN NOT NULL without
//   a default, DETACH PARTITION, CASCADE, unrecognised ALTER TABLE actions.
enum class DdlRisk : std::uint8_t { kNone, kSafe, kMedium, kHigh };
std::string_view ToString(DdlRisk r) noexcept;

enum class TxnControl : std::uint8_t {
  kNone,
  kBegin,                // BEGIN, START TRANSACTION
  kCommit,               // COMMIT, END
  kRollback,             // ROLLBACK, ABORT
  kSavepoint,            // SAVEPOINT name
  kRelease,              // RELEASE [SAVEPOINT] name
  kRollbackToSavepoint,  // ROLLBACK TO [SAVEPOINT] name
  kPrepareTransaction,   // PREPARE TRANSACTION 'gid'
  kCommitPrepared,       // COMMIT PREPARED 'gid'
  kRollbackPrepared,     // ROLLBACK PREPARED 'gid'
  kSetTransaction,       // SET TRANSACTION ...
};
std::string_view ToString(TxnControl t) noexcept;

enum class SessionCommand : std::uint8_t {
  kNone,
  kSet,            // SET [SESSION] name ..., SET ROLE, SET SESSION AUTHORIZATION
  kSetLocal,       // SET LOCAL: lasts until the end of the transaction
  kReset,          // RESET name | ALL
  kDiscard,        // DISCARD ALL | PLANS | SEQUENCES | TEMP
  kListen,
  kUnlisten,
  kPrepare,        // PREPARE name AS statement (prepared_class holds its class)
  kExecute,        // EXECUTE name: the caller looks up the prepared class
  kDeallocate,     // DEALLOCATE [PREPARE] name | ALL
  kDeclareCursor,  // DECLARE name CURSOR FOR query
  kFetch,          // FETCH / MOVE (class kRead)
  kCloseCursor,    // CLOSE name | ALL
  kLoad,           // LOAD 'library'
  kShow,           // SHOW name (class kRead)
};
std::string_view ToString(SessionCommand s) noexcept;

// A table as written: schema and name without quotes (a doubled "" inside
// quotes stays doubled). Unquoted parts compare case-insensitively, quoted
// parts exactly, as PostgreSQL folds unquoted identifiers to lower case.
struct TableRef {
  std::string_view schema;  // "" when unqualified (a catalog part is dropped)
  std::string_view name;
  bool schema_quoted = false;
  bool name_quoted = false;

  // `normalized` is lower case and unquoted, e.g. "orders".
  bool NameEquals(std::string_view normalized) const noexcept;
  bool SchemaEquals(std::string_view normalized) const noexcept;
  // Matches "name" (any schema) or "schema.name".
  bool Matches(std::string_view normalized_qualified) const noexcept;
  // "schema.name" or "name", unquoted parts lower-cased. Allocates.
  std::string Normalized() const;
  void AppendNormalized(std::string* out) const;
};

struct StatementInfo {
  std::string_view text;     // the statement, trimmed, without its ';'
  std::string_view command;  // its first word as written ("select", "WITH")
  StatementClass statement_class = StatementClass::kUnknown;
  DdlRisk ddl_risk = DdlRisk::kNone;
  TxnControl txn = TxnControl::kNone;
  SessionCommand session = SessionCommand::kNone;
  bool read_only_transaction = false;   // BEGIN / START / SET TRANSACTION ... READ ONLY
  bool has_order_by = false;            // ORDER BY of the outermost query
  bool locks_rows = false;              // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE
  bool calls_mutating_function = false; // nextval(), setval(), pg_advisory_lock(), ...
  bool select_into = false;             // SELECT ... INTO new_table
  bool lex_error = false;               // unterminated quote or comment
  // DDL detail the high-risk policy needs (routing/ddl_policy.h):
  bool temporary = false;               // CREATE TEMP|TEMPORARY ...
  bool if_exists = false;               // DROP ... IF EXISTS
  bool cascade = false;                 // DROP / ALTER ... CASCADE
  // SAVEPOINT / RELEASE / ROLLBACK TO: the savepoint; PREPARE / EXECUTE /
  // DEALLOCATE: the statement; SET / RESET / SHOW: the parameter; LISTEN /
  // UNLISTEN: the channel; DECLARE / CLOSE / FETCH: the cursor; the
  // two-phase gid as a quoted literal; DISCARD: its target.
  std::string_view object_name;
  // PREPARE name AS <statement>: the class of <statement>.
  StatementClass prepared_class = StatementClass::kUnknown;
  absl::InlinedVector<TableRef, 4> tables;  // no duplicates, roughly in order of mention

  bool IsWriteLike() const noexcept { return pg::IsWriteLike(statement_class); }
};

struct Classification {
  // Empty statements (";", comments only) are skipped.
  absl::InlinedVector<StatementInfo, 1> statements;
  StatementClass statement_class = StatementClass::kRead;  // strongest (Strength)
  DdlRisk ddl_risk = DdlRisk::kNone;                       // highest
  bool lex_error = false;

  bool IsWriteLike() const noexcept { return pg::IsWriteLike(statement_class); }
  bool empty() const noexcept { return statements.empty(); }
};

struct ClassifierOptions {
  bool standard_conforming_strings = true;
  // Lower-case names of further functions that change data when called from
  // a SELECT (beyond nextval, setval, advisory locks, ...).
  std::span<const std::string_view> extra_mutating_functions;
};

// Reusable: keeps its token buffer between calls, so a session that holds
// one classifies long statements without reallocating.
class SqlClassifier {
 public:
  explicit SqlClassifier(ClassifierOptions options = {}) noexcept : options_(options) {}

  void Classify(std::string_view sql, Classification* out);

  const ClassifierOptions& options() const noexcept { return options_; }
  void set_standard_conforming_strings(bool on) noexcept { options_.standard_conforming_strings = on; }

 private:
  void FinishStatement(std::string_view sql, Classification* out);

  ClassifierOptions options_;
  // Kept between statements (no allocation per statement once grown), as
  // large as the longest statement seen, up to kKeptTokens: a session keeps
  // one classifier for its life, and 64 tokens held inline were 1.7 kB of
  // every idle session.
  static constexpr std::size_t kKeptTokens = 256;
  std::vector<Token> tokens_;
  std::vector<std::uint16_t> depth_;
};

// One-shot convenience.
Classification ClassifySql(std::string_view sql, const ClassifierOptions& options = {});

// True when `name` (lower-case) is a function that changes data or takes a
// lock even when called from a SELECT.
bool IsMutatingFunction(std::string_view name) noexcept;

}  // namespace turnout::protocol::pg
