#include "protocol/pg/sql_classifier.h"

#include <algorithm>
#include <array>
#include <iterator>

namespace turnout::protocol::pg {
namespace {

using K = Keyword;
using TK = TokenKind;

// Functions that write, take locks or change server state even inside a
// SELECT (functions-sequence, functions-admin, functions-binarystring: lo_*).
// Sorted for binary search.
constexpr std::string_view kMutatingFunctions[] = {
    "dblink_exec",
    "lo_creat",
    "lo_create",
    "lo_from_bytea",
    "lo_import",
    "lo_put",
    "lo_unlink",
    "nextval",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_all",
    "pg_advisory_unlock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_cancel_backend",
    "pg_create_logical_replication_slot",
    "pg_create_physical_replication_slot",
    "pg_create_restore_point",
    "pg_current_xact_id",
    "pg_drop_replication_slot",
    "pg_import_system_collations",
    "pg_logical_emit_message",
    "pg_logical_slot_get_changes",
    "pg_notify",
    "pg_reload_conf",
    "pg_replication_origin_create",
    "pg_rotate_logfile",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_switch_wal",
    "pg_terminate_backend",
    "pg_truncate_visibility_map",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "set_config",
    "setval",
    "txid_current",
    "txid_current_if_assigned",
};
static_assert(std::is_sorted(std::begin(kMutatingFunctions), std::end(kMutatingFunctions)));

constexpr char ToLower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool Stronger(StatementClass a, StatementClass b) noexcept { return Strength(a) > Strength(b); }
StatementClass Max(StatementClass a, StatementClass b) noexcept { return Stronger(b, a) ? b : a; }
DdlRisk Max(DdlRisk a, DdlRisk b) noexcept { return b > a ? b : a; }

// Words that cannot start a table name or be an alias in a FROM list
// (sql-keywords-appendix: reserved), so "FROM t WHERE" stops at WHERE.
bool IsReserved(K k) noexcept {
  switch (k) {
    case K::kAll: case K::kAnd: case K::kAs: case K::kCase: case K::kCheck: case K::kCollate:
    case K::kColumn: case K::kConstraint: case K::kCreate: case K::kCross: case K::kDefault:
    case K::kDistinct: case K::kDo: case K::kElse: case K::kEnd: case K::kExcept: case K::kFalse:
    case K::kFetch: case K::kFor: case K::kForeign: case K::kFrom: case K::kFull: case K::kGrant:
    case K::kGroup: case K::kHaving: case K::kIn: case K::kInner: case K::kIntersect: case K::kInto:
    case K::kIs: case K::kJoin: case K::kLateral: case K::kLeft: case K::kLimit: case K::kNatural:
    case K::kNot: case K::kNull: case K::kOffset: case K::kOn: case K::kOnly: case K::kOr:
    case K::kOrder: case K::kOuter: case K::kPrimary: case K::kReferences: case K::kReturning:
    case K::kRight: case K::kSelect: case K::kTable: case K::kTablesample: case K::kThen: case K::kTo:
    case K::kUnion: case K::kUnique: case K::kUsing: case K::kWhen: case K::kWhere: case K::kWindow:
    case K::kWith: case K::kValues: case K::kSet:
      return true;
    default:
      return false;
  }
}

// Strips the quotes of "x" or U&"x"; returns the text and whether quoted.
std::string_view IdentifierText(const Token& t, bool* quoted) noexcept {
  if (t.kind != TK::kQuotedIdentifier) {
    *quoted = false;
    return t.text;
  }
  *quoted = true;
  const std::size_t open = t.text.find('"');
  if (open == std::string_view::npos || t.text.size() < open + 2) return {};
  return t.text.substr(open + 1, t.text.size() - open - 2);
}

// Compares an identifier part as PostgreSQL would see it with a normalized
// (lower-case, unquoted) spelling.
bool PartEquals(std::string_view part, bool quoted, std::string_view normalized) noexcept {
  if (!quoted) return EqualsLower(part, normalized);
  std::size_t j = 0;
  for (std::size_t i = 0; i < part.size(); ++i, ++j) {
    if (j >= normalized.size() || part[i] != normalized[j]) return false;
    if (part[i] == '"' && i + 1 < part.size() && part[i + 1] == '"') ++i;  // "" is one quote
  }
  return j == normalized.size();
}

bool PartsEqual(std::string_view a, bool aq, std::string_view b, bool bq) noexcept {
  if (aq && bq) return a == b;
  if (!aq && !bq) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (ToLower(a[i]) != ToLower(b[i])) return false;
    }
    return true;
  }
  // Unquoted folds to lower case; compare the quoted one with that.
  if (aq) std::swap(a, b);
  char buf[64];
  if (a.size() > sizeof buf) return false;
  for (std::size_t i = 0; i < a.size(); ++i) buf[i] = ToLower(a[i]);
  return PartEquals(b, true, std::string_view(buf, a.size()));
}

void AppendPart(std::string* out, std::string_view part, bool quoted) {
  for (std::size_t i = 0; i < part.size(); ++i) {
    if (quoted) {
      out->push_back(part[i]);
      if (part[i] == '"' && i + 1 < part.size() && part[i + 1] == '"') ++i;
    } else {
      out->push_back(ToLower(part[i]));
    }
  }
}

constexpr std::size_t kMaxTrackedDepth = 32;

// Flags of the query at one parenthesis depth, for telling a table FROM
// (SELECT ... FROM t) from a function's FROM (EXTRACT(year FROM ts)).
enum : std::uint8_t { kSawSelect = 1, kSawDelete = 2, kSawUpdate = 4, kSawMerge = 8 };

class StatementAnalyzer {
 public:
  StatementAnalyzer(std::span<const Token> tokens, std::span<const std::uint16_t> depth,
                    const ClassifierOptions& options, StatementInfo* out) noexcept
      : t_(tokens), depth_(depth), n_(tokens.size()), options_(options), out_(out) {}

  void Run() {
    std::size_t first = 0;
    while (first < n_ && t_[first].kind == TK::kLParen) ++first;
    first_ = first;
    out_->command = first < n_ ? t_[first].text : std::string_view();
    for (std::size_t i = 0; i < n_; ++i) {
      if (t_[i].kind == TK::kError) {
        out_->lex_error = true;
        out_->statement_class = StatementClass::kUnknown;
        return;
      }
    }
    out_->statement_class = ClassifyAt(0, n_, true);
    for (std::size_t i = 0; i + 1 < n_; ++i) {
      if (depth_[i] == 0 && Is(i, K::kOrder) && Is(i + 1, K::kBy)) out_->has_order_by = true;
    }
    if (scan_tables_) CollectTables();
  }

 private:
  K Kw(std::size_t i) const noexcept { return i < n_ && t_[i].kind == TK::kWord ? t_[i].keyword : K::kNone; }
  bool Is(std::size_t i, K k) const noexcept { return Kw(i) == k; }
  TK Kind(std::size_t i) const noexcept { return i < n_ ? t_[i].kind : TK::kEnd; }
  bool IsWordText(std::size_t i, std::string_view lower) const noexcept {
    return i < n_ && t_[i].kind == TK::kWord && EqualsLower(t_[i].text, lower);
  }
  std::string_view Text(std::size_t i) const noexcept { return i < n_ ? t_[i].text : std::string_view(); }

  // Index of the ')' closing the '(' at `open`, or `n_` when unbalanced.
  std::size_t MatchParen(std::size_t open) const noexcept {
    for (std::size_t i = open + 1; i < n_; ++i) {
      if (t_[i].kind == TK::kRParen && depth_[i] == depth_[open]) return i;
    }
    return n_;
  }

  bool Contains(std::size_t from, std::size_t to, K k) const noexcept {
    for (std::size_t i = from; i < to && i < n_; ++i) {
      if (Is(i, k)) return true;
    }
    return false;
  }

  bool StatementStart(std::size_t i) const noexcept {
    if (i == first_) return true;
    if (i == 0) return true;
    const Token& p = t_[i - 1];
    if (p.kind == TK::kLParen || p.kind == TK::kRParen) return true;
    switch (p.keyword) {
      case K::kAs: case K::kExplain: case K::kAnalyze: case K::kAnalyse: case K::kVerbose:
        return p.kind == TK::kWord;
      default:
        return false;
    }
  }

  // --------------------------------------------------------- classification

  StatementClass ClassifyAt(std::size_t i, std::size_t end, bool top) {
    while (i < end && t_[i].kind == TK::kLParen) ++i;
    if (i >= end) return StatementClass::kUnknown;
    switch (Kw(i)) {
      case K::kSelect:
      case K::kValues:
      case K::kTable:
        return ClassifyQuery(i, end);
      case K::kWith:
        return ClassifyWith(i, end, top);
      case K::kInsert:
      case K::kUpdate:
      case K::kDelete:
      case K::kMerge:
      case K::kCall:
      case K::kDo:
      case K::kNotify:
      case K::kLock:
        return StatementClass::kWrite;
      case K::kExplain:
        return ClassifyExplain(i, end);
      case K::kCopy:
        return ClassifyCopy(i, end, top);
      case K::kVacuum:
      case K::kAnalyze:
      case K::kAnalyse:
      case K::kCluster:
      case K::kReindex:
      case K::kCheckpoint:
      case K::kRefresh:
        if (top) AdminTables(i, end);
        return StatementClass::kAdmin;
      default:
        break;
    }
    if (!top) return StatementClass::kUnknown;
    return ClassifyTopLevel(i, end);
  }

  // SELECT, VALUES, TABLE: a read unless it locks rows, creates a table
  // (SELECT INTO) or calls a function that changes data.
  StatementClass ClassifyQuery(std::size_t i, std::size_t end) {
    StatementClass c = StatementClass::kRead;
    const std::uint16_t base = depth_[i];
    for (std::size_t j = i; j < end; ++j) {
      const Token& t = t_[j];
      if (t.kind != TK::kWord) continue;
      if (t.keyword == K::kFor) {
        // sql-select: The Locking Clause.
        if (Is(j + 1, K::kUpdate) || Is(j + 1, K::kShare) || (Is(j + 1, K::kNo) && Is(j + 2, K::kKey)) ||
            (Is(j + 1, K::kKey) && Is(j + 2, K::kShare))) {
          out_->locks_rows = true;
          c = StatementClass::kWrite;
        }
      } else if (t.keyword == K::kInto && depth_[j] == base && Is(i, K::kSelect)) {
        out_->select_into = true;  // sql-selectinto: creates a table
        c = StatementClass::kWrite;
      } else if (Kind(j + 1) == TK::kLParen && IsMutatingCall(t.text)) {
        out_->calls_mutating_function = true;
        c = StatementClass::kWrite;
      }
    }
    return c;
  }

  bool IsMutatingCall(std::string_view name) const noexcept {
    char buf[64];
    if (name.size() > sizeof buf) return false;
    for (std::size_t k = 0; k < name.size(); ++k) buf[k] = ToLower(name[k]);
    const std::string_view lower(buf, name.size());
    if (IsMutatingFunction(lower)) return true;
    for (std::string_view f : options_.extra_mutating_functions) {
      if (f == lower) return true;
    }
    return false;
  }

  // sql-select: WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED] (body)
  // [SEARCH ...] [CYCLE ...], ... main. Any data-modifying body makes the
  // whole statement a write.
  StatementClass ClassifyWith(std::size_t i, std::size_t end, bool top) {
    const std::uint16_t base = depth_[i];
    std::size_t j = i + 1;
    if (Is(j, K::kRecursive)) ++j;
    StatementClass bodies = StatementClass::kRead;
    while (true) {
      if (Kind(j) != TK::kWord && Kind(j) != TK::kQuotedIdentifier) return StatementClass::kUnknown;
      if (cte_count_ < cte_names_.size()) cte_names_[cte_count_++] = j;
      ++j;
      if (Kind(j) == TK::kLParen) j = MatchParen(j) + 1;
      if (!Is(j, K::kAs)) return StatementClass::kUnknown;
      ++j;
      if (Is(j, K::kNot)) ++j;
      if (Is(j, K::kMaterialized)) ++j;
      if (Kind(j) != TK::kLParen) return StatementClass::kUnknown;
      const std::size_t close = MatchParen(j);
      if (close > end) return StatementClass::kUnknown;
      bodies = Max(bodies, ClassifyAt(j + 1, close, false));
      j = close + 1;
      if (Is(j, K::kSearch) || Is(j, K::kCycle)) {
        while (j < end && !(depth_[j] == base && (Kind(j) == TK::kComma || Kind(j) == TK::kLParen ||
                                                  StatementKeyword(Kw(j))))) {
          ++j;
        }
      }
      if (Kind(j) == TK::kComma) {
        ++j;
        continue;
      }
      break;
    }
    const StatementClass main = ClassifyAt(j, end, top);
    return Max(bodies, main);
  }

  static bool StatementKeyword(K k) noexcept {
    return k == K::kSelect || k == K::kInsert || k == K::kUpdate || k == K::kDelete || k == K::kMerge ||
           k == K::kValues || k == K::kTable || k == K::kWith;
  }

  // sql-explain: only ANALYZE runs the statement.
  StatementClass ClassifyExplain(std::size_t i, std::size_t end) {
    std::size_t j = i + 1;
    bool analyze = false;
    if (Kind(j) == TK::kLParen) {
      const std::size_t close = MatchParen(j);
      for (std::size_t k = j + 1; k < close; ++k) {
        if ((Is(k, K::kAnalyze) || Is(k, K::kAnalyse)) && depth_[k] == depth_[j] + 1) {
          const bool off = Is(k + 1, K::kFalse) || Is(k + 1, K::kOff) || Text(k + 1) == "0";
          analyze = !off;
        }
      }
      j = close + 1;
    } else {
      while (Is(j, K::kAnalyze) || Is(j, K::kAnalyse) || Is(j, K::kVerbose)) {
        if (!Is(j, K::kVerbose)) analyze = true;
        ++j;
      }
    }
    const StatementClass inner = ClassifyAt(j, end, false);
    return analyze ? inner : StatementClass::kRead;
  }

  // sql-copy: COPY table FROM is a write; COPY table TO and COPY (query) TO
  // are reads unless the query itself writes (DML with RETURNING).
  StatementClass ClassifyCopy(std::size_t i, std::size_t end, bool top) {
    std::size_t j = i + 1;
    if (Kind(j) == TK::kLParen) {
      const std::size_t close = MatchParen(j);
      const StatementClass inner = ClassifyAt(j + 1, std::min(close, end), false);
      return IsWriteLike(inner) ? Max(inner, StatementClass::kWrite) : StatementClass::kRead;
    }
    if (top) j = AddTableAt(j);
    for (; j < end; ++j) {
      if (depth_[j] != depth_[i]) continue;
      if (Is(j, K::kFrom)) return StatementClass::kWrite;
      if (Is(j, K::kTo)) return StatementClass::kRead;
    }
    return StatementClass::kUnknown;
  }

  void AdminTables(std::size_t i, std::size_t end) {
    // VACUUM / ANALYZE [(options)] [FULL|FREEZE|VERBOSE|ANALYZE...] t [(cols)], ...
    // CLUSTER [VERBOSE] t; REINDEX TABLE t; REFRESH MATERIALIZED VIEW [CONCURRENTLY] v.
    std::size_t j = i + 1;
    if (Is(i, K::kRefresh)) {
      if (Is(j, K::kMaterialized)) ++j;
      if (Is(j, K::kView)) ++j;
      if (Is(j, K::kConcurrently)) ++j;
      AddTableAt(j);
      return;
    }
    if (Is(i, K::kReindex)) {
      if (Kind(j) == TK::kLParen) j = MatchParen(j) + 1;
      if (Is(j, K::kTable)) AddTableAt(j + 1 + (Is(j + 1, K::kConcurrently) ? 1 : 0));
      return;
    }
    if (Is(i, K::kCheckpoint)) return;
    if (Kind(j) == TK::kLParen) j = MatchParen(j) + 1;
    while (j < end && (Is(j, K::kFull) || Is(j, K::kVerbose) || Is(j, K::kAnalyze) || Is(j, K::kAnalyse) ||
                       IsWordText(j, "freeze"))) {
      ++j;
    }
    while (j < end) {
      j = AddTableAt(j);
      if (Kind(j) == TK::kLParen) j = MatchParen(j) + 1;
      if (Kind(j) != TK::kComma) break;
      ++j;
    }
  }

  StatementClass ClassifyTopLevel(std::size_t i, std::size_t end) {
    switch (Kw(i)) {
      case K::kCreate:
        return ClassifyCreate(i, end);
      case K::kAlter:
        return ClassifyAlter(i, end);
      case K::kDrop:
        return ClassifyDrop(i, end);
      case K::kTruncate: {
        // sql-truncate: TRUNCATE [TABLE] [ONLY] name [*], ...
        std::size_t j = i + 1;
        if (Is(j, K::kTable)) ++j;
        AddTableList(j, end);
        out_->ddl_risk = DdlRisk::kHigh;
        return StatementClass::kDdl;
      }
      case K::kComment:
      case K::kSecurity:
        scan_tables_ = false;
        if (Is(i + 1, K::kOn) && Is(i + 2, K::kTable)) AddTableAt(i + 3);
        out_->ddl_risk = DdlRisk::kSafe;
        return StatementClass::kDdl;
      case K::kGrant:
      case K::kRevoke:
        scan_tables_ = false;
        for (std::size_t j = i + 1; j < end; ++j) {
          if (Is(j, K::kOn) && depth_[j] == 0) {
            std::size_t k = j + 1;
            if (Is(k, K::kTable)) ++k;
            if (!IsWordText(k, "schema") && !Is(k, K::kSchema) && !IsWordText(k, "all")) AddTableList(k, end);
            break;
          }
        }
        out_->ddl_risk = Is(i, K::kGrant) ? DdlRisk::kSafe : DdlRisk::kMedium;
        return StatementClass::kDdl;
      case K::kImport:
        out_->ddl_risk = DdlRisk::kSafe;
        return StatementClass::kDdl;
      case K::kBegin:
      case K::kStart:
        out_->txn = TxnControl::kBegin;
        out_->read_only_transaction = ReadOnly(i + 1, end);
        return StatementClass::kTxnControl;
      case K::kCommit:
      case K::kEnd:
        if (Is(i + 1, K::kPrepared)) {
          out_->txn = TxnControl::kCommitPrepared;
          out_->object_name = Text(i + 2);
        } else {
          out_->txn = TxnControl::kCommit;
        }
        return StatementClass::kTxnControl;
      case K::kAbort:
        out_->txn = TxnControl::kRollback;
        return StatementClass::kTxnControl;
      case K::kRollback:
        return ClassifyRollback(i);
      case K::kSavepoint:
        out_->txn = TxnControl::kSavepoint;
        out_->object_name = Text(i + 1);
        return StatementClass::kTxnControl;
      case K::kRelease:
        out_->txn = TxnControl::kRelease;
        out_->object_name = Text(i + 1 + (Is(i + 1, K::kSavepoint) ? 1 : 0));
        return StatementClass::kTxnControl;
      case K::kPrepare:
        return ClassifyPrepare(i, end);
      case K::kSet:
        return ClassifySet(i, end);
      case K::kReset:
        return Session(SessionCommand::kReset, NameSpan(i + 1, end));
      case K::kDiscard:
        return Session(SessionCommand::kDiscard, Text(i + 1));
      case K::kListen:
        return Session(SessionCommand::kListen, Text(i + 1));
      case K::kUnlisten:
        return Session(SessionCommand::kUnlisten, Text(i + 1));
      case K::kDeallocate:
        return Session(SessionCommand::kDeallocate, Text(i + 1 + (Is(i + 1, K::kPrepare) ? 1 : 0)));
      case K::kClose:
        return Session(SessionCommand::kCloseCursor, Text(i + 1));
      case K::kLoad:
        return Session(SessionCommand::kLoad, Text(i + 1));
      case K::kExecute:
        // The class is the prepared statement's, which only the session knows.
        out_->session = SessionCommand::kExecute;
        out_->object_name = Text(i + 1);
        return StatementClass::kUnknown;
      case K::kShow:
        out_->session = SessionCommand::kShow;
        out_->object_name = NameSpan(i + 1, end);
        return StatementClass::kRead;
      case K::kFetch:
      case K::kMove:
        // sql-fetch: the cursor name is the last word.
        out_->session = SessionCommand::kFetch;
        out_->object_name = Text(end - 1);
        return StatementClass::kRead;
      case K::kDeclare:
        return ClassifyDeclare(i, end);
      default:
        return StatementClass::kUnknown;
    }
  }

  StatementClass Session(SessionCommand s, std::string_view name) {
    out_->session = s;
    out_->object_name = name;
    return StatementClass::kSession;
  }

  // A parameter name for SET / RESET / SHOW: dotted words, or TIME ZONE,
  // SESSION AUTHORIZATION, TRANSACTION ISOLATION LEVEL.
  std::string_view NameSpan(std::size_t j, std::size_t end) const noexcept {
    if (j >= end) return {};
    std::size_t k = j + 1;
    while (k < end) {
      if (Kind(k) == TK::kDot && k + 1 < end) {
        k += 2;
      } else if (Is(k, K::kZone) || (Kind(k) == TK::kWord && Is(j, K::kTransaction) && k < j + 3) ||
                 (Is(j, K::kSession) && Is(k, K::kAuthorization))) {
        ++k;
      } else {
        break;
      }
    }
    const char* b = t_[j].text.data();
    const char* e = t_[k - 1].text.data() + t_[k - 1].text.size();
    return {b, static_cast<std::size_t>(e - b)};
  }

  bool ReadOnly(std::size_t j, std::size_t end) const noexcept {
    bool ro = false;
    for (; j + 1 < end; ++j) {
      if (Is(j, K::kRead) && Is(j + 1, K::kOnly)) ro = true;
      if (Is(j, K::kRead) && IsWordText(j + 1, "write")) ro = false;
    }
    return ro;
  }

  StatementClass ClassifyRollback(std::size_t i) {
    std::size_t j = i + 1;
    if (Is(j, K::kPrepared)) {
      out_->txn = TxnControl::kRollbackPrepared;
      out_->object_name = Text(j + 1);
      return StatementClass::kTxnControl;
    }
    if (Is(j, K::kWork) || Is(j, K::kTransaction)) ++j;
    if (Is(j, K::kTo)) {
      ++j;
      if (Is(j, K::kSavepoint)) ++j;
      out_->txn = TxnControl::kRollbackToSavepoint;
      out_->object_name = Text(j);
    } else {
      out_->txn = TxnControl::kRollback;
    }
    return StatementClass::kTxnControl;
  }

  StatementClass ClassifyPrepare(std::size_t i, std::size_t end) {
    if (Is(i + 1, K::kTransaction) && Kind(i + 2) == TK::kString) {
      out_->txn = TxnControl::kPrepareTransaction;
      out_->object_name = Text(i + 2);
      return StatementClass::kTxnControl;
    }
    // sql-prepare: PREPARE name [(types)] AS statement
    out_->session = SessionCommand::kPrepare;
    out_->object_name = Text(i + 1);
    std::size_t j = i + 2;
    if (Kind(j) == TK::kLParen) j = MatchParen(j) + 1;
    if (Is(j, K::kAs)) {
      out_->prepared_class = ClassifyAt(j + 1, end, false);
    }
    return StatementClass::kSession;
  }

  StatementClass ClassifySet(std::size_t i, std::size_t end) {
    std::size_t j = i + 1;
    SessionCommand s = SessionCommand::kSet;
    if (Is(j, K::kLocal)) {
      s = SessionCommand::kSetLocal;
      ++j;
    } else if (Is(j, K::kSession) && !Is(j + 1, K::kAuthorization)) {
      ++j;
    }
    if (Is(j, K::kTransaction)) {
      // sql-set-transaction: only the current transaction.
      out_->txn = TxnControl::kSetTransaction;
      out_->read_only_transaction = ReadOnly(j + 1, end);
      return StatementClass::kTxnControl;
    }
    return Session(s, NameSpan(j, end));
  }

  StatementClass ClassifyDeclare(std::size_t i, std::size_t end) {
    out_->session = SessionCommand::kDeclareCursor;
    out_->object_name = Text(i + 1);
    for (std::size_t j = i + 2; j < end; ++j) {
      if (Is(j, K::kCursor)) {
        for (std::size_t k = j + 1; k < end; ++k) {
          if (Is(k, K::kFor)) return ClassifyAt(k + 1, end, false);
        }
        break;
      }
    }
    return StatementClass::kUnknown;
  }

  // ------------------------------------------------------------------ DDL

  StatementClass ClassifyCreate(std::size_t i, std::size_t end) {
    std::size_t j = i + 1;
    bool replace = false;
    while (j < end) {
      if (Is(j, K::kOr) && Is(j + 1, K::kReplace)) {
        replace = true;
        j += 2;
      } else if (Is(j, K::kTemp) || Is(j, K::kTemporary)) {
        out_->temporary = true;
        ++j;
      } else if (Is(j, K::kGlobal) || Is(j, K::kLocal) ||
                 Is(j, K::kUnlogged) || Is(j, K::kUnique) || Is(j, K::kRecursive) ||
                 Is(j, K::kConstraint) || Is(j, K::kDefault) || IsWordText(j, "trusted") ||
                 IsWordText(j, "procedural")) {
        ++j;
      } else {
        break;
      }
    }
    DdlRisk risk = replace ? DdlRisk::kMedium : DdlRisk::kSafe;
    switch (Kw(j)) {
      case K::kTable: {
        std::size_t k = j + 1;
        if (Is(k, K::kIf)) k += 3;  // IF NOT EXISTS
        AddTableAt(k);
        break;
      }
      case K::kIndex: {
        // CREATE INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY] table
        for (std::size_t k = j + 1; k < end; ++k) {
          if (Is(k, K::kOn)) {
            AddTableAt(k + 1 + (Is(k + 1, K::kOnly) ? 1 : 0));
            break;
          }
        }
        break;
      }
      case K::kTrigger:
      case K::kRule:
      case K::kPolicy:
        // They change what writes do to the table.
        risk = DdlRisk::kMedium;
        for (std::size_t k = j + 1; k < end; ++k) {
          if ((Is(k, K::kOn) && !Is(k - 1, K::kAs)) || (Is(k, K::kTo) && Is(j, K::kRule))) {
            AddTableAt(k + 1);
            break;
          }
        }
        break;
      default:
        break;
    }
    out_->ddl_risk = risk;
    return StatementClass::kDdl;
  }

  StatementClass ClassifyDrop(std::size_t i, std::size_t end) {
    std::size_t j = i + 1;
    DdlRisk risk = DdlRisk::kHigh;
    for (std::size_t k = j; k + 1 < end && k < j + 4; ++k)
      if (Is(k, K::kIf) && Is(k + 1, K::kExists)) out_->if_exists = true;
    out_->cascade = Contains(j, end, K::kCascade);
    switch (Kw(j)) {
      case K::kIndex:
      case K::kTrigger:
      case K::kRule:
      case K::kPolicy:
      case K::kStatistics:
        risk = DdlRisk::kMedium;  // no data goes away
        break;
      case K::kTable:
      case K::kView: {
        std::size_t k = j + 1;
        if (Is(k, K::kIf)) k += 2;  // IF EXISTS
        AddTableList(k, end);
        break;
      }
      case K::kMaterialized:
      case K::kForeign: {
        std::size_t k = j + 2;
        if (Is(k, K::kIf)) k += 2;
        AddTableList(k, end);
        break;
      }
      default:
        break;
    }
    if (Contains(j, end, K::kCascade)) risk = DdlRisk::kHigh;
    out_->ddl_risk = risk;
    return StatementClass::kDdl;
  }

  StatementClass ClassifyAlter(std::size_t i, std::size_t end) {
    std::size_t j = i + 1;
    if (Is(j, K::kSystem)) return StatementClass::kAdmin;  // sql-altersystem: server configuration
    DdlRisk risk;
    if (Is(j, K::kTable)) {
      risk = AlterTable(j + 1, end);
    } else if (Is(j, K::kForeign) && Is(j + 1, K::kTable)) {
      risk = AlterTable(j + 2, end);
    } else {
      risk = AlterOther(j, end);
    }
    out_->cascade = Contains(j, end, K::kCascade);
    if (out_->cascade) risk = DdlRisk::kHigh;
    out_->ddl_risk = risk;
    return StatementClass::kDdl;
  }

  DdlRisk AlterOther(std::size_t j, std::size_t end) {
    if (Is(j, K::kDefault) && IsWordText(j + 1, "privileges")) return DdlRisk::kSafe;
    const bool view = Is(j, K::kView) || (Is(j, K::kMaterialized) && Is(j + 1, K::kView));
    if (view) {
      std::size_t k = j + (Is(j, K::kView) ? 1 : 2);
      if (Is(k, K::kIf)) k += 2;
      AddTableAt(k);
    }
    DdlRisk risk = DdlRisk::kMedium;
    bool only_owner = false;
    for (std::size_t k = j; k < end; ++k) {
      if (depth_[k] != 0) continue;
      if (Is(k, K::kRename) || Is(k, K::kDrop) || (Is(k, K::kSet) && Is(k + 1, K::kSchema))) {
        return DdlRisk::kHigh;
      }
      if (Is(k, K::kOwner) && Is(k + 1, K::kTo)) only_owner = true;
      if (Is(k, K::kAdd) && IsWordText(k + 1, "value")) risk = DdlRisk::kSafe;  // ALTER TYPE ... ADD VALUE
    }
    return only_owner ? DdlRisk::kSafe : risk;
  }

  // sql-altertable: ALTER TABLE [IF EXISTS] [ONLY] name [*] action [, ...]
  DdlRisk AlterTable(std::size_t j, std::size_t end) {
    if (Is(j, K::kAll)) return DdlRisk::kMedium;  // ALL IN TABLESPACE ... SET TABLESPACE
    if (Is(j, K::kIf)) j += 2;
    if (Is(j, K::kOnly)) ++j;
    std::size_t k = AddTableAt(j);
    if (k == j) return DdlRisk::kHigh;
    if (Kind(k) == TK::kOperator && Text(k) == "*") ++k;
    if (k >= end) return DdlRisk::kHigh;
    DdlRisk risk = DdlRisk::kNone;
    std::size_t a = k;
    for (std::size_t b = k; b <= end; ++b) {
      if (b == end || (Kind(b) == TK::kComma && depth_[b] == 0)) {
        risk = Max(risk, AlterTableAction(a, b));
        a = b + 1;
      }
    }
    return risk;
  }

  DdlRisk AlterTableAction(std::size_t a, std::size_t b) {
    if (a >= b) return DdlRisk::kHigh;
    switch (Kw(a)) {
      case K::kAdd: {
        std::size_t j = a + 1;
        const bool column = Is(j, K::kColumn);
        if (column) ++j;
        if (Is(j, K::kIf)) j += 3;  // IF NOT EXISTS
        if (!column && (Is(j, K::kConstraint) || Is(j, K::kPrimary) || Is(j, K::kUnique) ||
                        Is(j, K::kForeign) || Is(j, K::kCheck) || Is(j, K::kExclude))) {
          return DdlRisk::kMedium;  // validates every row, may fail
        }
        return AddColumnRisk(j + 1, b);
      }
      case K::kDrop: {
        if (Is(a + 1, K::kConstraint)) return DdlRisk::kMedium;
        return DdlRisk::kHigh;  // DROP [COLUMN]: data is gone
      }
      case K::kAlter: {
        std::size_t j = a + 1;
        if (Is(j, K::kColumn)) ++j;
        if (Is(j, K::kConstraint)) return DdlRisk::kMedium;
        ++j;  // the column name
        return AlterColumnRisk(j, b);
      }
      case K::kRename:
        return DdlRisk::kHigh;  // breaks every client that uses the old name
      case K::kSet:
        if (Is(a + 1, K::kSchema)) return DdlRisk::kHigh;
        if (Is(a + 1, K::kWithout) || Kind(a + 1) == TK::kLParen) return DdlRisk::kSafe;
        return DdlRisk::kMedium;  // TABLESPACE, LOGGED, UNLOGGED, ACCESS METHOD rewrite the table
      case K::kReset:
      case K::kOwner:
      case K::kCluster:
      case K::kReplica:
      case K::kValidate:
        return DdlRisk::kSafe;
      case K::kEnable:
      case K::kDisable:
      case K::kForce:
      case K::kNo:
      case K::kInherit:
      case K::kOf:
      case K::kNot:
      case K::kAttach:
        return DdlRisk::kMedium;
      case K::kDetach:
        return DdlRisk::kHigh;  // the partition's rows leave the table
      default:
        if (IsWordText(a, "options")) return DdlRisk::kSafe;
        return DdlRisk::kHigh;
    }
  }

  // ADD [COLUMN] name type [constraints]: `j` is just after the name.
  DdlRisk AddColumnRisk(std::size_t j, std::size_t b) const noexcept {
    bool not_null = false, has_default = false, constraint = false, generated = false;
    for (std::size_t k = j; k < b; ++k) {
      if (Is(k, K::kNot) && Is(k + 1, K::kNull)) not_null = true;
      if (Is(k, K::kDefault)) has_default = true;
      if (Is(k, K::kGenerated)) generated = true;
      if (Is(k, K::kPrimary) || Is(k, K::kUnique) || Is(k, K::kReferences) || Is(k, K::kCheck)) {
        constraint = true;
      }
    }
    // NOT NULL without a default fails on any existing row.
    if (not_null && !has_default && !generated) return DdlRisk::kHigh;
    if (not_null || constraint || generated) return DdlRisk::kMedium;
    return DdlRisk::kSafe;
  }

  // ALTER [COLUMN] name <j...>
  DdlRisk AlterColumnRisk(std::size_t j, std::size_t b) const noexcept {
    switch (Kw(j)) {
      case K::kType:
        return TypeChangeRisk(j + 1, b);
      case K::kSet:
        if (Is(j + 1, K::kData) && Is(j + 2, K::kType)) return TypeChangeRisk(j + 3, b);
        if (Is(j + 1, K::kDefault)) return DdlRisk::kSafe;
        if (Is(j + 1, K::kNot) && Is(j + 2, K::kNull)) return DdlRisk::kMedium;  // scans, may fail
        if (Is(j + 1, K::kStatistics) || Is(j + 1, K::kStorage) || Kind(j + 1) == TK::kLParen ||
            IsWordText(j + 1, "compression")) {
          return DdlRisk::kSafe;
        }
        return DdlRisk::kMedium;
      case K::kDrop:
        if (Is(j + 1, K::kDefault) || (Is(j + 1, K::kNot) && Is(j + 2, K::kNull))) return DdlRisk::kSafe;
        return DdlRisk::kMedium;  // IDENTITY, EXPRESSION
      case K::kReset:
        return DdlRisk::kSafe;
      case K::kAdd:
      case K::kRestart:
        return DdlRisk::kMedium;
      default:
        if (IsWordText(j, "options")) return DdlRisk::kSafe;
        return DdlRisk::kHigh;
    }
  }

  // Without the catalog the old type is unknown: a target that holds every
  // value of its family (text, unbounded varchar, bigint, numeric, double
  // precision) is a widening; anything else, or a USING conversion, may
  // narrow or fail.
  DdlRisk TypeChangeRisk(std::size_t j, std::size_t b) const noexcept {
    std::size_t e = j;
    while (e < b && !Is(e, K::kCollate) && !Is(e, K::kUsing)) ++e;
    if (Is(e, K::kUsing)) return DdlRisk::kHigh;
    // Skip a pg_catalog. prefix.
    if (e - j >= 3 && IsWordText(j, "pg_catalog") && Kind(j + 1) == TK::kDot) j += 2;
    const std::size_t len = e - j;
    if (len == 1) {
      if (IsWordText(j, "text") || IsWordText(j, "bigint") || IsWordText(j, "int8") ||
          IsWordText(j, "numeric") || IsWordText(j, "decimal") || IsWordText(j, "float8") ||
          IsWordText(j, "varchar")) {
        return DdlRisk::kMedium;
      }
    } else if (len == 2) {
      if (IsWordText(j, "double") && IsWordText(j + 1, "precision")) {
        return DdlRisk::kMedium;
      }
      if (IsWordText(j, "character") && IsWordText(j + 1, "varying")) return DdlRisk::kMedium;
    }
    return DdlRisk::kHigh;
  }

  // --------------------------------------------------------------- tables

  // Parses [catalog.][schema.]name at `i`; returns the index after it, or
  // `i` when there is no name there.
  std::size_t ParseName(std::size_t i, TableRef* ref) const noexcept {
    std::size_t parts[3];
    std::size_t count = 0;
    std::size_t j = i;
    while (count < 3) {
      const TK k = Kind(j);
      if (k == TK::kWord) {
        if (IsReserved(t_[j].keyword)) break;
      } else if (k != TK::kQuotedIdentifier) {
        break;
      }
      parts[count++] = j;
      ++j;
      if (Kind(j) == TK::kDot && (Kind(j + 1) == TK::kWord || Kind(j + 1) == TK::kQuotedIdentifier)) {
        ++j;
        continue;
      }
      break;
    }
    if (count == 0) return i;
    ref->name = IdentifierText(t_[parts[count - 1]], &ref->name_quoted);
    if (count >= 2) {
      ref->schema = IdentifierText(t_[parts[count - 2]], &ref->schema_quoted);
    } else {
      ref->schema = {};
      ref->schema_quoted = false;
    }
    return j;
  }

  bool IsCteName(const TableRef& ref) const noexcept {
    if (!ref.schema.empty()) return false;
    for (std::size_t c = 0; c < cte_count_; ++c) {
      bool q = false;
      const std::string_view cte = IdentifierText(t_[cte_names_[c]], &q);
      if (PartsEqual(cte, q, ref.name, ref.name_quoted)) return true;
    }
    return false;
  }

  void Add(const TableRef& ref) {
    if (ref.name.empty() || IsCteName(ref)) return;
    for (const TableRef& t : out_->tables) {
      if (PartsEqual(t.name, t.name_quoted, ref.name, ref.name_quoted) &&
          PartsEqual(t.schema, t.schema_quoted, ref.schema, ref.schema_quoted)) {
        return;
      }
    }
    out_->tables.push_back(ref);
  }

  // A table name at `i`; returns the index after it.
  std::size_t AddTableAt(std::size_t i) {
    TableRef ref;
    const std::size_t j = ParseName(i, &ref);
    if (j != i) Add(ref);
    return j;
  }

  // name [*], name [*], ... (TRUNCATE, DROP TABLE, LOCK, GRANT ON)
  void AddTableList(std::size_t j, std::size_t end) {
    while (j < end) {
      if (Is(j, K::kOnly)) ++j;
      const std::size_t k = AddTableAt(j);
      if (k == j) return;
      j = k;
      if (Kind(j) == TK::kOperator && Text(j) == "*") ++j;
      if (Kind(j) != TK::kComma) return;
      ++j;
    }
  }

  // One FROM item: [ONLY] name [*] | [LATERAL] (subquery) | function(...) |
  // (join group). A subquery's own FROM is found by the main walk.
  void AddFromItem(std::size_t i) {
    if (Is(i, K::kLateral)) ++i;
    while (Kind(i) == TK::kLParen) {
      // "(t2 JOIN t3 ON ...)": a parenthesised join starts with a table.
      if (Is(i + 1, K::kSelect) || Is(i + 1, K::kValues) || Is(i + 1, K::kWith) || Is(i + 1, K::kTable)) return;
      ++i;
    }
    if (Is(i, K::kOnly)) ++i;
    if (IsWordText(i, "rows") && Is(i + 1, K::kFrom)) return;  // ROWS FROM (functions)
    TableRef ref;
    const std::size_t j = ParseName(i, &ref);
    if (j == i || Kind(j) == TK::kLParen) return;  // a set-returning function
    Add(ref);
  }

  void CollectTables() {
    std::array<std::uint8_t, kMaxTrackedDepth> flags{};
    std::array<bool, kMaxTrackedDepth> from_list{};
    for (std::size_t i = 0; i < n_; ++i) {
      const Token& t = t_[i];
      const std::size_t d = depth_[i];
      if (t.kind == TK::kLParen) {
        if (d + 1 < kMaxTrackedDepth) {
          flags[d + 1] = 0;
          from_list[d + 1] = false;
        }
        continue;
      }
      if (d >= kMaxTrackedDepth) continue;
      if (t.kind == TK::kComma) {
        if (from_list[d]) AddFromItem(i + 1);
        continue;
      }
      if (t.kind != TK::kWord) continue;
      switch (t.keyword) {
        case K::kSelect:
          flags[d] |= kSawSelect;
          from_list[d] = false;
          break;
        case K::kDelete:
          if (StatementStart(i)) flags[d] |= kSawDelete;
          break;
        case K::kMerge:
          flags[d] |= kSawMerge;
          break;
        case K::kUpdate:
          if (StatementStart(i)) {
            flags[d] |= kSawUpdate;
            AddTableAt(i + 1 + (Is(i + 1, K::kOnly) ? 1 : 0));
          }
          break;
        case K::kTable:
          if (StatementStart(i)) AddTableAt(i + 1 + (Is(i + 1, K::kOnly) ? 1 : 0));
          break;
        case K::kFrom:
          // IS [NOT] DISTINCT FROM is an operator, and only a query's FROM
          // names tables (not EXTRACT(... FROM ...)).
          if (i > 0 && Is(i - 1, K::kDistinct)) break;
          if (flags[d] & (kSawSelect | kSawDelete | kSawUpdate)) {
            from_list[d] = true;
            AddFromItem(i + 1);
          }
          break;
        case K::kJoin:
          AddFromItem(i + 1);
          break;
        case K::kUsing:
          if ((flags[d] & (kSawDelete | kSawMerge)) && Kind(i + 1) != TK::kLParen) {
            from_list[d] = (flags[d] & kSawDelete) != 0;
            AddFromItem(i + 1);
          }
          break;
        case K::kInto:
          if (i > 0 && (Is(i - 1, K::kInsert) || Is(i - 1, K::kMerge))) {
            AddTableAt(i + 1);
          } else if (flags[d] & kSawSelect) {
            std::size_t j = i + 1;
            while (Is(j, K::kTemp) || Is(j, K::kTemporary) || Is(j, K::kUnlogged) || Is(j, K::kTable) ||
                   Is(j, K::kLocal) || Is(j, K::kGlobal)) {
              ++j;
            }
            AddTableAt(j);
          }
          break;
        case K::kReferences:
          AddTableAt(i + 1);
          break;
        case K::kLock:
          if (i == first_) {
            std::size_t j = i + 1;
            if (Is(j, K::kTable)) ++j;
            AddTableList(j, n_);
          }
          break;
        case K::kWhere: case K::kGroup: case K::kHaving: case K::kOrder: case K::kLimit:
        case K::kOffset: case K::kFetch: case K::kFor: case K::kUnion: case K::kIntersect:
        case K::kExcept: case K::kWindow: case K::kReturning: case K::kSet: case K::kValues:
        case K::kOn:
          // ON ends an item's join condition; a comma after it still
          // starts a new FROM item, so only clause keywords end the list.
          if (t.keyword != K::kOn) from_list[d] = false;
          break;
        default:
          break;
      }
    }
  }

  std::span<const Token> t_;
  std::span<const std::uint16_t> depth_;
  std::size_t n_;
  std::size_t first_ = 0;
  const ClassifierOptions& options_;
  StatementInfo* out_;
  bool scan_tables_ = true;
  std::array<std::size_t, 8> cte_names_{};
  std::size_t cte_count_ = 0;
};

}  // namespace

int Strength(StatementClass c) noexcept {
  switch (c) {
    case StatementClass::kRead: return 0;
    case StatementClass::kSession: return 1;
    case StatementClass::kTxnControl: return 2;
    case StatementClass::kWrite: return 3;
    case StatementClass::kAdmin: return 4;
    case StatementClass::kUnknown: return 5;
    case StatementClass::kDdl: return 6;
  }
  return 5;
}

std::string_view ToString(StatementClass c) noexcept {
  switch (c) {
    case StatementClass::kRead: return "read";
    case StatementClass::kWrite: return "write";
    case StatementClass::kDdl: return "ddl";
    case StatementClass::kTxnControl: return "txn-control";
    case StatementClass::kSession: return "session";
    case StatementClass::kAdmin: return "admin";
    case StatementClass::kUnknown: return "unknown";
  }
  return "unknown";
}

std::string_view ToString(DdlRisk r) noexcept {
  switch (r) {
    case DdlRisk::kNone: return "none";
    case DdlRisk::kSafe: return "safe";
    case DdlRisk::kMedium: return "medium";
    case DdlRisk::kHigh: return "high";
  }
  return "high";
}

std::string_view ToString(TxnControl t) noexcept {
  switch (t) {
    case TxnControl::kNone: return "none";
    case TxnControl::kBegin: return "begin";
    case TxnControl::kCommit: return "commit";
    case TxnControl::kRollback: return "rollback";
    case TxnControl::kSavepoint: return "savepoint";
    case TxnControl::kRelease: return "release";
    case TxnControl::kRollbackToSavepoint: return "rollback-to-savepoint";
    case TxnControl::kPrepareTransaction: return "prepare-transaction";
    case TxnControl::kCommitPrepared: return "commit-prepared";
    case TxnControl::kRollbackPrepared: return "rollback-prepared";
    case TxnControl::kSetTransaction: return "set-transaction";
  }
  return "none";
}

std::string_view ToString(SessionCommand s) noexcept {
  switch (s) {
    case SessionCommand::kNone: return "none";
    case SessionCommand::kSet: return "set";
    case SessionCommand::kSetLocal: return "set-local";
    case SessionCommand::kReset: return "reset";
    case SessionCommand::kDiscard: return "discard";
    case SessionCommand::kListen: return "listen";
    case SessionCommand::kUnlisten: return "unlisten";
    case SessionCommand::kPrepare: return "prepare";
    case SessionCommand::kExecute: return "execute";
    case SessionCommand::kDeallocate: return "deallocate";
    case SessionCommand::kDeclareCursor: return "declare-cursor";
    case SessionCommand::kFetch: return "fetch";
    case SessionCommand::kCloseCursor: return "close-cursor";
    case SessionCommand::kLoad: return "load";
    case SessionCommand::kShow: return "show";
  }
  return "none";
}

bool IsMutatingFunction(std::string_view name) noexcept {
  return std::binary_search(std::begin(kMutatingFunctions), std::end(kMutatingFunctions), name);
}

bool TableRef::NameEquals(std::string_view normalized) const noexcept {
  return PartEquals(name, name_quoted, normalized);
}

bool TableRef::SchemaEquals(std::string_view normalized) const noexcept {
  return PartEquals(schema, schema_quoted, normalized);
}

bool TableRef::Matches(std::string_view qualified) const noexcept {
  const std::size_t dot = qualified.find('.');
  if (dot == std::string_view::npos) return NameEquals(qualified);
  return SchemaEquals(qualified.substr(0, dot)) && NameEquals(qualified.substr(dot + 1));
}

void TableRef::AppendNormalized(std::string* out) const {
  if (!schema.empty()) {
    AppendPart(out, schema, schema_quoted);
    out->push_back('.');
  }
  AppendPart(out, name, name_quoted);
}

std::string TableRef::Normalized() const {
  std::string s;
  AppendNormalized(&s);
  return s;
}

void SqlClassifier::Classify(std::string_view sql, Classification* out) {
  out->statements.clear();
  out->statement_class = StatementClass::kRead;
  out->ddl_risk = DdlRisk::kNone;
  out->lex_error = false;
  tokens_.clear();
  SqlLexer lexer(sql, LexerOptions{.standard_conforming_strings = options_.standard_conforming_strings});
  int depth = 0;
  int atomic = 0;  // inside CREATE FUNCTION ... BEGIN ATOMIC ... END
  while (true) {
    const Token t = lexer.Next();
    if (t.kind == TK::kEnd) break;
    if (t.kind == TK::kError) {
      tokens_.push_back(t);
      break;
    }
    if (t.kind == TK::kSemicolon && depth == 0 && atomic == 0) {
      FinishStatement(sql, out);
      continue;
    }
    if (t.kind == TK::kLParen) ++depth;
    if (t.kind == TK::kRParen && depth > 0) --depth;
    if (!tokens_.empty() && tokens_.front().keyword == K::kCreate && t.kind == TK::kWord) {
      // sql-createfunction: a SQL-standard body holds ';' between BEGIN
      // ATOMIC and its END; CASE ... END nests inside it.
      if (t.keyword == K::kAtomic && tokens_.back().keyword == K::kBegin) {
        atomic = 1;
      } else if (atomic > 0 && (t.keyword == K::kCase || t.keyword == K::kBegin)) {
        ++atomic;
      } else if (atomic > 0 && t.keyword == K::kEnd) {
        --atomic;
      }
    }
    tokens_.push_back(t);
  }
  FinishStatement(sql, out);
}

void SqlClassifier::FinishStatement(std::string_view sql, Classification* out) {
  if (tokens_.empty()) return;
  // Depth of each token: '(' and ')' carry the outer depth.
  depth_.resize(tokens_.size());
  std::uint16_t d = 0;
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].kind == TK::kRParen && d > 0) --d;
    depth_[i] = d;
    if (tokens_[i].kind == TK::kLParen && d < 0xffff) ++d;
  }
  StatementInfo& info = out->statements.emplace_back();
  const char* begin = tokens_.front().text.data();
  const char* end = tokens_.back().text.data() + tokens_.back().text.size();
  info.text = sql.substr(static_cast<std::size_t>(begin - sql.data()), static_cast<std::size_t>(end - begin));
  StatementAnalyzer(tokens_, depth_, options_, &info).Run();
  if (info.lex_error) out->lex_error = true;
  out->statement_class = out->statements.size() == 1 ? info.statement_class
                                                     : Max(out->statement_class, info.statement_class);
  out->ddl_risk = Max(out->ddl_risk, info.ddl_risk);
  tokens_.clear();
}

Classification ClassifySql(std::string_view sql, const ClassifierOptions& options) {
  Classification c;
  SqlClassifier(options).Classify(sql, &c);
  return c;
}

}  // namespace turnout::protocol::pg
