#pragma once
// The statement analyzer behind SqlClassifier (sql_classifier.h), shared by
// the files that implement it; not for users of the classifier. One
// analyzer reads the tokens of one statement and fills its StatementInfo.
// Its work is split by concern, one file each:
//   sql_classifier.cc          the public API, splitting text into statements, Run
//   sql_query_class.cc         SELECT / VALUES / TABLE / WITH / EXPLAIN / COPY, mutating functions
//   sql_utility_statements.cc  transaction control and session commands
//   sql_ddl_risk.cc            CREATE / ALTER / DROP and their DdlRisk
//   sql_table_refs.cc          the tables a statement names, TableRef
// The token accessors below are defined in the class so that each of those
// files inlines them as the single file did.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/pg/sql_classifier.h"
#include "protocol/pg/sql_lexer.h"

namespace turnout::protocol::pg::internal {

using K = Keyword;
using TK = TokenKind;

constexpr char ToLower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool Stronger(StatementClass a, StatementClass b) noexcept { return Strength(a) > Strength(b); }
inline StatementClass Max(StatementClass a, StatementClass b) noexcept { return Stronger(b, a) ? b : a; }
inline DdlRisk Max(DdlRisk a, DdlRisk b) noexcept { return b > a ? b : a; }

class StatementAnalyzer {
 public:
  StatementAnalyzer(std::span<const Token> tokens, std::span<const std::uint16_t> depth,
                    const ClassifierOptions& options, StatementInfo* out) noexcept
      : t_(tokens), depth_(depth), n_(tokens.size()), options_(options), out_(out) {}

  void Run();

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

  // sql_query_class.cc
  StatementClass ClassifyAt(std::size_t i, std::size_t end, bool top);
  StatementClass ClassifyQuery(std::size_t i, std::size_t end);
  bool IsMutatingCall(std::string_view name) const noexcept;
  StatementClass ClassifyWith(std::size_t i, std::size_t end, bool top);
  static bool StatementKeyword(K k) noexcept;
  StatementClass ClassifyExplain(std::size_t i, std::size_t end);
  StatementClass ClassifyCopy(std::size_t i, std::size_t end, bool top);

  // sql_utility_statements.cc
  StatementClass ClassifyTopLevel(std::size_t i, std::size_t end);
  StatementClass Session(SessionCommand s, std::string_view name);
  std::string_view NameSpan(std::size_t j, std::size_t end) const noexcept;
  bool ReadOnly(std::size_t j, std::size_t end) const noexcept;
  StatementClass ClassifyRollback(std::size_t i);
  StatementClass ClassifyPrepare(std::size_t i, std::size_t end);
  StatementClass ClassifySet(std::size_t i, std::size_t end);
  StatementClass ClassifyDeclare(std::size_t i, std::size_t end);

  // sql_ddl_risk.cc
  StatementClass ClassifyCreate(std::size_t i, std::size_t end);
  StatementClass ClassifyDrop(std::size_t i, std::size_t end);
  StatementClass ClassifyAlter(std::size_t i, std::size_t end);
  DdlRisk AlterOther(std::size_t j, std::size_t end);
  DdlRisk AlterTable(std::size_t j, std::size_t end);
  DdlRisk AlterTableAction(std::size_t a, std::size_t b);
  DdlRisk AddColumnRisk(std::size_t j, std::size_t b) const noexcept;
  DdlRisk AlterColumnRisk(std::size_t j, std::size_t b) const noexcept;
  DdlRisk TypeChangeRisk(std::size_t j, std::size_t b) const noexcept;

  // sql_table_refs.cc
  void AdminTables(std::size_t i, std::size_t end);
  std::size_t ParseName(std::size_t i, TableRef* ref) const noexcept;
  bool IsCteName(const TableRef& ref) const noexcept;
  void Add(const TableRef& ref);
  std::size_t AddTableAt(std::size_t i);
  void AddTableList(std::size_t j, std::size_t end);
  void AddFromItem(std::size_t i);
  void CollectTables();

  std::span<const Token> t_;
  std::span<const std::uint16_t> depth_;
  std::size_t n_;
  std::size_t first_ = 0;
  const ClassifierOptions& options_;
  StatementInfo* out_;
  bool scan_tables_ = true;  // COMMENT, SECURITY LABEL, GRANT, REVOKE name their tables themselves
  std::array<std::size_t, 8> cte_names_{};  // token indexes of WITH names, not tables
  std::size_t cte_count_ = 0;
};

}  // namespace turnout::protocol::pg::internal
