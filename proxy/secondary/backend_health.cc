#include "proxy/secondary/backend_health.h"

#include <algorithm>

namespace turnout::proxy::secondary {

bool BackendHealth::ForgetIfStaleLocked(States::iterator it, Clock::time_point now) {
  if (now < it->second.down_until + kMaxBackoff) return false;
  states_.erase(it);
  down_count_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

bool BackendHealth::MayTry(std::string_view backend, Clock::time_point now) {
  if (down_count_.load(std::memory_order_relaxed) == 0) return true;
  std::lock_guard<std::mutex> l(mu_);
  auto it = states_.find(backend);
  if (it == states_.end() || ForgetIfStaleLocked(it, now)) return true;
  if (now < it->second.down_until) return false;
  // This caller tries; the others wait for its verdict (or the next window).
  it->second.down_until = now + it->second.backoff;
  return true;
}

bool BackendHealth::IsDown(std::string_view backend, Clock::time_point now) {
  if (down_count_.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<std::mutex> l(mu_);
  auto it = states_.find(backend);
  if (it == states_.end() || ForgetIfStaleLocked(it, now)) return false;
  return now < it->second.down_until;
}

void BackendHealth::ReportFailure(std::string_view backend, Clock::time_point now) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = states_.find(backend);
  if (it != states_.end()) ForgetIfStaleLocked(it, now);
  auto [at, inserted] = states_.try_emplace(std::string(backend));
  if (inserted) down_count_.fetch_add(1, std::memory_order_relaxed);
  State& s = at->second;
  s.backoff = s.backoff.count() == 0 ? kFirstBackoff : std::min(kMaxBackoff, s.backoff * 2);
  s.down_until = now + s.backoff;
}

void BackendHealth::ReportSuccess(std::string_view backend) {
  if (down_count_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> l(mu_);
  auto it = states_.find(backend);
  if (it == states_.end()) return;
  states_.erase(it);
  down_count_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace turnout::proxy::secondary
