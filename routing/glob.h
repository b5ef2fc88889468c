#pragma once
// Glob patterns with the semantics of Redis' stringmatchlen (util.c), the
// matcher behind KEYS, SCAN MATCH and ACL key patterns, so a scope's
// `keys: ["user:*"]` means what a Redis user expects:
//   *        any run of bytes, including none
//   ?        exactly one byte
//   [abc]    one byte of the set; [^abc] one byte not in it; [a-z] a range
//            (reversed ranges are swapped, as Redis does); \ escapes in sets
//   \x       the byte x literally
// Matching is case-sensitive and byte-wise. Unlike Redis, an unterminated
// set ("user:[") is refused at compile time instead of running to the end of
// the pattern: in a scope it is always a typo.
//
// Compiled once (control plane), matched without allocating (hot path).
// Exact strings and "prefix*" patterns, the common cases, skip the general
// matcher. The general matcher backtracks to the last '*' only, which is
// exact for patterns whose other tokens each match one byte, and bounds the
// work to O(pattern × subject) where Redis' recursion can go exponential.

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace turnout::routing {

class GlobPattern {
 public:
  // Error text names the byte offset of the problem.
  static absl::StatusOr<GlobPattern> Compile(std::string_view pattern);

  bool Matches(std::string_view subject) const noexcept;

  const std::string& pattern() const noexcept { return pattern_; }
  // True when the pattern has no wildcard, set or escape: it matches exactly
  // one string, literal().
  bool is_literal() const noexcept { return kind_ == Kind::kExact; }
  const std::string& literal() const noexcept { return literal_; }

 private:
  enum class Kind : std::uint8_t { kExact, kPrefix, kAll, kGeneral };
  enum class TokenType : std::uint8_t { kByte, kAny, kStar, kSet };
  struct Token {
    TokenType type;
    unsigned char byte;     // kByte
    std::uint16_t set = 0;  // kSet: index into sets_
  };

  bool MatchGeneral(std::string_view subject) const noexcept;

  std::string pattern_;
  Kind kind_ = Kind::kExact;
  std::string literal_;  // kExact: the string; kPrefix: the prefix
  std::vector<Token> tokens_;
  std::vector<std::bitset<256>> sets_;
};

// One-off match without keeping the compiled form (tests, tools). A pattern
// that does not compile matches nothing.
bool GlobMatch(std::string_view pattern, std::string_view subject);

}  // namespace turnout::routing
