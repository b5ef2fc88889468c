// What a statement does, by its leading keywords, for the queries and the
// commands that can stand inside another statement: SELECT, VALUES, TABLE,
// WITH, EXPLAIN, COPY, DML and the admin commands (sql-commands). ClassifyAt
// is the entry point for a statement and for every nested one (a CTE body,
// EXPLAIN's statement, COPY's query, PREPARE's statement, a cursor's query);
// the commands that only stand alone go on to sql_utility_statements.cc.

#include <algorithm>
#include <iterator>

#include "protocol/pg/sql_classifier_internal.h"

namespace turnout::protocol::pg {
namespace {

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

}  // namespace

bool IsMutatingFunction(std::string_view name) noexcept {
  return std::binary_search(std::begin(kMutatingFunctions), std::end(kMutatingFunctions), name);
}

namespace internal {

StatementClass StatementAnalyzer::ClassifyAt(std::size_t i, std::size_t end, bool top) {
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
StatementClass StatementAnalyzer::ClassifyQuery(std::size_t i, std::size_t end) {
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

bool StatementAnalyzer::IsMutatingCall(std::string_view name) const noexcept {
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
StatementClass StatementAnalyzer::ClassifyWith(std::size_t i, std::size_t end, bool top) {
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

bool StatementAnalyzer::StatementKeyword(K k) noexcept {
  return k == K::kSelect || k == K::kInsert || k == K::kUpdate || k == K::kDelete || k == K::kMerge ||
         k == K::kValues || k == K::kTable || k == K::kWith;
}

// sql-explain: only ANALYZE runs the statement.
StatementClass StatementAnalyzer::ClassifyExplain(std::size_t i, std::size_t end) {
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
StatementClass StatementAnalyzer::ClassifyCopy(std::size_t i, std::size_t end, bool top) {
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

}  // namespace internal
}  // namespace turnout::protocol::pg
