#include "routing/stream_positions.h"

#include <algorithm>
#include <utility>

namespace turnout::routing {

namespace {
// Samples kept for tickets of sessions that wait later (async reads).
constexpr std::size_t kKeptSamples = 64;
}  // namespace

std::uint64_t StreamPosition::RequestSample(bool with_fence) {
  std::function<void()> notify;
  std::uint64_t ticket;
  {
    std::lock_guard lock(mu_);
    ticket = ++requested_;
    const bool new_fence = with_fence && !std::exchange(nudged_, true);
    if (sampling_ == 0 || new_fence) notify = listener_;
  }
  if (notify) notify();
  return ticket;
}

std::uint64_t StreamPosition::TargetLocked(std::uint64_t ticket) const {
  auto it = samples_.lower_bound(ticket);
  if (it != samples_.end()) return it->second;
  return 0;
}

std::uint64_t StreamPosition::CommitEndLocked(std::uint32_t xid) const {
  if (xid == 0) return 0;
  // Newest first: a session usually asks right after its commit.
  for (std::size_t n = 0, i = recent_next_; n < recent_.size(); ++n) {
    i = (i == 0 ? recent_.size() : i) - 1;
    if (recent_[i].xid == xid) return recent_[i].end_lsn;
  }
  return 0;
}

namespace {
// The nearer of two positions that each prove the commit applied once
// reached (0: unknown).
std::uint64_t Nearer(std::uint64_t a, std::uint64_t b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); }
}  // namespace

StreamPosition::WaitState StreamPosition::Wait(std::uint64_t ticket, std::uint32_t xid, Waiter* w, absl::Time now) {
  std::lock_guard lock(mu_);
  if (now >= live_until_ || (ticket != 0 && ticket <= failed_upto_)) return WaitState::kNotLive;
  const std::uint64_t target = Nearer(ticket != 0 ? TargetLocked(ticket) : 0, CommitEndLocked(xid));
  if (target != 0 && applied_ >= target) return WaitState::kReached;
  w->ticket_ = ticket;
  w->xid_ = xid;
  w->target_ = target;
  if (!w->registered_) {
    w->registered_ = true;
    waiters_.push_back(w);
  }
  return WaitState::kWaiting;
}

void StreamPosition::Unlink(Waiter* w) {
  auto it = std::find(waiters_.begin(), waiters_.end(), w);
  if (it != waiters_.end()) {
    *it = waiters_.back();
    waiters_.pop_back();
  }
  w->registered_ = false;
}

void StreamPosition::Cancel(Waiter* w) {
  std::lock_guard lock(mu_);
  if (w->registered_) Unlink(w);
}

bool StreamPosition::live(absl::Time now) const {
  std::lock_guard lock(mu_);
  return now < live_until_;
}

absl::Time StreamPosition::live_until() const {
  std::lock_guard lock(mu_);
  return live_until_;
}

std::uint64_t StreamPosition::applied() const {
  std::lock_guard lock(mu_);
  return applied_;
}

void StreamPosition::SetSampleListener(std::function<void()> listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

std::uint64_t StreamPosition::TakeSampleRequest() {
  std::lock_guard lock(mu_);
  if (sampling_ != 0) return 0;
  const std::uint64_t last = samples_.empty() ? 0 : samples_.rbegin()->first;
  if (requested_ <= std::max(last, failed_upto_)) return 0;
  sampling_ = requested_;
  return sampling_;
}

void StreamPosition::Nudge() {
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    if (nudged_) return;
    nudged_ = true;
    notify = listener_;
  }
  if (notify) notify();
}

bool StreamPosition::TakeNudge() {
  std::lock_guard lock(mu_);
  return std::exchange(nudged_, false);
}

void StreamPosition::SampleTaken(std::uint64_t ticket, std::uint64_t lsn) {
  std::lock_guard lock(mu_);
  if (ticket == sampling_) sampling_ = 0;
  if (lsn == 0) {
    // Old did not answer: the sessions of these tickets are not held for a
    // position nobody can learn.
    failed_upto_ = std::max(failed_upto_, ticket);
    for (std::size_t i = 0; i < waiters_.size();) {
      Waiter* w = waiters_[i];
      if (w->ticket_ != 0 && w->ticket_ <= ticket) {
        Unlink(w);
        w->Wake();
      } else {
        ++i;
      }
    }
    return;
  }
  samples_[ticket] = lsn;
  while (samples_.size() > kKeptSamples) samples_.erase(samples_.begin());
  for (Waiter* w : waiters_)
    if (w->ticket_ != 0 && w->ticket_ <= ticket) w->target_ = Nearer(w->target_, lsn);
  WakeReachedLocked();
}

void StreamPosition::Applied(std::uint64_t lsn, absl::Time live_until, Report from) {
  std::lock_guard lock(mu_);
  applied_ = std::max(applied_, lsn);
  live_until_ = std::max(live_until_, live_until);
  if (from == Report::kHere) here_until_ = std::max(here_until_, live_until);
  WakeReachedLocked();
}

void StreamPosition::Committed(std::span<const DecodedCommit> commits) {
  if (commits.empty()) return;
  std::lock_guard lock(mu_);
  if (recent_.empty()) recent_.resize(kRecentCommits);
  for (const DecodedCommit& c : commits) {
    recent_[recent_next_] = c;
    recent_next_ = (recent_next_ + 1) % recent_.size();
    for (Waiter* w : waiters_)
      if (c.xid != 0 && w->xid_ == c.xid) w->target_ = Nearer(w->target_, c.end_lsn);
  }
  WakeReachedLocked();
}

bool StreamPosition::reported_here(absl::Time now) const {
  std::lock_guard lock(mu_);
  return now < here_until_;
}

void StreamPosition::Stopped() {
  std::lock_guard lock(mu_);
  live_until_ = here_until_ = absl::InfinitePast();
  while (!waiters_.empty()) {
    Waiter* w = waiters_.back();
    Unlink(w);
    w->Wake();
  }
}

void StreamPosition::WakeReachedLocked() {
  for (std::size_t i = 0; i < waiters_.size();) {
    Waiter* w = waiters_[i];
    if (w->target_ != 0 && applied_ >= w->target_) {
      Unlink(w);  // moves the last waiter into slot i
      w->Wake();
    } else {
      ++i;
    }
  }
}

StreamPosition& StreamPositions::For(std::string_view route) {
  std::lock_guard lock(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), std::make_unique<StreamPosition>()).first;
  return *it->second;
}

}  // namespace turnout::routing
