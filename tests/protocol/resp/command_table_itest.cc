// Checks the generated command table against the harness' live Redis 7.0
// (tests/harness/backends.sh exports TURNOUT_TEST_REDIS_OLD_PORT and the
// credentials): COMMAND COUNT, every command's COMMAND INFO, and COMMAND
// GETKEYS for a broad set of invocations versus ExtractKeys(). A missing
// server is a failure, not a skip.
#include <hiredis.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "protocol/resp/command_table.h"

namespace turnout::protocol::resp {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};

class CommandTableITest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* port = std::getenv("TURNOUT_TEST_REDIS_OLD_PORT");
    ASSERT_NE(port, nullptr) << "TURNOUT_TEST_REDIS_OLD_PORT is not set: run through `make test`";
    ASSERT_NE(*port, '\0');
    ctx_.reset(redisConnect("127.0.0.1", std::atoi(port)));
    ASSERT_NE(ctx_, nullptr);
    ASSERT_EQ(ctx_->err, 0) << ctx_->errstr;
    const char* user = std::getenv("TURNOUT_TEST_REDIS_USER");
    const char* password = std::getenv("TURNOUT_TEST_REDIS_PASSWORD");
    if (password != nullptr && *password != '\0') {
      std::vector<std::string> auth = {"AUTH"};
      if (user != nullptr && *user != '\0') auth.emplace_back(user);
      auth.emplace_back(password);
      ReplyPtr r = Call(auth);
      ASSERT_NE(r, nullptr);
      ASSERT_NE(r->type, REDIS_REPLY_ERROR) << r->str;
    }
  }

  ReplyPtr Call(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    return ReplyPtr(static_cast<redisReply*>(redisCommandArgv(
        ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
  }

  std::unique_ptr<redisContext, ContextDeleter> ctx_;
};

std::string Str(const redisReply* r) { return std::string(r->str, r->len); }

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::uint32_t FlagBit(const std::string& f) {
  static const std::map<std::string, std::uint32_t> kBits = {
      {"write", cmd_flag::kWrite}, {"readonly", cmd_flag::kReadonly},
      {"denyoom", cmd_flag::kDenyoom}, {"module", cmd_flag::kModule},
      {"admin", cmd_flag::kAdmin}, {"pubsub", cmd_flag::kPubsub},
      {"noscript", cmd_flag::kNoscript}, {"blocking", cmd_flag::kBlocking},
      {"loading", cmd_flag::kLoading}, {"stale", cmd_flag::kStale},
      {"skip_monitor", cmd_flag::kSkipMonitor}, {"skip_slowlog", cmd_flag::kSkipSlowlog},
      {"asking", cmd_flag::kAsking}, {"fast", cmd_flag::kFast},
      {"no_auth", cmd_flag::kNoAuth}, {"may_replicate", cmd_flag::kMayReplicate},
      {"no_mandatory_keys", cmd_flag::kNoMandatoryKeys},
      {"no_async_loading", cmd_flag::kNoAsyncLoading}, {"no_multi", cmd_flag::kNoMulti},
      {"movablekeys", cmd_flag::kMovablekeys}, {"allow_busy", cmd_flag::kAllowBusy}};
  auto it = kBits.find(f);
  return it == kBits.end() ? 0 : it->second;
}

void CheckInfo(const redisReply* entry, const CommandInfo& info, const std::string& name) {
  ASSERT_EQ(entry->type, REDIS_REPLY_ARRAY) << name;
  ASSERT_GE(entry->elements, 10u) << name;
  EXPECT_EQ(entry->element[1]->integer, info.arity) << name;
  std::uint32_t flags = 0;
  for (std::size_t i = 0; i < entry->element[2]->elements; ++i) {
    std::string f = Str(entry->element[2]->element[i]);
    std::uint32_t bit = FlagBit(f);
    EXPECT_NE(bit, 0u) << name << ": flag " << f << " unknown to the table";
    flags |= bit;
  }
  constexpr std::uint32_t kTips =
      cmd_flag::kNondeterministicOutput | cmd_flag::kNondeterministicOutputOrder;
  EXPECT_EQ(flags, info.flags & ~kTips) << name;
  EXPECT_EQ(entry->element[3]->integer, info.first_key) << name;
  EXPECT_EQ(entry->element[4]->integer, info.last_key) << name;
  EXPECT_EQ(entry->element[5]->integer, info.key_step) << name;
  EXPECT_EQ(entry->element[8]->elements, info.key_specs.size()) << name;
  EXPECT_EQ(entry->element[9]->elements, info.subcommands.size()) << name;
}

TEST_F(CommandTableITest, CommandCountMatches) {
  ReplyPtr r = Call({"COMMAND", "COUNT"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(static_cast<std::size_t>(r->integer), AllCommands().size());
}

TEST_F(CommandTableITest, EveryCommandMatchesCommandInfo) {
  ReplyPtr r = Call({"COMMAND"});
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  std::size_t seen = 0;
  std::size_t seen_subs = 0;
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* entry = r->element[i];
    std::string name = Str(entry->element[0]);
    const CommandInfo* info = FindCommand(name);
    ASSERT_NE(info, nullptr) << name << " missing from the table";
    CheckInfo(entry, *info, name);
    ++seen;
    const redisReply* subs = entry->element[9];
    for (std::size_t j = 0; j < subs->elements; ++j) {
      std::string full = Str(subs->element[j]->element[0]);
      std::string sub = full.substr(full.find('|') + 1);
      const CommandInfo* s = FindSubcommand(*info, sub);
      ASSERT_NE(s, nullptr) << full << " missing from the table";
      EXPECT_EQ(s->full_name, Upper(full));
      CheckInfo(subs->element[j], *s, full);
      ++seen_subs;
    }
  }
  EXPECT_EQ(seen, AllCommands().size());
  EXPECT_GT(seen_subs, 100u);
}

std::vector<std::string> Split(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    std::size_t sp = s.find(' ');
    std::string a(s.substr(0, sp));
    out.push_back(a == "''" ? std::string() : a);
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp + 1);
  }
  return out;
}

TEST_F(CommandTableITest, GetKeysMatchesExtractKeys) {
  const char* kInvocations[] = {
      "GET k", "SET k v EX 10 GET", "MSET a 1 b 2 c 3", "MGET a b c", "DEL a b c",
      "EXISTS a b", "UNLINK a", "RENAME a b", "COPY a b DB 1 REPLACE", "LMOVE s d LEFT RIGHT",
      "BLMOVE s d LEFT RIGHT 0", "RPOPLPUSH s d", "BRPOPLPUSH s d 0", "BLPOP a b 0",
      "BZPOPMIN a b 0", "SMOVE s d m", "SINTERSTORE d a b", "SDIFF a b c", "SUNIONSTORE d a",
      "BITOP AND d a b c", "BITFIELD k GET u8 0", "BITFIELD_RO k GET u8 0", "PFMERGE d a b",
      "PFCOUNT a b", "OBJECT ENCODING k", "OBJECT FREQ k", "MEMORY USAGE k SAMPLES 5",
      "XINFO STREAM s FULL", "XINFO GROUPS s", "XGROUP CREATE s g $ MKSTREAM",
      "XADD s * f v", "XADD s MAXLEN ~ 10 * f v", "XRANGE s - +", "XACK s g 1-1",
      "XCLAIM s g c 0 1-1", "XAUTOCLAIM s g c 0 0", "XPENDING s g", "XSETID s 1-1",
      "XREAD COUNT 2 STREAMS a b 0 0", "XREAD BLOCK 0 STREAMS a $",
      "XREADGROUP GROUP g c COUNT 1 STREAMS a b > >", "EVAL s 2 a b x y", "EVAL s 0",
      "EVALSHA abc 1 k", "EVAL_RO s 1 k a", "FCALL f 2 a b c", "FCALL_RO f 1 a",
      "ZUNIONSTORE d 2 a b WEIGHTS 1 2", "ZINTERSTORE d 1 a", "ZDIFFSTORE d 2 a b",
      "ZUNION 2 a b WITHSCORES", "ZINTER 3 a b c", "ZDIFF 1 a", "ZINTERCARD 2 a b LIMIT 5",
      "SINTERCARD 3 a b c", "LMPOP 2 a b LEFT COUNT 2", "BLMPOP 0 2 a b RIGHT",
      "ZMPOP 1 z MIN", "BZMPOP 0 2 a b MAX COUNT 3", "ZRANGESTORE d s 0 -1",
      "GEORADIUS k 1 2 3 km STORE d", "GEORADIUS k 1 2 3 km STOREDIST d",
      "GEORADIUS k 1 2 3 km WITHDIST", "GEORADIUSBYMEMBER k m 3 km STORE d",
      "GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 km", "GEOSEARCH s FROMMEMBER m BYRADIUS 1 km",
      "SORT k", "SORT k BY w_* GET o_* STORE d", "SORT k LIMIT 0 1 STORE d",
      "SORT k STORE a STORE b", "SORT_RO k BY x", "MIGRATE h 6379 k 0 1000",
      "MIGRATE h 6379 '' 0 1000 COPY REPLACE KEYS a b c", "LCS a b", "GETEX k PERSIST",
      "SETRANGE k 0 v", "RESTORE k 0 payload", "DUMP k", "TOUCH a b", "WATCH a b",
      "EXPIRE k 10 NX", "TYPE k", "HSET h f v f2 v2", "HGETALL h", "ZADD z 1 a",
      "PUBLISH ch m", "SPUBLISH ch m", "PING", "CLIENT SETNAME x", "CONFIG GET maxmemory",
      "DEBUG OBJECT k", "SSUBSCRIBE a b", "MSETNX a 1 b 2", "LPOS l x RANK 1",
  };
  int compared = 0;
  for (const char* line : kInvocations) {
    std::vector<std::string> args = Split(line);
    std::vector<std::string> getkeys = {"COMMAND", "GETKEYS"};
    getkeys.insert(getkeys.end(), args.begin(), args.end());
    ReplyPtr r = Call(getkeys);
    ASSERT_NE(r, nullptr) << line;
    std::vector<std::string> expected;
    if (r->type == REDIS_REPLY_ARRAY) {
      for (std::size_t i = 0; i < r->elements; ++i) expected.push_back(Str(r->element[i]));
    } else {
      ASSERT_EQ(r->type, REDIS_REPLY_ERROR) << line;  // no keys, or invalid arguments
    }
    std::vector<std::string_view> views(args.begin(), args.end());
    const CommandInfo* info = LookupCommand(views);
    ASSERT_NE(info, nullptr) << line;
    KeyIndices idx;
    ExtractKeys(*info, views, idx);
    std::vector<std::string> got;
    for (std::uint32_t i : idx) got.emplace_back(views[i]);
    EXPECT_EQ(got, expected) << line << (r->type == REDIS_REPLY_ERROR ? " (server: " + Str(r.get()) + ")" : "");
    ++compared;
  }
  EXPECT_GT(compared, 90);
}

}  // namespace
}  // namespace turnout::protocol::resp
