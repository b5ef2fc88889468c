// Issue 12: a Redis difference nobody journaled (written on one side
// directly, or lost to a crash) is reported by key by verify and fixed by
// repair, case by case: a hash field, a set member, a TTL, a key only on
// old, a key only on new. Each case ends with a full comparison of the
// migration's keys on both sides (every key, type, value and TTL).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <ostream>
#include <string_view>
#include <string>
#include <vector>

#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;

struct PlantedCase {
  const char* name;
  const char* reason;  // as verify reports it
  // Writes the same data on both sides (`both`), then the difference.
  std::function<void(RespConn& old_side, RespConn& new_side, const std::string& key)> plant;
};

void PrintTo(const PlantedCase& c, std::ostream* os) { *os << c.name; }

void Both(RespConn& o, RespConn& n, std::initializer_list<std::string_view> cmd) {
  const std::string a = o.Call(cmd), b = n.Call(cmd);
  EXPECT_NE(a[0], '-') << a;
  EXPECT_NE(b[0], '-') << b;
}

const PlantedCase kCases[] = {
    {"hash_field", "value",
     [](RespConn& o, RespConn& n, const std::string& k) {
       Both(o, n, {"HSET", k, "a", "1", "b", "2", "c", "3"});
       n.Call({"HSET", k, "b", "changed on new"});
     }},
    {"set_member", "value",
     [](RespConn& o, RespConn& n, const std::string& k) {
       Both(o, n, {"SADD", k, "x", "y", "z"});
       n.Call({"SREM", k, "y"});
     }},
    {"ttl", "ttl",
     [](RespConn& o, RespConn& n, const std::string& k) {
       Both(o, n, {"SET", k, "v", "EX", "1000"});
       n.Call({"PERSIST", k});
     }},
    {"only_old", "only_old", [](RespConn& o, RespConn&, const std::string& k) { o.Call({"RPUSH", k, "1", "2"}); }},
    {"only_new", "only_new", [](RespConn&, RespConn& n, const std::string& k) { n.Call({"SET", k, "stray"}); }},
};

class RedisRepairTest : public RedisMigrationTest, public ::testing::WithParamInterface<PlantedCase> {};

TEST_P(RedisRepairTest, APlantedDifferenceIsReportedByKeyAndRepaired) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kSync);
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = Prefix(std::string("repair-") + GetParam().name);
  ASSERT_EQ(admin_.Post("/api/v1/migrations/ri/interlay/redis", R"({"endpoint":"redis-new"})").status, 200);
  ASSERT_EQ(admin_.Post("/api/v1/migrations/ri/api/keys", R"({"keys":[")" + prefix + R"(*"]})").status, 200);

  const auto& b = TestBackends::Get();
  RespConn old_side(b.redis_old_port), new_side(b.redis_new_port);
  LoggedIn(old_side);
  LoggedIn(new_side);
  // Keys equal on both sides, so the planted one is the only difference.
  for (int i = 0; i < 50; ++i) Both(old_side, new_side, {"SET", prefix + "same:" + std::to_string(i), "v"});
  const std::string key = prefix + "planted";
  GetParam().plant(old_side, new_side, key);

  auto verify = admin_.Post("/api/v1/migrations/ri/verify");
  ASSERT_EQ(verify.status, 200) << verify.body;
  EXPECT_FALSE(verify.json.at("data").at("equal").as_bool()) << verify.body;
  const auto& route = verify.json.at("data").at("routes").at(0);
  ASSERT_EQ(route.at("keys").as_array().size(), 1u) << verify.body;
  const auto& reported = route.at("keys").at(0);
  EXPECT_EQ(reported.at("key").as_string(), key) << verify.body;
  EXPECT_EQ(reported.at("reason").as_string(), GetParam().reason) << verify.body;
  EXPECT_EQ(Pending(), 0) << "nothing was journaled: the verifier alone knows";

  auto repair = admin_.Post("/api/v1/migrations/ri/repair");
  ASSERT_EQ(repair.status, 200) << repair.body;
  const auto& data = repair.json.at("data");
  EXPECT_TRUE(data.at("redis_equal").as_bool()) << repair.body;
  ASSERT_EQ(data.at("keys_found_by_verify").as_array().size(), 1u) << repair.body;
  EXPECT_EQ(data.at("keys_found_by_verify").at(0).at("key").as_string(), key);
  EXPECT_EQ(data.at("keys_found_by_verify").at(0).at("from").as_string(), "redis-old");
  EXPECT_THAT(repair.body, ::testing::Not(HasSubstr("still differ")));

  const auto [equal, report] = Compare(prefix + "*");
  EXPECT_TRUE(equal) << report;
  auto again = admin_.Post("/api/v1/migrations/ri/verify");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_TRUE(again.json.at("data").at("equal").as_bool()) << again.body;
  Cleanup(prefix + "*");
}

INSTANTIATE_TEST_SUITE_P(Cases, RedisRepairTest, ::testing::ValuesIn(kCases),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace turnout::testing
