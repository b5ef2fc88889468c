#include "routing/stable_hash.h"

#include <cmath>
#include <limits>

namespace turnout::routing {

std::uint64_t ClientHash(const ClientIdentity& client) noexcept {
  constexpr std::string_view kSep("\x1f", 1);
  std::uint64_t h = Fnv1a64(client.user);
  h = Fnv1a64(kSep, h);
  h = Fnv1a64(client.application_name, h);
  h = Fnv1a64(kSep, h);
  h = Fnv1a64(client.address, h);
  h = Fnv1a64(kSep, h);
  return Fmix64(h);
}

std::uint64_t PercentageThreshold(double fraction) noexcept {
  if (!(fraction > 0.0)) return 0;  // also NaN
  if (fraction >= 1.0) return std::numeric_limits<std::uint64_t>::max();
  // fraction * 2^64 < 2^64 for every double below 1, so the cast is defined.
  return static_cast<std::uint64_t>(std::ldexp(fraction, 64));
}

}  // namespace turnout::routing
