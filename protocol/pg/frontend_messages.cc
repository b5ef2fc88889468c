// Decoders of frontend (client) messages (protocol-message-formats, (F)).

#include "protocol/pg/messages.h"
#include "protocol/pg/wire.h"

namespace turnout::protocol::pg {
namespace {

std::error_code Empty(Bytes payload) noexcept {
  return payload.empty() ? std::error_code{} : make_error_code(CodecError::kInvalidLength);
}

bool ReadTarget(PayloadReader& r, Target* t) noexcept {
  std::uint8_t b = 0;
  if (!r.ReadU8(&b)) return false;
  if (b != 'S' && b != 'P') return false;
  *t = static_cast<Target>(b);
  return true;
}

// An Int16 count followed by that many Int16 values; the count is checked
// against the remaining bytes before anything is stored.
bool ReadI16Array(PayloadReader& r, absl::InlinedVector<std::int16_t, 8>* out) noexcept {
  std::int16_t n = 0;
  if (!r.ReadI16(&n) || n < 0) return false;
  if (r.remaining() < static_cast<std::size_t>(n) * 2) return false;
  out->resize(static_cast<std::size_t>(n));
  for (auto& v : *out) r.ReadI16(&v);
  return true;
}

}  // namespace

std::int16_t Bind::ParamFormat(std::size_t i) const noexcept {
  // Bind: zero format codes = all text, one = applies to all, else one each.
  if (param_formats.empty()) return kFormatText;
  if (param_formats.size() == 1) return param_formats[0];
  return i < param_formats.size() ? param_formats[i] : kFormatText;
}

std::error_code Decode(Bytes payload, Query* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadCString(&out->sql) || !r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, Parse* out) noexcept {
  PayloadReader r(payload);
  std::int16_t n = 0;
  if (!r.ReadCString(&out->statement) || !r.ReadCString(&out->query) || !r.ReadI16(&n) || n < 0 ||
      r.remaining() != static_cast<std::size_t>(n) * 4) {
    return CodecError::kMalformed;
  }
  out->param_types.resize(static_cast<std::size_t>(n));
  for (auto& oid : out->param_types) r.ReadU32(&oid);
  return {};
}

std::error_code Decode(Bytes payload, Bind* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadCString(&out->portal) || !r.ReadCString(&out->statement) ||
      !ReadI16Array(r, &out->param_formats)) {
    return CodecError::kMalformed;
  }
  std::int16_t n = 0;
  // Each parameter takes at least its 4-byte length.
  if (!r.ReadI16(&n) || n < 0 || r.remaining() < static_cast<std::size_t>(n) * 4) {
    return CodecError::kMalformed;
  }
  // Format count must be 0, 1 or the parameter count (Bind).
  if (out->param_formats.size() > 1 && out->param_formats.size() != static_cast<std::size_t>(n)) {
    return CodecError::kMalformed;
  }
  out->params.resize(static_cast<std::size_t>(n));
  for (auto& p : out->params) {
    std::int32_t len = 0;
    if (!r.ReadI32(&len)) return CodecError::kMalformed;
    if (len == -1) {
      p.reset();
      continue;
    }
    std::string_view v;
    if (len < 0 || !r.ReadText(static_cast<std::size_t>(len), &v)) return CodecError::kMalformed;
    p = v;
  }
  if (!ReadI16Array(r, &out->result_formats) || !r.AtEnd()) return CodecError::kMalformed;
  for (std::int16_t f : out->param_formats) {
    if (f != kFormatText && f != kFormatBinary) return CodecError::kMalformed;
  }
  for (std::int16_t f : out->result_formats) {
    if (f != kFormatText && f != kFormatBinary) return CodecError::kMalformed;
  }
  return {};
}

std::error_code Decode(Bytes payload, Describe* out) noexcept {
  PayloadReader r(payload);
  if (!ReadTarget(r, &out->target) || !r.ReadCString(&out->name) || !r.AtEnd()) {
    return CodecError::kMalformed;
  }
  return {};
}

std::error_code Decode(Bytes payload, Execute* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadCString(&out->portal) || !r.ReadI32(&out->max_rows) || !r.AtEnd()) {
    return CodecError::kMalformed;
  }
  return {};
}

std::error_code Decode(Bytes payload, Close* out) noexcept {
  PayloadReader r(payload);
  if (!ReadTarget(r, &out->target) || !r.ReadCString(&out->name) || !r.AtEnd()) {
    return CodecError::kMalformed;
  }
  return {};
}

std::error_code Decode(Bytes payload, Sync*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, Flush*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, Terminate*) noexcept { return Empty(payload); }
std::error_code Decode(Bytes payload, CopyDone*) noexcept { return Empty(payload); }

std::error_code Decode(Bytes payload, CopyData* out) noexcept {
  out->data = payload;
  return {};
}

std::error_code Decode(Bytes payload, CopyFail* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadCString(&out->message) || !r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, PasswordMessage* out) noexcept {
  PayloadReader r(payload);
  if (!r.ReadCString(&out->password) || !r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, SaslInitialResponse* out) noexcept {
  PayloadReader r(payload);
  std::int32_t len = 0;
  if (!r.ReadCString(&out->mechanism) || !r.ReadI32(&len)) return CodecError::kMalformed;
  if (len == -1) {
    out->data.reset();
  } else {
    Bytes data;
    if (len < 0 || !r.ReadBytes(static_cast<std::size_t>(len), &data)) return CodecError::kMalformed;
    out->data = data;
  }
  if (!r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code Decode(Bytes payload, SaslResponse* out) noexcept {
  out->data = payload;
  return {};
}

}  // namespace turnout::protocol::pg
