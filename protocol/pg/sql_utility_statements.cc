// Statements that only stand alone, which PostgreSQL runs as utility
// statements (tcop/utility.c): transaction control (sql-begin, sql-commit,
// sql-rollback, sql-savepoint, sql-prepare-transaction), session state
// (sql-set, sql-reset, sql-discard, sql-listen, sql-prepare, sql-declare,
// sql-fetch, ...), GRANT / COMMENT, and the dispatch of DDL to
// sql_ddl_risk.cc.

#include "protocol/pg/sql_classifier_internal.h"

namespace turnout::protocol::pg::internal {

StatementClass StatementAnalyzer::ClassifyTopLevel(std::size_t i, std::size_t end) {
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

StatementClass StatementAnalyzer::Session(SessionCommand s, std::string_view name) {
  out_->session = s;
  out_->object_name = name;
  return StatementClass::kSession;
}

// A parameter name for SET / RESET / SHOW: dotted words, or TIME ZONE,
// SESSION AUTHORIZATION, TRANSACTION ISOLATION LEVEL.
std::string_view StatementAnalyzer::NameSpan(std::size_t j, std::size_t end) const noexcept {
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

bool StatementAnalyzer::ReadOnly(std::size_t j, std::size_t end) const noexcept {
  bool ro = false;
  for (; j + 1 < end; ++j) {
    if (Is(j, K::kRead) && Is(j + 1, K::kOnly)) ro = true;
    if (Is(j, K::kRead) && IsWordText(j + 1, "write")) ro = false;
  }
  return ro;
}

StatementClass StatementAnalyzer::ClassifyRollback(std::size_t i) {
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

StatementClass StatementAnalyzer::ClassifyPrepare(std::size_t i, std::size_t end) {
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

StatementClass StatementAnalyzer::ClassifySet(std::size_t i, std::size_t end) {
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

StatementClass StatementAnalyzer::ClassifyDeclare(std::size_t i, std::size_t end) {
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

}  // namespace turnout::protocol::pg::internal
