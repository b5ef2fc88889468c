#pragma once
// Encoders of PostgreSQL v3 messages (protocol-message-formats). Each
// Append* adds one complete message to the end of a caller-owned string,
// which the caller reuses across messages: nothing else is allocated.
//
// Strings written as protocol String (NUL-terminated) are cut at an embedded
// NUL so the frame stays well-formed whatever the caller passes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/pg/messages.h"

namespace turnout::protocol::pg {

// Appends one message and patches its length when finished:
//   FrameBuilder b(out, 'Q'); b.CString(sql); b.Finish();
class FrameBuilder {
 public:
  // Regular message: type byte then the length placeholder.
  FrameBuilder(std::string* out, char type);
  // Startup-phase packet: length placeholder only.
  explicit FrameBuilder(std::string* out);
  FrameBuilder(const FrameBuilder&) = delete;
  FrameBuilder& operator=(const FrameBuilder&) = delete;

  FrameBuilder& Byte(std::uint8_t v);
  FrameBuilder& Int16(std::int16_t v);
  FrameBuilder& Int32(std::int32_t v);
  FrameBuilder& UInt32(std::uint32_t v);
  FrameBuilder& CString(std::string_view s);  // String: text then NUL
  FrameBuilder& Raw(std::string_view s);      // Byten: no terminator
  FrameBuilder& Raw(Bytes b);
  // Int32 length then the bytes, or -1 for nullopt (Bind, DataRow values).
  FrameBuilder& Value(const std::optional<std::string_view>& v);
  // Writes the length (which counts itself, not the type byte).
  void Finish();

 private:
  std::string* out_;
  std::size_t length_at_;
};

// ---------------------------------------------------------------- backend
struct ErrorSpec {
  std::string_view severity = "ERROR";  // ERROR, FATAL, PANIC / WARNING, NOTICE, ...
  std::string_view sqlstate = "XX000";
  std::string_view message;
  std::string_view detail;  // omitted when empty
  std::string_view hint;    // omitted when empty
};

void AppendErrorResponse(std::string* out, const ErrorSpec& e);
void AppendNoticeResponse(std::string* out, const ErrorSpec& e);
// ErrorResponse for a codec error: FATAL with the matching SQLSTATE.
void AppendErrorResponse(std::string* out, CodecError e);
void AppendAuthenticationOk(std::string* out);
void AppendAuthenticationCleartextPassword(std::string* out);
void AppendAuthenticationMd5Password(std::string* out, std::span<const std::uint8_t, 4> salt);
void AppendAuthenticationSasl(std::string* out, std::span<const std::string_view> mechanisms);
void AppendAuthenticationSaslContinue(std::string* out, std::string_view data);
void AppendAuthenticationSaslFinal(std::string* out, std::string_view data);
void AppendParameterStatus(std::string* out, std::string_view name, std::string_view value);
void AppendBackendKeyData(std::string* out, std::int32_t process_id, std::int32_t secret_key);
void AppendBackendKeyData(std::string* out, std::int32_t process_id, Bytes secret_key);
void AppendReadyForQuery(std::string* out, TransactionStatus status);
void AppendCommandComplete(std::string* out, std::string_view tag);
void AppendEmptyQueryResponse(std::string* out);
void AppendParseComplete(std::string* out);
void AppendBindComplete(std::string* out);
void AppendCloseComplete(std::string* out);
void AppendNoData(std::string* out);
// Text columns (type text, oid 25, no table), for turnout's own replies.
void AppendRowDescription(std::string* out, std::span<const std::string_view> column_names);
void AppendDataRow(std::string* out, std::span<const Value> columns);
void AppendDataRow(std::string* out, std::span<const std::string_view> columns);
void AppendCopyData(std::string* out, std::string_view data);
void AppendCopyDone(std::string* out);
void AppendNotificationResponse(std::string* out, std::int32_t process_id, std::string_view channel,
                                std::string_view payload);

// ---------------------------------------------------------------- frontend
void AppendStartupMessage(std::string* out,
                          std::span<const std::pair<std::string_view, std::string_view>> params,
                          std::uint32_t protocol_version = kProtocolVersion3);
void AppendSslRequest(std::string* out);
void AppendGssEncRequest(std::string* out);
void AppendCancelRequest(std::string* out, std::int32_t process_id, std::int32_t secret_key);
void AppendCancelRequest(std::string* out, std::int32_t process_id, Bytes secret_key);
void AppendPasswordMessage(std::string* out, std::string_view password);
// `data` nullopt writes length -1 (no initial response).
void AppendSaslInitialResponse(std::string* out, std::string_view mechanism,
                               std::optional<std::string_view> data);
void AppendSaslResponse(std::string* out, std::string_view data);
void AppendQuery(std::string* out, std::string_view sql);
void AppendParse(std::string* out, std::string_view statement, std::string_view query,
                 std::span<const std::uint32_t> param_types = {});
void AppendBind(std::string* out, std::string_view portal, std::string_view statement,
                std::span<const std::int16_t> param_formats, std::span<const Value> params,
                std::span<const std::int16_t> result_formats);
void AppendDescribe(std::string* out, Target target, std::string_view name);
void AppendExecute(std::string* out, std::string_view portal, std::int32_t max_rows = 0);
void AppendClose(std::string* out, Target target, std::string_view name);
void AppendSync(std::string* out);
void AppendFlush(std::string* out);
void AppendTerminate(std::string* out);
void AppendCopyFail(std::string* out, std::string_view message);

}  // namespace turnout::protocol::pg
