// The report of a table verification (control/pg_verify.h): its JSON entry
// in a verify reply and the one-line summary in a route's "differences".
#include <boost/json.hpp>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/pg_verify.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using Kind = PgRowDifference::Kind;

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kChanged:
      return "changed";
    case Kind::kOnlyOld:
      return "only_old";
    case Kind::kOnlyNew:
      return "only_new";
  }
  return "changed";
}

}  // namespace

json::object PgTableVerifyToJson(const PgTableVerify& v, std::size_t max_reported) {
  json::object t{{"table", v.table}, {"old_rows", v.old_rows}};
  if (!v.error_new.empty()) {
    t["error_new"] = v.error_new;
    t["equal"] = false;
    return t;
  }
  t["new_rows"] = v.new_rows;
  t["equal"] = v.equal;
  json::array pk;
  for (const auto& k : v.primary_key) pk.emplace_back(k);
  t["primary_key"] = std::move(pk);
  t["chunks"] = v.chunks;
  t["chunks_differing"] = v.chunks_differing;
  t["mode"] = v.mode;
  t["consistency"] = v.mode;
  if (!v.consistency_note.empty()) t["consistency_note"] = v.consistency_note;
  if (v.rows_unsettled > 0) t["rows_unsettled"] = v.rows_unsettled;
  t["differences_total"] = v.differences_total;
  json::array rows;
  for (const auto& d : v.differences) {
    if (rows.size() >= max_reported) break;
    json::object r{{"kind", KindName(d.kind)}};
    if (v.primary_key.empty()) {
      r["row"] = d.row;
      r["count"] = d.count;
    } else {
      json::object key;
      for (std::size_t i = 0; i < d.key.size() && i < v.primary_key.size(); ++i) key[v.primary_key[i]] = d.key[i];
      r["key"] = std::move(key);
      if (d.kind == Kind::kChanged) {
        json::array cols;
        for (const auto& c : d.columns)
          cols.push_back(json::object{{"column", c.name}, {"old", c.old_value}, {"new", c.new_value}});
        r["columns"] = std::move(cols);
        if (d.columns_differing > d.columns.size()) r["columns_differing"] = d.columns_differing;
      }
    }
    rows.push_back(std::move(r));
  }
  t["rows_listed"] = rows.size();
  t["rows"] = std::move(rows);
  auto names = [](const std::vector<std::string>& list) {
    json::array a;
    for (const auto& s : list) a.emplace_back(s);
    return a;
  };
  if (!v.unexplained.empty()) t["unexplained"] = names(v.unexplained);
  if (!v.columns_only_old.empty()) t["columns_only_old"] = names(v.columns_only_old);
  if (!v.columns_only_new.empty()) t["columns_only_new"] = names(v.columns_only_new);
  return t;
}

std::string PgTableVerifySummary(const PgTableVerify& v) {
  if (!v.error_new.empty()) return absl::StrCat("table ", v.table, ": cannot read on new (", v.error_new, ")");
  std::vector<std::string> parts;
  if (v.differences_total > 0) {
    std::int64_t changed = 0, only_old = 0, only_new = 0;
    for (const auto& d : v.differences)
      (d.kind == Kind::kChanged ? changed : d.kind == Kind::kOnlyOld ? only_old : only_new) += d.count;
    std::string what = absl::StrCat(v.differences_total, v.differences_total == 1 ? " row differs" : " rows differ");
    if (v.complete())
      absl::StrAppend(&what, " (", changed, " changed, ", only_old, " only on old, ", only_new, " only on new)");
    parts.push_back(std::move(what));
  }
  if (!v.unexplained.empty()) parts.push_back(absl::StrCat(v.unexplained.size(), " key ranges differ"));
  if (!v.columns_only_old.empty())
    parts.push_back("columns only on old: " + absl::StrJoin(v.columns_only_old, ", "));
  if (!v.columns_only_new.empty())
    parts.push_back("columns only on new: " + absl::StrJoin(v.columns_only_new, ", "));
  return absl::StrCat("table ", v.table, ": ", absl::StrJoin(parts, "; "), "; ", v.old_rows, " rows on old, ", v.new_rows,
                      " on new");
}

}  // namespace turnout::control
