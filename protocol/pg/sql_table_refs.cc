// The tables a statement names (StatementInfo::tables) and how a TableRef
// compares: PostgreSQL folds unquoted identifiers to lower case and keeps
// quoted ones as written (sql-syntax-lexical: Identifiers and Key Words).
// Tables are found in FROM / JOIN / USING lists, after UPDATE, INSERT INTO,
// MERGE INTO, SELECT INTO, REFERENCES, LOCK and the admin commands; names
// a WITH clause defines are not tables.

#include <array>
#include <string>
#include <utility>

#include "protocol/pg/sql_classifier_internal.h"

namespace turnout::protocol::pg {
namespace internal {
namespace {

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

}  // namespace

void StatementAnalyzer::AdminTables(std::size_t i, std::size_t end) {
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

// Parses [catalog.][schema.]name at `i`; returns the index after it, or
// `i` when there is no name there.
std::size_t StatementAnalyzer::ParseName(std::size_t i, TableRef* ref) const noexcept {
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

bool StatementAnalyzer::IsCteName(const TableRef& ref) const noexcept {
  if (!ref.schema.empty()) return false;
  for (std::size_t c = 0; c < cte_count_; ++c) {
    bool q = false;
    const std::string_view cte = IdentifierText(t_[cte_names_[c]], &q);
    if (PartsEqual(cte, q, ref.name, ref.name_quoted)) return true;
  }
  return false;
}

void StatementAnalyzer::Add(const TableRef& ref) {
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
std::size_t StatementAnalyzer::AddTableAt(std::size_t i) {
  TableRef ref;
  const std::size_t j = ParseName(i, &ref);
  if (j != i) Add(ref);
  return j;
}

// name [*], name [*], ... (TRUNCATE, DROP TABLE, LOCK, GRANT ON)
void StatementAnalyzer::AddTableList(std::size_t j, std::size_t end) {
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
void StatementAnalyzer::AddFromItem(std::size_t i) {
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

void StatementAnalyzer::CollectTables() {
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

}  // namespace internal

using internal::AppendPart;
using internal::PartEquals;

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

}  // namespace turnout::protocol::pg
