#include "protocol/io_buffer.h"

#include <cstring>

namespace turnout::protocol {

IoBuffer::IoBuffer(std::size_t capacity)
    : data_(new std::uint8_t[capacity]), capacity_(capacity) {}

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
