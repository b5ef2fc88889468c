#pragma once
// Sans-I/O framing of the PostgreSQL v3 protocol (protocol-overview:
// Messaging Overview). The decoder looks at the front of the caller's bytes
// and returns a view of one complete frame, "need more", or an error; it
// never copies or owns payload bytes.
//
//   regular:       [type:1][length:4 incl. itself][payload: length-4]
//   startup-phase: [length:4 incl. itself][code:4][payload: length-8]
//
// Startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
// CancelRequest) are only sent by a frontend before its first regular message.
// A frame larger than the relay's buffer is handled with DecodeHeader(): the
// header alone gives the total length, and the relay streams the remainder.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>

#include "protocol/pg/codec_error.h"

namespace turnout::protocol::pg {

using Bytes = std::span<const std::uint8_t>;

// protocol-message-formats: StartupMessage, SSLRequest, GSSENCRequest,
// CancelRequest. The three request codes are deliberately outside any real
// protocol version (1234.5678, 1234.5680, 1234.5679).
inline constexpr std::uint32_t kProtocolVersion3 = 196608;  // 3.0
inline constexpr std::uint32_t kCancelRequestCode = 80877102;
inline constexpr std::uint32_t kSslRequestCode = 80877103;
inline constexpr std::uint32_t kGssEncRequestCode = 80877104;

// The server's own limits: PQ_LARGE_MESSAGE_LIMIT (MaxAllocSize - 1) and
// MAX_STARTUP_PACKET_LENGTH.
inline constexpr std::size_t kDefaultMaxMessageSize = 0x3fffffff;
inline constexpr std::size_t kDefaultMaxStartupSize = 10000;

inline constexpr std::size_t kRegularHeaderSize = 5;
inline constexpr std::size_t kStartupHeaderSize = 8;

// Who sent the bytes: decides which type bytes are valid.
enum class Direction : std::uint8_t { kFrontend, kBackend };

enum class FrameKind : std::uint8_t {
  kRegular,
  kStartupMessage,  // includes any non-request code; DecodeStartupMessage checks the version
  kSslRequest,
  kGssEncRequest,
  kCancelRequest,
};

struct FrameHeader {
  FrameKind kind = FrameKind::kRegular;
  char type = '\0';             // regular: the type byte; startup phase: '\0'
  std::uint32_t code = 0;       // startup phase: protocol version or request code
  std::size_t header_size = 0;  // 5 regular, 8 startup phase
  std::size_t total_size = 0;   // header + payload

  std::size_t payload_size() const noexcept { return total_size - header_size; }
};

struct Frame : FrameHeader {
  Bytes payload;  // after the header
  Bytes bytes;    // the whole frame, to forward as it is
};

enum class DecodeStatus : std::uint8_t { kFrame, kNeedMore, kError };

template <typename T>
struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  T value{};
  // kNeedMore: the buffered size (from the start of the input) that lets the
  // next call make progress: the header size, or the frame's total size once
  // the header is known. Compare with the buffer capacity to decide whether
  // to stream the frame instead.
  std::size_t bytes_needed = 0;
  CodecError error = CodecError::kOk;

  bool ok() const noexcept { return status == DecodeStatus::kFrame; }
  bool need_more() const noexcept { return status == DecodeStatus::kNeedMore; }
  bool failed() const noexcept { return status == DecodeStatus::kError; }
  std::error_code error_code() const noexcept { return make_error_code(error); }
};

using FrameResult = DecodeResult<Frame>;
using HeaderResult = DecodeResult<FrameHeader>;

struct FrameLimits {
  std::size_t max_message_size = kDefaultMaxMessageSize;  // compared with the length field
  std::size_t max_startup_size = kDefaultMaxStartupSize;
  // Reject type bytes that are not messages of the direction (a garbage
  // stream is caught at its first byte instead of at a 1 GiB "length").
  bool validate_type = true;
};

// True when `type` is a message the given side may send
// (protocol-message-formats, marked (F) or (B)).
bool IsKnownMessageType(Direction direction, char type) noexcept;

class FrameDecoder {
 public:
  enum class Phase : std::uint8_t { kStartup, kRegular };

  // A frontend stream starts in the startup phase; a backend stream never
  // has one.
  explicit FrameDecoder(Direction direction, FrameLimits limits = {}) noexcept
      : direction_(direction),
        limits_(limits),
        phase_(direction == Direction::kFrontend ? Phase::kStartup : Phase::kRegular) {}

  // Decodes the frame at the front of `input`. After a StartupMessage the
  // decoder moves to the regular phase by itself; after SSLRequest or
  // GSSENCRequest it stays in the startup phase (the StartupMessage follows,
  // on TLS or in the clear).
  FrameResult Decode(Bytes input) noexcept;
  FrameResult Decode(std::string_view input) noexcept {
    return Decode(Bytes(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
  }

  // Header only: needs just the 5 (or 8) header bytes, whatever the length.
  // Does not change the phase; call Decode() or set_phase() for that.
  HeaderResult DecodeHeader(Bytes input) const noexcept;

  Phase phase() const noexcept { return phase_; }
  void set_phase(Phase phase) noexcept { phase_ = phase; }
  Direction direction() const noexcept { return direction_; }
  const FrameLimits& limits() const noexcept { return limits_; }

 private:
  Direction direction_;
  FrameLimits limits_;
  Phase phase_;
};

}  // namespace turnout::protocol::pg
