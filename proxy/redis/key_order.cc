#include "proxy/redis/key_order.h"

#include <algorithm>

namespace turnout::proxy::redis {

KeyOrder& KeyOrder::Global() {
  static KeyOrder* order = new KeyOrder();  // never destroyed: sessions may outlive statics
  return *order;
}

void KeyOrder::AddStripe(std::string_view key, Stripes& out) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  const auto s = static_cast<std::uint32_t>((h ^ (h >> 29)) % kStripes);
  auto it = std::lower_bound(out.begin(), out.end(), s);
  if (it == out.end() || *it != s) out.insert(it, s);
}

namespace {
constexpr std::uint64_t kOwnerMask = (std::uint64_t{1} << 39) - 1;
}  // namespace

bool KeyOrder::TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner, bool reentrant_always) {
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
  Release(stripes.first(taken), owner - 1);
  return false;
}

void KeyOrder::Release(std::span<const std::uint32_t> stripes, std::uint64_t owner) {
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
      if (s.compare_exchange_weak(cur, next, std::memory_order_release, std::memory_order_relaxed)) break;
    }
  }
}

}  // namespace turnout::proxy::redis
