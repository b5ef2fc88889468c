#include "routing/glob.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"

namespace turnout::routing {

absl::StatusOr<GlobPattern> GlobPattern::Compile(std::string_view pattern) {
  GlobPattern g;
  g.pattern_ = std::string(pattern);
  const std::size_t n = pattern.size();
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(pattern[i]);
    switch (c) {
      case '*':
        // Consecutive stars are one star.
        if (g.tokens_.empty() || g.tokens_.back().type != TokenType::kStar)
          g.tokens_.push_back({TokenType::kStar, 0});
        break;
      case '?':
        g.tokens_.push_back({TokenType::kAny, 0});
        break;
      case '\\':
        // A trailing backslash is a literal backslash (stringmatchlen).
        if (i + 1 < n) ++i;
        g.tokens_.push_back({TokenType::kByte, static_cast<unsigned char>(pattern[i])});
        break;
      case '[': {
        const std::size_t open = i;
        std::bitset<256> set;
        ++i;
        bool negate = false;
        if (i < n && pattern[i] == '^') {
          negate = true;
          ++i;
        }
        bool closed = false;
        for (; i < n; ++i) {
          unsigned char a = static_cast<unsigned char>(pattern[i]);
          if (a == ']') {
            closed = true;
            break;
          }
          if (a == '\\' && i + 1 < n) {
            set.set(static_cast<unsigned char>(pattern[++i]));
          } else if (i + 2 < n && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
            unsigned char b = static_cast<unsigned char>(pattern[i + 2]);
            if (a > b) std::swap(a, b);
            for (unsigned v = a; v <= b; ++v) set.set(v);
            i += 2;
          } else {
            set.set(a);
          }
        }
        if (!closed)
          return absl::InvalidArgumentError(
              absl::StrCat("unterminated '[' at offset ", open, " in pattern \"", Av(pattern), "\""));
        if (negate) set.flip();
        g.tokens_.push_back({TokenType::kSet, 0, static_cast<std::uint16_t>(g.sets_.size())});
        g.sets_.push_back(set);
        if (g.sets_.size() > 0xffff)
          return absl::InvalidArgumentError(absl::StrCat("too many sets in pattern \"", Av(pattern), "\""));
        break;
      }
      default:
        g.tokens_.push_back({TokenType::kByte, c});
    }
  }

  // Classify for the fast paths.
  std::size_t literal_run = 0;
  while (literal_run < g.tokens_.size() && g.tokens_[literal_run].type == TokenType::kByte)
    ++literal_run;
  if (literal_run == g.tokens_.size() ||
      (literal_run + 1 == g.tokens_.size() && g.tokens_.back().type == TokenType::kStar)) {
    for (std::size_t i = 0; i < literal_run; ++i)
      g.literal_.push_back(static_cast<char>(g.tokens_[i].byte));
    g.kind_ = literal_run == g.tokens_.size() ? Kind::kExact
              : literal_run == 0              ? Kind::kAll
                                              : Kind::kPrefix;
  } else {
    g.kind_ = Kind::kGeneral;
  }
  return g;
}

bool GlobPattern::Matches(std::string_view subject) const noexcept {
  switch (kind_) {
    case Kind::kExact: return subject == literal_;
    case Kind::kPrefix: return subject.starts_with(literal_);
    case Kind::kAll: return true;
    case Kind::kGeneral: return MatchGeneral(subject);
  }
  return false;
}

bool GlobPattern::MatchGeneral(std::string_view s) const noexcept {
  const std::size_t m = tokens_.size();
  const std::size_t n = s.size();
  std::size_t ti = 0, si = 0;
  std::size_t star = m;  // token index of the last '*' seen; m: none
  std::size_t mark = 0;  // subject position that star is matched up to
  auto one = [&](const Token& t, unsigned char c) {
    switch (t.type) {
      case TokenType::kByte: return t.byte == c;
      case TokenType::kAny: return true;
      case TokenType::kSet: return sets_[t.set].test(c);
      case TokenType::kStar: return false;
    }
    return false;
  };
  while (si < n) {
    if (ti < m && tokens_[ti].type == TokenType::kStar) {
      star = ti++;
      mark = si;
    } else if (ti < m && one(tokens_[ti], static_cast<unsigned char>(s[si]))) {
      ++ti;
      ++si;
    } else if (star != m) {
      // Let the last star swallow one more byte and retry after it.
      ti = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (ti < m && tokens_[ti].type == TokenType::kStar) ++ti;
  return ti == m;
}

bool GlobMatch(std::string_view pattern, std::string_view subject) {
  auto g = GlobPattern::Compile(pattern);
  return g.ok() && g->Matches(subject);
}

}  // namespace turnout::routing
