#pragma once
// A decoded reply tree for the off-hot-path consumers (shadow comparison,
// data movement, the control plane), and the comparator shadow traffic uses.
// Decoding allocates; framing on the relay path uses ReplyParser instead.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "protocol/resp/reply_parser.h"

namespace turnout::protocol::resp {

struct Value {
  ReplyType type = ReplyType::kNull;
  // Simple/bulk strings, errors, blob errors, verbatim data (after the
  // "txt:" prefix), and the text of doubles and big numbers.
  std::string str;
  // Verbatim format ("txt", "mkd").
  std::string format;
  // Integers; booleans as 0/1.
  std::int64_t integer = 0;
  // Aggregates; a map holds key, value, key, value ...
  std::vector<Value> elements;
  // Key/value pairs of an attribute that preceded this value.
  std::vector<Value> attributes;

  bool is_aggregate() const noexcept {
    return type == ReplyType::kArray || type == ReplyType::kMap || type == ReplyType::kSet ||
           type == ReplyType::kPush;
  }
};

struct DecodeOptions {
  std::size_t max_depth = 128;
  std::int64_t max_bulk_length = 512LL * 1024 * 1024;
};

// Decodes one complete reply from the start of `input`. On success returns
// {} and sets *consumed (if given) to the frame length. Never throws on
// peer bytes; aggregates reserve at most what the remaining bytes can hold.
std::error_code DecodeReply(std::string_view input, Value& out, std::size_t* consumed = nullptr,
                            const DecodeOptions& options = {});

// How two replies differ; kNone when they are equal. The names are stable
// metric label values (ReplyMismatchName).
enum class ReplyMismatch : std::uint8_t { kNone, kType, kLength, kValue };
std::string_view ReplyMismatchName(ReplyMismatch m) noexcept;

struct CompareOptions {
  // The caller knows the command's output order is not defined (COMMAND
  // tip nondeterministic_output_order: SMEMBERS, HKEYS, KEYS ...): compare
  // the top-level array as a multiset.
  bool unordered = false;
  // Attributes are out-of-band hints (e.g. key popularity); ignored unless set.
  bool compare_attributes = false;
};

// Sets (~) and maps (%) are always compared without regard to order; every
// null form (_, $-1, *-1) is the same null.
ReplyMismatch CompareReplies(const Value& a, const Value& b, const CompareOptions& options = {});

// A canonical byte string for `v` (sets and maps sorted, nulls unified);
// two values compare equal iff their canonical forms are equal.
void AppendCanonical(const Value& v, bool unordered_top, bool with_attributes, std::string& out);

}  // namespace turnout::protocol::resp
