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

bool KeyOrder::TryAcquire(std::span<const std::uint32_t> stripes, std::uint64_t owner) {
  const std::uint64_t mask = (std::uint64_t{1} << 40) - 1;
  owner &= mask;
  std::size_t taken = 0;
  for (; taken < stripes.size(); ++taken) {
    auto& s = stripes_[stripes[taken]];
    std::uint64_t cur = s.load(std::memory_order_relaxed);
    bool ok = false;
    for (;;) {
      if (cur != 0 && (cur >> kDepthBits) != owner) break;
      const std::uint64_t next = cur == 0 ? (owner << kDepthBits) | 1 : cur + 1;
      if (s.compare_exchange_weak(cur, next, std::memory_order_acquire, std::memory_order_relaxed)) {
        ok = true;
        break;
      }
    }
    if (!ok) break;
  }
  if (taken == stripes.size()) return true;
  Release(stripes.first(taken), owner);
  return false;
}

void KeyOrder::Release(std::span<const std::uint32_t> stripes, std::uint64_t owner) {
  const std::uint64_t mask = (std::uint64_t{1} << 40) - 1;
  owner &= mask;
  for (std::uint32_t i : stripes) {
    auto& s = stripes_[i];
    std::uint64_t cur = s.load(std::memory_order_relaxed);
    for (;;) {
      if (cur == 0 || (cur >> kDepthBits) != owner) break;
      const std::uint64_t depth = cur & ((std::uint64_t{1} << kDepthBits) - 1);
      const std::uint64_t next = depth <= 1 ? 0 : cur - 1;
      if (s.compare_exchange_weak(cur, next, std::memory_order_release, std::memory_order_relaxed)) break;
    }
  }
}

}  // namespace turnout::proxy::redis
