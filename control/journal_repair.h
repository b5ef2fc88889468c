#pragma once
// The journal as the admin API shows it (GET …/journal) and the repair entry
// point (POST …/repair): Redis keys named by journal entries are copied from
// the side that applied the write to the side that missed it (DUMP/PTTL →
// RESTORE REPLACE); Postgres tables named by entries are resynchronised the
// same way round (control/pg_table_repair.h), then verified, and an entry
// clears once every table it names is equal on both sides. Entries naming no
// table, and tables that still differ, are reported for a data-movement pass.
// What no entry names (a write made on one side directly, or lost to a
// crash) the verifier finds: Postgres tables are repaired by rows and Redis
// keys copied, from the side that holds the migration's writes.

#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "control/migration.h"
#include "routing/config.h"
#include "routing/journal.h"
#include "routing/shadow_samples.h"

namespace turnout::control {

boost::json::value JournalToJson(const routing::Journal& journal, const Migration& m, std::size_t limit = 1000);

// GET …/shadow: the sampled mismatches of the migration's routes, newest last.
boost::json::value ShadowSamplesToJson(const routing::ShadowSamples& samples, const Migration& m);

// Where a repair is (control/repair_job.h saves it in the record), told
// as each key is copied, each table starts, moves and ends, and each
// verification pass moves on. Phases, in order:
//   journal    keys and tables that journal entries name
//   verifying  the verifier looks for tables that differ with no entry
//   found      the tables it found, repaired from the side holding the writes
//   checking   the verifier's closing pass over the routes repaired
struct RepairProgress {
  std::string phase;
  std::string route;
  std::string table;         // schema.table; "keys" for a Redis route
  std::int64_t rows = 0;     // rows and keys repaired so far, over every table (see PgTableRepairStep)
  std::int64_t table_rows = 0;  // of `rows`, in `table`
  std::int64_t compared = 0;    // verifying, checking: rows the pass compared so far
  int tables_done = 0;
  // Known so far: the journal's tables and Redis routes (a route's keys
  // count as one), then the tables the verifier finds.
  int tables_total = 0;
  // Rows of a table that just committed, or keys just copied (0 otherwise):
  // what a counter of repaired rows adds.
  std::int64_t committed = 0;
};
using RepairProgressFn = std::function<void(const RepairProgress&)>;

// POST …/repair's work. `progress`, when given, is called on this thread.
absl::StatusOr<boost::json::value> RepairFromJournal(const routing::Config& config, const Migration& m,
                                                     routing::Journal& journal, const RepairProgressFn& progress = {});

}  // namespace turnout::control
