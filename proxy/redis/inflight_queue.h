#pragma once
// A fixed-capacity FIFO (ring) of the commands a session has in flight. Its
// capacity is the session's pipelining window: allocated once, never grown,
// so steady-state pipelining allocates nothing and a client that does not
// read its replies cannot make the session queue more than this.

#include <cstddef>
#include <vector>

namespace turnout::proxy::redis {

template <typename T>
class InflightQueue {
 public:
  explicit InflightQueue(std::size_t capacity) : slots_(capacity) {}

  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == slots_.size(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return slots_.size(); }

  T& front() noexcept { return slots_[head_]; }
  // Precondition: !full().
  T& push_back(const T& v) noexcept {
    std::size_t i = head_ + size_;
    if (i >= slots_.size()) i -= slots_.size();
    slots_[i] = v;
    ++size_;
    return slots_[i];
  }
  // Precondition: !empty().
  void pop_front() noexcept {
    if (++head_ == slots_.size()) head_ = 0;
    --size_;
  }
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (std::size_t k = 0, i = head_; k < size_; ++k) {
      fn(slots_[i]);
      if (++i == slots_.size()) i = 0;
    }
  }

 private:
  std::vector<T> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace turnout::proxy::redis
