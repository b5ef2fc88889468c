// Sans-I/O pieces of the Redis session's secondary work: reply capture and
// comparison, rendering for the journal and shadow samples, DUMP/PTTL →
// RESTORE copies, scratch-prefix key rewrites, and the process-wide
// back-off of backends that are down.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/resp/command_table.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/secondary/backend_health.h"
#include "proxy/secondary/key_order.h"
#include "proxy/redis/secondary_work.h"

namespace turnout::proxy::redis {
namespace {

namespace resp = protocol::resp;
using Mismatch = RouteRuntime::ShadowMismatch;

CapturedReply Cap(std::string_view frame, std::size_t cap = 1 << 20) {
  CapturedReply c;
  c.Set(frame, cap);
  return c;
}

TEST(CapturedReply, KeepsBytesUpToTheCapAndHashesEverything) {
  CapturedReply whole = Cap("$5\r\nhello\r\n");
  EXPECT_FALSE(whole.truncated());
  EXPECT_FALSE(whole.is_error());
  EXPECT_EQ(whole.bytes(), "$5\r\nhello\r\n");
  // The same bytes in pieces, with a small cap: same hash and length.
  CapturedReply pieces;
  pieces.Append("$5\r\nhe", 4);
  pieces.Append("llo\r\n", 4);
  EXPECT_TRUE(pieces.truncated());
  EXPECT_EQ(pieces.bytes(), "$5\r\n");
  EXPECT_EQ(pieces.hash(), whole.hash());
  EXPECT_EQ(pieces.length(), whole.length());
  EXPECT_TRUE(Cap("-ERR x\r\n").is_error());
  EXPECT_TRUE(Cap("!3\r\nERR\r\n").is_error());
}

TEST(CompareCaptured, Table) {
  struct Case {
    const char* primary;
    const char* secondary;
    CompareMode mode;
    std::optional<Mismatch> want;
  };
  const std::vector<Case> cases = {
      {"+OK\r\n", "+OK\r\n", CompareMode::kFull, std::nullopt},
      {":1\r\n", ":101\r\n", CompareMode::kFull, Mismatch::kValue},
      {":1\r\n", "-WRONGTYPE x\r\n", CompareMode::kFull, Mismatch::kError},
      {"-ERR a\r\n", "-ERR b\r\n", CompareMode::kFull, Mismatch::kError},
      {"-ERR a\r\n", "-ERR a\r\n", CompareMode::kFull, std::nullopt},
      {"$1\r\n1\r\n", ":1\r\n", CompareMode::kFull, Mismatch::kType},
      {"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "*1\r\n$1\r\na\r\n", CompareMode::kFull, Mismatch::kLength},
      {"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "*2\r\n$1\r\nb\r\n$1\r\na\r\n", CompareMode::kFull, Mismatch::kValue},
      {"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "*2\r\n$1\r\nb\r\n$1\r\na\r\n", CompareMode::kUnordered, std::nullopt},
      // RESP3 sets compare as sets whatever the mode; nulls are one null.
      {"~2\r\n+a\r\n+b\r\n", "~2\r\n+b\r\n+a\r\n", CompareMode::kFull, std::nullopt},
      {"$-1\r\n", "_\r\n", CompareMode::kFull, std::nullopt},
      // Shadow writes on scratch keys: outcome and type only.
      {":5\r\n", ":1\r\n", CompareMode::kOutcomeOnly, std::nullopt},
      {"$3\r\nold\r\n", "$-1\r\n", CompareMode::kOutcomeOnly, std::nullopt},
      {":5\r\n", "-ERR x\r\n", CompareMode::kOutcomeOnly, Mismatch::kError},
      {":5\r\n", "+OK\r\n", CompareMode::kOutcomeOnly, Mismatch::kType},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(CompareCaptured(Cap(c.primary), Cap(c.secondary), c.mode), c.want) << c.primary << " vs " << c.secondary;
  }
}

TEST(CompareCaptured, TruncatedRepliesCompareByHashAndLength) {
  const std::string big_a = "$20\r\naaaaaaaaaaaaaaaaaaaa\r\n";
  const std::string big_b = "$20\r\naaaaaaaaaaaaaaaaaaab\r\n";
  const std::string big_c = "$21\r\naaaaaaaaaaaaaaaaaaaaa\r\n";
  EXPECT_EQ(CompareCaptured(Cap(big_a, 8), Cap(big_a, 8), CompareMode::kFull), std::nullopt);
  EXPECT_EQ(CompareCaptured(Cap(big_a, 8), Cap(big_b, 8), CompareMode::kFull), Mismatch::kValue);
  EXPECT_EQ(CompareCaptured(Cap(big_a, 8), Cap(big_c, 8), CompareMode::kFull), Mismatch::kLength);
  // Unordered large replies cannot be judged by bytes: not a mismatch.
  EXPECT_EQ(CompareCaptured(Cap(big_a, 8), Cap(big_b, 8), CompareMode::kUnordered), std::nullopt);
}

TEST(CompareExec, ComparesTheWritesTheSecondaryRan) {
  // Primary block: GET (read, not sent), INCR, SPOP (copied), SET.
  const std::string primary = "*4\r\n$1\r\nx\r\n:2\r\n$1\r\nm\r\n+OK\r\n";
  const std::uint32_t positions[] = {1, 3};
  EXPECT_EQ(CompareExec(Cap(primary), Cap("*3\r\n:2\r\n+OK\r\n+OK\r\n"), positions, 1), std::nullopt);
  EXPECT_EQ(CompareExec(Cap(primary), Cap("*3\r\n:3\r\n+OK\r\n+OK\r\n"), positions, 1), Mismatch::kValue);
  EXPECT_EQ(CompareExec(Cap(primary), Cap("*3\r\n:2\r\n+OK\r\n-ERR bad payload\r\n"), positions, 1),
            Mismatch::kError);
  EXPECT_EQ(CompareExec(Cap(primary), Cap("*2\r\n:2\r\n+OK\r\n"), positions, 1), Mismatch::kLength);
  EXPECT_EQ(CompareExec(Cap(primary), Cap("-EXECABORT x\r\n"), positions, 1), Mismatch::kError);
}

TEST(CompareExec, ASelectInTheBlockIsComparedLikeAWrite) {
  // Primary block: SELECT 3 (sent), GET (read), SET (sent).
  const std::string primary = "*3\r\n+OK\r\n$-1\r\n+OK\r\n";
  const std::uint32_t positions[] = {0, 2};
  EXPECT_EQ(CompareExec(Cap(primary), Cap("*2\r\n+OK\r\n+OK\r\n"), positions), std::nullopt);
  EXPECT_EQ(CompareExec(Cap(primary), Cap("*2\r\n-ERR DB index is out of range\r\n+OK\r\n"), positions),
            Mismatch::kError);
}

TEST(DbAfterExec, TheLastSelectThatRanWins) {
  const BlockSelect selects[] = {{0, 3}, {2, 5}};
  EXPECT_EQ(DbAfterExec("*3\r\n+OK\r\n:1\r\n+OK\r\n", selects, 0), 5);
  // SELECT 5 failed (fewer databases): the connection stays in 3.
  EXPECT_EQ(DbAfterExec("*3\r\n+OK\r\n:1\r\n-ERR DB index is out of range\r\n", selects, 0), 3);
  // WATCH abort (RESP2 and RESP3 nil), EXECABORT: nothing ran.
  EXPECT_EQ(DbAfterExec("*-1\r\n", selects, 1), 1);
  EXPECT_EQ(DbAfterExec("_\r\n", selects, 1), 1);
  EXPECT_EQ(DbAfterExec("-EXECABORT Transaction discarded because of previous errors.\r\n", selects, 1), 1);
  // Not a valid index: fails at EXEC whatever the reply says.
  const BlockSelect invalid[] = {{0, 4}, {1, -1}};
  EXPECT_EQ(DbAfterExec("*2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n", invalid, 0), 4);
  // Only the tail of a streamed reply: a committed array, valid SELECTs ran.
  EXPECT_EQ(DbAfterExec("\r\n", selects, 0, true), 5);
  EXPECT_EQ(DbAfterExec("*0\r\n", {}, 2), 2);
}

TEST(Render, ArgsRepliesAndFrames) {
  const std::vector<std::string_view> args = {"SET", "user:1", "two words", std::string_view("a\0b", 3), ""};
  EXPECT_EQ(RenderArgs(args), "SET user:1 \"two words\" \"a\\x00b\" \"\"");
  EXPECT_EQ(RenderArgs(args, 8), "SET user...");
  std::string frame;
  resp::AppendCommand(frame, {"INCR", "ctr"});
  EXPECT_EQ(RenderCommandFrame(frame), "INCR ctr");
  EXPECT_EQ(RenderReply(std::string_view("+OK\r\n")), "OK");
  EXPECT_EQ(RenderReply(std::string_view(":101\r\n")), "(integer) 101");
  EXPECT_EQ(RenderReply(std::string_view("$-1\r\n")), "(nil)");
  EXPECT_EQ(RenderReply(std::string_view("-WRONGTYPE Operation\r\n")), "(error) WRONGTYPE Operation");
  EXPECT_EQ(RenderReply(std::string_view("$9\r\nold value\r\n")), "\"old value\"");
  EXPECT_EQ(RenderReply(std::string_view("*2\r\n$1\r\na\r\n:2\r\n")), "[1) \"a\", 2) (integer) 2]");
  EXPECT_EQ(RenderReply(std::string_view("*0\r\n")), "(empty array)");
  CapturedReply truncated;
  truncated.Append("$20\r\naaaa", 6);
  truncated.Append("aaaaaaaaaaaaaaaa\r\n", 6);
  EXPECT_EQ(RenderReply(truncated), "\"$20\\r\\na\"... (27 bytes)");
}

TEST(AppendCopyCommand, RestoreWithTtlOrDelete) {
  std::string wire, error;
  ASSERT_TRUE(AppendCopyCommand("k", "$7\r\npayload\r\n", ":1500\r\n", wire, error)) << error;
  std::string want;
  resp::AppendCommand(want, {"RESTORE", "k", "1500", "payload", "REPLACE"});
  EXPECT_EQ(wire, want);
  wire.clear();
  ASSERT_TRUE(AppendCopyCommand("k", "$7\r\npayload\r\n", ":-1\r\n", wire, error));
  want.clear();
  resp::AppendCommand(want, {"RESTORE", "k", "0", "payload", "REPLACE"});
  EXPECT_EQ(wire, want);
  // Gone on the authoritative side: gone on the other.
  wire.clear();
  ASSERT_TRUE(AppendCopyCommand("k", "$-1\r\n", ":-2\r\n", wire, error));
  want.clear();
  resp::AppendCommand(want, {"DEL", "k"});
  EXPECT_EQ(wire, want);
  wire.clear();
  EXPECT_FALSE(AppendCopyCommand("k", "-NOPERM no\r\n", ":1\r\n", wire, error));
  EXPECT_NE(error.find("NOPERM"), std::string::npos);
  EXPECT_TRUE(wire.empty());
}

std::vector<std::string> ArgsOf(const std::string& wire) {
  const auto views = ArgsOfFrame(wire);
  return {views.begin(), views.end()};
}

TEST(RewriteKeysUnderPrefix, EveryKeyOrNothing) {
  auto rewrite = [](std::vector<std::string_view> args) {
    const auto* info = resp::LookupCommand(args);
    EXPECT_NE(info, nullptr);
    return RewriteKeysUnderPrefix(*info, args, "scratch:");
  };
  auto set = rewrite({"SET", "k", "v", "EX", "10"});
  ASSERT_TRUE(set);
  EXPECT_EQ(ArgsOf(*set), (std::vector<std::string>{"SET", "scratch:k", "v", "EX", "10"}));
  auto mset = rewrite({"MSET", "a", "1", "b", "2"});
  ASSERT_TRUE(mset);
  EXPECT_EQ(ArgsOf(*mset), (std::vector<std::string>{"MSET", "scratch:a", "1", "scratch:b", "2"}));
  auto zunion = rewrite({"ZUNIONSTORE", "dst", "2", "s1", "s2", "WEIGHTS", "1", "2"});
  ASSERT_TRUE(zunion);
  EXPECT_EQ(ArgsOf(*zunion),
            (std::vector<std::string>{"ZUNIONSTORE", "scratch:dst", "2", "scratch:s1", "scratch:s2", "WEIGHTS", "1", "2"}));
  // Keys hidden in patterns or in other arguments: not shadowed.
  EXPECT_FALSE(rewrite({"SORT", "k", "BY", "w_*", "STORE", "dst"}));
  EXPECT_FALSE(rewrite({"MIGRATE", "h", "1", "", "0", "10", "KEYS", "a"}));
  // No keys at all: nothing to rewrite.
  EXPECT_FALSE(rewrite({"FLUSHDB"}));
}

TEST(KeysOf, DistinctKeysInOrder) {
  const std::vector<std::string_view> args = {"MSET", "a", "1", "b", "2", "a", "3"};
  const auto* info = resp::LookupCommand(args);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(KeysOf(*info, args), (std::vector<std::string>{"a", "b"}));
  const std::vector<std::string_view> ping = {"PING"};
  EXPECT_TRUE(KeysOf(*resp::LookupCommand(ping), ping).empty());
}

TEST(CommandTable, NonDeterministicWritesTheSessionCopies) {
  // The session relies on these judgements of the command table.
  for (const char* name : {"SPOP", "INCRBYFLOAT", "HINCRBYFLOAT", "XADD", "EVAL", "EVALSHA", "FCALL", "BLPOP", "BLMOVE",
                           "BZPOPMIN"}) {
    const auto* info = resp::FindCommand(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_FALSE(info->deterministic) << name;
    EXPECT_TRUE(info->is_write) << name;
  }
  for (const char* name : {"SET", "INCR", "LPUSH", "SADD", "HSET", "LMOVE", "RESTORE"}) {
    const auto* info = resp::FindCommand(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_TRUE(info->deterministic) << name;
  }
  // Reads that are never shadow-compared.
  EXPECT_FALSE(resp::FindCommand("SRANDMEMBER")->deterministic);
  EXPECT_TRUE(resp::FindCommand("SCAN")->has(resp::cmd_flag::kNondeterministicOutput));
  EXPECT_TRUE(resp::FindCommand("SMEMBERS")->has(resp::cmd_flag::kNondeterministicOutputOrder));
}

TEST(BackendHealth, BacksOffAndLetsOneCallerRetry) {
  secondary::BackendHealth h;
  const std::string name = "health-test-backend";
  const auto t0 = secondary::BackendHealth::Clock::now();
  EXPECT_TRUE(h.MayTry(name, t0));
  EXPECT_FALSE(h.IsDown(name, t0));
  h.ReportFailure(name, t0);
  EXPECT_TRUE(h.IsDown(name, t0));
  EXPECT_FALSE(h.MayTry(name, t0 + std::chrono::milliseconds(100)));
  const auto t1 = t0 + secondary::BackendHealth::kFirstBackoff;
  EXPECT_TRUE(h.MayTry(name, t1));    // one caller gets the attempt...
  EXPECT_FALSE(h.MayTry(name, t1));   // ...the others wait for its verdict
  h.ReportFailure(name, t1);          // back-off doubles
  EXPECT_TRUE(h.IsDown(name, t1 + secondary::BackendHealth::kFirstBackoff));
  EXPECT_FALSE(h.IsDown(name, t1 + 2 * secondary::BackendHealth::kFirstBackoff));
  h.ReportSuccess(name);
  EXPECT_FALSE(h.IsDown(name, t1));
  EXPECT_TRUE(h.MayTry(name, t1));
}

TEST(KeyOrder, ReentrantPerOwnerAllOrNothing) {
  secondary::KeyOrder order(routing::KeyStripes::Global());
  secondary::KeyOrder::Stripes a, ab, b;
  secondary::KeyOrder::AddStripe("key-order-test:a", a);
  secondary::KeyOrder::AddStripe("key-order-test:a", ab);
  secondary::KeyOrder::AddStripe("key-order-test:b", ab);
  secondary::KeyOrder::AddStripe("key-order-test:a", ab);  // duplicates collapse
  secondary::KeyOrder::AddStripe("key-order-test:b", b);
  ASSERT_EQ(ab.size(), 2u);
  EXPECT_TRUE(std::is_sorted(ab.begin(), ab.end()));
  const std::uint64_t s1 = 1001, s2 = 1002;
  ASSERT_TRUE(order.TryAcquire(a, s1));
  EXPECT_TRUE(order.TryAcquire(a, s1));    // the same session's next write: no wait
  EXPECT_TRUE(order.TryAcquire(b, s1));
  order.Release(b, s1);
  EXPECT_FALSE(order.TryAcquire(ab, s2));  // a is held: nothing taken...
  EXPECT_TRUE(order.TryAcquire(b, s2));    // ...so b is still free
  order.Release(b, s2);
  // s2 waits for a now: s1's next write to a waits too (no starvation).
  EXPECT_FALSE(order.TryAcquire(a, s1));
  order.Release(a, s1);
  EXPECT_FALSE(order.TryAcquire(a, s2));   // depth 1 left
  order.Release(a, s2);                    // not the owner: no effect
  order.Release(a, s1);                    // free now, still wanted by s2
  EXPECT_TRUE(order.TryAcquire(ab, s2));   // whoever comes first takes it
  EXPECT_TRUE(order.TryAcquire(ab, s2));
  order.Release(ab, s2);
  order.Release(ab, s2);
  EXPECT_TRUE(order.TryAcquire(ab, s1));
  order.Release(ab, s1);
  EXPECT_TRUE(order.TryAcquire(ab, s2));
  order.Release(ab, s2);
}

}  // namespace
}  // namespace turnout::proxy::redis
