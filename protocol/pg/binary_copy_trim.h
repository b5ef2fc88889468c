#pragma once
// Rewrites a binary COPY stream (sql-copy: "Binary Format") so that the
// values of chosen columns lose their trailing spaces, sans-I/O.
//
// Why: a `character(n)` value is stored padded to n characters, COPY TO
// sends the padding, and the target's bpchar input counts the characters of
// every value it receives (pg_mbstrlen_with_len, a function call per
// character in a multibyte encoding) before padding it again. For
// pgbench_accounts' `filler character(84)` that count is a fifth of new's
// CPU during the initial copy and three quarters of the bytes. The padding
// means nothing in `character(n)` (datatype-character: trailing spaces are
// "semantically insignificant"), and the target pads a shorter value back
// to exactly the bytes it had: the copied rows are identical. Only columns
// with a length (typmod) are chosen: unbounded `bpchar` keeps what it is
// given.
//
// The stream may be cut anywhere; what follows an incomplete field waits
// for the next Feed. A field is held whole before it is written, so memory
// grows with the largest field (libpq hands over whole CopyData messages,
// one row each, so it holds them anyway).

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace turnout::protocol::pg {

class BinaryCopyTrimmer {
 public:
  // trim[i]: strip the trailing spaces of column i's values.
  explicit BinaryCopyTrimmer(std::vector<bool> trim) : trim_(std::move(trim)) {}

  // Appends the rewritten form of `in` to *out. CodecError::kMalformed for a
  // stream that is not binary COPY (bad signature, OIDs included, a field
  // count that differs from the columns given, bytes after the trailer);
  // after an error the trimmer stays failed.
  std::error_code Feed(std::string_view in, std::string* out);

  // The trailer (a field count of -1) has been read.
  bool Finished() const noexcept { return state_ == State::kDone; }

 private:
  enum class State { kHeader, kHeaderExtension, kTupleStart, kField, kDone, kFailed };

  // Consumes what it can of `in`; returns the bytes consumed.
  std::size_t Step(std::string_view in, std::string* out, std::error_code* ec);

  std::vector<bool> trim_;
  State state_ = State::kHeader;
  std::uint32_t extension_left_ = 0;
  std::size_t field_ = 0;     // next field of the current tuple
  std::string pending_;       // an incomplete item carried to the next Feed
};

}  // namespace turnout::protocol::pg
