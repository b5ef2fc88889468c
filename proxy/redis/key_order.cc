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
  std::size_t taken = 0;
  for (; taken < stripes.size(); ++taken) {
    Stripe& s = stripes_[stripes[taken]];
    std::lock_guard<std::mutex> l(s.mu);
    if (s.owner != 0 && s.owner != owner) break;
    s.owner = owner;
    ++s.depth;
  }
  if (taken == stripes.size()) return true;
  Release(stripes.first(taken), owner);
  return false;
}

void KeyOrder::Release(std::span<const std::uint32_t> stripes, std::uint64_t owner) {
  for (std::uint32_t i : stripes) {
    Stripe& s = stripes_[i];
    std::lock_guard<std::mutex> l(s.mu);
    if (s.owner != owner || s.depth == 0) continue;
    if (--s.depth == 0) s.owner = 0;
  }
}

}  // namespace turnout::proxy::redis
