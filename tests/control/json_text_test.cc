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

}  // namespace
}  // namespace turnout::control
