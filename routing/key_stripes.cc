#include "routing/key_stripes.h"

#include <algorithm>

namespace turnout::routing {

namespace {
constexpr std::uint64_t kOwnerMask = (std::uint64_t{1} << 39) - 1;
}  // namespace

KeyStripes& KeyStripes::Global() {
  static KeyStripes* stripes = new KeyStripes();  // never destroyed: sessions may outlive statics
  return *stripes;
}

void KeyStripes::AddStripe(std::string_view key, Stripes& out) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  const auto s = static_cast<std::uint32_t>((h ^ (h >> 29)) % kStripes);
  auto it = std::lower_bound(out.begin(), out.end(), s);
  if (it == out.end() || *it != s) out.insert(it, s);
}

bool KeyStripes::TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner, bool reentrant_always,
                            std::uint32_t* blocked) {
  owner = (owner & kOwnerMask) + 1;  // never 0: owner 0 marks a free stripe
  const std::uint64_t depth_mask = (std::uint64_t{1} << kDepthBits) - 1;
  std::size_t taken = 0;
  for (; taken < stripes.size(); ++taken) {
    auto& s = stripes_[stripes[taken]];
    std::uint64_t cur = s.load(std::memory_order_relaxed);
    bool ok = false;
    for (;;) {
      const std::uint64_t depth = cur & depth_mask;
      const std::uint64_t holder = (cur & ~kContended) >> kDepthBits;
      std::uint64_t next;
      if (depth == 0) {
        next = (owner << kDepthBits) | 1;  // free (a waiter's mark is cleared)
      } else if (holder == owner && (reentrant_always || !(cur & kContended))) {
        next = cur + 1;
      } else {
        // Held by another, or by us while others wait: mark it wanted.
        if (!(cur & kContended) &&
            !s.compare_exchange_weak(cur, cur | kContended, std::memory_order_relaxed, std::memory_order_relaxed))
          continue;
        break;
      }
      if (s.compare_exchange_weak(cur, next, std::memory_order_acquire, std::memory_order_relaxed)) {
        ok = true;
        break;
      }
    }
    if (!ok) break;
  }
  if (taken == stripes.size()) return true;
  if (blocked != nullptr) *blocked = stripes[taken];
  Release(stripes.first(taken), owner - 1);
  return false;
}

void KeyStripes::Release(std::span<const std::uint32_t> stripes, std::uint64_t owner) {
  owner = (owner & kOwnerMask) + 1;
  const std::uint64_t depth_mask = (std::uint64_t{1} << kDepthBits) - 1;
  for (std::uint32_t i : stripes) {
    auto& s = stripes_[i];
    std::uint64_t cur = s.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t depth = cur & depth_mask;
      if (depth == 0 || ((cur & ~kContended) >> kDepthBits) != owner) break;
      // The last release frees the stripe; a waiter's mark stays for it.
      const std::uint64_t next = depth == 1 ? (cur & kContended) : cur - 1;
      if (s.compare_exchange_weak(cur, next, std::memory_order_release, std::memory_order_relaxed)) {
        if (depth == 1 && (cur & kContended)) WakeStripe(i);
        break;
      }
    }
  }
}

void KeyStripes::Register(std::uint32_t stripe, std::shared_ptr<Waiter> waiter) {
  auto& shard = shards_[stripe % kWaiterShards];
  std::lock_guard lock(shard.mu);
  shard.waiters.emplace_back(stripe, std::move(waiter));
}

void KeyStripes::Unregister(std::uint32_t stripe, const Waiter* waiter) {
  auto& shard = shards_[stripe % kWaiterShards];
  std::lock_guard lock(shard.mu);
  auto& w = shard.waiters;
  w.erase(std::remove_if(w.begin(), w.end(), [&](const auto& e) { return e.second.get() == waiter; }), w.end());
}

void KeyStripes::WakeStripe(std::uint32_t stripe) {
  // Every waiter of the stripe, woken outside the lock. (Waking only the
  // first measured slower on a hot key: each hand-over then costs a thread
  // hop in series, where with all of them one of the woken is usually
  // running already.)
  absl::InlinedVector<std::shared_ptr<Waiter>, 8> wake;
  {
    auto& shard = shards_[stripe % kWaiterShards];
    std::lock_guard lock(shard.mu);
    auto& w = shard.waiters;
    for (auto it = w.begin(); it != w.end();) {
      if (it->first == stripe) {
        wake.push_back(std::move(it->second));
        it = w.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : wake) w->Notify();
}

}  // namespace turnout::routing
