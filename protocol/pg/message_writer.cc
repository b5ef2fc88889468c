#include "protocol/pg/message_writer.h"

#include <cassert>

namespace turnout::protocol::pg {
namespace {

void PutU32(std::string* out, std::size_t at, std::uint32_t v) {
  (*out)[at] = static_cast<char>(v >> 24);
  (*out)[at + 1] = static_cast<char>(v >> 16);
  (*out)[at + 2] = static_cast<char>(v >> 8);
  (*out)[at + 3] = static_cast<char>(v);
}

void Empty(std::string* out, char type) { FrameBuilder(out, type).Finish(); }

void Fields(std::string* out, char type, const ErrorSpec& e) {
  // protocol-error-fields: S (localized) and V (never localized, 9.6+)
  // severity, C code, M message, then optional fields; a zero byte ends.
  FrameBuilder b(out, type);
  b.Byte('S').CString(e.severity);
  b.Byte('V').CString(e.severity);
  b.Byte('C').CString(e.sqlstate);
  b.Byte('M').CString(e.message);
  if (!e.detail.empty()) b.Byte('D').CString(e.detail);
  if (!e.hint.empty()) b.Byte('H').CString(e.hint);
  b.Byte(0);
  b.Finish();
}

void AuthCode(std::string* out, AuthType t, std::string_view data) {
  FrameBuilder b(out, 'R');
  b.Int32(static_cast<std::int32_t>(t)).Raw(data);
  b.Finish();
}

}  // namespace

FrameBuilder::FrameBuilder(std::string* out, char type) : out_(out) {
  out_->push_back(type);
  length_at_ = out_->size();
  out_->append(4, '\0');
}

FrameBuilder::FrameBuilder(std::string* out) : out_(out), length_at_(out->size()) {
  out_->append(4, '\0');
}

FrameBuilder& FrameBuilder::Byte(std::uint8_t v) {
  out_->push_back(static_cast<char>(v));
  return *this;
}

FrameBuilder& FrameBuilder::Int16(std::int16_t v) {
  const auto u = static_cast<std::uint16_t>(v);
  out_->push_back(static_cast<char>(u >> 8));
  out_->push_back(static_cast<char>(u));
  return *this;
}

FrameBuilder& FrameBuilder::Int32(std::int32_t v) { return UInt32(static_cast<std::uint32_t>(v)); }

FrameBuilder& FrameBuilder::UInt32(std::uint32_t v) {
  const std::size_t at = out_->size();
  out_->append(4, '\0');
  PutU32(out_, at, v);
  return *this;
}

FrameBuilder& FrameBuilder::CString(std::string_view s) {
  const std::size_t nul = s.find('\0');
  if (nul != std::string_view::npos) s = s.substr(0, nul);
  out_->append(s);
  out_->push_back('\0');
  return *this;
}

FrameBuilder& FrameBuilder::Raw(std::string_view s) {
  out_->append(s);
  return *this;
}

FrameBuilder& FrameBuilder::Raw(Bytes b) {
  out_->append(reinterpret_cast<const char*>(b.data()), b.size());
  return *this;
}

FrameBuilder& FrameBuilder::Value(const std::optional<std::string_view>& v) {
  if (!v) return Int32(-1);
  Int32(static_cast<std::int32_t>(v->size()));
  return Raw(*v);
}

void FrameBuilder::Finish() {
  assert(out_->size() - length_at_ <= 0x7fffffffu);
  PutU32(out_, length_at_, static_cast<std::uint32_t>(out_->size() - length_at_));
}

// ---------------------------------------------------------------- backend

void AppendErrorResponse(std::string* out, const ErrorSpec& e) { Fields(out, 'E', e); }
void AppendNoticeResponse(std::string* out, const ErrorSpec& e) { Fields(out, 'N', e); }

void AppendErrorResponse(std::string* out, CodecError e) {
  Fields(out, 'E', ErrorSpec{.severity = "FATAL", .sqlstate = SqlState(e), .message = DescribeError(e)});
}

void AppendAuthenticationOk(std::string* out) { AuthCode(out, AuthType::kOk, {}); }
void AppendAuthenticationCleartextPassword(std::string* out) {
  AuthCode(out, AuthType::kCleartextPassword, {});
}

void AppendAuthenticationMd5Password(std::string* out, std::span<const std::uint8_t, 4> salt) {
  FrameBuilder b(out, 'R');
  b.Int32(static_cast<std::int32_t>(AuthType::kMd5Password)).Raw(Bytes(salt.data(), 4));
  b.Finish();
}

void AppendAuthenticationSasl(std::string* out, std::span<const std::string_view> mechanisms) {
  FrameBuilder b(out, 'R');
  b.Int32(static_cast<std::int32_t>(AuthType::kSasl));
  for (std::string_view m : mechanisms) b.CString(m);
  b.Byte(0);
  b.Finish();
}

void AppendAuthenticationSaslContinue(std::string* out, std::string_view data) {
  AuthCode(out, AuthType::kSaslContinue, data);
}
void AppendAuthenticationSaslFinal(std::string* out, std::string_view data) {
  AuthCode(out, AuthType::kSaslFinal, data);
}

void AppendParameterStatus(std::string* out, std::string_view name, std::string_view value) {
  FrameBuilder b(out, 'S');
  b.CString(name).CString(value);
  b.Finish();
}

void AppendBackendKeyData(std::string* out, std::int32_t process_id, std::int32_t secret_key) {
  FrameBuilder b(out, 'K');
  b.Int32(process_id).Int32(secret_key);
  b.Finish();
}

void AppendBackendKeyData(std::string* out, std::int32_t process_id, Bytes secret_key) {
  FrameBuilder b(out, 'K');
  b.Int32(process_id).Raw(secret_key);
  b.Finish();
}

void AppendReadyForQuery(std::string* out, TransactionStatus status) {
  FrameBuilder b(out, 'Z');
  b.Byte(static_cast<std::uint8_t>(status));
  b.Finish();
}

void AppendCommandComplete(std::string* out, std::string_view tag) {
  FrameBuilder b(out, 'C');
  b.CString(tag);
  b.Finish();
}

void AppendEmptyQueryResponse(std::string* out) { Empty(out, 'I'); }
void AppendParseComplete(std::string* out) { Empty(out, '1'); }
void AppendBindComplete(std::string* out) { Empty(out, '2'); }
void AppendCloseComplete(std::string* out) { Empty(out, '3'); }
void AppendNoData(std::string* out) { Empty(out, 'n'); }

void AppendRowDescription(std::string* out, std::span<const std::string_view> column_names) {
  constexpr std::uint32_t kTextOid = 25;  // pg_type.dat: text
  FrameBuilder b(out, 'T');
  b.Int16(static_cast<std::int16_t>(column_names.size()));
  for (std::string_view name : column_names) {
    b.CString(name).UInt32(0).Int16(0).UInt32(kTextOid).Int16(-1).Int32(-1).Int16(kFormatText);
  }
  b.Finish();
}

void AppendDataRow(std::string* out, std::span<const Value> columns) {
  FrameBuilder b(out, 'D');
  b.Int16(static_cast<std::int16_t>(columns.size()));
  for (const Value& v : columns) b.Value(v);
  b.Finish();
}

void AppendDataRow(std::string* out, std::span<const std::string_view> columns) {
  FrameBuilder b(out, 'D');
  b.Int16(static_cast<std::int16_t>(columns.size()));
  for (std::string_view v : columns) b.Value(v);
  b.Finish();
}

void AppendCopyData(std::string* out, std::string_view data) {
  FrameBuilder b(out, 'd');
  b.Raw(data);
  b.Finish();
}

void AppendCopyDone(std::string* out) { Empty(out, 'c'); }

void AppendNotificationResponse(std::string* out, std::int32_t process_id, std::string_view channel,
                                std::string_view payload) {
  FrameBuilder b(out, 'A');
  b.Int32(process_id).CString(channel).CString(payload);
  b.Finish();
}

// ---------------------------------------------------------------- frontend

void AppendStartupMessage(std::string* out,
                          std::span<const std::pair<std::string_view, std::string_view>> params,
                          std::uint32_t protocol_version) {
  FrameBuilder b(out);
  b.UInt32(protocol_version);
  for (const auto& [k, v] : params) b.CString(k).CString(v);
  b.Byte(0);
  b.Finish();
}

void AppendSslRequest(std::string* out) {
  FrameBuilder b(out);
  b.UInt32(kSslRequestCode);
  b.Finish();
}

void AppendGssEncRequest(std::string* out) {
  FrameBuilder b(out);
  b.UInt32(kGssEncRequestCode);
  b.Finish();
}

void AppendCancelRequest(std::string* out, std::int32_t process_id, std::int32_t secret_key) {
  FrameBuilder b(out);
  b.UInt32(kCancelRequestCode).Int32(process_id).Int32(secret_key);
  b.Finish();
}

void AppendCancelRequest(std::string* out, std::int32_t process_id, Bytes secret_key) {
  FrameBuilder b(out);
  b.UInt32(kCancelRequestCode).Int32(process_id).Raw(secret_key);
  b.Finish();
}

void AppendPasswordMessage(std::string* out, std::string_view password) {
  FrameBuilder b(out, 'p');
  b.CString(password);
  b.Finish();
}

void AppendSaslInitialResponse(std::string* out, std::string_view mechanism,
                               std::optional<std::string_view> data) {
  FrameBuilder b(out, 'p');
  b.CString(mechanism).Value(data);
  b.Finish();
}

void AppendSaslResponse(std::string* out, std::string_view data) {
  FrameBuilder b(out, 'p');
  b.Raw(data);
  b.Finish();
}

void AppendQuery(std::string* out, std::string_view sql) {
  FrameBuilder b(out, 'Q');
  b.CString(sql);
  b.Finish();
}

void AppendParse(std::string* out, std::string_view statement, std::string_view query,
                 std::span<const std::uint32_t> param_types) {
  FrameBuilder b(out, 'P');
  b.CString(statement).CString(query).Int16(static_cast<std::int16_t>(param_types.size()));
  for (std::uint32_t oid : param_types) b.UInt32(oid);
  b.Finish();
}

void AppendBind(std::string* out, std::string_view portal, std::string_view statement,
                std::span<const std::int16_t> param_formats, std::span<const Value> params,
                std::span<const std::int16_t> result_formats) {
  FrameBuilder b(out, 'B');
  b.CString(portal).CString(statement);
  b.Int16(static_cast<std::int16_t>(param_formats.size()));
  for (std::int16_t f : param_formats) b.Int16(f);
  b.Int16(static_cast<std::int16_t>(params.size()));
  for (const Value& v : params) b.Value(v);
  b.Int16(static_cast<std::int16_t>(result_formats.size()));
  for (std::int16_t f : result_formats) b.Int16(f);
  b.Finish();
}

void AppendDescribe(std::string* out, Target target, std::string_view name) {
  FrameBuilder b(out, 'D');
  b.Byte(static_cast<std::uint8_t>(target)).CString(name);
  b.Finish();
}

void AppendExecute(std::string* out, std::string_view portal, std::int32_t max_rows) {
  FrameBuilder b(out, 'E');
  b.CString(portal).Int32(max_rows);
  b.Finish();
}

void AppendClose(std::string* out, Target target, std::string_view name) {
  FrameBuilder b(out, 'C');
  b.Byte(static_cast<std::uint8_t>(target)).CString(name);
  b.Finish();
}

void AppendSync(std::string* out) { Empty(out, 'S'); }
void AppendFlush(std::string* out) { Empty(out, 'H'); }
void AppendTerminate(std::string* out) { Empty(out, 'X'); }

void AppendCopyFail(std::string* out, std::string_view message) {
  FrameBuilder b(out, 'f');
  b.CString(message);
  b.Finish();
}

}  // namespace turnout::protocol::pg
