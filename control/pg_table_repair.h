#pragma once
// Journal repair of Postgres tables: each table a journal entry names is
// resynchronised on the backend that missed the write (`target`) from the
// one that applied it (`source`), over libpq, one transaction per table on
// the target.
//
// By rows first: the verifier (control/pg_verify.h, source as old, target as
// new) names the rows that differ by primary key; when it can name all of
// them (at most 20,000, same columns on both sides), exactly those rows are
// re-copied: the source's version of each listed key is staged on the target,
// listed keys the source lacks are deleted, staged rows upserted. A table
// without a key is repaired as a multiset: of each row the target holds too
// many copies of, exactly that many are deleted (by ctid); each row the
// source holds more copies of is copied that many times. No other row is
// read from the source or written on the target.
//
// Else the whole table:
//
//   with a primary key   the source's rows (COPY … TO STDOUT, text) are staged
//                        in a temporary table on the target; target rows whose
//                        key is not staged are deleted; staged rows are
//                        upserted (INSERT … ON CONFLICT (pk) DO UPDATE), rows
//                        already equal left untouched (no dead tuples for the
//                        rows a few failed writes did not touch).
//   without one          DELETE of every row, then COPY of the source's rows
//                        (when the verifier cannot list every differing row).
//
// The target table is locked (SHARE ROW EXCLUSIVE: reads go on, writes wait)
// before the source is read, so a dual-write that reaches the target during
// the repair is applied after it, on top of the repaired rows, never under
// them. A write that commits on the target before the lock but on the source
// after the read can still be undone; it diverges again and is journaled
// again, so a repair run while the table is quiet is exact.
//
// Columns: the source's, minus generated ones, that also exist on the target
// (as control/pg_backfill). Sequences owned by a repaired table are advanced
// on the target past the source's value, so the target's next id cannot
// collide with a repaired row.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/config.h"

namespace turnout::control {

struct PgTableRepair {
  std::string table;     // as the journal names it ("accounts", "public.accounts")
  std::string resolved;  // schema.table as the catalog names it; empty when not found
  bool ok = false;       // resynchronised and committed
  std::string error;     // why not; or, when ok, the owned sequences that could not be advanced
  bool has_primary_key = false;  // false: copied whole
  std::string method;            // "rows" (the differing rows only; keyless: copies) or "table" (resynchronised whole)
  std::int64_t rows_differing = 0;  // "rows": what the verifier found before the repair
  std::int64_t source_rows = 0;
  std::int64_t upserted = 0;  // inserted, or updated because they differed
  std::int64_t deleted = 0;
  double seconds = 0;
  // After the commit: the verifier finds both sides equal.
  bool equal = false;
};

// Where a table's repair is, for a job's progress (control/repair_job.h).
// `rows` grows within the table: by rows, each differing row once its batch
// (at most 1,000 keys) is applied; whole, each source row as it is copied
// (every 20,000), then the rows deleted. With `done` the table's result is
// in (repaired, skipped or failed) and `rows` is its final figure.
struct PgTableRepairStep {
  std::string table;  // resolved (schema.table) once known, else the journal's name
  std::int64_t rows = 0;
  bool done = false;
};
using PgTableRepairProgress = std::function<void(const PgTableRepairStep&)>;

// Resynchronises each table of `tables` (the journal's normalised names) on
// `target` from `source`: one result per name, in order; names of the same
// table share one repair. A table that cannot be repaired is reported in its
// result; the status is an error only when a backend cannot be reached.
// `progress`, when given, is called on this thread as each table starts,
// moves and ends (every name ends once, a duplicate with 0 rows).
absl::StatusOr<std::vector<PgTableRepair>> RepairPostgresTables(const routing::Backend& source,
                                                                const routing::Backend& target,
                                                                const std::vector<std::string>& tables,
                                                                const PgTableRepairProgress& progress = {});

}  // namespace turnout::control
