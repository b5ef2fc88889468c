#pragma once
// Which Redis backends this process recently failed to reach, shared by
// every session and worker, so that reconnect attempts to a backend that is
// down are rate-limited process-wide (DESIGN.md §2: if the secondary is
// down the primary keeps serving and each missed write is journaled, without
// every session hammering the dead server).
//
// After a failure a backend is "down" for a back-off window (250 ms doubling
// to 5 s). When the window has passed, exactly one caller gets MayTry() ==
// true (the window is extended while it tries); it reports the outcome.
// The common case, nothing down, is one relaxed atomic load.

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

#include <map>

namespace turnout::proxy::redis {

class BackendHealth {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFirstBackoff{250};
  static constexpr std::chrono::milliseconds kMaxBackoff{5000};

  static BackendHealth& Global();

  // True when nothing is known against `backend`, or when its back-off
  // window has passed and the caller may attempt a connection now.
  bool MayTry(std::string_view backend, Clock::time_point now);
  // True while `backend` is inside its back-off window.
  bool IsDown(std::string_view backend, Clock::time_point now);
  void ReportFailure(std::string_view backend, Clock::time_point now);
  void ReportSuccess(std::string_view backend);

 private:
  struct State {
    Clock::time_point down_until;
    std::chrono::milliseconds backoff{0};
  };
  std::atomic<int> down_count_{0};
  std::mutex mu_;
  std::map<std::string, State, std::less<>> states_;
};

}  // namespace turnout::proxy::redis
