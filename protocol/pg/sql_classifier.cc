// SqlClassifier (sql_classifier.h): splits SQL text into statements at the
// top-level ';' and hands each statement's tokens to the StatementAnalyzer
// (sql_classifier_internal.h), whose work the files it names share; the
// aggregate of a multi-statement query is its strongest class and highest
// DDL risk.

#include "protocol/pg/sql_classifier.h"

#include "protocol/pg/sql_classifier_internal.h"

namespace turnout::protocol::pg {

using internal::K;
using internal::Max;
using internal::StatementAnalyzer;
using internal::TK;

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

namespace internal {

void StatementAnalyzer::Run() {
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

}  // namespace internal

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
  if (tokens_.capacity() > kKeptTokens) {
    tokens_ = {};
    depth_ = {};
  }
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
