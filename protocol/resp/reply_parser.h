#pragma once
// Frames complete server replies of every RESP2 and RESP3 type without
// decoding them (protocol spec: https://github.com/redis/redis-specifications
// /blob/master/protocol/RESP3.md). The session needs only where a reply ends
// and whether it is an out-of-band push.
//
// Contract (same as RequestParser): `input` starts at the first byte of the
// reply; after kNeedMore call again with the same start and more bytes and
// the parser resumes from its saved state (offsets only, no pointers, so no
// quadratic re-scan and compaction in between is fine). A frame too large for
// the receive buffer can be streamed through: forward validated() bytes,
// call DropPrefix(n) and pass the input without them.
//
// An attribute (`|`) is framed together with the reply it annotates; the
// frame's type is that of the annotated reply.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include "protocol/resp/codec_error.h"
#include "protocol/resp/request_parser.h"  // ParseStatus

namespace turnout::protocol::resp {

enum class ReplyType : std::uint8_t {
  kSimpleString,    // +
  kError,           // -
  kInteger,         // :
  kBulkString,      // $ (also streamed $?)
  kArray,           // *
  kNull,            // _ and RESP2 $-1 / *-1
  kDouble,          // ,
  kBoolean,         // #
  kBlobError,       // !
  kVerbatimString,  // =
  kBigNumber,       // (
  kMap,             // %
  kSet,             // ~
  kAttribute,       // |
  kPush,            // >
};

std::string_view ReplyTypeName(ReplyType t) noexcept;

// Payload checks shared by the framer and the decoder.
bool IsValidRespDouble(std::string_view s) noexcept;
bool IsValidRespBigNumber(std::string_view s) noexcept;

struct ReplyLimits {
  // proto-max-bulk-len default; also caps a simple line's length.
  std::int64_t max_bulk_length = 512LL * 1024 * 1024;
  std::int64_t max_aggregate_length = (1LL << 32);
  // Real replies nest a handful of levels (COMMAND INFO: about 7).
  std::size_t max_depth = 128;
};

struct ReplyFrame {
  ReplyType type = ReplyType::kNull;  // of the top-level reply (not the attribute)
  std::size_t length = 0;             // bytes of the frame, attributes included
  bool has_attribute = false;
  bool is_push() const noexcept { return type == ReplyType::kPush; }
  bool is_error() const noexcept {
    return type == ReplyType::kError || type == ReplyType::kBlobError;
  }
};

class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {});

  ParseStatus Parse(std::span<const std::uint8_t> input) noexcept;
  ParseStatus Parse(std::string_view input) noexcept {
    return Parse(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  }

  const ReplyFrame& frame() const noexcept { return frame_; }
  CodecError error() const noexcept { return error_; }
  std::error_code error_code() const noexcept { return make_error_code(error_); }

  // Bytes of the partial frame already validated (safe to forward early).
  std::size_t validated() const noexcept { return pos_ - dropped_base_; }
  // The caller forwarded and removed the first n <= validated() bytes of the
  // partial frame; the next Parse() input starts n bytes later.
  void DropPrefix(std::size_t n) noexcept;

  void Reset() noexcept;

 private:
  struct Level {
    std::int64_t remaining;  // values still expected; -1 when streamed
    bool attribute;          // does not count as a value of its parent
  };
  ParseStatus Fail(CodecError e) noexcept;
  // A value (scalar or aggregate) ended: pop finished levels. Returns true
  // when the top-level reply is complete.
  bool ValueDone() noexcept;
  bool Push(std::int64_t count, bool attribute) noexcept;

  ReplyLimits limits_;
  std::vector<Level> stack_;
  std::size_t pos_ = 0;        // next byte to parse (input-relative + dropped)
  std::size_t dropped_base_ = 0;  // bytes the caller dropped (DropPrefix)
  std::size_t scan_from_ = 0;  // resume point of a CRLF search
  std::uint64_t payload_left_ = 0;  // bulk bytes still to skip, CRLF excluded
  bool in_payload_ = false;    // waiting for payload + CRLF
  bool in_streamed_string_ = false;  // inside $? chunks
  bool attribute_pending_ = false;   // an attribute ended; its value comes next
  ReplyFrame frame_;
  CodecError error_ = CodecError::kInvalidReplyType;
};

}  // namespace turnout::protocol::resp
