#pragma once
// A bounded FIFO (ring) of the commands a session has in flight. Its
// capacity is the session's pipelining window: a client that does not read
// its replies cannot make the session queue more than this. The ring starts
// small and doubles (up to the capacity) only when a client pipelines that
// deep: an idle session holds a few hundred bytes rather than the whole
// window (about 40 kB at the default window), and a session that pipelined
// deep once keeps its ring, so steady-state pipelining allocates nothing.

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace turnout::proxy::redis {

template <typename T>
class InflightQueue {
 public:
  static constexpr std::size_t kInitialSlots = 8;

  explicit InflightQueue(std::size_t capacity)
      : capacity_(capacity), slots_(std::min(capacity, kInitialSlots)) {}

  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return size_ == capacity_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Slots allocated now (at most capacity()).
  std::size_t allocated() const noexcept { return slots_.size(); }

  T& front() noexcept { return slots_[head_]; }
  // Precondition: !full().
  T& push_back(const T& v) {
    if (size_ == slots_.size()) Grow();
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
  // Twice the slots (at most the capacity), the entries moved to the front
  // in order.
  void Grow() {
    std::vector<T> bigger(std::min(capacity_, std::max<std::size_t>(1, 2 * slots_.size())));
    for (std::size_t k = 0, i = head_; k < size_; ++k) {
      bigger[k] = std::move(slots_[i]);
      if (++i == slots_.size()) i = 0;
    }
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::size_t capacity_;
  std::vector<T> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace turnout::proxy::redis
