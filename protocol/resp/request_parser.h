#pragma once
// Frames client commands (RESP arrays of bulk strings and inline commands)
// out of a receive buffer, the way Redis 7.0 does in src/networking.c
// (processMultibulkBuffer / processInlineBuffer), without copying.
//
// Contract (sans-I/O, matches IoBuffer::Unparsed()):
//   * `input` starts at the first byte not yet framed. After kNeedMore call
//     again with the same start and more bytes; the parser resumes where it
//     stopped (it keeps offsets, not pointers, so the caller may Compact() the
//     buffer in between as long as the frame start moves with it).
//   * After kComplete, command() describes the frame: the caller forwards or
//     consumes command().frame_length bytes and calls Parse() on the rest.
//     The argument views point into `input` (or, for quoted inline arguments,
//     into the parser's scratch space) and stay valid until the next call.
//   * After kError, error() tells which; Redis answers with the error text
//     (RedisErrorText) and closes the connection, so must the session.
// Empty commands ("*0", "*-1", blank inline lines) produce no reply in Redis;
// the parser skips them and counts them into the next frame's length.
// No allocation in steady state: the argument vectors are reused.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "protocol/resp/codec_error.h"

namespace turnout::protocol::resp {

enum class ParseStatus : std::uint8_t { kNeedMore, kComplete, kError };

// Redis 7.0 defaults. proto-max-bulk-len is 512 MB and PROTO_INLINE_MAX_SIZE
// 64 KiB (server.h). Redis 7.0 accepts a multibulk count up to INT_MAX and
// grows argv lazily; the proxy caps it at 1024*1024 (the pre-6.0 Redis limit)
// because every argument costs a view here. Both are configurable.
struct RequestLimits {
  std::int64_t max_bulk_length = 512LL * 1024 * 1024;
  std::int64_t max_multibulk_length = 1024 * 1024;
  std::size_t max_inline_length = 64 * 1024;
  // Before AUTH Redis 7.0 refuses more than 10 arguments or a bulk longer
  // than 16384 bytes (networking.c, authRequired()).
  std::int64_t unauthenticated_max_multibulk = 10;
  std::int64_t unauthenticated_max_bulk = 16384;
};

struct Command {
  // args[0] is the command name as sent (any case).
  std::span<const std::string_view> args;
  // Bytes from the start of `input` up to the end of this command, including
  // skipped empty commands before it.
  std::size_t frame_length = 0;
  // Where the command itself starts within the frame (after skipped empties).
  std::size_t command_offset = 0;
  // True for an inline command: forward it re-encoded, not as raw bytes, if
  // the upstream must see RESP (arguments may have been unquoted).
  bool inline_form = false;
};

class RequestParser {
 public:
  explicit RequestParser(RequestLimits limits = {});

  ParseStatus Parse(std::span<const std::uint8_t> input) noexcept;
  ParseStatus Parse(std::string_view input) noexcept {
    return Parse(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  }

  const Command& command() const noexcept { return command_; }
  CodecError error() const noexcept { return error_; }
  std::error_code error_code() const noexcept { return make_error_code(error_); }
  // For kExpectedDollar: the byte Redis quotes in its message.
  char offending_byte() const noexcept { return offending_byte_; }
  // The full "-ERR Protocol error: ...\r\n" reply for the last error.
  void AppendErrorReply(std::string& out) const {
    AppendProtocolErrorReply(out, error_, offending_byte_);
  }

  // Until the session authenticates the client, apply Redis' stricter
  // pre-AUTH limits. Default: authenticated (no pre-AUTH limits).
  void set_authenticated(bool authenticated) noexcept { authenticated_ = authenticated; }

  // Forgets a partial frame (e.g. after the caller dropped the buffer).
  void Reset() noexcept;

  // Bytes of the current partial frame already validated; a kNeedMore frame
  // needs at least this many bytes plus the pending bulk (a hint for sizing).
  std::size_t bytes_needed_hint() const noexcept { return needed_hint_; }

 private:
  enum class State : std::uint8_t { kStart, kBulkHeader, kBulkPayload };
  // "*<count>\r\n" and "$<length>\r\n" frame alike and differ only in
  // their limits and error codes.
  enum class LengthKind : std::uint8_t { kMultibulk, kBulk };

  ParseStatus Fail(CodecError e) noexcept;
  // Reads the length line at pos_. nullopt: *value is set and pos_ is past
  // the line; otherwise the status Parse() returns (kNeedMore or kError).
  std::optional<ParseStatus> ParseLengthLine(LengthKind kind, const char* data, std::size_t size,
                                             std::int64_t* value) noexcept;
  // nullopt: a blank line was skipped, go on with the next command.
  std::optional<ParseStatus> ParseInline(const char* data, std::size_t size) noexcept;
  ParseStatus Finish(const char* data) noexcept;

  RequestLimits limits_;
  bool authenticated_ = true;

  State state_ = State::kStart;
  std::size_t pos_ = 0;            // next byte to look at
  std::size_t command_start_ = 0;  // first byte of the current command
  std::size_t scan_from_ = 0;      // resume point of a line search
  std::int64_t remaining_args_ = 0;
  std::int64_t bulk_length_ = 0;
  std::size_t needed_hint_ = 0;

  // (offset, length) pairs relative to the input start; turned into views
  // only when the frame is complete, so a compaction in between is harmless.
  std::vector<std::pair<std::size_t, std::size_t>> offsets_;
  std::vector<std::string_view> views_;
  std::string scratch_;  // unquoted inline arguments

  Command command_;
  CodecError error_ = CodecError::kInvalidMultibulkLength;
  char offending_byte_ = '?';
};

// Redis' string2ll (util.c): optional '-', no '+', no leading zeros, no
// spaces, at most 20 characters, no overflow. Used for every request length.
bool ParseRedisInt64(std::string_view s, std::int64_t& out) noexcept;

// Redis' sdssplitargs (sds.c) for one inline line: blanks separate
// arguments, "double quotes" understand \xHH \n \r \t \b \a and \<any>,
// 'single quotes' only \', and a closing quote must be followed by a blank or
// the end. Unquoted arguments are views into `line`; quoted ones are written
// to `scratch` (whose capacity must be at least line.size() so the views stay
// put). Returns false on unbalanced quotes. `line` stops at a NUL byte, as
// the C code does.
bool SplitInlineArgs(std::string_view line, std::string& scratch,
                     std::vector<std::string_view>& args) noexcept;

}  // namespace turnout::protocol::resp
