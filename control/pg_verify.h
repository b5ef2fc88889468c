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
// Consistency while writes flow ("recheck" mode): old and new are read at
// slightly different moments, so a write in flight can make a range differ
// for an instant. A differing range is compared again after `recheck_delay`
// and only rows that differ in both passes are reported. The stream mode
// (old at a snapshot, new once it applied past that snapshot's LSN) plugs in
// through `wait_new_applied_past`; until a change stream provides it, the
// verifier rechecks.

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/pg_side.h"

namespace turnout::control {

struct PgVerifyOptions {
  std::int64_t chunk_rows = 10000;  // rows of old per top-level key range
  std::int64_t leaf_rows = 256;     // ranges this small are compared row by row
  // Re-compare differing ranges after this long and keep only what stays
  // different; zero: report the first pass as it is.
  absl::Duration recheck_delay = absl::Milliseconds(300);
  // Runs after the delay, before the recheck reads (tests change rows here).
  std::function<void()> before_recheck;
  std::size_t max_reported = 100;      // differences described per table
  std::size_t max_keys = 100000;       // differing keys collected per table (repair uses them)
  std::size_t max_value_chars = 64;    // old/new values and keyless rows are cut here
  std::size_t max_columns = 16;        // differing columns described per row
  bool describe_columns = true;        // fetch the differing columns of changed rows
  // The seam for the change-stream mode (not used yet): given old's snapshot
  // LSN ("0/16B3748"), returns once new has applied past it. When set, old is
  // read in a repeatable-read transaction whose snapshot LSN is passed here
  // before new is read, and no recheck is needed.
  std::function<absl::Status(const std::string& lsn)> wait_new_applied_past;
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
  std::int64_t count = 1;
};

struct PgTableVerify {
  std::string table;                     // schema.table
  std::vector<std::string> primary_key;  // column names; empty: compared as multisets
  std::int64_t old_rows = 0, new_rows = 0;
  std::int64_t chunks = 0, chunks_differing = 0;
  std::string mode;  // "recheck", "single pass" (recheck_delay zero), "stream"
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
  // true when `differences` holds every differing row.
  bool complete() const { return differences_total == static_cast<std::int64_t>(differences.size()) && unexplained.empty(); }
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

// "schema.table" -> "schema"."table" (identifiers quoted).
std::string QuoteQualified(const std::string& table);

}  // namespace turnout::control
