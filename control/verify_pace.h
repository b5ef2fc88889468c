#pragma once
// The throttle of continuous verification (`data.verify.rows_per_second`,
// control/continuous_verify.h): after each chunk the verifier reports the
// rows it compared and waits until the rows so far are no more than the
// rate times the time since the run started. So a progress read after
// Took() returned always shows rows <= rows_per_second × elapsed_seconds;
// chunks are cut to at most one second's rows (Verify does), so the rate
// over any second stays near the budget, not only on average.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

namespace turnout::control {

class VerifyPace {
 public:
  using Clock = std::chrono::steady_clock;
  // `rows_per_second` 0: unthrottled. `stopping`, asked every 100 ms while
  // waiting, ends a wait early (Took returns false).
  explicit VerifyPace(std::int64_t rows_per_second, std::function<bool()> stopping = {})
      : limit_(rows_per_second), stopping_(std::move(stopping)), start_(Clock::now()) {}

  // `rows` more compared; returns once the budget allows what was compared
  // so far, false when told to stop while waiting.
  bool Took(std::int64_t rows) {
    rows_ += std::max<std::int64_t>(rows, 0);
    if (limit_ <= 0) return true;
    const auto due = start_ + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(rows_) / static_cast<double>(limit_)));
    while (Clock::now() < due) {
      if (stopping_ && stopping_()) return false;
      std::this_thread::sleep_for(std::min<Clock::duration>(due - Clock::now(), std::chrono::milliseconds(100)));
    }
    return true;
  }

  std::int64_t limit() const { return limit_; }
  std::int64_t rows() const { return rows_; }
  double elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  // Rows per second since the start.
  double rate() const {
    const double s = elapsed_seconds();
    return s > 0 ? static_cast<double>(rows_) / s : 0;
  }

 private:
  const std::int64_t limit_;
  const std::function<bool()> stopping_;
  const Clock::time_point start_;
  std::int64_t rows_ = 0;
};

}  // namespace turnout::control
