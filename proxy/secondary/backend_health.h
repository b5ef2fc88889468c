#pragma once
// Which backends this process recently failed to reach, one object shared
// by every session of both protocols and every worker (handed to sessions
// in ProxyServices::backend_health, no global), so that reconnect attempts
// to a backend that is down are rate-limited process-wide (DESIGN.md §2:
// if the secondary is down the primary keeps serving and each missed write
// is journaled, without every session hammering the dead server).
//
// After a failure a backend is "down" for a back-off window (250 ms doubling
// to 5 s). When the window has passed, exactly one caller gets MayTry() ==
// true (the window is extended while it tries); it reports the outcome. A
// backend not reported for kMaxBackoff after its window ended is forgotten
// (it worked since, or nobody needed it), so the next failure starts again
// at kFirstBackoff even from a caller that never reports success.
// The common case, nothing down, is one relaxed atomic load.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace turnout::proxy::secondary {

class BackendHealth {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kFirstBackoff{250};
  static constexpr std::chrono::milliseconds kMaxBackoff{5000};

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
  using States = std::map<std::string, State, std::less<>>;
  // Drops `it` when it is stale (see the header comment); true if dropped.
  bool ForgetIfStaleLocked(States::iterator it, Clock::time_point now);

  std::atomic<int> down_count_{0};
  std::mutex mu_;
  States states_;
};

}  // namespace turnout::proxy::secondary
