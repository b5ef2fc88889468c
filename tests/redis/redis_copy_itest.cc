// Issue 13 item 17: the DUMP/PTTL copies of keys that non-deterministic
// writes touched run on turnout's own connection, named `turnout`, never on
// the application's (its SLOWLOG entries, commandstats and CLIENT LIST stay
// its own), and the copies stay exact: pipelined writes of the same keys
// right behind the non-deterministic ones (a list popped by a script, then
// pushed to) end equal on both sides, compared key by key and value by value.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;

// One command's worth of arguments of a SLOWLOG entry, with the client name
// that ran it.
struct SlowEntry {
  std::vector<std::string> args;
  std::string client_name;
};

// Reads one RESP bulk string or simple string at `p`.
std::string ReadString(const std::string& r, std::size_t& p) {
  if (r[p] == '+' || r[p] == ':') {
    const std::size_t e = r.find("\r\n", p);
    std::string s = r.substr(p + 1, e - p - 1);
    p = e + 2;
    return s;
  }
  const std::size_t e = r.find("\r\n", p);
  const long n = std::stol(r.substr(p + 1, e - p - 1));
  p = e + 2;
  if (n < 0) return "";
  std::string s = r.substr(p, static_cast<std::size_t>(n));
  p += static_cast<std::size_t>(n) + 2;
  return s;
}

long ReadCount(const std::string& r, std::size_t& p) {
  const std::size_t e = r.find("\r\n", p);
  const long n = std::stol(r.substr(p + 1, e - p - 1));
  p = e + 2;
  return n;
}

// SLOWLOG GET's reply (RESP2): [id, time, micros, [args], addr, name] each.
std::vector<SlowEntry> ParseSlowlog(const std::string& r) {
  std::vector<SlowEntry> out;
  std::size_t p = 0;
  const long entries = ReadCount(r, p);
  for (long i = 0; i < entries; ++i) {
    ReadCount(r, p);  // 6
    ReadString(r, p);
    ReadString(r, p);
    ReadString(r, p);
    SlowEntry e;
    const long nargs = ReadCount(r, p);
    for (long j = 0; j < nargs; ++j) e.args.push_back(ReadString(r, p));
    ReadString(r, p);
    e.client_name = ReadString(r, p);
    out.push_back(std::move(e));
  }
  return out;
}

class RedisCopyTest : public RedisMigrationTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(RedisCopyTest, CopiesRunOnTurnoutsOwnConnectionAndStayExact) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Migrate(std::string(GetParam()) == "sync" ? kSync : kAsync);
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix(std::string("copy-") + GetParam());
  RespConn admin(b.redis_old_port);
  LoggedIn(admin);
  // Every command on old goes to its SLOWLOG, with the client's name.
  const std::string before_threshold = admin.Call({"CONFIG", "GET", "slowlog-log-slower-than"});
  const std::string before_len = admin.Call({"CONFIG", "GET", "slowlog-max-len"});
  EXPECT_EQ(admin.Call({"CONFIG", "SET", "slowlog-max-len", "1000000"}), "+OK\r\n");
  EXPECT_EQ(admin.Call({"CONFIG", "SET", "slowlog-log-slower-than", "0"}), "+OK\r\n");
  EXPECT_EQ(admin.Call({"SLOWLOG", "RESET"}), "+OK\r\n");

  const std::string pop_script = "return redis.call('LPOP', KEYS[1])";
  constexpr int kClients = 3;
  constexpr int kRounds = 40;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      RespConn conn(port_, 20000);
      EXPECT_EQ(conn.Call({"CLIENT", "SETNAME", "copy-app"}), "+OK\r\n");
      // Shared keys across clients (key order) and the client's own.
      const std::string s = prefix + "set", l = prefix + "list", f = prefix + "float";
      const std::string h = prefix + "hash", own = prefix + "own:" + std::to_string(c);
      for (int i = 0; i < kRounds; ++i) {
        const std::string v = std::to_string(c) + ":" + std::to_string(i);
        std::string batch = Cmd({"SADD", s, v + "a", v + "b", v + "c"}) + Cmd({"SPOP", s}) +
                            Cmd({"SADD", s, v + "d"}) + Cmd({"SPOP", s, "2"}) +
                            Cmd({"RPUSH", l, v + "1", v + "2"}) + Cmd({"EVAL", pop_script, "1", l}) +
                            Cmd({"RPUSH", l, v + "3"}) + Cmd({"INCRBYFLOAT", f, "1.5"}) +
                            Cmd({"INCRBYFLOAT", f, "0.25"}) + Cmd({"HINCRBYFLOAT", h, "x", "0.1"}) +
                            Cmd({"HSET", h, "y", v}) + Cmd({"MULTI"}) + Cmd({"RPUSH", own, v, v + "y"}) +
                            Cmd({"EVAL", pop_script, "1", own}) + Cmd({"SPOP", s}) + Cmd({"EXEC"}) +
                            Cmd({"RPUSH", own, v + "x"}) + Cmd({"PEXPIRE", own, "600000"});
        conn.Send(batch);
        const auto replies = conn.Read(18, 20000);
        ASSERT_EQ(replies.size(), 18u);
        for (const auto& r : replies) EXPECT_NE(r[0], '-') << r;
      }
    });
  }
  for (auto& t : clients) t.join();

  // Both sides hold the same keys and values.
  const auto [equal, report] = EventuallyEqual(prefix + "*");
  EXPECT_TRUE(equal) << report;
  // While a client is connected, CLIENT LIST on old shows its copy
  // connection by name, and the client's own by the client's.
  {
    RespConn conn(port_);
    EXPECT_EQ(conn.Call({"CLIENT", "SETNAME", "copy-app"}), "+OK\r\n");
    EXPECT_THAT(conn.Call({"INCRBYFLOAT", prefix + "float", "1"}), ::testing::StartsWith("$"));
    // The copy is read after the reply (async: maybe a little later).
    std::string list = admin.Call({"CLIENT", "LIST"});
    for (int i = 0; i < 50 && list.find("name=turnout ") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      list = admin.Call({"CLIENT", "LIST"});
    }
    EXPECT_THAT(list, HasSubstr("name=turnout "));
    // The application's connection last ran its own command, not a PTTL.
    const std::size_t app = list.find("name=copy-app ");
    ASSERT_NE(app, std::string::npos) << list;
    const std::string app_line = list.substr(app, list.find('\n', app) - app);
    EXPECT_THAT(app_line, HasSubstr("cmd=incrbyfloat ")) << app_line;
  }

  // The copies' DUMPs ran on the connection named turnout, none on the
  // application's; the application's own commands are there under its name.
  const std::string log = admin.Call({"SLOWLOG", "GET", "-1"}, 20000);
  EXPECT_EQ(admin.Call({"CONFIG", "SET", "slowlog-log-slower-than", "10000"}), "+OK\r\n");
  const auto entries = ParseSlowlog(log);
  int dumps_by_turnout = 0, spops_by_app = 0;
  for (const auto& e : entries) {
    if (e.args.empty()) continue;
    const bool ours = e.args.size() > 1 && e.args[1].rfind(prefix, 0) == 0;
    if (!ours) continue;
    // (compare_keys.py reads TTLs on a connection of its own, unnamed.)
    if (e.args[0] == "DUMP") {
      EXPECT_EQ(e.client_name, "turnout") << e.args[1];
    }
    if (e.args[0] == "DUMP" || e.args[0] == "PTTL") {
      EXPECT_NE(e.client_name, "copy-app") << e.args[0];
    }
    if (e.args[0] == "DUMP" && e.client_name == "turnout") ++dumps_by_turnout;
    if (e.args[0] == "SPOP" && e.client_name == "copy-app") ++spops_by_app;
  }
  EXPECT_GE(dumps_by_turnout, kClients * kRounds);
  EXPECT_GE(spops_by_app, kClients * kRounds);

  auto value_of = [](const std::string& config_get) {
    // *2 $n name $m value
    std::size_t p = 0;
    ReadCount(config_get, p);
    ReadString(config_get, p);
    return ReadString(config_get, p);
  };
  admin.Call({"CONFIG", "SET", "slowlog-log-slower-than", value_of(before_threshold)});
  admin.Call({"CONFIG", "SET", "slowlog-max-len", value_of(before_len)});
  admin.Call({"SLOWLOG", "RESET"});
  EXPECT_EQ(Pending(), 0) << JournalText();
  Cleanup(prefix + "*");
}

// A script that writes and then fails keeps its writes on old (Redis does
// not roll a script back): its keys are copied all the same, so new holds
// what old holds. The client sees old's error.
TEST_P(RedisCopyTest, AScriptThatWritesAndThenFailsIsCopied) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Migrate(std::string(GetParam()) == "sync" ? kSync : kAsync);
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = Prefix(std::string("failing-script-") + GetParam());
  const std::string script =
      "redis.call('RPUSH', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); "
      "return redis.call('INCR', KEYS[3])";
  RespConn conn(port_);
  const std::string not_a_number = prefix + "text";
  EXPECT_EQ(conn.Call({"SET", not_a_number, "abc"}), "+OK\r\n");
  for (int i = 0; i < 20; ++i) {
    const std::string reply =
        conn.Call({"EVAL", script, "3", prefix + "list", prefix + "last", not_a_number, std::to_string(i)});
    EXPECT_THAT(reply, ::testing::StartsWith("-")) << reply;
  }
  const auto [equal, report] = EventuallyEqual(prefix + "*");
  EXPECT_TRUE(equal) << report;
  RespConn old_side(TestBackends::Get().redis_old_port);
  LoggedIn(old_side);
  EXPECT_EQ(old_side.Call({"LLEN", prefix + "list"}), ":20\r\n");  // the writes did happen on old
  EXPECT_EQ(Pending(), 0) << JournalText();
  Cleanup(prefix + "*");
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisCopyTest, ::testing::Values("sync", "async"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace turnout::testing
