#pragma once
// The pieces of a table verification (control/pg_verify.h) that are SQL and
// libpq rather than the range logic: what both servers are asked about a
// table (its Shape), the digest of a set of rows, and one statement sent to
// both servers at once. Internal to pg_verify*.cc.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "control/pg_client.h"

namespace turnout::control::pg_verify {

// A row's primary key values, as text.
using Key = std::vector<std::string>;

struct Column {
  std::string name;    // as the catalog spells it
  std::string quoted;  // quote_ident
  std::string type;    // format_type on old
  // The column's collation as the server resolves it ("C", "en_US.utf8",
  // the database's for "default"); empty for types without one.
  std::string collation;
};

// What both servers are asked about one table, the same SQL on each.
struct Shape {
  std::string table;                 // "schema"."table"
  std::vector<Column> columns;       // common to both sides, in old's order
  std::vector<Column> key;           // old's primary key
  std::string row_text;              // row(c1, c2, …)::text
  std::string key_expr;              // (k1 collate "C", k2): ranges compare in C order
  std::string key_order;             // k1 collate "C", k2
  std::string key_text;              // k1::text, k2::text
};

// A key range (lower, upper]; an absent bound is open.
struct Range {
  std::optional<Key> lower, upper;
};

// Row count and the two summed md5 halves, as text (numeric: exact).
struct Digest {
  std::int64_t rows = 0;
  std::string h1, h2;
  bool operator==(const Digest&) const = default;
};

// The digest aggregate over a subquery yielding md5s as `h`.
constexpr const char* kDigestSums =
    "count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text, "
    "coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text";
// The columns of `table` on `s`, in attnum order.
absl::StatusOr<std::vector<Column>> ReadColumns(const PgSide& s, const std::string& table);

// `sql` on both servers at once (libpq's asynchronous calls): each works
// while the other does, so a comparison takes the slower side's time, not
// the sum of both.
absl::StatusOr<std::pair<PgResult, PgResult>> ExecBoth(const PgSide& a, const PgSide& b, const std::string& sql,
                                                       const std::vector<std::string>& params, const std::string& what);

}  // namespace turnout::control::pg_verify
