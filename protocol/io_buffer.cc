#include "protocol/io_buffer.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace turnout::protocol {

namespace {
constexpr std::size_t kPage = 4096;
std::uint8_t* PageAligned(std::size_t capacity) {
  const std::size_t size = (std::max<std::size_t>(capacity, 1) + kPage - 1) / kPage * kPage;
  auto* p = static_cast<std::uint8_t*>(std::aligned_alloc(kPage, size));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

IoBuffer::IoBuffer(std::size_t capacity) : data_(PageAligned(capacity)), capacity_(capacity) {}

std::span<std::uint8_t> IoBuffer::WritableTail() noexcept {
  // Compacting costs a memmove of the unconsumed bytes; do it only when the
  // free tail is under a quarter of the buffer so steady-state reads rarely move.
  if (consumed_ > 0 && capacity_ - received_ < capacity_ / 4) Compact();
  return {data_.get() + received_, capacity_ - received_};
}

void IoBuffer::Compact() noexcept {
  if (consumed_ == 0) return;
  const std::size_t live = received_ - consumed_;
  std::memmove(data_.get(), data_.get() + consumed_, live);
  parsed_ -= consumed_;
  received_ = live;
  consumed_ = 0;
}

}  // namespace turnout::protocol
