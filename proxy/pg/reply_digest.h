#pragma once
// What a PostgreSQL backend answered to one request, reduced to a digest of
// constant size whatever the number of rows, and the comparison of two such
// digests: the primary's and the shadow or dual-write side's (DESIGN.md §2).
// Sans I/O: the session feeds the reply frames it relays (views into its
// buffers) and compares once both sides are done.
//
// A reply is a sequence of result sets. A set opens at RowDescription,
// NoData or a DataRow, and ends at CommandComplete, EmptyQueryResponse,
// PortalSuspended or ErrorResponse (an error with no set open is a set of
// its own), so a multi-statement simple Query or a pipeline of Executes
// before one Sync gives one set per statement, compared set by set in order.
// Each set keeps its columns, its row count, and two hashes of its DataRow
// payloads: a multiset hash (sums of a 128-bit hash of each row, for results
// whose order is unspecified) and an order-dependent chain (for a top-level
// ORDER BY). Memory grows with the number of sets, never with rows; only the
// first rows of each set are rendered, for shadow samples.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pg/frame_decoder.h"
#include "proxy/session.h"

namespace turnout::proxy::pg {

// True when the statement's top-level query has ORDER BY, so its rows are
// compared in order rather than as a multiset. Lexed (strings, comments,
// dollar quotes and quoted identifiers are skipped); ORDER BY inside
// parentheses (subqueries, CTEs, OVER (...), string_agg(x ORDER BY y)) does
// not count. Several statements: true only when every non-empty one has it,
// since one flag covers the whole reply and comparing an unordered set in
// order would report a mismatch where there is none.
bool QueryHasTopLevelOrderBy(std::string_view sql);

// The first backend OID of user-created objects (FirstNormalObjectId in
// access/transam.h): types from here on (enums, domains, composites) have
// different OIDs on two servers.
inline constexpr std::uint32_t kFirstNormalObjectId = 16384;

// Outside the class so that it can be a defaulted argument of its members
// (a nested class's member initializers are not usable until the enclosing
// class is complete).
struct ReplyDigestOptions {
  bool ordered = false;             // compare rows in order (QueryHasTopLevelOrderBy)
  std::size_t sample_rows = 3;      // rows rendered per result set
  std::size_t sample_bytes = 1024;  // bound of Render()
};

class ReplyDigest {
 public:
  using Options = ReplyDigestOptions;

  // One column of a RowDescription, as far as two servers should agree:
  // table OID and attribute number are left out (protocol-message-formats:
  // RowDescription), as is the type size, which follows from the type.
  struct Column {
    std::string name;
    std::uint32_t type_oid = 0;
    std::int32_t type_modifier = 0;
    std::int16_t format = 0;
  };

  enum class Shape : std::uint8_t { kNone, kNoData, kColumns, kMalformed };
  enum class End : std::uint8_t { kOpen, kCommandComplete, kEmptyQuery, kSuspended, kError };

  // A 128-bit row hash as two 64-bit lanes.
  struct Hash128 {
    std::uint64_t lo = 0;
    std::uint64_t hi = 0;
    friend bool operator==(const Hash128&, const Hash128&) = default;
  };

  struct ResultSet {
    Shape shape = Shape::kNone;
    std::vector<Column> columns;
    std::uint64_t rows = 0;
    Hash128 multiset;  // sums of the row hashes: order-independent
    Hash128 chain;     // folded row by row: order-dependent
    End end = End::kOpen;
    std::string tag;     // CommandComplete
    std::string sample;  // the first rows rendered, "['1', 'a', NULL] ['2', ...]"
    std::size_t sampled_rows = 0;
  };

  ReplyDigest() = default;
  explicit ReplyDigest(Options o) : options_(o) {}

  void Reset(Options o = {});

  // Frames of one request's reply, in order: 'T' RowDescription, 'D'
  // DataRow, 'C' CommandComplete, 'I' EmptyQueryResponse, 'E'
  // ErrorResponse, 'n' NoData, 's' PortalSuspended; anything else
  // (ParseComplete, BindComplete, ParameterDescription, NoticeResponse,
  // ParameterStatus, NotificationResponse, ReadyForQuery) is ignored. A
  // DataRow is hashed in place: no allocation once the samples are taken.
  void OnFrame(const protocol::pg::Frame& f);

  bool has_error() const noexcept { return has_error_; }
  std::string_view error_sqlstate() const noexcept { return error_sqlstate_; }  // first error
  std::string_view error_message() const noexcept { return error_message_; }
  // "INSERT 0 1;UPDATE 3": the CommandComplete tags joined by ';' (journals,
  // dual-write checks).
  const std::string& tags() const noexcept { return tags_; }
  // For a journal: tags(), then "ERROR <sqlstate> <message>" when an error
  // came, joined by ';'.
  std::string Outcome() const;
  // For shadow samples, at most sample_bytes: per result set its columns
  // "(name:typeoid, ...)", its first rows as text ('text', NULL, \x hex for
  // binary or non-printable values), its row count and tag; then the error.
  // Sets are separated by " | ".
  std::string Render() const;

  const Options& options() const noexcept { return options_; }
  const std::vector<ResultSet>& result_sets() const noexcept { return sets_; }
  std::uint64_t total_rows() const noexcept { return total_rows_; }

 private:
  ResultSet& OpenSet();
  ResultSet& CloseSet(End end);
  void OnRowDescription(const protocol::pg::Frame& f);
  void OnDataRow(const protocol::pg::Frame& f);
  void OnError(const protocol::pg::Frame& f);
  void SampleRow(ResultSet& set, protocol::pg::Bytes payload);

  Options options_;
  std::vector<ResultSet> sets_;
  bool open_ = false;  // sets_.back() is still receiving rows
  std::uint64_t total_rows_ = 0;
  std::size_t sample_budget_used_ = 0;
  std::string tags_;
  bool has_error_ = false;
  std::string error_sqlstate_;
  std::string error_message_;
};

enum class CompareScope : std::uint8_t {
  kFull,     // shadow reads: row descriptions, rows, command tags, errors
  kOutcome,  // dual-writes and shadow writes: command tags (with their row counts) and errors
};

// nullopt when the two replies agree. In order of precedence:
// - kError: an error on one side only, or SQLSTATEs that differ (messages
//   are not compared: they name OIDs, constraint and server details), or
//   the error ended a different result set on each side;
// - kRowDescription: a set's columns differ in number or names, or one side
//   described columns where the other sent NoData;
// - kType: same names, but a type OID, type modifier or format code
//   differs (user types, OID >= kFirstNormalObjectId, are not compared);
// - kLength: a set's row counts differ; kRows: same count, other rows
//   (in order when either digest was made with Options.ordered). The rows
//   of a set cut short by an error are not compared: how far a scan got
//   before failing depends on the physical order;
// - kCommandTag: the tags, or the number of result sets, differ.
// kOutcome compares only the errors and the tags.
std::optional<RouteRuntime::ShadowMismatch> CompareDigests(const ReplyDigest& primary,
                                                          const ReplyDigest& secondary, CompareScope scope);

}  // namespace turnout::proxy::pg
