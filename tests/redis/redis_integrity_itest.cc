// Data integrity of Redis dual-write under load (issue 13, items 6, 7, 8,
// 19): back-pressure instead of shedding, large commands written to both
// sides, only what the authoritative side applied reaches the other one, and
// one per-key order on both sides without stalling a hot key. Against the
// harness' old and new redis-servers (and, for replies a real server cannot
// be made to give, a scripted fake old server). Each test writes under its
// own key prefix and deletes it afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "protocol/resp/request_parser.h"
#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;

// A stand-in for old that answers what a real server cannot be made to
// answer on demand: SET gets -LOADING (the server is loading its dataset),
// INCR gets no reply at all (the connection drops), everything else +OK.
class FakeOld {
 public:
  FakeOld() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~FakeOld() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }

 private:
  void Accept() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    timeval tv{0, 200000};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    protocol::resp::RequestParser parser;
    std::string in;
    char buf[4096];
    while (!stop_) {
      const ssize_t n = ::read(c, buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) continue;  // timeout: look at stop_
      in.append(buf, static_cast<std::size_t>(n));
      bool drop = false;
      while (!drop) {
        if (parser.Parse(in) != protocol::resp::ParseStatus::kComplete) break;
        const auto& cmd = parser.command();
        std::string name(cmd.args[0]);
        for (auto& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        std::string reply = "+OK\r\n";
        if (name == "SET") reply = "-LOADING Redis is loading the dataset in memory\r\n";
        if (name == "PING") reply = "+PONG\r\n";
        if (name == "INCR") drop = true;
        const std::size_t used = cmd.frame_length;
        parser.Reset();
        in.erase(0, used);
        if (!drop) (void)!::write(c, reply.data(), reply.size());
      }
      if (drop) break;
    }
    ::close(c);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> conns_;
};

using RedisIntegrityTest = RedisMigrationTest;

class RedisIntegrityModeTest : public RedisMigrationTest, public ::testing::WithParamInterface<const char*> {
 protected:
  std::string Strategy() const {
    const std::string m = GetParam();
    return m == "sync" ? kSync : m == "async" ? kAsync : "";
  }
  bool Dual() const { return std::string(GetParam()) != "passthrough"; }
};

// Item 6: a pipeline of large values (40 MiB, more than the secondary
// queue's 16 MiB) is applied on both sides: sync waits for its secondary,
// async is slowed before anything is journaled.
TEST_P(RedisIntegrityModeTest, PipelinedLargeValuesAreNeverShedToTheJournal) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = Prefix(std::string("bp-") + GetParam());
  Cleanup(prefix + "*");
  Migrate(Strategy());
  const std::string value(256 * 1024, 'v');
  constexpr int kN = 160;
  RespConn c(port_, 60000);
  std::string batch;
  for (int i = 0; i < kN; ++i) batch += Cmd({"SET", prefix + std::to_string(i), value + std::to_string(i)});
  std::thread writer([&] { c.Send(batch); });
  auto replies = c.Read(kN, 120000);
  writer.join();
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kN));
  for (const auto& r : replies) EXPECT_EQ(r, "+OK\r\n");
  if (Dual()) {
    auto [equal, report] = EventuallyEqual(prefix + "*");
    EXPECT_TRUE(equal) << report;
    EXPECT_EQ(Pending(), 0) << JournalText();
    EXPECT_EQ(admin_.Metric(R"(turnout_dualwrite_total{result="dropped",route="redis"})"), 0);
  }
  Cleanup(prefix + "*");
}

// Item 7: an MSET and an UNLINK of 5,000 keys (each larger than the 64 KiB
// receive buffer) reach both sides.
TEST_P(RedisIntegrityModeTest, CommandsLargerThanTheBufferAreDualWritten) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix(std::string("large-") + GetParam());
  Cleanup(prefix + "*");
  Migrate(Strategy());
  std::vector<std::string> mset = {"MSET"}, unlink = {"UNLINK"};
  for (int i = 0; i < 5000; ++i) {
    const std::string k = prefix + "key-with-some-length-" + std::to_string(i);
    mset.push_back(k);
    mset.push_back("value-" + std::to_string(i));
    unlink.push_back(k);
  }
  ASSERT_GT(Cmd(unlink).size(), 64u * 1024);
  RespConn c(port_, 30000);
  c.Send(Cmd(mset) + Cmd({"SET", prefix + "after", "1"}));
  auto r = c.Read(2, 30000);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], "+OK\r\n");
  EXPECT_EQ(r[1], "+OK\r\n");  // the command behind it in the buffer still ran
  EXPECT_EQ(KeysOn(b.redis_old_port, prefix + "*").size(), 5001u);
  if (Dual()) {
    auto [equal, report] = EventuallyEqual(prefix + "*");
    EXPECT_TRUE(equal) << report;
  }
  c.Send(Cmd(unlink));
  EXPECT_EQ(c.ReadOne(30000), ":5000\r\n");
  EXPECT_EQ(c.Call({"GET", prefix + "after"}), "$1\r\n1\r\n");
  EXPECT_EQ(KeysOn(b.redis_old_port, prefix + "key*").size(), 0u);
  if (Dual()) {
    for (int i = 0; i < 40 && !KeysOn(b.redis_new_port, prefix + "key*").empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    EXPECT_EQ(KeysOn(b.redis_new_port, prefix + "key*").size(), 0u);
    EXPECT_EQ(Pending(), 0) << JournalText();
  }
  Cleanup(prefix + "*");
}

// Item 19: 16 sessions HSET different fields of one key at once: the
// fields are in the same order on both sides (a listpack hash keeps
// insertion order, so HGETALL and DUMP show it), for 20 hot keys in turn.
// Both sides written: sync and async dual-write only.
class RedisIntegrityDualTest : public RedisIntegrityModeTest {};

TEST_P(RedisIntegrityDualTest, ConcurrentWritersOfAHotKeyApplyInOneOrderOnBothSides) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix(std::string("order-") + GetParam());
  Cleanup(prefix + "*");
  Migrate(Strategy());
  constexpr int kSessions = 16, kFields = 8, kKeys = 20;
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int s = 0; s < kSessions; ++s) {
    threads.emplace_back([&, s] {
      RespConn c(port_, 30000);
      for (int k = 0; k < kKeys; ++k) {
        std::string batch;
        for (int f = 0; f < kFields; ++f)
          batch += Cmd({"HSET", prefix + "h" + std::to_string(k), "s" + std::to_string(s) + "f" + std::to_string(f),
                        std::to_string(f)});
        batch += Cmd({"RPUSH", prefix + "l" + std::to_string(k), std::to_string(s)});
        c.Send(batch);
        for (const auto& r : c.Read(kFields + 1, 30000))
          if (r[0] != ':') ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  RespConn old_side(b.redis_old_port), new_side(b.redis_new_port);
  LoggedIn(old_side);
  LoggedIn(new_side);
  for (int k = 0; k < kKeys; ++k) {
    for (const std::string& key : {prefix + "h" + std::to_string(k), prefix + "l" + std::to_string(k)}) {
      const std::string read = key.find(":h") != std::string::npos ? "HGETALL" : "LRANGE";
      auto call = [&](RespConn& c) {
        return read == "HGETALL" ? c.Call({"HGETALL", key}) : c.Call({"LRANGE", key, "0", "-1"});
      };
      std::string o = call(old_side), n = call(new_side);
      for (int i = 0; i < 40 && o != n; ++i) {  // async: settles
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        n = call(new_side);
      }
      EXPECT_EQ(o, n) << key;
      EXPECT_EQ(old_side.Call({"DUMP", key}), new_side.Call({"DUMP", key})) << key;
    }
  }
  EXPECT_EQ(Pending(), 0) << JournalText();
  Cleanup(prefix + "*");
}

// Item 19: a hot key keeps every writer moving: redis-benchmark's HSET on
// one key from 50 connections (under dual-write each write holds the key
// until new applied it) completes without an error, and both sides end
// equal with nothing journaled. How fast is measured in bench/, not here:
// the polling wait this replaced gave p99 227 ms and a 1.1 s maximum on the
// harness, the wake-up 16 ms and 165 ms (printed below, never asserted).
TEST_P(RedisIntegrityModeTest, HotKeyUnderRedisBenchmarkCompletesAndEndsEqual) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = Prefix(std::string("hot-") + GetParam());
  Cleanup(prefix + "*");
  Migrate(Strategy());
  auto r = RunProgram({"redis-benchmark", "-p", std::to_string(port_), "-n", "20000", "-c", "50", "-r", "100000",
                       "HSET", prefix + "myhash", "f__rand_int__", "__rand_int__"},
                      "", {}, 120000);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, ::testing::Not(HasSubstr("ERR")));
  std::string text = r.out;
  for (auto& ch : text)
    if (ch == '\r') ch = '\n';
  const auto at = text.rfind("latency summary");
  ASSERT_NE(at, std::string::npos) << r.out;  // every request answered
  std::printf("%s: %s\n", GetParam(), text.substr(at, 200).c_str());
  if (Dual()) {  // passthrough runs no migration: nothing to compare or journal
    auto [equal, report] = EventuallyEqual(prefix + "*");
    EXPECT_TRUE(equal) << report;
    EXPECT_EQ(Pending(), 0) << JournalText();
  }
  Cleanup(prefix + "*");
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisIntegrityModeTest, ::testing::Values("passthrough", "sync", "async"),
                         [](const auto& p) { return std::string(p.param); });
INSTANTIATE_TEST_SUITE_P(Modes, RedisIntegrityDualTest, ::testing::Values("sync", "async"),
                         [](const auto& p) { return std::string(p.param); });

// Item 8: a write old refused (WRONGTYPE here) is not applied on new.
TEST_F(RedisIntegrityTest, WriteTheAuthoritativeSideRefusedIsNotAppliedOnTheOther) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix("refused");
  Cleanup(prefix + "*");
  Migrate(kSync);
  RespConn old_side(b.redis_old_port), new_side(b.redis_new_port);
  LoggedIn(old_side);
  LoggedIn(new_side);
  EXPECT_EQ(old_side.Call({"SET", prefix + "s", "a string"}), "+OK\r\n");  // on old only
  RespConn c(port_);
  EXPECT_THAT(c.Call({"LPUSH", prefix + "s", "x"}), HasSubstr("WRONGTYPE"));
  EXPECT_THAT(c.Call({"SADD", prefix + "s", "x"}), HasSubstr("WRONGTYPE"));
  EXPECT_EQ(c.Call({"SET", prefix + "ok", "1"}), "+OK\r\n");
  EXPECT_EQ(new_side.Call({"EXISTS", prefix + "s"}), ":0\r\n");
  EXPECT_EQ(new_side.Call({"GET", prefix + "ok"}), "$1\r\n1\r\n");
  EXPECT_EQ(Pending(), 0) << JournalText();
  Cleanup(prefix + "*");
}

// Item 8: -LOADING from old, and a reply old never sent (connection lost):
// neither write reaches new; the lost one is journaled for repair.
TEST_F(RedisIntegrityTest, LoadingAndLostRepliesOfTheAuthoritativeSideAreNotApplied) {
  FakeOld fake;
  Start("127.0.0.1:" + std::to_string(fake.port()));
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix("loading");
  DeleteOn(b.redis_new_port, prefix + "*");
  Migrate(kSync);
  {
    RespConn c(port_);
    EXPECT_THAT(c.Call({"SET", prefix + "a", "1"}), HasSubstr("LOADING"));
    EXPECT_EQ(c.Call({"HSET", prefix + "h", "f", "v"}), "+OK\r\n");  // the fake's "+OK": applied on new too
    const std::string lost = c.Call({"INCR", prefix + "n"});
    EXPECT_THAT(lost, HasSubstr("lost")) << lost;
  }
  RespConn new_side(b.redis_new_port);
  LoggedIn(new_side);
  EXPECT_EQ(new_side.Call({"EXISTS", prefix + "a"}), ":0\r\n");
  EXPECT_EQ(new_side.Call({"EXISTS", prefix + "n"}), ":0\r\n");
  EXPECT_EQ(new_side.Call({"HGET", prefix + "h", "f"}), "$1\r\nv\r\n");
  // The INCR's outcome on old is unknown: journaled (dropped) for repair.
  for (int i = 0; i < 20 && Pending() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string j = JournalText();
  EXPECT_THAT(j, HasSubstr("INCR")) << j;
  EXPECT_THAT(j, ::testing::Not(HasSubstr("\"statement\":\"SET "))) << j;
  DeleteOn(b.redis_new_port, prefix + "*");
}

}  // namespace
}  // namespace turnout::testing
