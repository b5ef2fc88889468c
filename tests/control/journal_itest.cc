// The journal through the admin API: entries a previous run journaled are
// served by GET …/journal after a restart, and POST …/repair copies the named
// Redis keys from the side that applied the write to the side that missed it.
// A repair that clears most of the file compacts it, keeping the others.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "proxy/journal_file.h"
#include "routing/journal.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
constexpr char kToken[] = "journal-admin-token-0123456789";

std::string RedisCli(int port, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"redis-cli", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv).out;
}

// A Redis relay route "cache" from the harness' old server to its new one,
// the admin API on `admin`, a file state store.
std::string RedisRelayConfig(int admin, int listen) {
  const auto& b = TestBackends::Get();
  std::ostringstream y;
  y << "admin: {listen: \"127.0.0.1:" << admin << "\", tokens_file: tokens}\nstate_store: {path: state.json}\n"
    << "backends:\n"
    << "  - {name: redis-old, protocol: redis, address: \"127.0.0.1:" << b.redis_old_port << "\"}\n"
    << "  - {name: redis-new, protocol: redis, address: \"127.0.0.1:" << b.redis_new_port << "\"}\n"
    << "routes:\n  - {name: cache, protocol: redis, mode: relay, listen: \"127.0.0.1:" << listen
    << "\", old: redis-old, new: redis-new}\n";
  return y.str();
}

TEST(JournalApiTest, JournaledRedisWritesAreListedAndRepaired) {
  const auto& b = TestBackends::Get();
  const std::string key = "journal:test:" + std::to_string(::getpid());
  // The write reached old (the authoritative side) and missed new.
  RedisCli(b.redis_old_port, {"hset", key, "name", "ada", "lang", "c++"});
  RedisCli(b.redis_old_port, {"pexpire", key, "600000"});
  RedisCli(b.redis_new_port, {"del", key});

  TurnoutProcess t;
  std::ofstream(t.dir() + "/tokens") << kToken << " admin ops\n";
  {
    auto j = proxy::OpenJournalFile(t.dir() + "/turnout-journal.log", {});
    ASSERT_TRUE(j.ok());
    routing::JournalEntry e;
    e.at = absl::Now();
    e.migration_id = "cache_move";
    e.route = "cache";
    e.backend = "redis-new";
    e.session = 7;
    e.kind = routing::JournalKind::kFailed;
    e.statement = "HSET " + key + " name ada lang c++";
    e.targets = {key};
    e.primary_outcome = ":2";
    e.secondary_outcome = "connection refused";
    (*j)->Append(e);
    ASSERT_TRUE((*j)->Flush().ok());
  }
  const int admin = FreePort(), listen = FreePort();
  ASSERT_TRUE(t.Start(RedisRelayConfig(admin, listen), {admin, listen})) << t.Log();
  AdminClient c(admin, kToken);
  ASSERT_EQ(c.Post("/api/v1/migrations", R"({"id":"cache_move","strategy":{"type":"canary","read_percentage":0}})").status, 201);
  // Scoped to this test's key: a repair compares (and copies) every key of
  // the migration's scope, and the harness' Redis is shared with the tests
  // running beside this one (unscoped, it overwrote another test's keys).
  ASSERT_EQ(c.Post("/api/v1/migrations/cache_move/api/keys", R"({"keys":[")" + key + R"("]})").status, 200);

  auto j = c.Get("/api/v1/migrations/cache_move/journal");
  ASSERT_EQ(j.status, 200) << j.body;
  EXPECT_EQ(j.json.at("data").at("pending").as_int64(), 1);
  const auto& entry = j.json.at("data").at("entries").as_array()[0];
  EXPECT_EQ(entry.at("backend").as_string(), "redis-new");
  EXPECT_EQ(entry.at("targets").as_array()[0].as_string(), key);
  EXPECT_EQ(entry.at("secondary").as_string(), "connection refused");
  EXPECT_THAT(std::string(entry.at("statement").as_string()), HasSubstr("HSET"));

  auto repaired = c.Post("/api/v1/migrations/cache_move/repair");
  ASSERT_EQ(repaired.status, 200) << repaired.body;
  EXPECT_EQ(repaired.json.at("data").at("repaired_entries").as_int64(), 1);
  EXPECT_EQ(repaired.json.at("data").at("pending").as_int64(), 0);
  // New now holds the same value, with its TTL.
  EXPECT_EQ(RedisCli(b.redis_new_port, {"hget", key, "lang"}), "c++\n");
  EXPECT_GT(std::stoll(RedisCli(b.redis_new_port, {"pttl", key})), 0);
  EXPECT_EQ(c.Get("/api/v1/migrations/cache_move/journal").json.at("data").at("pending").as_int64(), 0);
  // And the verifier agrees for this key's scope.
  ASSERT_EQ(c.Post("/api/v1/migrations/cache_move/api/journal_keys", "{\"keys\":[\"" + key + "\"]}").status, 200);
  auto v = c.Post("/api/v1/migrations/cache_move/verify");
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_TRUE(v.json.at("data").at("equal").as_bool()) << v.body;
  RedisCli(b.redis_old_port, {"del", key});
  RedisCli(b.redis_new_port, {"del", key});
}

TEST(JournalApiTest, ARepairThatClearsMostEntriesCompactsTheFile) {
  // Issue 14: the journal file was never compacted (11.7 MB).
  const auto& b = TestBackends::Get();
  const std::string key = "journal:compact:" + std::to_string(::getpid());
  RedisCli(b.redis_old_port, {"set", key, "v"});
  RedisCli(b.redis_new_port, {"del", key});

  TurnoutProcess t;
  std::ofstream(t.dir() + "/tokens") << kToken << " admin ops\n";
  const std::string path = t.dir() + "/turnout-journal.log";
  // 12,000 entries of this migration (over the 10,000 repaired that
  // compaction waits for), and every 13th one of another, which stays.
  std::vector<std::uint64_t> others;
  std::uintmax_t size_before = 0;
  {
    auto j = proxy::OpenJournalFile(path, {});
    ASSERT_TRUE(j.ok());
    for (int i = 0; i < 13000; ++i) {
      routing::JournalEntry e;
      e.at = absl::Now();
      e.migration_id = i % 13 == 0 ? "other_move" : "cache_move";
      e.route = "cache";
      e.backend = "redis-new";
      e.kind = routing::JournalKind::kFailed;
      e.statement = "SET " + key + " v";
      e.targets = {key};
      e.secondary_outcome = "connection refused";
      const std::uint64_t seq = (*j)->Append(e);
      if (i % 13 == 0) others.push_back(seq);
    }
    ASSERT_TRUE((*j)->Flush().ok());
    size_before = std::filesystem::file_size(path);
  }
  const int admin = FreePort(), listen = FreePort();
  ASSERT_TRUE(t.Start(RedisRelayConfig(admin, listen), {admin, listen})) << t.Log();
  AdminClient c(admin, kToken);
  ASSERT_EQ(c.Post("/api/v1/migrations", R"({"id":"cache_move","strategy":{"type":"canary","read_percentage":0}})").status, 201);
  // Scoped to this test's key: a repair compares (and copies) every key of
  // the migration's scope, and the harness' Redis is shared with the tests
  // running beside this one (unscoped, it overwrote another test's keys).
  ASSERT_EQ(c.Post("/api/v1/migrations/cache_move/api/keys", R"({"keys":[")" + key + R"("]})").status, 200);
  auto repaired = c.Post("/api/v1/migrations/cache_move/repair");
  ASSERT_EQ(repaired.status, 200) << repaired.body.substr(0, 500);
  EXPECT_EQ(repaired.json.at("data").at("repaired_entries").as_int64(), 13000 - 1000);
  EXPECT_EQ(repaired.json.at("data").at("pending").as_int64(), 0);
  EXPECT_EQ(RedisCli(b.redis_new_port, {"get", key}), "v\n");
  // The repair's flush rewrote the file with the other migration's entries only.
  EXPECT_LT(std::filesystem::file_size(path), size_before / 5);
  // And they read back with their numbers (what the intent record names).
  auto j = proxy::OpenJournalFile(path, {});
  ASSERT_TRUE(j.ok());
  std::vector<std::uint64_t> kept;
  for (const auto& e : (*j)->Pending()) kept.push_back(e.seq);
  EXPECT_EQ(kept, others);
  EXPECT_EQ((*j)->Pending("cache_move").size(), 0u);
  RedisCli(b.redis_old_port, {"del", key});
  RedisCli(b.redis_new_port, {"del", key});
}

}  // namespace
}  // namespace turnout::testing
