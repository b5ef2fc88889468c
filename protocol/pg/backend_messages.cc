// Decoders of backend (server) messages (protocol-message-formats, (B)).

#include <charconv>

#include "protocol/pg/messages.h"
#include "protocol/pg/wire.h"

namespace turnout::protocol::pg {
namespace {

std::error_code Empty(Bytes payload) noexcept {
  return payload.empty() ? std::error_code{} : make_error_code(CodecError::kInvalidLength);
}

std::error_code DecodeErrorFields(Bytes payload, ErrorFields* out) noexcept {
  // ErrorResponse/NoticeResponse: (Byte1 code, String value)* then a zero byte.
  out->fields.clear();
  PayloadReader r(payload);
  while (true) {
    std::uint8_t code = 0;
    if (!r.ReadU8(&code)) return CodecError::kMalformed;
    if (code == 0) break;
    std::string_view value;
    if (!r.ReadCString(&value)) return CodecError::kMalformed;
    out->fields.emplace_back(static_cast<char>(code), value);
  }
  if (!r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code DecodeCopyResponse(Bytes payload, CopyResponse* out) noexcept {
  PayloadReader r(payload);
  std::uint8_t format = 0;
  std::int16_t n = 0;
  if (!r.ReadU8(&format) || format > 1 || !r.ReadI16(&n) || n < 0 ||
      r.remaining() != static_cast<std::size_t>(n) * 2) {
    return CodecError::kMalformed;
  }
  out->format = static_cast<std::int8_t>(format);
  out->column_formats.resize(static_cast<std::size_t>(n));
  for (auto& f : out->column_formats) {
    r.ReadI16(&f);
    if (f != kFormatText && f != kFormatBinary) return CodecError::kMalformed;
  }
  return {};
}

bool ParseCount(std::string_view s, std::uint64_t* v) noexcept {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::int32_t BackendKeyData::secret_key32() const noexcept {
  return secret_key.size() == 4 ? static_cast<std::int32_t>(LoadU32(secret_key.data())) : 0;
}

std::string_view ErrorFields::Get(char code) const noexcept {
  for (const auto& [c, v] : fields) {
    if (c == code) return v;
  }
  return {};
}

bool ErrorFields::Has(char code) const noexcept {
  for (const auto& f : fields) {
    if (f.first == code) return true;
  }
  return false;
}

std::string_view ErrorFields::severity() const noexcept {
  return Has(field::kSeverityNonLocalized) ? Get(field::kSeverityNonLocalized) : Get(field::kSeverity);
}

std::error_code Decode(Bytes payload, Authentication* out) noexcept {
  PayloadReader r(payload);
  std::int32_t code = 0;
  if (!r.ReadI32(&code)) return CodecError::kMalformed;
  out->mechanisms.clear();
  out->data = {};
  switch (code) {
    case 0:   // AuthenticationOk
    case 2:   // AuthenticationKerberosV5
    case 3:   // AuthenticationCleartextPassword
    case 7:   // AuthenticationGSS
    case 9:   // AuthenticationSSPI
      if (!r.AtEnd()) return CodecError::kMalformed;
      break;
    case 5: {  // AuthenticationMD5Password: Byte4 salt
      Bytes salt;
      if (!r.ReadBytes(4, &salt) || !r.AtEnd()) return CodecError::kMalformed;
      for (std::size_t i = 0; i < 4; ++i) out->salt[i] = salt[i];
      break;
    }
    case 10: {  // AuthenticationSASL: String mechanism list ended by a zero byte
      while (true) {
        std::string_view mech;
        if (!r.ReadCString(&mech)) return CodecError::kMalformed;
        if (mech.empty()) break;
        out->mechanisms.push_back(mech);
      }
      if (!r.AtEnd() || out->mechanisms.empty()) return CodecError::kMalformed;
      break;
    }
    case 8:   // AuthenticationGSSContinue
    case 11:  // AuthenticationSASLContinue
    case 12:  // AuthenticationSASLFinal
      out->data = r.Rest();
      break;
    default:
      return CodecError::kMalformed;
  }
  out->type = static_cast<AuthType>(code);
  return {};
}

std::error_code Decode(Bytes payload, ParameterStatus* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadCString(&out->name) || !r.ReadCString(&out->value) || !r.AtEnd()) {
    return CodecError::kMalformed;
  }
  return {};
}

std::error_code Decode(Bytes payload, BackendKeyData* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadI32(&out->process_id)) return CodecError::kInvalidLength;
  out->secret_key = r.Rest();
  if (out->secret_key.size() < 4 || out->secret_key.size() > 256) return CodecError::kInvalidLength;
  return {};
}

std::error_code Decode(Bytes payload, ReadyForQuery* out) noexcept {
  if (payload.size() != 1) return CodecError::kInvalidLength;
  const char s = static_cast<char>(payload[0]);
  if (s != 'I' && s != 'T' && s != 'E') return CodecError::kMalformed;
  out->status = static_cast<TransactionStatus>(s);
  return {};
}

std::error_code Decode(Bytes payload, ErrorResponse* out) noexcept { return DecodeErrorFields(payload, out); }
std::error_code Decode(Bytes payload, NoticeResponse* out) noexcept { return DecodeErrorFields(payload, out); }

void ParseCommandTag(std::string_view tag, CommandComplete* out) noexcept {
  out->tag = tag;
  out->command = tag;
  out->rows.reset();
  // Tags with counts: "INSERT oid rows", and "<CMD> rows" for DELETE, UPDATE,
  // MERGE, SELECT, MOVE, FETCH, COPY (protocol-message-formats:
  // CommandComplete). Other tags ("CREATE TABLE", "SET") carry no count.
  const std::size_t sp = tag.find(' ');
  if (sp == std::string_view::npos) return;
  const std::string_view cmd = tag.substr(0, sp);
  std::string_view rest = tag.substr(sp + 1);
  std::uint64_t n = 0;
  if (cmd == "INSERT") {
    const std::size_t sp2 = rest.find(' ');
    if (sp2 == std::string_view::npos) return;
    std::uint64_t oid = 0;
    if (!ParseCount(rest.substr(0, sp2), &oid) || !ParseCount(rest.substr(sp2 + 1), &n)) return;
  } else if (cmd == "DELETE" || cmd == "UPDATE" || cmd == "MERGE" || cmd == "SELECT" ||
             cmd == "MOVE" || cmd == "FETCH" || cmd == "COPY") {
    if (!ParseCount(rest, &n)) return;
  } else {
    return;
  }
  out->command = cmd;
  out->rows = n;
}

std::error_code Decode(Bytes payload, CommandComplete* out) noexcept {
  PayloadReader r(payload);
  std::string_view tag;
  if (!r.ReadCString(&tag) || !r.AtEnd()) return CodecError::kMalformed;
  ParseCommandTag(tag, out);
  return {};
}

std::error_code Decode(Bytes payload, RowDescription* out) noexcept {
  PayloadReader r(payload);
  std::int16_t n = 0;
  // Each field takes at least a NUL and 18 bytes of fixed columns.
  if (!r.ReadI16(&n) || n < 0 || r.remaining() < static_cast<std::size_t>(n) * 19) {
    return CodecError::kMalformed;
  }
  out->fields.resize(static_cast<std::size_t>(n));
  for (auto& f : out->fields) {
    if (!r.ReadCString(&f.name) || !r.ReadU32(&f.table_oid) || !r.ReadI16(&f.column_attribute) ||
        !r.ReadU32(&f.type_oid) || !r.ReadI16(&f.type_size) || !r.ReadI32(&f.type_modifier) ||
        !r.ReadI16(&f.format)) {
      return CodecError::kMalformed;
    }
  }
  if (!r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, DataRow* out) noexcept {
  PayloadReader r(payload);
  std::int16_t n = 0;
  if (!r.ReadI16(&n) || n < 0 || r.remaining() < static_cast<std::size_t>(n) * 4) {
    return CodecError::kMalformed;
  }
  out->columns.resize(static_cast<std::size_t>(n));
  for (auto& c : out->columns) {
    std::int32_t len = 0;
    if (!r.ReadI32(&len)) return CodecError::kMalformed;
    if (len == -1) {
      c.reset();  // DataRow: -1 is NULL, distinct from an empty value
      continue;
    }
    std::string_view v;
    if (len < 0 || !r.ReadText(static_cast<std::size_t>(len), &v)) return CodecError::kMalformed;
    c = v;
  }
  if (!r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, NotificationResponse* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadI32(&out->process_id) || !r.ReadCString(&out->channel) || !r.ReadCString(&out->payload) ||
      !r.AtEnd()) {
    return CodecError::kMalformed;
  }
  return {};
}

std::error_code Decode(Bytes payload, ParameterDescription* out) noexcept {
  PayloadReader r(payload);
  std::int16_t n = 0;
  if (!r.ReadI16(&n) || n < 0 || r.remaining() != static_cast<std::size_t>(n) * 4) {
    return CodecError::kMalformed;
  }
  out->param_types.resize(static_cast<std::size_t>(n));
  for (auto& oid : out->param_types) r.ReadU32(&oid);
  return {};
}

std::error_code Decode(Bytes payload, NegotiateProtocolVersion* out) noexcept {
  PayloadReader r(payload);
  std::int32_t n = 0;
  if (!r.ReadI32(&out->newest_minor) || !r.ReadI32(&n) || n < 0 ||
      r.remaining() < static_cast<std::size_t>(n)) {
    return CodecError::kMalformed;
  }
  out->unrecognized_options.clear();
  for (std::int32_t i = 0; i < n; ++i) {
    std::string_view opt;
    if (!r.ReadCString(&opt)) return CodecError::kMalformed;
    out->unrecognized_options.push_back(opt);
  }
  if (!r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, CopyInResponse* out) noexcept { return DecodeCopyResponse(payload, out); }
std::error_code Decode(Bytes payload, CopyOutResponse* out) noexcept { return DecodeCopyResponse(payload, out); }
std::error_code Decode(Bytes payload, CopyBothResponse* out) noexcept { return DecodeCopyResponse(payload, out); }
std::error_code Decode(Bytes payload, ParseComplete*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, BindComplete*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, CloseComplete*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, NoData*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, EmptyQueryResponse*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, PortalSuspended*) noexcept { return Empty(payload); }

}  // namespace turnout::protocol::pg
