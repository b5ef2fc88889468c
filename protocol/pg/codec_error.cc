#include "protocol/pg/codec_error.h"

#include <string>

namespace turnout::protocol::pg {
namespace {

class CodecCategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "turnout.pg"; }
  std::string message(int ev) const override {
    return std::string(DescribeError(static_cast<CodecError>(ev)));
  }
};

}  // namespace

const std::error_category& CodecCategory() noexcept {
  static const CodecCategoryImpl kCategory;
  return kCategory;
}

std::error_code make_error_code(CodecError e) noexcept {
  return {static_cast<int>(e), CodecCategory()};
}

std::string_view SqlState(CodecError e) noexcept {
  switch (e) {
    case CodecError::kOk:
      return "00000";
    case CodecError::kMessageTooLarge:
    case CodecError::kStartupTooLarge:
      return "54000";  // program_limit_exceeded
    case CodecError::kUnsupportedProtocolVersion:
      return "0A000";  // feature_not_supported, as ProcessStartupPacket does
    case CodecError::kInvalidLength:
    case CodecError::kMalformed:
    case CodecError::kUnknownMessageType:
    case CodecError::kUnexpectedMessage:
      return "08P01";  // protocol_violation
  }
  return "08P01";
}

std::string_view DescribeError(CodecError e) noexcept {
  switch (e) {
    case CodecError::kOk:
      return "success";
    case CodecError::kMessageTooLarge:
      return "message too large";
    case CodecError::kStartupTooLarge:
      return "startup packet too large";
    case CodecError::kInvalidLength:
      return "invalid message length";
    case CodecError::kMalformed:
      return "malformed message";
    case CodecError::kUnknownMessageType:
      return "unknown message type";
    case CodecError::kUnsupportedProtocolVersion:
      return "unsupported frontend protocol version";
    case CodecError::kUnexpectedMessage:
      return "unexpected message type";
  }
  return "unknown codec error";
}

}  // namespace turnout::protocol::pg
