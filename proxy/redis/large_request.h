#pragma once
// Streaming one client command that does not fit in the receive buffer
// (STYLE.md "stream an oversized frame through by its remaining length
// instead of growing the buffer"). RequestParser frames whole commands only;
// when a multibulk command outgrows the buffer the session hands the bytes to
// this walker, which follows the frame header by header (`*N`, then `$L` and
// L+2 payload bytes per argument) so each buffer-full can be forwarded and
// dropped as it arrives. The first arguments (name, subcommand, first key)
// are captured while they are still in the buffer, for classification.
//
// Sans-I/O like the codecs: Walk() takes the unconsumed bytes and says how
// many of them belong to the command.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/resp/codec_error.h"

namespace turnout::proxy::redis {

class LargeRequestWalker {
 public:
  enum class Status : std::uint8_t { kNeedMore, kDone, kError };
  static constexpr std::size_t kCapturedArgs = 3;

  LargeRequestWalker(std::int64_t max_bulk_length, std::int64_t max_multibulk_length) noexcept
      : max_bulk_(max_bulk_length), max_multibulk_(max_multibulk_length) {}

  // Starts a new command; the next Walk() input starts at its first byte
  // (empty commands before it, "*0" or blank lines, are skipped).
  void Reset() noexcept;

  // Sets `used` to the bytes of `input` that belong to the command (never
  // past its end). kNeedMore: feed the rest of the command next time, starting
  // right after `used` bytes. A header line split across reads is left unused.
  Status Walk(std::span<const std::uint8_t> input, std::size_t& used) noexcept;

  // Between arguments or inside a header line (not in a payload).
  bool in_header() const noexcept { return state_ != State::kPayload; }
  // The header line being read does not fit the buffer: Redis' own answer
  // (networking.c processMultibulkBuffer: "too big mbulk count string" for
  // the count, "too big bulk count string" for an argument's length).
  Status HeaderTooLong() noexcept {
    return Fail(state_ == State::kCommandStart ? protocol::resp::CodecError::kTooBigMultibulkCount
                                               : protocol::resp::CodecError::kTooBigBulkCount);
  }
  protocol::resp::CodecError error() const noexcept { return error_; }
  char offending_byte() const noexcept { return offending_; }
  // Arguments captured by the first Walk() (views into its input) and the
  // command's argument count.
  std::span<const std::string_view> head_args() const noexcept { return {captured_.data(), n_captured_}; }
  std::int64_t argc() const noexcept { return argc_; }
  // Total bytes of the command walked so far.
  std::uint64_t walked() const noexcept { return walked_; }

 private:
  enum class State : std::uint8_t { kCommandStart, kBulkHeader, kPayload };
  Status Fail(protocol::resp::CodecError e, char c = '?') noexcept {
    error_ = e;
    offending_ = c;
    return Status::kError;
  }

  std::int64_t max_bulk_;
  std::int64_t max_multibulk_;
  State state_ = State::kCommandStart;
  std::int64_t argc_ = 0;
  std::int64_t args_left_ = 0;
  std::uint64_t payload_left_ = 0;  // payload bytes plus CRLF
  std::uint64_t walked_ = 0;
  bool capturing_ = true;
  std::array<std::string_view, kCapturedArgs> captured_{};
  std::size_t n_captured_ = 0;
  protocol::resp::CodecError error_ = protocol::resp::CodecError::kInvalidBulkLength;
  char offending_ = '?';
};

}  // namespace turnout::proxy::redis
