// Startup-phase packets: StartupMessage and CancelRequest
// (protocol-message-formats). SSLRequest and GSSENCRequest carry no payload;
// the frame decoder has already checked their fixed length.

#include "protocol/pg/messages.h"
#include "protocol/pg/wire.h"

namespace turnout::protocol::pg {

std::optional<std::string_view> StartupMessage::Get(std::string_view name) const noexcept {
  for (const auto& [k, v] : parameters) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::int32_t CancelRequest::secret_key32() const noexcept {
  return secret_key.size() == 4 ? static_cast<std::int32_t>(LoadU32(secret_key.data())) : 0;
}

std::error_code DecodeStartupMessage(const Frame& frame, StartupMessage* out) noexcept {
  if (frame.kind != FrameKind::kStartupMessage) return CodecError::kUnexpectedMessage;
  out->protocol_version = frame.code;
  out->parameters.clear();
  // Protocol 2 is gone since PostgreSQL 14; any 3.x minor is negotiated down
  // with NegotiateProtocolVersion by the session, not refused here.
  if ((frame.code >> 16) != 3) return CodecError::kUnsupportedProtocolVersion;
  // StartupMessage: pairs of String name, String value, then a lone NUL.
  PayloadReader r(frame.payload);
  while (true) {
    std::string_view name;
    if (!r.ReadCString(&name)) return CodecError::kMalformed;
    if (name.empty()) break;
    std::string_view value;
    if (!r.ReadCString(&value)) return CodecError::kMalformed;
    out->parameters.emplace_back(name, value);
  }
  if (!r.AtEnd()) return CodecError::kMalformed;
  return {};
}

std::error_code DecodeCancelRequest(const Frame& frame, CancelRequest* out) noexcept {
  if (frame.kind != FrameKind::kCancelRequest) return CodecError::kUnexpectedMessage;
  PayloadReader r(frame.payload);
  if (!r.ReadI32(&out->process_id)) return CodecError::kInvalidLength;
  out->secret_key = r.Rest();
  if (out->secret_key.size() < 4 || out->secret_key.size() > 256) return CodecError::kInvalidLength;
  return {};
}

}  // namespace turnout::protocol::pg
