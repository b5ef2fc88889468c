#pragma once
// Stable 64-bit hashes for sticky traffic splits. They must give the same
// value in every process, on every platform and in every turnout version, so
// that a fleet of sidecars (and one sidecar across restarts) puts a client or
// a key on the same side: absl::Hash is seeded per process and is not used.
//
//   strings:  FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3,
//             http://www.isthe.com/chongo/tech/comp/fnv/) over the bytes,
//             then the MurmurHash3 fmix64 finalizer, because FNV-1a alone
//             spreads short, similar strings ("user:1", "user:2") poorly in
//             its high bits, and the split compares the full 64-bit value.
//   integers: the SplitMix64 finalizer (Steele, Lea, Flood 2014), a bijection
//             that spreads sequential connection ids evenly.
//
// These functions are part of the routing contract: changing one moves
// clients between old and new during a rollout. Tests pin known values.

#include <cstdint>
#include <string_view>

#include "routing/request.h"

namespace turnout::routing {

inline constexpr std::uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;
inline constexpr std::uint64_t kFnvPrime = 0x100000001b3ull;

// Plain FNV-1a 64 with an explicit starting state, for chaining fields.
constexpr std::uint64_t Fnv1a64(std::string_view bytes,
                                std::uint64_t state = kFnvOffsetBasis) noexcept {
  for (unsigned char c : bytes) {
    state ^= c;
    state *= kFnvPrime;
  }
  return state;
}

// MurmurHash3 fmix64.
constexpr std::uint64_t Fmix64(std::uint64_t k) noexcept {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

// SplitMix64 output function applied to x + golden gamma.
constexpr std::uint64_t SplitMix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr std::uint64_t StableHash(std::string_view bytes) noexcept {
  return Fmix64(Fnv1a64(bytes));
}
constexpr std::uint64_t StableHash(std::uint64_t value) noexcept { return SplitMix64(value); }

// The identity of a client: user, application_name and address, each
// followed by a 0x1f unit separator so ("ab","c") and ("a","bc") differ.
std::uint64_t ClientHash(const ClientIdentity& client) noexcept;

// A fraction in [0, 1] as a threshold on a 64-bit hash: a hash h is "in" iff
// h < PercentageThreshold(p). 0 maps to 0 (nobody) and 1 to the maximum, so
// 2^-64 of hashes would be missed at 1: policies compile 0 and 1 to fixed
// plans, which makes both exact. Raising p only adds hashes, so a client on
// new at 5 % is still on new at 25 %.
std::uint64_t PercentageThreshold(double fraction) noexcept;

}  // namespace turnout::routing
