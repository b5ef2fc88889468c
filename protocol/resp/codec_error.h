#pragma once
// Errors of the RESP codecs (requests from clients, replies from servers).
//
// Request errors carry the exact text Redis 7.0 sends before it closes the
// connection (src/networking.c, processInlineBuffer/processMultibulkBuffer,
// which reply with addReplyError and then set CLIENT_CLOSE_AFTER_REPLY), so
// the session can answer a broken client exactly like the server would.
// Reply errors (a server or an upstream sending bytes that are not RESP) are
// for logs; the session drops that upstream connection.

#include <string>
#include <string_view>
#include <system_error>

namespace turnout::protocol::resp {

enum class CodecError : int {
  // 0 is success in std::error_code; keep it unused.
  // --- Request side (client -> proxy), Redis wording. ---
  kInvalidMultibulkLength = 1,
  kInvalidBulkLength,
  kTooBigInlineRequest,
  kUnbalancedQuotes,
  kExpectedDollar,  // "expected '$', got 'x'": the byte is kept by the parser
  kTooBigMultibulkCount,
  kTooBigBulkCount,
  kUnauthenticatedMultibulkLength,
  kUnauthenticatedBulkLength,
  // --- Reply side (server -> proxy). ---
  kInvalidReplyType,
  kInvalidLength,
  kInvalidInteger,
  kInvalidDouble,
  kInvalidBoolean,
  kInvalidBigNumber,
  kInvalidVerbatim,
  kMissingTerminator,
  kNestingTooDeep,
  kUnexpectedStreamEnd,
  kInvalidStreamChunk,
  kLineTooLong,
  kTrailingData,
  kTruncated,
};

const std::error_category& CodecErrorCategory() noexcept;

inline std::error_code make_error_code(CodecError e) noexcept {  // NOLINT: ADL hook
  return {static_cast<int>(e), CodecErrorCategory()};
}

// The text after the leading '-' of the error reply Redis sends for `e`, with
// no CRLF, e.g. "ERR Protocol error: invalid bulk length". For
// kExpectedDollar pass the offending byte as `got`.
std::string RedisErrorText(CodecError e, char got = '?');

// Appends the complete RESP error line ("-ERR Protocol error: ...\r\n").
void AppendProtocolErrorReply(std::string& out, CodecError e, char got = '?');

}  // namespace turnout::protocol::resp

template <>
struct std::is_error_code_enum<turnout::protocol::resp::CodecError> : std::true_type {};
