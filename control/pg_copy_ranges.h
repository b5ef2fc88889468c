#pragma once
// How the snapshot copy (control/pg_backfill.h) splits a large table into
// ranges that several workers copy at once, each in its own session under
// the same exported snapshot.
//
// By heap pages (ctid), not by primary key:
// - a range is `ctid >= '(p,0)' and ctid < '(q,0)'`, which PostgreSQL 14+
//   runs as a TID range scan: each worker reads only its own pages, no index
//   and no ordering, as a sequential scan does. Older servers would scan the
//   whole table once per range, so there the table stays whole.
// - it needs no key (a table of any shape splits) and splits by physical
//   size: ranges of equal pages read equal bytes. Key boundaries would come
//   from pg_stats (absent or stale right after a bulk load) or from a pass
//   over the key index (ntile), which costs a read of the whole index first.
// - it is exact under a snapshot: every row version the snapshot sees has
//   one ctid, which stays put while the snapshot lives (vacuum removes no
//   version it can see, pruning keeps line pointer numbers), and the ranges
//   cover [0, ∞) without overlap, the last one open-ended, so rows appended
//   after the split are no concern either. Only a table rewrite (VACUUM
//   FULL, CLUSTER, ALTER TABLE … that rewrites) moves versions: the workers
//   hold ACCESS SHARE on the tables from before their first range to their
//   last (pg_backfill.cc), which a rewrite waits for.
// Rows reach new in physical order, which for a table loaded in key order
// (most) is key order; holes left by deleted rows make ranges uneven in rows,
// never wrong.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/pg_client.h"

namespace turnout::control {

// Heap pages [first_page, end_page); end_page < 0: to the table's end.
struct CtidRange {
  std::int64_t first_page = 0;
  std::int64_t end_page = -1;
};

// When and how finely tables split. The defaults suit production; tests
// split small tables by lowering them.
struct PgCopySplit {
  // A table splits only into ranges of at least this many pages (8 kB
  // each): 2,048 pages = 16 MB, where one more COPY session costs little
  // beside the copy.
  std::int64_t min_range_pages = 2048;
  // Ranges per worker for one table (more than 1 balances unequal ranges at
  // the cost of more sessions' worth of transactions on new).
  int ranges_per_worker = 1;
};

// The ranges of the table with oid `oid` on `from` for `workers` workers:
// one open range (the whole table) when it is too small to split or the
// server has no TID range scan.
absl::StatusOr<std::vector<CtidRange>> SplitByPages(const PgSide& from, const std::string& oid, int workers,
                                                    const PgCopySplit& split);

// The WHERE condition that selects `r` ("" for the whole table).
std::string CtidCondition(const CtidRange& r);

}  // namespace turnout::control
