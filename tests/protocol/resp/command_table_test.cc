// Unit tests of the Redis 7.0 command table: lookups and key extraction for
// the commands whose keys are hard to find. The itest checks the whole table
// against a live server.
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "protocol/resp/command_table.h"

namespace turnout::protocol::resp {
namespace {

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    std::size_t sp = s.find(' ');
    out.push_back(s.substr(0, sp));
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp + 1);
  }
  return out;
}

// Keys of an invocation as strings ("" marks an empty argument: '').
std::vector<std::string> Keys(std::string_view line, bool* ok = nullptr) {
  std::vector<std::string_view> args = Split(line);
  for (auto& a : args) {
    if (a == "''") a = std::string_view();
  }
  const CommandInfo* info = LookupCommand(args);
  EXPECT_NE(info, nullptr) << line;
  if (info == nullptr) return {};
  KeyIndices idx;
  bool good = ExtractKeys(*info, args, idx);
  if (ok != nullptr) *ok = good;
  std::vector<std::string> keys;
  for (std::uint32_t i : idx) keys.emplace_back(args[i]);
  return keys;
}

using Strings = std::vector<std::string>;

TEST(CommandTableTest, TableIsCompleteAndSorted) {
  auto all = AllCommands();
  EXPECT_EQ(all.size(), 240u);  // COMMAND COUNT of Redis 7.0.15
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].name, all[i].name);
  std::size_t subs = 0;
  for (const CommandInfo& c : all) {
    for (std::size_t i = 1; i < c.subcommands.size(); ++i) {
      EXPECT_LT(c.subcommands[i - 1].name, c.subcommands[i].name);
    }
    for (const CommandInfo& s : c.subcommands) {
      EXPECT_EQ(s.full_name, std::string(c.name) + "|" + std::string(s.name));
      ++subs;
    }
  }
  EXPECT_GE(subs, 120u);
}

TEST(CommandTableTest, LookupsAreCaseInsensitive) {
  ASSERT_NE(FindCommand("get"), nullptr);
  EXPECT_EQ(FindCommand("GeT"), FindCommand("GET"));
  EXPECT_EQ(FindCommand("get")->arity, 2);
  EXPECT_EQ(FindCommand("nosuchcommand"), nullptr);
  EXPECT_EQ(FindCommand(""), nullptr);
  EXPECT_EQ(FindCommand("GETX"), nullptr);
  EXPECT_EQ(FindCommand("GE"), nullptr);
  const CommandInfo* client = FindCommand("client");
  ASSERT_NE(client, nullptr);
  const CommandInfo* setname = FindSubcommand(*client, "SetName");
  ASSERT_NE(setname, nullptr);
  EXPECT_EQ(setname->full_name, "CLIENT|SETNAME");
  EXPECT_EQ(setname->arity, 3);
  EXPECT_EQ(FindSubcommand(*client, "nope"), nullptr);
  for (std::string_view line : {"config get", "object encoding", "xinfo stream", "CLIENT SETNAME"}) {
    std::vector<std::string_view> args = Split(line);
    const CommandInfo* info = LookupCommand(args);
    ASSERT_NE(info, nullptr) << line;
    EXPECT_NE(info->full_name.find('|'), std::string_view::npos) << line;
  }
  std::vector<std::string_view> only = {"config"};
  EXPECT_EQ(LookupCommand(only)->full_name, "CONFIG");
  std::vector<std::string_view> bad = {"config", "nope"};
  EXPECT_EQ(LookupCommand(bad), nullptr);
}

TEST(CommandTableTest, Classes) {
  auto cls = [](std::string_view line) {
    std::vector<std::string_view> args = Split(line);
    return LookupCommand(args)->command_class;
  };
  EXPECT_EQ(cls("GET k"), CommandClass::kRead);
  EXPECT_EQ(cls("SET k v"), CommandClass::kWrite);
  EXPECT_EQ(cls("PUBLISH ch m"), CommandClass::kWrite);
  EXPECT_EQ(cls("SUBSCRIBE ch"), CommandClass::kPubSub);
  EXPECT_EQ(cls("MULTI"), CommandClass::kTransaction);
  EXPECT_EQ(cls("WATCH k"), CommandClass::kTransaction);
  EXPECT_EQ(cls("AUTH pw"), CommandClass::kConnection);
  EXPECT_EQ(cls("HELLO 3"), CommandClass::kConnection);
  EXPECT_EQ(cls("SELECT 1"), CommandClass::kConnection);
  EXPECT_EQ(cls("CLIENT SETNAME x"), CommandClass::kConnection);
  EXPECT_EQ(cls("BLPOP k 0"), CommandClass::kBlocking);
  EXPECT_EQ(cls("EVAL s 0"), CommandClass::kScripting);
  EXPECT_EQ(cls("CONFIG GET x"), CommandClass::kAdmin);
  EXPECT_EQ(cls("OBJECT ENCODING k"), CommandClass::kRead);
  EXPECT_EQ(cls("FLUSHALL"), CommandClass::kWrite);
  EXPECT_TRUE(FindCommand("EVAL")->is_write);
  EXPECT_FALSE(FindCommand("EVAL_RO")->is_write);
  EXPECT_TRUE(FindCommand("PUBLISH")->is_write);
  EXPECT_TRUE(FindCommand("BLPOP")->is_write);
  EXPECT_FALSE(FindCommand("GET")->is_write);
  EXPECT_TRUE(FindCommand("SMEMBERS")->has(cmd_flag::kNondeterministicOutputOrder));
  EXPECT_TRUE(FindCommand("GET")->has(cmd_flag::kReadonly | cmd_flag::kFast));
  EXPECT_EQ(CommandClassName(CommandClass::kPubSub), "pubsub");
}

TEST(CommandTableTest, Determinism) {
  for (std::string_view name : {"SPOP", "SRANDMEMBER", "RANDOMKEY", "EVAL", "EVALSHA", "FCALL",
                                "INCRBYFLOAT", "HINCRBYFLOAT", "BLPOP", "BRPOPLPUSH", "BLMOVE",
                                "BZPOPMIN", "ZRANDMEMBER", "HRANDFIELD", "XADD", "SCAN", "TIME"}) {
    ASSERT_NE(FindCommand(name), nullptr) << name;
    EXPECT_FALSE(FindCommand(name)->deterministic) << name;
  }
  for (std::string_view name : {"SET", "GET", "INCR", "LPUSH", "ZADD", "HSET", "DEL", "EXPIRE",
                                "SMEMBERS", "LMPOP", "SINTERSTORE", "RESTORE"}) {
    EXPECT_TRUE(FindCommand(name)->deterministic) << name;
  }
}

TEST(CommandTableTest, ArityRule) {
  EXPECT_TRUE(ArityOk(*FindCommand("GET"), 2));
  EXPECT_FALSE(ArityOk(*FindCommand("GET"), 3));
  EXPECT_TRUE(ArityOk(*FindCommand("SET"), 3));
  EXPECT_TRUE(ArityOk(*FindCommand("SET"), 7));
  EXPECT_FALSE(ArityOk(*FindCommand("SET"), 2));
}

TEST(CommandTableTest, SimpleKeys) {
  EXPECT_EQ(Keys("GET k"), Strings({"k"}));
  EXPECT_EQ(Keys("SET k v EX 10"), Strings({"k"}));
  EXPECT_EQ(Keys("MSET a 1 b 2 c 3"), Strings({"a", "b", "c"}));
  EXPECT_EQ(Keys("MGET a b c"), Strings({"a", "b", "c"}));
  EXPECT_EQ(Keys("DEL a b"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("LMOVE src dst LEFT RIGHT"), Strings({"src", "dst"}));
  EXPECT_EQ(Keys("BLPOP a b 0"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("BITOP AND dest a b"), Strings({"dest", "a", "b"}));
  EXPECT_EQ(Keys("OBJECT ENCODING k"), Strings({"k"}));
  EXPECT_EQ(Keys("MEMORY USAGE k"), Strings({"k"}));
  EXPECT_EQ(Keys("XINFO STREAM s FULL"), Strings({"s"}));
  EXPECT_EQ(Keys("PING"), Strings());
  EXPECT_EQ(Keys("PUBLISH ch m"), Strings());
  // Shard channels are NOT_KEY specs: COMMAND GETKEYS says "no key arguments".
  EXPECT_EQ(Keys("SPUBLISH ch m"), Strings());
}

TEST(CommandTableTest, MovableKeys) {
  EXPECT_EQ(Keys("EVAL s 2 a b x y"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("EVAL s 0 x"), Strings());
  EXPECT_EQ(Keys("FCALL f 1 a x"), Strings({"a"}));
  EXPECT_EQ(Keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), Strings({"d", "a", "b"}));
  EXPECT_EQ(Keys("ZINTER 2 a b"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("SINTERCARD 2 a b LIMIT 1"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("LMPOP 2 a b LEFT COUNT 2"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("BLMPOP 0 2 a b LEFT"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("BZMPOP 0 1 z MIN"), Strings({"z"}));
  EXPECT_EQ(Keys("XREAD COUNT 2 STREAMS a b 0 0"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("XREAD BLOCK 0 STREAMS a $"), Strings({"a"}));
  EXPECT_EQ(Keys("XREADGROUP GROUP g c STREAMS a b > >"), Strings({"a", "b"}));
  EXPECT_EQ(Keys("GEORADIUS k 1 2 3 km STORE d"), Strings({"k", "d"}));
  EXPECT_EQ(Keys("GEORADIUS k 1 2 3 km STOREDIST d"), Strings({"k", "d"}));
  EXPECT_EQ(Keys("SORT k BY w_* GET o_* STORE d"), Strings({"k", "d"}));
  EXPECT_EQ(Keys("SORT k LIMIT 0 1 ALPHA"), Strings({"k"}));
  EXPECT_EQ(Keys("MIGRATE h 6379 k 0 1000"), Strings({"k"}));
  EXPECT_EQ(Keys("MIGRATE h 6379 '' 0 1000 COPY KEYS a b"), Strings({"a", "b"}));
  bool ok = true;
  EXPECT_EQ(Keys("EVAL s notanumber a", &ok), Strings());
  EXPECT_FALSE(ok);
  EXPECT_EQ(Keys("EVAL s 5 a", &ok), Strings());
  EXPECT_FALSE(ok);
  EXPECT_EQ(Keys("ZUNIONSTORE d -1 a", &ok), Strings());
  EXPECT_FALSE(ok);
}

TEST(CommandTableTest, BlockingInvocation) {
  auto blocking = [](std::string_view line) {
    std::vector<std::string_view> args = Split(line);
    return IsBlockingInvocation(*LookupCommand(args), args);
  };
  EXPECT_TRUE(blocking("BLPOP k 0"));
  EXPECT_TRUE(blocking("XREAD BLOCK 100 STREAMS s $"));
  EXPECT_FALSE(blocking("XREAD COUNT 1 STREAMS s 0"));
  EXPECT_FALSE(blocking("XREAD STREAMS block 0"));  // a stream named "block"
  EXPECT_TRUE(blocking("XREADGROUP GROUP g c BLOCK 0 STREAMS s >"));
  EXPECT_FALSE(blocking("GET k"));
}

}  // namespace
}  // namespace turnout::protocol::resp
