#include "protocol/pg/binary_copy_trim.h"

#include <algorithm>
#include <cstring>

#include "protocol/pg/codec_error.h"
#include "protocol/pg/wire.h"

namespace turnout::protocol::pg {
namespace {

// sql-copy, "File Header": the signature, Int32 flags, Int32 extension length.
constexpr std::string_view kSignature{"PGCOPY\n\377\r\n\0", 11};
constexpr std::size_t kHeaderSize = 11 + 4 + 4;
// Flags bit 16: each tuple carries an OID first (never since PostgreSQL 12).
// Bits 0-15 are "critical": a reader must stop at one it does not know.
constexpr std::uint32_t kCriticalFlags = 0x0001ffff;

const std::uint8_t* Raw(std::string_view s) noexcept { return reinterpret_cast<const std::uint8_t*>(s.data()); }

void AppendI32(std::string* out, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  const char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
                     static_cast<char>(u)};
  out->append(b, 4);
}

}  // namespace

std::size_t BinaryCopyTrimmer::Step(std::string_view in, std::string* out, std::error_code* ec) {
  switch (state_) {
    case State::kHeader: {
      if (in.size() < kHeaderSize) return 0;
      if (in.substr(0, kSignature.size()) != kSignature || (LoadU32(Raw(in) + 11) & kCriticalFlags) != 0) {
        *ec = make_error_code(CodecError::kMalformed);
        return 0;
      }
      extension_left_ = LoadU32(Raw(in) + 15);
      out->append(in.substr(0, kHeaderSize));
      state_ = extension_left_ > 0 ? State::kHeaderExtension : State::kTupleStart;
      return kHeaderSize;
    }
    case State::kHeaderExtension: {
      const std::size_t n = std::min<std::size_t>(in.size(), extension_left_);
      out->append(in.substr(0, n));
      extension_left_ -= static_cast<std::uint32_t>(n);
      if (extension_left_ == 0) state_ = State::kTupleStart;
      return n;
    }
    case State::kTupleStart: {
      if (in.size() < 2) return 0;
      const auto count = static_cast<std::int16_t>(LoadU16(Raw(in)));
      if (count == -1) {
        state_ = State::kDone;
      } else if (count < 0 || static_cast<std::size_t>(count) != trim_.size()) {
        *ec = make_error_code(CodecError::kMalformed);
        return 0;
      } else if (count > 0) {
        field_ = 0;
        state_ = State::kField;
      }
      out->append(in.substr(0, 2));
      return 2;
    }
    case State::kField: {
      if (in.size() < 4) return 0;
      const auto length = static_cast<std::int32_t>(LoadU32(Raw(in)));
      if (length < -1) {
        *ec = make_error_code(CodecError::kMalformed);
        return 0;
      }
      const std::size_t value_size = length < 0 ? 0 : static_cast<std::size_t>(length);
      if (in.size() - 4 < value_size) return 0;
      std::string_view value = in.substr(4, value_size);
      if (length >= 0 && trim_[field_]) {
        while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
        AppendI32(out, static_cast<std::int32_t>(value.size()));
        out->append(value);
      } else {
        out->append(in.substr(0, 4 + value_size));
      }
      if (++field_ == trim_.size()) state_ = State::kTupleStart;
      return 4 + value_size;
    }
    case State::kDone:
      if (!in.empty()) *ec = make_error_code(CodecError::kMalformed);
      return 0;
    case State::kFailed:
      *ec = make_error_code(CodecError::kMalformed);
      return 0;
  }
  return 0;
}

std::error_code BinaryCopyTrimmer::Feed(std::string_view in, std::string* out) {
  std::string_view view = in;
  const bool carried = !pending_.empty();
  if (carried) {
    pending_.append(in);
    view = pending_;
  }
  std::size_t used = 0;
  std::error_code ec;
  for (;;) {
    const std::size_t n = Step(view.substr(used), out, &ec);
    if (ec) {
      state_ = State::kFailed;
      pending_.clear();
      return ec;
    }
    if (n == 0) break;
    used += n;
  }
  if (carried) pending_.erase(0, used);
  else pending_.assign(view.substr(used));
  return {};
}

}  // namespace turnout::protocol::pg
