#include "control/pg_copy_ranges.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace turnout::control {

absl::StatusOr<std::vector<CtidRange>> SplitByPages(const PgSide& from, const std::string& oid, int workers,
                                                    const PgCopySplit& split) {
  std::vector<CtidRange> ranges(1);
  // TID range scans: PostgreSQL 14 (release notes 14, "Allow efficient
  // retrieval of heap rows via tid ranges").
  if (PQserverVersion(from.get()) < 140000) return ranges;
  const std::int64_t most = static_cast<std::int64_t>(std::max(1, workers)) * std::max(1, split.ranges_per_worker);
  if (most < 2) return ranges;
  // The main fork's size now: pages added after the snapshot hold no row it
  // sees, and the last range is open-ended anyway.
  auto size = PgExec(from, "select pg_relation_size($1::oid) / current_setting('block_size')::bigint", {oid},
                     "size of table " + oid);
  if (!size.ok()) return size.status();
  const std::int64_t pages = std::atoll(PgValue(*size, 0, 0).c_str());
  const std::int64_t n = std::min(most, pages / std::max<std::int64_t>(1, split.min_range_pages));
  if (n < 2) return ranges;
  ranges.clear();
  for (std::int64_t i = 0; i < n; ++i)
    ranges.push_back(CtidRange{pages * i / n, i + 1 == n ? -1 : pages * (i + 1) / n});
  return ranges;
}

std::string CtidCondition(const CtidRange& r) {
  std::string lower = r.first_page > 0 ? absl::StrCat("ctid >= '(", r.first_page, ",0)'::tid") : "";
  std::string upper = r.end_page >= 0 ? absl::StrCat("ctid < '(", r.end_page, ",0)'::tid") : "";
  if (lower.empty()) return upper;
  if (upper.empty()) return lower;
  return absl::StrCat(lower, " and ", upper);
}

}  // namespace turnout::control
