#include "control/json_text.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace turnout::control {
namespace {

TEST(JsonTextTest, DoublesInShortestDecimalForm) {
  EXPECT_EQ(ToJsonText(boost::json::parse(R"({"p":0.05,"q":0.25,"r":1.0,"s":1e-7,"t":123456789.5})")),
            R"({"p":0.05,"q":0.25,"r":1.0,"s":1e-07,"t":123456789.5})");
}

TEST(JsonTextTest, EverythingElseAsJson) {
  const auto v = boost::json::parse(R"({"a":[1,-2,true,false,null,"x\"y\n"],"b":{},"c":18446744073709551615})");
  EXPECT_EQ(ToJsonText(v), R"({"a":[1,-2,true,false,null,"x\"y\n"],"b":{},"c":18446744073709551615})");
  // And it reads back to the same value.
  EXPECT_EQ(boost::json::parse(ToJsonText(v)), v);
}

TEST(JsonTextTest, DuplicateKeyNamedWithItsPath) {
  EXPECT_EQ(DuplicateKey(R"({"a":1,"b":{"a":2},"c":[{"a":3}]})"), std::nullopt);
  EXPECT_EQ(DuplicateKey(R"({"a":1,"a":2})"), "a");
  EXPECT_EQ(DuplicateKey(R"({"s":{"type":"x","type":"y"}})"), "s.type");
  EXPECT_EQ(DuplicateKey(R"({"r":[{"k":1},{"k":1,"k":2}]})"), "r[1].k");
  EXPECT_EQ(DuplicateKey(R"([1,[2,{"x":0,"x":0}]])"), "[1][1].x");
  // Escapes are compared decoded: "\u0061" is "a".
  EXPECT_EQ(DuplicateKey(R"({"a":1,"\u0061":2})"), "a");
  EXPECT_EQ(DuplicateKey("not json"), std::nullopt);
}

}  // namespace
}  // namespace turnout::control
