#include "protocol/resp/codec_error.h"

namespace turnout::protocol::resp {
namespace {

// Request-side strings are copied from Redis 7.0 src/networking.c so that a
// client sees the same error through turnout as without it.
std::string_view Message(CodecError e) noexcept {
  switch (e) {
    case CodecError::kInvalidMultibulkLength:
      return "ERR Protocol error: invalid multibulk length";
    case CodecError::kInvalidBulkLength:
      return "ERR Protocol error: invalid bulk length";
    case CodecError::kTooBigInlineRequest:
      return "ERR Protocol error: too big inline request";
    case CodecError::kUnbalancedQuotes:
      return "ERR Protocol error: unbalanced quotes in request";
    case CodecError::kExpectedDollar:
      return "ERR Protocol error: expected '$'";
    case CodecError::kTooBigMultibulkCount:
      return "ERR Protocol error: too big mbulk count string";
    case CodecError::kTooBigBulkCount:
      return "ERR Protocol error: too big bulk count string";
    case CodecError::kUnauthenticatedMultibulkLength:
      return "ERR Protocol error: unauthenticated multibulk length";
    case CodecError::kUnauthenticatedBulkLength:
      return "ERR Protocol error: unauthenticated bulk length";
    case CodecError::kInvalidReplyType:
      return "Protocol error: invalid reply type byte";
    case CodecError::kInvalidLength:
      return "Protocol error: invalid length";
    case CodecError::kInvalidInteger:
      return "Protocol error: invalid integer";
    case CodecError::kInvalidDouble:
      return "Protocol error: invalid double";
    case CodecError::kInvalidBoolean:
      return "Protocol error: invalid boolean";
    case CodecError::kInvalidBigNumber:
      return "Protocol error: invalid big number";
    case CodecError::kInvalidVerbatim:
      return "Protocol error: invalid verbatim string";
    case CodecError::kMissingTerminator:
      return "Protocol error: missing CRLF terminator";
    case CodecError::kNestingTooDeep:
      return "Protocol error: nesting too deep";
    case CodecError::kUnexpectedStreamEnd:
      return "Protocol error: '.' outside a streamed aggregate";
    case CodecError::kInvalidStreamChunk:
      return "Protocol error: invalid streamed string chunk";
    case CodecError::kLineTooLong:
      return "Protocol error: line too long";
    case CodecError::kTrailingData:
      return "Protocol error: trailing bytes after the reply";
    case CodecError::kTruncated:
      return "Protocol error: truncated reply";
  }
  return "Protocol error: unknown";
}

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "turnout.resp"; }
  std::string message(int ev) const override {
    return std::string(Message(static_cast<CodecError>(ev)));
  }
};

}  // namespace

const std::error_category& CodecErrorCategory() noexcept {
  static const Category kCategory;
  return kCategory;
}

std::string RedisErrorText(CodecError e, char got) {
  std::string text(Message(e));
  // networking.c: addReplyErrorFormat(c, "Protocol error: expected '$', got '%c'", ...)
  if (e == CodecError::kExpectedDollar) {
    // The reply is built by sdscatvprintf (truncates at a NUL byte) and
    // addReplyErrorFormat turns CR/LF into spaces to keep the line intact.
    text += ", got '";
    if (got == '\0') return text;
    text += (got == '\r' || got == '\n') ? ' ' : got;
    text += '\'';
  }
  return text;
}

void AppendProtocolErrorReply(std::string& out, CodecError e, char got) {
  out += '-';
  out += RedisErrorText(e, got);
  out += "\r\n";
}

}  // namespace turnout::protocol::resp
