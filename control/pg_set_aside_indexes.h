#pragma once
// Indexes set aside while the change stream's initial copy fills an empty
// table on new (control/pg_backfill.cc, CopySnapshot).
//
// Why: a row COPYed into a table with indexes is inserted into each of them
// one at a time; building an index once the rows are in sorts them instead.
// Measured on the harness clusters (pgbench_accounts, 2,000,000 rows, binary
// COPY, an idle 2-core machine): into the table with its primary key 3.4 s
// (2.8 s in two halves side by side); without it 1.9 s (1.3 s in two
// halves), then 0.6 s to build the key. pg_restore and pgcopydb load the
// same way: data first, indexes after.
//
// Exactly as they were: a table's indexes are set aside only when each can
// be built again from its own definition with nothing lost (see
// SetIndexesAside); otherwise the table keeps them and is copied as before.
// The statements that build them again are recorded on new, in the same
// transaction that drops them (_turnout.set_aside_indexes), and removed in
// the transaction that builds them again: a copy cut short (an error, a stop,
// kill -9 of turnout) leaves the record, and the next copy of the table
// builds them first (RebuildSetAsideIndexes), as does data movement's clean-up
// once the migration has ended (control/data_movement.cc, CleanUpStreams).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/pg_client.h"

namespace turnout::control {

// Sets aside every index of `table` (quoted "schema"."name") on `to` and
// records how to build each again, in one transaction. Returns how many were
// set aside: 0 when the table has none or keeps them, which it does when one
// could not be built again exactly from its definition (an exclusion
// constraint, an index a foreign key references, the replica identity or
// CLUSTER index, a comment, a tablespace of its own, a statistics target, a
// partition's or an extension's index, an invalid index, a constraint whose
// index has another name).
absl::StatusOr<int> SetIndexesAside(const PgSide& to, const std::string& table);

// Builds again every index recorded as set aside for `tables` (every table
// recorded when empty), one transaction per table, and forgets the record.
// Returns the tables whose indexes were built.
absl::StatusOr<std::vector<std::string>> RebuildSetAsideIndexes(const PgSide& to,
                                                                const std::vector<std::string>& tables);

// The same on `target` (a new side), every table recorded, over a
// connection of its own: for a migration that ended while a copy it ran was
// cut short (its next copy, which would have built them, never comes).
absl::StatusOr<std::vector<std::string>> RebuildSetAsideIndexes(const routing::Backend& target);

}  // namespace turnout::control
