#pragma once
// Row-level verification of one Postgres table on two servers (issue 12;
// after Vitess VDiff and ghostferry's verifiers), over the control plane's
// own libpq connections:
//
//   with a primary key   the table is cut into key ranges on old by keyset
//                        queries (`… where key > $last order by key limit 1
//                        offset chunk_rows - 1`); each range is digested on
//                        both servers with the same SQL; a range whose digests
//                        differ is cut again (16 sub-ranges by row_number) down
//                        to ranges of at most `leaf_rows` rows, whose per-row
//                        md5s are compared by key. A row is reported by its
//                        key: changed (the columns that differ, old and new
//                        value truncated), only on old, only on new.
//   without one          rows are digested into 256 buckets by the first byte
//                        of their md5; a differing bucket's rows are compared
//                        as multisets (md5 -> count): rows present more often
//                        on one side, with how many more.
//
// The digest of a set of rows is count(*) and the two 64-bit halves of each
// row's md5(row(columns)::text) summed as numeric (exact, no wrap): equal
// multisets give equal digests, and a difference cancels out only if some
// other rows' md5s sum to exactly the opposite, in both halves at once. (A
// sum of 32-bit hashtext, the verifier before this one, cancelled easily.)
//
// Both servers must render a value as the same text: the session settings
// that shape output (DateStyle, TimeZone, extra_float_digits, bytea_output,
// IntervalStyle) are set alike by PrepareVerifySession. Both must also cut
// the same key ranges: a text key column whose collation resolves to the
// same name on both servers keeps it (and its index); otherwise its ranges
// compare with COLLATE "C" on both (correct, but no index serves them). Two
// servers whose C libraries sort one collation name differently (glibc 2.28)
// are not detected: a row near a range bound then shows as only on old in
// one range and only on new in the next.
//
// Consistency while writes flow. Old and new are read at different moments,
// so a write in flight can make a row differ for an instant. Two modes:
//
//   "lsn"      (a change stream applies old's WAL on new) each top-level range
//              is read on old in a REPEATABLE READ snapshot, with L =
//              pg_current_wal_insert_lsn() read after that snapshot was taken:
//              every commit the snapshot sees ends at or before L. New is read
//              (also in one snapshot) once the stream has applied past L
//              (`wait_new_applied_past`). New may then hold more than old's
//              snapshot (what committed after L), never less, so a range can
//              still differ by a row written since; such rows settle below.
//              If the stream does not get past L within its bound, the rest
//              of the table is compared in "recheck" mode and
//              `consistency_note` says why.
//   "recheck"  (statement dual-write, no stream) ranges are read on both
//              sides as they are; differing rows settle after
//              `recheck_delay`.
//
// Settling (both modes): every row the first pass found is read again by
// key, on both sides (in "lsn" mode with a fresh snapshot and wait), up to
// `settle_rounds` times. A row equal by then was in flight: dropped. A row
// whose versions (xmin and ctid) did not move on either side since the last
// read and that still differs is reported: nothing wrote it in between, so
// no write in flight explains it. A row still changing after the last round
// is counted in `rows_unsettled` (a hot row; the next run looks again), not
// reported. In "lsn" mode a reported row is exact: old held the same version
// from L to the next read, which follows the position new was read at.
// A table without a key is compared twice (each pass in "lsn" mode at a
// snapshot pair) and only rows that differed both times are reported.
//
// Throttle: `after_chunk` is called after every top-level range with its
// rows; it may sleep (continuous verification's rows_per_second) or stop the
// run with a status.

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/pg_client.h"

namespace turnout::control {

struct PgVerifyOptions {
  std::int64_t chunk_rows = 10000;  // rows of old per top-level key range
  std::int64_t leaf_rows = 256;     // ranges this small are compared row by row
  // Re-compare differing ranges after this long and keep only what stays
  // different; zero: report the first pass as it is.
  absl::Duration recheck_delay = absl::Milliseconds(300);
  // Runs after the delay, before the recheck reads (tests change rows here).
  std::function<void()> before_recheck;
  // Reads of the rows the first pass found, at most (see "Settling" above).
  int settle_rounds = 4;
  std::size_t max_reported = 100;      // differences described per table
  std::size_t max_keys = 100000;       // differing keys collected per table (repair uses them)
  std::size_t max_value_chars = 64;    // old/new values and keyless rows are cut here
  std::size_t max_columns = 16;        // differing columns described per row
  bool describe_columns = true;        // fetch the differing columns of changed rows
  // "lsn" mode: given old's snapshot LSN ("0/16B3748"), returns once new has
  // applied past it; an error (a timeout) switches the table to "recheck".
  // StreamPositionWait builds it for a change stream's slot.
  std::function<absl::Status(const std::string& lsn)> wait_new_applied_past;
  // After every top-level range (a keyless table: once) with the rows it
  // held on the larger side; a status other than OK ends the table with it.
  std::function<absl::Status(std::int64_t rows)> after_chunk;
};

// One row that differs.
struct PgRowDifference {
  enum class Kind { kChanged, kOnlyOld, kOnlyNew };
  Kind kind = Kind::kChanged;
  // With a primary key: its values as text, in key order.
  std::vector<std::string> key;
  struct Column {
    std::string name, old_value, new_value;  // values truncated; "NULL" for null
  };
  std::vector<Column> columns;  // kChanged, when described: the first max_columns
  std::size_t columns_differing = 0;  // all of them
  // Without a primary key: the row's text (truncated) and how many more
  // copies one side holds.
  std::string row;
  std::string row_md5;  // md5 of the row's text: repair finds its copies by it
  std::int64_t count = 1;
};

struct PgTableVerify {
  std::string table;                     // schema.table
  std::vector<std::string> primary_key;  // column names; empty: compared as multisets
  std::int64_t old_rows = 0, new_rows = 0;
  std::int64_t chunks = 0, chunks_differing = 0;
  // "lsn", "recheck", "single pass" (recheck_delay zero, no stream)
  std::string mode;
  std::string consistency_note;  // why "lsn" fell back to "recheck"
  std::int64_t rows_unsettled = 0;  // still changing at every settle read: not compared
  bool equal = false;
  // Columns the two sides do not share (compared on the common ones).
  std::vector<std::string> columns_only_old, columns_only_new;
  std::string error_new;  // new cannot be read (table missing…): equal is false
  // Every difference found (rows; a range no row explains counts as one).
  std::int64_t differences_total = 0;
  std::vector<PgRowDifference> differences;  // the first max_keys, in key order
  // A range that differs though no row does (duplicate keys on new?).
  std::vector<std::string> unexplained;
  // The key's types on old (format_type), for callers that look rows up.
  std::vector<std::string> key_types;
  // The columns of each row's digest text, quoted, in order: md5(row(…)::text)
  // of these is `row_md5`.
  std::vector<std::string> row_columns;
  // true when `differences` holds every differing row (a keyless row with
  // all its copies).
  bool complete() const {
    std::int64_t listed = 0;
    for (const auto& d : differences) listed += primary_key.empty() ? d.count : 1;
    return differences_total == listed && unexplained.empty();
  }
};

// Sets the output-shaping settings alike on a connection the verifier reads.
absl::Status PrepareVerifySession(const PgSide& s);

// Compares `table` ("schema.table", as the catalog names it) on `old_side`
// and `new_side` (both prepared). An error status means a server failed
// mid-way; a table missing on new is a result (error_new).
absl::StatusOr<PgTableVerify> VerifyPgTable(const PgSide& old_side, const PgSide& new_side, const std::string& table,
                                            const PgVerifyOptions& options = {});

// The report's entry for a table: "table", "old_rows", "new_rows", "equal"
// (as before), plus the key, chunks, mode and the first `max_reported`
// differences ("rows"), with "differences_total".
boost::json::object PgTableVerifyToJson(const PgTableVerify& v, std::size_t max_reported = 100);

// One line for the route's "differences" list ("table public.t: 3 rows differ …").
std::string PgTableVerifySummary(const PgTableVerify& v);

// wait_new_applied_past for a change stream whose slot is `slot`: new has
// applied past an LSN once its _turnout.stream_position (written with the
// rows, control/pg_change_apply.h) is at or past it, or once old's slot has
// confirmed it (an idle stream confirms keepalive positions without a
// transaction to store). Polls both until `bound`, then DeadlineExceeded.
// The sides must outlive the function and not be in a transaction on new.
std::function<absl::Status(const std::string& lsn)> StreamPositionWait(const PgSide& old_side, const PgSide& new_side,
                                                                      std::string slot, absl::Duration bound);

// "schema.table" -> "schema"."table" (identifiers quoted).
std::string QuoteQualified(const std::string& table);

}  // namespace turnout::control
