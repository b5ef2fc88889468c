#pragma once
// A bounded receive buffer for one direction of a session.
//
//   0 ........ consumed ........ parsed ........ received ........ capacity
//   | already   | framed, not yet | received, not | free space      |
//   | forwarded | forwarded       | yet framed    | for the next read|
//
// Invariant: consumed <= parsed <= received <= capacity. The buffer never
// grows past the capacity given at construction: a frame larger than the
// buffer is streamed through by its remaining length instead (see relay).
// Compact() moves the unconsumed bytes to the front so the free space is
// contiguous again; it is only called when no view into the buffer is held.
// The storage starts on a page boundary, so that the pages of the free
// space are the buffer's alone: an idle session may hand them back to the
// kernel (proxy/idle_pages.h) without touching anything else.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>

namespace turnout::protocol {

class IoBuffer {
 public:
  explicit IoBuffer(std::size_t capacity);
  IoBuffer(const IoBuffer&) = delete;
  IoBuffer& operator=(const IoBuffer&) = delete;
  IoBuffer(IoBuffer&&) noexcept = default;
  IoBuffer& operator=(IoBuffer&&) noexcept = default;

  std::size_t capacity() const noexcept { return capacity_; }

  // Bytes received but not yet consumed (forwarded or dropped).
  std::span<const std::uint8_t> Unconsumed() const noexcept {
    return {data_.get() + consumed_, received_ - consumed_};
  }
  // Bytes received but not yet framed by the codec.
  std::span<const std::uint8_t> Unparsed() const noexcept {
    return {data_.get() + parsed_, received_ - parsed_};
  }
  // Bytes framed but not yet consumed: what is ready to forward.
  std::span<const std::uint8_t> Parsed() const noexcept {
    return {data_.get() + consumed_, parsed_ - consumed_};
  }
  std::string_view UnconsumedText() const noexcept {
    auto s = Unconsumed();
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }

  // Free space to read into; compacts first when the tail is short.
  std::span<std::uint8_t> WritableTail() noexcept;
  // The free space as it is (no compaction).
  std::span<std::uint8_t> FreeSpace() noexcept { return {data_.get() + received_, capacity_ - received_}; }

  void CommitReceived(std::size_t n) noexcept { received_ += n; }
  void CommitParsed(std::size_t n) noexcept { parsed_ += n; }
  void Consume(std::size_t n) noexcept {
    consumed_ += n;
    if (parsed_ < consumed_) parsed_ = consumed_;
    if (consumed_ == received_) consumed_ = parsed_ = received_ = 0;
  }
  void Clear() noexcept { consumed_ = parsed_ = received_ = 0; }
  bool Full() const noexcept { return consumed_ == 0 && received_ == capacity_; }

  // Moves the unconsumed bytes to the front of the storage.
  void Compact() noexcept;

 private:
  struct Free {
    void operator()(std::uint8_t* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<std::uint8_t, Free> data_;
  std::size_t capacity_ = 0;
  std::size_t consumed_ = 0;
  std::size_t parsed_ = 0;
  std::size_t received_ = 0;
};

}  // namespace turnout::protocol
