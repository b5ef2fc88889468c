#include "routing/glob.h"

#include <string_view>

#include "gtest/gtest.h"

namespace turnout::routing {
namespace {

struct Case {
  std::string_view pattern;
  std::string_view subject;
  bool match;
};

// Expectations follow Redis' stringmatchlen (KEYS / SCAN MATCH).
constexpr Case kCases[] = {
    {"user:*", "user:1", true},
    {"user:*", "user:", true},
    {"user:*", "users:1", false},
    {"user:*", "xuser:1", false},
    {"*", "", true},
    {"*", "anything", true},
    {"", "", true},
    {"", "a", false},
    {"exact", "exact", true},
    {"exact", "exactly", false},
    {"h?llo", "hello", true},
    {"h?llo", "hallo", true},
    {"h?llo", "hllo", false},
    {"h*llo", "hllo", true},
    {"h*llo", "heeeello", true},
    {"h*llo", "heeeellox", false},
    {"h[ae]llo", "hello", true},
    {"h[ae]llo", "hallo", true},
    {"h[ae]llo", "hillo", false},
    {"h[^e]llo", "hallo", true},
    {"h[^e]llo", "hello", false},
    {"h[a-b]llo", "hbllo", true},
    {"h[a-b]llo", "hcllo", false},
    {"h[b-a]llo", "hallo", true},  // reversed range, swapped as Redis does
    {"h\\*llo", "h*llo", true},
    {"h\\*llo", "hello", false},
    {"a\\", "a\\", true},  // trailing backslash is literal
    {"[\\]]", "]", true},
    {"[]", "a", false},
    {"*a*b*c*", "xxaxxbxxcxx", true},
    {"*a*b*c*", "xxaxxcxxbxx", false},
    {"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    {"*:session:??", "app:session:42", true},
    {"*:session:??", "app:session:4", false},
    {"order_*", "order_items", true},
    {"?*", "", false},
    {"**x", "x", true},
};

TEST(GlobTest, MatchesLikeRedis) {
  for (const Case& c : kCases) {
    auto g = GlobPattern::Compile(c.pattern);
    ASSERT_TRUE(g.ok()) << c.pattern << ": " << g.status();
    EXPECT_EQ(g->Matches(c.subject), c.match) << "pattern " << c.pattern << " subject " << c.subject;
    EXPECT_EQ(GlobMatch(c.pattern, c.subject), c.match);
  }
}

TEST(GlobTest, LiteralAndPrefixFastPaths) {
  auto exact = GlobPattern::Compile("user:1");
  ASSERT_TRUE(exact.ok());
  EXPECT_TRUE(exact->is_literal());
  EXPECT_EQ(exact->literal(), "user:1");
  auto escaped = GlobPattern::Compile("a\\*b");
  ASSERT_TRUE(escaped.ok());
  EXPECT_TRUE(escaped->is_literal());
  EXPECT_EQ(escaped->literal(), "a*b");
  auto prefix = GlobPattern::Compile("user:*");
  ASSERT_TRUE(prefix.ok());
  EXPECT_FALSE(prefix->is_literal());
}

TEST(GlobTest, UnterminatedSetIsRefused) {
  auto g = GlobPattern::Compile("user:[ab");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("unterminated '[' at offset 5"), std::string::npos)
      << g.status();
  EXPECT_FALSE(GlobMatch("user:[ab", "user:a"));
}

TEST(GlobTest, BinarySafe) {
  const std::string pattern("a\0*", 3);
  const std::string subject("a\0zz", 4);
  auto g = GlobPattern::Compile(pattern);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->Matches(subject));
  EXPECT_FALSE(g->Matches("azz"));
}

}  // namespace
}  // namespace turnout::routing
