#pragma once
// Postgres data movement of one route (DESIGN.md §6), over libpq.
//
// Tables: those named by the migration's table scopes ("orders" matches any
// schema's orders, "s.orders" only that one), or every user table when no
// scope names tables. A table without a primary key is reported in the
// route's notes, never copied. Columns: the old table's, minus generated
// ones, that also exist on new (new-only columns take their defaults).
//
// scan      keyset batches in primary-key order, each a short REPEATABLE READ
//           transaction on old: find the batch's last key
//           (`WHERE (pk) > $last ORDER BY pk LIMIT n`), then COPY the rows up
//           to it. Checkpoint: the last key per table, after every batch.
//           `passes` > 1 reads every table again from its first key, to
//           pick up rows written on old behind the cursor of an earlier pass
//           (with dual-write armed one pass suffices: new writes reach both).
// snapshot  one snapshot exported on old (pg_export_snapshot() in a
//           REPEATABLE READ transaction held open) shared by `workers`
//           connections (SET TRANSACTION SNAPSHOT), each copying a table
//           or, for a large table, one range of its pages at a time
//           (control/pg_copy_ranges.h), so one big table keeps every worker
//           busy; each piece is one transaction on new.
//           Checkpoint: the tables done (all their pieces). A pause or
//           shutdown abandons the pieces in flight (their transaction on new
//           rolls back); a resumed snapshot copy takes a new snapshot and
//           copies the tables not yet done whole again.
//
// Either way the rows stream old → new with COPY … TO STDOUT / FROM STDIN
// (binary where every column has the same built-in type on both sides,
// text otherwise or when the spec says so) into a temporary staging table
// on new (or, for the change stream's copy into a table new holds no row
// of, straight into the table), then one statement applies them by the
// conflict rule:
//   none     INSERT … ON CONFLICT (pk) DO NOTHING
//   replace  INSERT … ON CONFLICT (pk) DO UPDATE SET c = EXCLUDED.c
//   merge    INSERT … ON CONFLICT (pk) DO UPDATE SET c = COALESCE(t.c, EXCLUDED.c)
// On new the session runs with session_replication_role = replica (when the
// role may set it), so foreign keys and user triggers do not depend on the
// order tables are copied in, as in logical replication. Afterwards every
// sequence owned by a copied table is set past old's value on new.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/data_movement.h"
#include "control/migration.h"
#include "control/pg_copy_ranges.h"
#include "routing/config.h"

namespace turnout::control {

// Copies from `old_backend` to `new_backend`, resuming from
// `progress.checkpoint`. OK when every table is copied; StoppedAtBatchBoundary()
// when told to stop; otherwise the error (naming the table).
// `exported_snapshot` (snapshot mode): copy under this snapshot (a
// replication slot's, control/pg_change_stream.h) instead of exporting one.
absl::Status CopyPostgres(const routing::Backend& old_backend, const routing::Backend& new_backend,
                          const std::vector<std::string>& scope_tables, const DataSpec& spec,
                          RouteProgress& progress, BackfillContext& ctx, const std::string& exported_snapshot = "");
// The same, splitting tables by `split` (tests split small tables).
absl::Status CopyPostgres(const routing::Backend& old_backend, const routing::Backend& new_backend,
                          const std::vector<std::string>& scope_tables, const DataSpec& spec,
                          RouteProgress& progress, BackfillContext& ctx, const std::string& exported_snapshot,
                          const PgCopySplit& split);

// Sets every sequence owned by the moved tables on new past old's value
// (the end of a change stream: its rows carry old's ids, new's sequences
// never moved).
absl::Status AdvancePostgresSequences(const routing::Backend& old_backend, const routing::Backend& new_backend,
                                      const std::vector<std::string>& scope_tables, RouteProgress& progress);

// The tables CopyPostgres moves, as quoted "schema"."name" (notes about the
// tables it leaves out go to `progress`).
absl::StatusOr<std::vector<std::string>> PostgresTablesToMove(const routing::Backend& old_backend,
                                                              const routing::Backend& new_backend,
                                                              const std::vector<std::string>& scope_tables,
                                                              RouteProgress& progress);

}  // namespace turnout::control
