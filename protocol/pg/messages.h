#pragma once
// Typed views of PostgreSQL v3 messages (protocol-message-formats).
//
// Each Decode(payload, &msg) validates the whole layout before returning: it
// either fills `msg` with views into `payload` and returns no error, or
// returns a CodecError and never reads past the payload. Views live as long
// as the caller's buffer. Decode(frame, &msg) also checks the type byte.
//
// The frontend 'p' message means PasswordMessage, SASLInitialResponse,
// SASLResponse or GSSResponse depending on the authentication exchange, so
// each has its own struct and decoder; the session picks by its auth state.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "protocol/pg/codec_error.h"
#include "protocol/pg/frame_decoder.h"

namespace turnout::protocol::pg {

// A column or parameter value: nullopt is SQL NULL (length -1), distinct from
// an empty value.
using Value = std::optional<std::string_view>;

// protocol-message-formats: format codes are 0 text, 1 binary.
inline constexpr std::int16_t kFormatText = 0;
inline constexpr std::int16_t kFormatBinary = 1;

// ---------------------------------------------------------------- startup

struct StartupMessage {
  std::uint32_t protocol_version = 0;  // major << 16 | minor
  // Name/value pairs in wire order ("user", "database", "options",
  // "application_name", "replication", GUCs, "_pq_." extensions).
  absl::InlinedVector<std::pair<std::string_view, std::string_view>, 8> parameters;

  std::uint16_t major() const noexcept { return static_cast<std::uint16_t>(protocol_version >> 16); }
  std::uint16_t minor() const noexcept { return static_cast<std::uint16_t>(protocol_version & 0xffff); }
  // Value of the first parameter called `name`, or nullopt.
  std::optional<std::string_view> Get(std::string_view name) const noexcept;
};

struct CancelRequest {
  std::int32_t process_id = 0;
  // 4 bytes in protocol 3.0; up to 256 bytes from protocol 3.2.
  Bytes secret_key;
  // The 3.0 key as an int32 (0 when the key is not 4 bytes).
  std::int32_t secret_key32() const noexcept;
};

// Payload of a kStartupMessage frame (after length and version).
std::error_code DecodeStartupMessage(const Frame& frame, StartupMessage* out) noexcept;
// Payload of a kCancelRequest frame (after length and code).
std::error_code DecodeCancelRequest(const Frame& frame, CancelRequest* out) noexcept;

// ---------------------------------------------------------------- frontend

struct Query {
  static constexpr char kType = 'Q';
  std::string_view sql;
};

struct Parse {
  static constexpr char kType = 'P';
  std::string_view statement;  // "" is the unnamed statement
  std::string_view query;
  absl::InlinedVector<std::uint32_t, 8> param_types;  // 0 = unspecified
};

struct Bind {
  static constexpr char kType = 'B';
  std::string_view portal;
  std::string_view statement;
  absl::InlinedVector<std::int16_t, 8> param_formats;  // 0, 1 (all) or one per param
  absl::InlinedVector<Value, 8> params;
  absl::InlinedVector<std::int16_t, 8> result_formats;

  // Format of parameter i, applying the 0/1/N rule of Bind.
  std::int16_t ParamFormat(std::size_t i) const noexcept;
};

// Describe and Close: 'S' prepared statement or 'P' portal.
enum class Target : char { kStatement = 'S', kPortal = 'P' };

struct Describe {
  static constexpr char kType = 'D';
  Target target = Target::kStatement;
  std::string_view name;
};

struct Execute {
  static constexpr char kType = 'E';
  std::string_view portal;
  std::int32_t max_rows = 0;  // 0 = no limit
};

struct Close {
  static constexpr char kType = 'C';
  Target target = Target::kStatement;
  std::string_view name;
};

struct Sync { static constexpr char kType = 'S'; };
struct Flush { static constexpr char kType = 'H'; };
struct Terminate { static constexpr char kType = 'X'; };
struct CopyDone { static constexpr char kType = 'c'; };

struct CopyData {
  static constexpr char kType = 'd';
  Bytes data;
};

struct CopyFail {
  static constexpr char kType = 'f';
  std::string_view message;
};

struct PasswordMessage {
  static constexpr char kType = 'p';
  std::string_view password;  // cleartext, or "md5" + 32 hex digits
};

struct SaslInitialResponse {
  static constexpr char kType = 'p';
  std::string_view mechanism;
  std::optional<Bytes> data;  // length -1 means no initial response
};

struct SaslResponse {
  static constexpr char kType = 'p';
  Bytes data;
};

// ---------------------------------------------------------------- backend

// protocol-message-formats: AuthenticationXXX codes.
enum class AuthType : std::int32_t {
  kOk = 0,
  kKerberosV5 = 2,
  kCleartextPassword = 3,
  kMd5Password = 5,
  kGss = 7,
  kGssContinue = 8,
  kSspi = 9,
  kSasl = 10,
  kSaslContinue = 11,
  kSaslFinal = 12,
};

struct Authentication {
  static constexpr char kType = 'R';
  AuthType type = AuthType::kOk;
  std::array<std::uint8_t, 4> salt{};                // kMd5Password
  absl::InlinedVector<std::string_view, 2> mechanisms;  // kSasl
  Bytes data;  // kSaslContinue, kSaslFinal, kGssContinue
};

struct ParameterStatus {
  static constexpr char kType = 'S';
  std::string_view name;
  std::string_view value;
};

struct BackendKeyData {
  static constexpr char kType = 'K';
  std::int32_t process_id = 0;
  Bytes secret_key;  // 4 bytes in 3.0, up to 256 from 3.2
  std::int32_t secret_key32() const noexcept;
};

enum class TransactionStatus : char { kIdle = 'I', kInTransaction = 'T', kFailed = 'E' };

struct ReadyForQuery {
  static constexpr char kType = 'Z';
  TransactionStatus status = TransactionStatus::kIdle;
};

// protocol-error-fields: single-byte field codes.
namespace field {
inline constexpr char kSeverity = 'S';
inline constexpr char kSeverityNonLocalized = 'V';
inline constexpr char kSqlState = 'C';
inline constexpr char kMessage = 'M';
inline constexpr char kDetail = 'D';
inline constexpr char kHint = 'H';
inline constexpr char kPosition = 'P';
inline constexpr char kInternalPosition = 'p';
inline constexpr char kInternalQuery = 'q';
inline constexpr char kWhere = 'W';
inline constexpr char kSchema = 's';
inline constexpr char kTable = 't';
inline constexpr char kColumn = 'c';
inline constexpr char kDataType = 'd';
inline constexpr char kConstraint = 'n';
inline constexpr char kFile = 'F';
inline constexpr char kLine = 'L';
inline constexpr char kRoutine = 'R';
}  // namespace field

// ErrorResponse ('E') and NoticeResponse ('N') share the layout.
struct ErrorFields {
  absl::InlinedVector<std::pair<char, std::string_view>, 8> fields;

  std::string_view Get(char code) const noexcept;  // "" when absent
  bool Has(char code) const noexcept;
  // 'V' when present (never localized), else 'S'.
  std::string_view severity() const noexcept;
  std::string_view sqlstate() const noexcept { return Get(field::kSqlState); }
  std::string_view message() const noexcept { return Get(field::kMessage); }
  std::string_view detail() const noexcept { return Get(field::kDetail); }
  std::string_view hint() const noexcept { return Get(field::kHint); }
};
struct ErrorResponse : ErrorFields { static constexpr char kType = 'E'; };
struct NoticeResponse : ErrorFields { static constexpr char kType = 'N'; };

struct CommandComplete {
  static constexpr char kType = 'C';
  std::string_view tag;      // e.g. "INSERT 0 5", "UPDATE 3", "CREATE TABLE"
  std::string_view command;  // first word(s) of the tag without the counts: "INSERT", "CREATE TABLE"
  // Affected or returned rows for INSERT, DELETE, UPDATE, MERGE, SELECT,
  // MOVE, FETCH, COPY (protocol-message-formats: CommandComplete).
  std::optional<std::uint64_t> rows;
};

struct FieldDescription {
  std::string_view name;
  std::uint32_t table_oid = 0;
  std::int16_t column_attribute = 0;
  std::uint32_t type_oid = 0;
  std::int16_t type_size = 0;
  std::int32_t type_modifier = 0;
  std::int16_t format = 0;
};

struct RowDescription {
  static constexpr char kType = 'T';
  absl::InlinedVector<FieldDescription, 8> fields;
};

struct DataRow {
  static constexpr char kType = 'D';
  absl::InlinedVector<Value, 16> columns;
};

struct NotificationResponse {
  static constexpr char kType = 'A';
  std::int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
};

struct ParameterDescription {
  static constexpr char kType = 't';
  absl::InlinedVector<std::uint32_t, 8> param_types;
};

struct NegotiateProtocolVersion {
  static constexpr char kType = 'v';
  std::int32_t newest_minor = 0;
  absl::InlinedVector<std::string_view, 4> unrecognized_options;
};

// CopyInResponse 'G', CopyOutResponse 'H', CopyBothResponse 'W'.
struct CopyResponse {
  std::int8_t format = 0;  // overall: 0 text, 1 binary
  absl::InlinedVector<std::int16_t, 8> column_formats;
};
struct CopyInResponse : CopyResponse { static constexpr char kType = 'G'; };
struct CopyOutResponse : CopyResponse { static constexpr char kType = 'H'; };
struct CopyBothResponse : CopyResponse { static constexpr char kType = 'W'; };

// Empty-payload backend messages.
struct ParseComplete { static constexpr char kType = '1'; };
struct BindComplete { static constexpr char kType = '2'; };
struct CloseComplete { static constexpr char kType = '3'; };
struct NoData { static constexpr char kType = 'n'; };
struct EmptyQueryResponse { static constexpr char kType = 'I'; };
struct PortalSuspended { static constexpr char kType = 's'; };

// ---------------------------------------------------------------- decoders

// frontend_messages.cc
std::error_code Decode(Bytes payload, Query* out) noexcept;
std::error_code Decode(Bytes payload, Parse* out) noexcept;
std::error_code Decode(Bytes payload, Bind* out) noexcept;
std::error_code Decode(Bytes payload, Describe* out) noexcept;
std::error_code Decode(Bytes payload, Execute* out) noexcept;
std::error_code Decode(Bytes payload, Close* out) noexcept;
std::error_code Decode(Bytes payload, Sync* out) noexcept;
std::error_code Decode(Bytes payload, Flush* out) noexcept;
std::error_code Decode(Bytes payload, Terminate* out) noexcept;
std::error_code Decode(Bytes payload, CopyData* out) noexcept;
std::error_code Decode(Bytes payload, CopyDone* out) noexcept;
std::error_code Decode(Bytes payload, CopyFail* out) noexcept;
std::error_code Decode(Bytes payload, PasswordMessage* out) noexcept;
std::error_code Decode(Bytes payload, SaslInitialResponse* out) noexcept;
std::error_code Decode(Bytes payload, SaslResponse* out) noexcept;

// backend_messages.cc
std::error_code Decode(Bytes payload, Authentication* out) noexcept;
std::error_code Decode(Bytes payload, ParameterStatus* out) noexcept;
std::error_code Decode(Bytes payload, BackendKeyData* out) noexcept;
std::error_code Decode(Bytes payload, ReadyForQuery* out) noexcept;
std::error_code Decode(Bytes payload, ErrorResponse* out) noexcept;
std::error_code Decode(Bytes payload, NoticeResponse* out) noexcept;
std::error_code Decode(Bytes payload, CommandComplete* out) noexcept;
std::error_code Decode(Bytes payload, RowDescription* out) noexcept;
std::error_code Decode(Bytes payload, DataRow* out) noexcept;
std::error_code Decode(Bytes payload, NotificationResponse* out) noexcept;
std::error_code Decode(Bytes payload, ParameterDescription* out) noexcept;
std::error_code Decode(Bytes payload, NegotiateProtocolVersion* out) noexcept;
std::error_code Decode(Bytes payload, CopyInResponse* out) noexcept;
std::error_code Decode(Bytes payload, CopyOutResponse* out) noexcept;
std::error_code Decode(Bytes payload, CopyBothResponse* out) noexcept;
std::error_code Decode(Bytes payload, ParseComplete* out) noexcept;
std::error_code Decode(Bytes payload, BindComplete* out) noexcept;
std::error_code Decode(Bytes payload, CloseComplete* out) noexcept;
std::error_code Decode(Bytes payload, NoData* out) noexcept;
std::error_code Decode(Bytes payload, EmptyQueryResponse* out) noexcept;
std::error_code Decode(Bytes payload, PortalSuspended* out) noexcept;

// Parses a CommandComplete tag on its own ("UPDATE 3" -> rows 3).
void ParseCommandTag(std::string_view tag, CommandComplete* out) noexcept;

// Checks the frame's kind and type byte, then decodes its payload.
template <typename T>
std::error_code Decode(const Frame& frame, T* out) noexcept {
  if (frame.kind != FrameKind::kRegular || frame.type != T::kType) {
    return make_error_code(CodecError::kUnexpectedMessage);
  }
  return Decode(frame.payload, out);
}

}  // namespace turnout::protocol::pg
