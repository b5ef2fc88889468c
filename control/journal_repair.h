#pragma once
// The journal as the admin API shows it (GET …/journal) and the repair entry
// point (POST …/repair): Redis keys named by journal entries are copied from
// the side that applied the write to the side that missed it (DUMP/PTTL →
// RESTORE REPLACE); Postgres tables named by entries are resynchronised the
// same way round (control/pg_table_repair.h), then verified, and an entry
// clears once every table it names is equal on both sides. Entries naming no
// table, and tables that still differ, are reported for a data-movement pass.

#include <boost/json/value.hpp>

#include "absl/status/statusor.h"
#include "control/migration.h"
#include "routing/config.h"
#include "routing/journal.h"
#include "routing/shadow_samples.h"

namespace turnout::control {

boost::json::value JournalToJson(const routing::Journal& journal, const Migration& m, std::size_t limit = 1000);

// GET …/shadow: the sampled mismatches of the migration's routes, newest last.
boost::json::value ShadowSamplesToJson(const routing::ShadowSamples& samples, const Migration& m);

absl::StatusOr<boost::json::value> RepairFromJournal(const routing::Config& config, const Migration& m,
                                                     routing::Journal& journal);

}  // namespace turnout::control
