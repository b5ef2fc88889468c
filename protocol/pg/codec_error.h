#pragma once
// Errors of the PostgreSQL v3 codec, as a std::error_code category.
//
// Every decoder returns one of these instead of throwing on a peer's bytes.
// SqlState() maps each to the SQLSTATE a server would report, so the session
// can answer a broken client with a server-like ErrorResponse before closing.

#include <string_view>
#include <system_error>

namespace turnout::protocol::pg {

enum class CodecError {
  kOk = 0,
  // Length field above the configured limit (default 1 GiB, as the server).
  kMessageTooLarge,
  // Startup-phase packet above the startup limit (default 10000 bytes).
  kStartupTooLarge,
  // Length field below its minimum (4 regular, 8 startup) or negative, or a
  // fixed-size message with the wrong length.
  kInvalidLength,
  // Payload does not match the message layout (missing NUL, counts that
  // overrun the payload, trailing bytes, bad enum values).
  kMalformed,
  // Type byte that is not a message of this direction.
  kUnknownMessageType,
  // StartupMessage whose major version is not 3.
  kUnsupportedProtocolVersion,
  // A typed decoder was handed a frame of another message type.
  kUnexpectedMessage,
};

const std::error_category& CodecCategory() noexcept;

std::error_code make_error_code(CodecError e) noexcept;

// SQLSTATE for an ErrorResponse describing `e`: 54000 program_limit_exceeded
// for size limits, 0A000 feature_not_supported for the protocol version,
// 08P01 protocol_violation for the rest (errcodes-appendix).
std::string_view SqlState(CodecError e) noexcept;

// Short English description, also the category's message().
std::string_view DescribeError(CodecError e) noexcept;

}  // namespace turnout::protocol::pg

template <>
struct std::is_error_code_enum<turnout::protocol::pg::CodecError> : std::true_type {};
