// The per-key Redis verifier (control/redis_verify.h) against the harness
// servers: differences by type, value (a hash field, a set member, a sorted
// set score, a list's order), TTL and presence are named with their reason;
// order-insensitive types written in another order and TTLs within the
// tolerance are equal. Keys carry the pid: suites share the servers.
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "control/redis_client.h"
#include "control/redis_verify.h"
#include "routing/config.h"
#include "tests/support/backends.h"

namespace turnout::control {
namespace {

using ::testing::HasSubstr;
using turnout::testing::TestBackends;
using Reason = RedisKeyDifference::Reason;

class RedisVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    prefix_ = "rverify_" + std::to_string(::getpid()) + ":";
    auto o = RedisConnect(routing::Backend{.name = "redis-old", .protocol = routing::Protocol::kRedis,
                                           .address = {"127.0.0.1", static_cast<std::uint16_t>(b.redis_old_port)}});
    auto n = RedisConnect(routing::Backend{.name = "redis-new", .protocol = routing::Protocol::kRedis,
                                           .address = {"127.0.0.1", static_cast<std::uint16_t>(b.redis_new_port)},
                                           .user = b.redis_user, .password = b.redis_password});
    ASSERT_TRUE(o.ok()) << o.status();
    ASSERT_TRUE(n.ok()) << n.status();
    old_ = *std::move(o);
    new_ = *std::move(n);
    Clear();
  }
  void TearDown() override { Clear(); }

  void Clear() {
    for (redisContext* c : {old_.get(), new_.get()}) {
      if (c == nullptr) continue;
      std::string cursor = "0";
      do {
        RedisReply page = RedisCommand(c, {"SCAN", cursor, "MATCH", prefix_ + "*", "COUNT", "1000"});
        ASSERT_TRUE(page && page->type == REDIS_REPLY_ARRAY);
        cursor.assign(page->element[0]->str, page->element[0]->len);
        for (size_t i = 0; i < page->element[1]->elements; ++i)
          RedisCommand(c, {"DEL", std::string(page->element[1]->element[i]->str, page->element[1]->element[i]->len)});
      } while (cursor != "0");
    }
  }
  static void Run(redisContext* c, const std::vector<std::string>& args) {
    RedisReply r = RedisCommand(c, args);
    ASSERT_TRUE(r) << args[0];
    ASSERT_NE(r->type, REDIS_REPLY_ERROR) << args[0] << ": " << r->str;
  }
  void Both(std::vector<std::string> args) {
    Run(old_.get(), args);
    Run(new_.get(), args);
  }
  std::string K(const std::string& name) const { return prefix_ + name; }

  RedisConn old_, new_;
  std::string prefix_;
};

TEST_F(RedisVerifyTest, NamesEachDifferenceWithItsReason) {
  // Equal, though written in other orders or with TTLs read apart.
  Run(old_.get(), {"hset", K("eq:hash"), "a", "1", "b", "2", "c", "3"});
  Run(new_.get(), {"hset", K("eq:hash"), "c", "3", "a", "1", "b", "2"});
  Run(old_.get(), {"sadd", K("eq:set"), "x", "y", "z"});
  Run(new_.get(), {"sadd", K("eq:set"), "z", "x", "y"});
  Run(old_.get(), {"zadd", K("eq:zset"), "1", "a", "2", "b"});
  Run(new_.get(), {"zadd", K("eq:zset"), "2", "b", "1", "a"});
  Both({"set", K("eq:ttl"), "v", "EX", "1000"});
  Run(new_.get(), {"expire", K("eq:ttl"), "999"});  // within the tolerance
  // Different.
  Run(old_.get(), {"hset", K("d:hash"), "f1", "1", "f2", "2"});
  Run(new_.get(), {"hset", K("d:hash"), "f1", "1", "f2", "changed"});
  Run(old_.get(), {"sadd", K("d:set"), "a", "b", "gone"});
  Run(new_.get(), {"sadd", K("d:set"), "a", "b"});
  Run(old_.get(), {"zadd", K("d:zset"), "1", "m", "2", "n"});
  Run(new_.get(), {"zadd", K("d:zset"), "1", "m", "3", "n"});
  Run(old_.get(), {"rpush", K("d:list"), "1", "2"});
  Run(new_.get(), {"rpush", K("d:list"), "2", "1"});
  Both({"set", K("d:ttl"), "v"});
  Run(old_.get(), {"expire", K("d:ttl"), "1000"});
  Both({"set", K("d:ttl2"), "v", "EX", "1000"});
  Run(new_.get(), {"expire", K("d:ttl2"), "100"});
  Run(old_.get(), {"set", K("d:only-old"), "1"});
  Run(new_.get(), {"set", K("d:only-new"), "1"});
  Run(old_.get(), {"set", K("d:type"), "1"});
  Run(new_.get(), {"sadd", K("d:type"), "1"});
  Run(old_.get(), {"set", K("d:str"), "before"});
  Run(new_.get(), {"set", K("d:str"), "after"});

  auto v = VerifyRedisKeys(old_.get(), new_.get(), {prefix_ + "*"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->mode, "recheck");
  EXPECT_EQ(v->keys_compared, 14);
  EXPECT_EQ(v->keys_differing, 10);
  std::map<std::string, RedisKeyDifference> by_key;
  for (const auto& d : v->differences) by_key[d.key.substr(prefix_.size())] = d;
  ASSERT_EQ(by_key.size(), 10u);
  auto expect = [&](const std::string& key, Reason reason, const std::string& detail) {
    ASSERT_TRUE(by_key.contains(key)) << key;
    EXPECT_EQ(RedisDifferenceReasonName(by_key[key].reason), std::string(RedisDifferenceReasonName(reason))) << key;
    EXPECT_THAT(by_key[key].detail, HasSubstr(detail)) << key;
  };
  expect("d:hash", Reason::kValue, "field f2: 2 on old, changed on new");
  expect("d:set", Reason::kValue, "member gone only on old");
  expect("d:zset", Reason::kValue, "member n: score 2 on old, 3 on new");
  expect("d:list", Reason::kValue, "element 0: 1 on old, 2 on new");
  expect("d:ttl", Reason::kTtl, "on old, -1 ms on new");
  expect("d:ttl2", Reason::kTtl, "ttl ");
  expect("d:only-old", Reason::kOnlyOld, "");
  expect("d:only-new", Reason::kOnlyNew, "");
  expect("d:type", Reason::kType, "string on old, set on new");
  expect("d:str", Reason::kValue, "before on old, after on new");
  EXPECT_EQ(by_key["d:only-old"].new_type, "none");
  EXPECT_EQ(by_key["d:ttl"].new_ttl_ms, -1);
  EXPECT_GT(by_key["d:ttl"].old_ttl_ms, 990000);
}

// More keys than a pipelined batch; the report keeps the first N in order.
TEST_F(RedisVerifyTest, ManyKeysAcrossBatchesAreBounded) {
  std::vector<std::string> mset_old = {"mset"}, mset_new = {"mset"};
  for (int i = 0; i < 2000; ++i) {
    const std::string key = K("many:" + std::to_string(10000 + i));
    mset_old.insert(mset_old.end(), {key, "v"});
    mset_new.insert(mset_new.end(), {key, i % 7 == 0 ? "w" : "v"});
  }
  Run(old_.get(), mset_old);
  Run(new_.get(), mset_new);
  RedisVerifyOptions o;
  o.batch = 100;
  o.max_reported = 50;
  o.recheck_delay = absl::ZeroDuration();
  auto v = VerifyRedisKeys(old_.get(), new_.get(), {prefix_ + "*"}, o);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->mode, "single pass");
  EXPECT_EQ(v->keys_compared, 2000);
  EXPECT_EQ(v->keys_differing, (2000 + 6) / 7);
  ASSERT_EQ(v->differences.size(), 50u);
  EXPECT_EQ(v->differences[0].key, K("many:10000"));
  EXPECT_EQ(v->differences[1].key, K("many:10007"));
}

}  // namespace
}  // namespace turnout::control
