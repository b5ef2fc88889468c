// DDL: CREATE, DROP and ALTER, and the risk of each schema change (DdlRisk
// in sql_classifier.h, reference/schema-migration-risk-levels.md). The
// shapes read follow sql-createtable, sql-createindex, sql-droptable and
// sql-altertable; without the catalog a change that might lose data or
// fail on existing rows is rated as the worse case.

#include "protocol/pg/sql_classifier_internal.h"

namespace turnout::protocol::pg::internal {

StatementClass StatementAnalyzer::ClassifyCreate(std::size_t i, std::size_t end) {
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

StatementClass StatementAnalyzer::ClassifyDrop(std::size_t i, std::size_t end) {
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

StatementClass StatementAnalyzer::ClassifyAlter(std::size_t i, std::size_t end) {
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

DdlRisk StatementAnalyzer::AlterOther(std::size_t j, std::size_t end) {
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
DdlRisk StatementAnalyzer::AlterTable(std::size_t j, std::size_t end) {
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

DdlRisk StatementAnalyzer::AlterTableAction(std::size_t a, std::size_t b) {
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
DdlRisk StatementAnalyzer::AddColumnRisk(std::size_t j, std::size_t b) const noexcept {
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
DdlRisk StatementAnalyzer::AlterColumnRisk(std::size_t j, std::size_t b) const noexcept {
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
DdlRisk StatementAnalyzer::TypeChangeRisk(std::size_t j, std::size_t b) const noexcept {
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

}  // namespace turnout::protocol::pg::internal
