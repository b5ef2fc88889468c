#pragma once
// A shared_ptr that one thread replaces and others read, for snapshots taken
// at connection setup (configuration, services), not per request.
// Not std::atomic<std::shared_ptr>: libstdc++ 12 implements it with a
// spin bit whose release in load() is relaxed, a data race ThreadSanitizer
// reports (see routing/policy_table.h). A mutex held for a pointer copy is
// simpler and, at accept rate, free.

#include <memory>
#include <mutex>

namespace turnout::proxy {

template <typename T>
class SharedSlot {
 public:
  explicit SharedSlot(std::shared_ptr<const T> initial = nullptr) : value_(std::move(initial)) {}
  std::shared_ptr<const T> load() const {
    std::lock_guard<std::mutex> l(mu_);
    return value_;
  }
  void store(std::shared_ptr<const T> next) {
    std::lock_guard<std::mutex> l(mu_);
    value_.swap(next);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const T> value_;
};

}  // namespace turnout::proxy
