#pragma once
// Postgres data movement by change stream (DESIGN.md §6): the authoritative
// side's WAL, decoded by pgoutput, applied on the other side in commit order.
//
//   old ── publication turnout_… (the tables data movement moves)
//       ── slot turnout_… (logical, pgoutput), created with an exported snapshot
//   1. copy   every table under the slot's snapshot (CopyPostgres, parallel
//             COPY), so the copy holds exactly what committed before the
//             slot's consistent point; then the position = consistent point
//             is stored on new (_turnout.stream_position)
//   2. stream START_REPLICATION from the stored position; ChangeApplier
//             applies each source transaction on new with the position in the
//             same transaction; the slot is confirmed only after new committed
//
// No live write is missed (it commits after the consistent point: it is in
// the stream), overwritten or resurrected (the copy never reads a row newer
// than the stream applies after it). A restart of turnout, old or new
// resumes from new's stored position: nothing lost, nothing applied twice.
// An interrupted copy starts over with a new slot and snapshot.
//
// DDL: an event trigger on old (ddl_command_end) puts the client's query
// into the WAL as a transactional logical message; the applier runs its DDL
// statements at that place. Tables created after the slot are not in the
// publication: they are not streamed.
//
// `data: snapshot` ends once new has applied past old's WAL position at the
// end of the copy; `data: scan` keeps streaming while the migration runs
// (until its strategy sends everything to new: then it catches up and ends).
// Replication objects are named after the migration and route
// (StreamNamesFor) and dropped once no running or paused migration needs
// them (DropStaleStreams): turnout never leaves a slot holding WAL.

#include <cstdint>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/data_movement.h"
#include "control/migration.h"
#include "routing/config.h"
#include "routing/stream_positions.h"

namespace turnout::control {

struct StreamNames {
  std::string slot;         // also the publication's name
  std::string publication;
};
// Slot names allow [a-z0-9_], at most 63 bytes: the id is folded to that and
// a hash of (migration, route) keeps names distinct.
StreamNames StreamNamesFor(const std::string& migration_id, const std::string& route);
inline constexpr const char* kStreamNamePrefix = "turnout_";

// The stream back from new to old after a cutover (issue 11): its slot and
// publication live on new, its position on old.
StreamNames StreamBackNamesFor(const std::string& migration_id, const std::string& route);

// What the source lacks to stream (wal_level, slots, senders, the
// replication privilege); empty when it can.
absl::StatusOr<std::vector<std::string>> StreamPrerequisitesMissing(const routing::Backend& source);

struct StreamOptions {
  std::string migration_id;
  // Asked about once a second: true once the stream should catch up with
  // old's current position and end (the copy only, or a full cutover).
  std::function<bool()> finish_requested;
  // Told, in this process, each time new has applied everything of old
  // before `lsn` (after each commit on new, and once a second as a
  // heartbeat while streaming); sidecars elsewhere hear the same on
  // kAppliedChannel (control/pg_change_apply.h).
  std::function<void(std::uint64_t lsn)> on_applied;
  // Told, in this process, the xid and end of each source transaction as it
  // is decoded (before it is applied): a sync commit that knows its xid
  // waits for exactly that end (routing/stream_positions.h).
  std::function<void(std::span<const routing::StreamPosition::DecodedCommit>)> on_commits;
};

// The route's data movement by change stream (resumes from progress.stream).
// OK once finished as above; StoppedAtBatchBoundary() when told to stop.
absl::Status StreamPostgres(const routing::Backend& old_backend, const routing::Backend& new_backend,
                            const std::vector<std::string>& scope_tables, const DataSpec& spec,
                            const StreamOptions& options, RouteProgress& progress, BackfillContext& ctx);

// The stream back, prepared while a cutover holds writes (before the first
// write reaches new as the authority): on new a publication of the tables
// the forward stream carries (every table, created ones included, when it
// does), the DDL triggers and the slot; on old the slot's consistent point
// as the stored position. Returns that position. What the forward stream
// applied on new carries its applied mark and is never sent back.
absl::StatusOr<std::uint64_t> PrepareStreamBack(const routing::Backend& old_backend,
                                                const routing::Backend& new_backend, const std::string& migration_id,
                                                const std::string& route);
// Applies new's changes on old from the stored position until told to stop
// (ctx), or, once options.finish_requested says so, until old has caught up
// with new (then old's sequences are set past new's). Connection losses are
// retried; options.on_applied hears old's applied position. Its figures
// (progress.stream, and progress.error while it retries) go to
// ctx.Checkpoint about once a second, like the forward stream's: the
// record's stream_back (control/stream_back.h).
absl::Status StreamPostgresBack(const routing::Backend& old_backend, const routing::Backend& new_backend,
                                const StreamOptions& options, RouteProgress& progress, BackfillContext& ctx);

// A fence: a mark in old's WAL for the stream of `slot` (kFencePrefix),
// flushed at once. Once the stream's applied position
// (StreamPosition::applied) reaches it, new holds every transaction that
// committed on old before it was written. One simple Query (slot names are
// [a-z0-9_]), sent by the cutover (EmitStreamFence) and, asynchronously, by
// every StreamFeeder; FenceResultLsn picks its position out of the results.
// A feeder's fence names this process too (`from_here`): the stream, when
// it runs in the same process, tells the waiting sessions directly and does
// not announce the fence on new (a NOTIFY transaction on new per fence,
// and a wake-up of every listening feeder, for nobody); a fence of another
// process, or a cutover's, is announced at once.
std::string StreamFenceSql(const std::string& slot, bool from_here = false);
// The fence's statement alone, for a connection that already runs with
// synchronous_commit on (a StreamFeeder prepares it once: planning the
// overloaded pg_logical_emit_message cost old more than a pgbench
// transaction's statements did).
std::string StreamFenceStatement(const std::string& slot, bool from_here);
bool FenceResultLsn(const struct pg_result* r, std::uint64_t* lsn);
// A sample: old's WAL insert position, a read (routing/stream_positions.h
// says why a sample needs no fence unless a waiting session nudges).
std::string StreamSampleSql();
bool SampleResultLsn(const struct pg_result* r, std::uint64_t* lsn);
// Writes a fence on `source` and returns its position.
absl::StatusOr<std::uint64_t> EmitStreamFence(const routing::Backend& source, const std::string& slot);

// Drops the slots and publications named turnout_… on `source` that are not
// in `keep` (slot names), and the DDL event trigger once none is left.
// A slot still in use (its runner is stopping) is left for the next call.
struct StaleStreams {
  std::vector<std::string> dropped;  // "slot …", "publication …", "event trigger …"
  int in_use = 0;                    // stale slots still held by a connection
};
absl::StatusOr<StaleStreams> DropStaleStreams(const routing::Backend& source, const std::set<std::string>& keep);

}  // namespace turnout::control
