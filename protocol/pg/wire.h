#pragma once
// Big-endian integer access and a bounds-checked payload reader shared by the
// decoders. Every read checks the remaining length first, so a decoder can
// never step past the payload it was given.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace turnout::protocol::pg {

using Bytes = std::span<const std::uint8_t>;

inline std::string_view AsText(Bytes b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes AsBytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::uint32_t LoadU32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}
inline std::uint16_t LoadU16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// Reads a message payload front to back; each Read* returns false (and
// consumes nothing) when the payload is too short.
class PayloadReader {
 public:
  explicit PayloadReader(Bytes payload) noexcept : p_(payload.data()), end_(payload.data() + payload.size()) {}

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
  bool AtEnd() const noexcept { return p_ == end_; }
  Bytes Rest() const noexcept { return {p_, remaining()}; }

  bool ReadU8(std::uint8_t* v) noexcept {
    if (remaining() < 1) return false;
    *v = *p_++;
    return true;
  }
  bool ReadI16(std::int16_t* v) noexcept {
    if (remaining() < 2) return false;
    *v = static_cast<std::int16_t>(LoadU16(p_));
    p_ += 2;
    return true;
  }
  bool ReadU16(std::uint16_t* v) noexcept {
    if (remaining() < 2) return false;
    *v = LoadU16(p_);
    p_ += 2;
    return true;
  }
  bool ReadI32(std::int32_t* v) noexcept {
    if (remaining() < 4) return false;
    *v = static_cast<std::int32_t>(LoadU32(p_));
    p_ += 4;
    return true;
  }
  bool ReadU32(std::uint32_t* v) noexcept {
    if (remaining() < 4) return false;
    *v = LoadU32(p_);
    p_ += 4;
    return true;
  }
  // A NUL-terminated string (protocol-message-types: String); the NUL is
  // consumed but not part of the view.
  bool ReadCString(std::string_view* v) noexcept {
    const void* nul = std::memchr(p_, 0, remaining());
    if (nul == nullptr) return false;
    const auto* n = static_cast<const std::uint8_t*>(nul);
    *v = {reinterpret_cast<const char*>(p_), static_cast<std::size_t>(n - p_)};
    p_ = n + 1;
    return true;
  }
  bool ReadBytes(std::size_t n, Bytes* v) noexcept {
    if (remaining() < n) return false;
    *v = {p_, n};
    p_ += n;
    return true;
  }
  bool ReadText(std::size_t n, std::string_view* v) noexcept {
    Bytes b;
    if (!ReadBytes(n, &b)) return false;
    *v = AsText(b);
    return true;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace turnout::protocol::pg
