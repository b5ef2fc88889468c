#include "protocol/pg/frame_decoder.h"

#include <cstdint>

#include "protocol/pg/wire.h"

namespace turnout::protocol::pg {
namespace {

// Minimum / maximum CancelRequest length: 12 bytes of header and process id
// plus a secret key of 4 bytes (protocol 3.0) up to 256 bytes (protocol 3.2).
constexpr std::size_t kMinCancelLength = 16;
constexpr std::size_t kMaxCancelLength = 12 + 256;

}  // namespace

bool IsKnownMessageType(Direction direction, char type) noexcept {
  if (direction == Direction::kFrontend) {
    switch (type) {
      case 'B': case 'C': case 'd': case 'c': case 'f': case 'D': case 'E':
      case 'H': case 'F': case 'p': case 'P': case 'Q': case 'S': case 'X':
        return true;
      default:
        return false;
    }
  }
  switch (type) {
    case 'R': case 'K': case '2': case '3': case 'C': case 'd': case 'c':
    case 'G': case 'H': case 'W': case 'D': case 'I': case 'E': case 'V':
    case 'v': case 'n': case 'N': case 'A': case 't': case 'S': case '1':
    case 's': case 'Z': case 'T':
      return true;
    default:
      return false;
  }
}

HeaderResult FrameDecoder::DecodeHeader(Bytes input) const noexcept {
  HeaderResult r;
  if (phase_ == Phase::kStartup) {
    if (input.size() < 4) {
      r.bytes_needed = 4;  // the length alone already bounds the packet
      return r;
    }
    const std::uint32_t length = LoadU32(input.data());
    if (length > 0x7fffffffu || length < kStartupHeaderSize) {
      r.status = DecodeStatus::kError;
      r.error = CodecError::kInvalidLength;
      return r;
    }
    if (length > limits_.max_startup_size) {
      r.status = DecodeStatus::kError;
      r.error = CodecError::kStartupTooLarge;
      return r;
    }
    if (input.size() < kStartupHeaderSize) {
      r.bytes_needed = kStartupHeaderSize;
      return r;
    }
    const std::uint32_t code = LoadU32(input.data() + 4);
    FrameHeader& h = r.value;
    h.code = code;
    h.header_size = kStartupHeaderSize;
    h.total_size = length;
    switch (code) {
      case kSslRequestCode:
      case kGssEncRequestCode:
        h.kind = code == kSslRequestCode ? FrameKind::kSslRequest : FrameKind::kGssEncRequest;
        if (length != kStartupHeaderSize) {
          r.status = DecodeStatus::kError;
          r.error = CodecError::kInvalidLength;
          return r;
        }
        break;
      case kCancelRequestCode:
        h.kind = FrameKind::kCancelRequest;
        if (length < kMinCancelLength || length > kMaxCancelLength) {
          r.status = DecodeStatus::kError;
          r.error = CodecError::kInvalidLength;
          return r;
        }
        break;
      default:
        h.kind = FrameKind::kStartupMessage;
        break;
    }
    r.status = DecodeStatus::kFrame;
    return r;
  }

  if (input.empty()) {
    r.bytes_needed = kRegularHeaderSize;
    return r;
  }
  const char type = static_cast<char>(input[0]);
  if (limits_.validate_type && !IsKnownMessageType(direction_, type)) {
    r.status = DecodeStatus::kError;
    r.error = CodecError::kUnknownMessageType;
    return r;
  }
  if (input.size() < kRegularHeaderSize) {
    r.bytes_needed = kRegularHeaderSize;
    return r;
  }
  const std::uint32_t length = LoadU32(input.data() + 1);
  // The length counts itself, so 4 is an empty payload; a "negative" int32
  // is never valid (protocol-message-formats: Int32 length).
  if (length > 0x7fffffffu || length < 4) {
    r.status = DecodeStatus::kError;
    r.error = CodecError::kInvalidLength;
    return r;
  }
  if (length > limits_.max_message_size) {
    r.status = DecodeStatus::kError;
    r.error = CodecError::kMessageTooLarge;
    return r;
  }
  FrameHeader& h = r.value;
  h.kind = FrameKind::kRegular;
  h.type = type;
  h.header_size = kRegularHeaderSize;
  h.total_size = std::size_t{length} + 1;
  r.status = DecodeStatus::kFrame;
  return r;
}

FrameResult FrameDecoder::Decode(Bytes input) noexcept {
  FrameResult r;
  const HeaderResult h = DecodeHeader(input);
  if (!h.ok()) {
    r.status = h.status;
    r.error = h.error;
    r.bytes_needed = h.bytes_needed;
    return r;
  }
  if (input.size() < h.value.total_size) {
    r.status = DecodeStatus::kNeedMore;
    r.bytes_needed = h.value.total_size;
    return r;
  }
  static_cast<FrameHeader&>(r.value) = h.value;
  r.value.bytes = input.first(h.value.total_size);
  r.value.payload = r.value.bytes.subspan(h.value.header_size);
  r.status = DecodeStatus::kFrame;
  if (h.value.kind == FrameKind::kStartupMessage) phase_ = Phase::kRegular;
  return r;
}

}  // namespace turnout::protocol::pg
