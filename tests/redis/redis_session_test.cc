// The Redis session's sans-I/O helpers: pub/sub frame peeking, the
// oversized-request walker (fed split at every offset) and password checks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/redis/client_auth.h"
#include "proxy/redis/inflight_queue.h"
#include "proxy/redis/large_request.h"
#include "proxy/redis/pubsub_frame.h"

namespace turnout::proxy::redis {
namespace {

TEST(PubSubPeek, KindsAndCounts) {
  struct Case {
    std::string frame;
    PubSubKind kind;
    bool push;
    std::int64_t count;
  };
  const std::vector<Case> cases = {
      {"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", PubSubKind::kMessage, false, -1},
      {">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$1\r\nx\r\n", PubSubKind::kMessage, true, -1},
      {">3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nx\r\n", PubSubKind::kMessage, true, -1},
      {"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", PubSubKind::kSubscribe, false, 1},
      {">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n", PubSubKind::kUnsubscribe, true, 0},
      {"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:2\r\n", PubSubKind::kUnsubscribe, false, 2},
      {"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n", PubSubKind::kPSubscribe, false, 3},
      {"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n", PubSubKind::kPUnsubscribe, false, 0},
      {"*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n", PubSubKind::kSSubscribe, false, 1},
      {"*3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n", PubSubKind::kSUnsubscribe, false, 0},
      {">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", PubSubKind::kInvalidate, true, -1},
      {"*2\r\n$4\r\npong\r\n$0\r\n\r\n", PubSubKind::kNotPubSub, false, -1},
      {"+OK\r\n", PubSubKind::kNotPubSub, false, -1},
      {"*0\r\n", PubSubKind::kNotPubSub, false, -1},
      {"*2\r\n:1\r\n:2\r\n", PubSubKind::kNotPubSub, false, -1},
      // An LRANGE reply that happens to start with "subscribe" but has 2 elements.
      {"*2\r\n$9\r\nsubscribe\r\n$1\r\na\r\n", PubSubKind::kNotPubSub, false, -1},
  };
  for (const auto& c : cases) {
    PubSubPeek p;
    ASSERT_TRUE(PeekPubSub(c.frame, p)) << c.frame;
    EXPECT_EQ(p.kind, c.kind) << c.frame;
    EXPECT_EQ(p.push, c.push) << c.frame;
    if (IsConfirmation(c.kind)) {
      EXPECT_EQ(p.count, c.count) << c.frame;
    }
  }
}

TEST(PubSubPeek, PrefixesNeedMoreOrDecideEarly) {
  const std::string msg = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
  const std::string conf = "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
  for (std::size_t cut = 0; cut < msg.size(); ++cut) {
    PubSubPeek p;
    if (PeekPubSub(std::string_view(msg).substr(0, cut), p)) {
      EXPECT_EQ(p.kind, PubSubKind::kMessage) << cut;
    }
  }
  // The message kind is known once its first element is complete.
  PubSubPeek p;
  EXPECT_TRUE(PeekPubSub(std::string_view(msg).substr(0, 18), p));
  EXPECT_EQ(p.kind, PubSubKind::kMessage);
  for (std::size_t cut = 0; cut < conf.size(); ++cut) {
    PubSubPeek q;
    EXPECT_FALSE(PeekPubSub(std::string_view(conf).substr(0, cut), q)) << cut;
  }
}

std::span<const std::uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Feeds `input` in chunks that end at `cut` (then at the end), the way the
// session does: unused bytes stay at the front of the next input.
LargeRequestWalker::Status WalkSplit(LargeRequestWalker& w, std::string_view input, std::size_t cut,
                                     std::size_t& total) {
  w.Reset();
  total = 0;
  std::string pending;
  std::size_t fed = 0;
  auto status = LargeRequestWalker::Status::kNeedMore;
  for (std::size_t end : {cut, input.size()}) {
    pending.append(input.substr(fed, end - fed));
    fed = end;
    std::size_t used = 0;
    status = w.Walk(Bytes(pending), used);
    total += used;
    pending.erase(0, used);
    if (status != LargeRequestWalker::Status::kNeedMore) break;
  }
  return status;
}

TEST(LargeRequestWalker, FindsTheEndOfTheCommandAtEverySplit) {
  const std::string cmd = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$20\r\n01234567890123456789\r\n";
  const std::string input = "*0\r\n" + cmd + "*1\r\n$4\r\nPING\r\n";
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    LargeRequestWalker w(1 << 20, 1 << 20);
    std::size_t total = 0;
    EXPECT_EQ(WalkSplit(w, input, cut, total), LargeRequestWalker::Status::kDone) << cut;
    EXPECT_EQ(total, 4 + cmd.size()) << cut;
    EXPECT_EQ(w.argc(), 3);
  }
}

TEST(LargeRequestWalker, CapturesLeadingArgumentsPresentAtFirstWalk) {
  LargeRequestWalker w(1 << 20, 1 << 20);
  w.Reset();
  const std::string head = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$100\r\nabc";
  std::size_t used = 0;
  EXPECT_EQ(w.Walk(Bytes(head), used), LargeRequestWalker::Status::kNeedMore);
  EXPECT_EQ(used, head.size());
  ASSERT_EQ(w.head_args().size(), 2u);
  EXPECT_EQ(w.head_args()[0], "SET");
  EXPECT_EQ(w.head_args()[1], "key");
}

TEST(LargeRequestWalker, Errors) {
  using protocol::resp::CodecError;
  struct Case {
    std::string input;
    CodecError error;
  };
  const std::vector<Case> cases = {
      {"*2\r\n$3\r\nGET\r\nx\r\n", CodecError::kExpectedDollar},
      {"*2\r\n$3\r\nGET\r\n$-2\r\n", CodecError::kInvalidBulkLength},
      {"*2\r\n$3\r\nGET\r\n$2000\r\n", CodecError::kInvalidBulkLength},  // over the limit of 1000
      {"*x\r\n", CodecError::kInvalidMultibulkLength},
      {"GET inline\r\n", CodecError::kTooBigInlineRequest},
  };
  for (const auto& c : cases) {
    LargeRequestWalker w(1000, 100);
    w.Reset();
    std::size_t used = 0;
    EXPECT_EQ(w.Walk(Bytes(c.input), used), LargeRequestWalker::Status::kError) << c.input;
    EXPECT_EQ(w.error(), c.error) << c.input;
  }
}

TEST(ClientAuth, PlainMd5AndScramSecrets) {
  EXPECT_TRUE(PasswordMatches("wonderland", "alice", "wonderland"));
  EXPECT_FALSE(PasswordMatches("wonderland", "alice", "wonderlanD"));
  EXPECT_FALSE(PasswordMatches("wonderland", "alice", ""));
  // md5("hatter" + "madhatter")
  EXPECT_TRUE(PasswordMatches("md56dfaaf564b9b1315b593654dcad069b4", "madhatter", "hatter"));
  EXPECT_FALSE(PasswordMatches("md56dfaaf564b9b1315b593654dcad069b4", "madhatter", "hatteR"));
  EXPECT_FALSE(PasswordMatches("md56dfaaf564b9b1315b593654dcad069b4", "otheruser", "hatter"));
  // A Postgres 15 SCRAM secret for the password "turnout-secret".
  const std::string scram =
      "SCRAM-SHA-256$4096:eojt0NpYP49u+VudKn9r9A==$GPwc1sK/M24gcbeECsWnKXj+I5ssOyqIC7je5EY0MNg=:"
      "zgizns9yW1eNGriwdpQnhqobEbtENq9BlkG7GGz3JYg=";
  EXPECT_TRUE(PasswordMatches(scram, "turnout", "turnout-secret"));
  EXPECT_FALSE(PasswordMatches(scram, "turnout", "turnout-secreT"));
  EXPECT_FALSE(PasswordMatches("SCRAM-SHA-256$garbage", "turnout", "x"));
}

TEST(InflightQueue, WrapsAroundWithoutGrowing) {
  InflightQueue<int> q(4);
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 3; ++i) q.push_back(round * 10 + i);
    EXPECT_EQ(q.front(), round * 10);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(q.front(), round * 10 + i);
      q.pop_front();
    }
    EXPECT_TRUE(q.empty());
  }
  for (int i = 0; i < 4; ++i) q.push_back(i);
  EXPECT_TRUE(q.full());
}

TEST(InflightQueue, GrowsOnlyAsDeepAsTheClientPipelinesKeepingOrder) {
  InflightQueue<int> q(100);
  EXPECT_EQ(q.allocated(), InflightQueue<int>::kInitialSlots);
  // Wrapped around before it grows: the entries keep their order.
  for (int i = 0; i < 5; ++i) q.push_back(i);
  for (int i = 0; i < 5; ++i) q.pop_front();
  int next_in = 100, next_out = 100;
  for (int i = 0; i < 70; ++i) q.push_back(next_in++);
  EXPECT_EQ(q.allocated(), 100u);  // 8, 16, 32, 64, then the window itself
  for (int i = 0; i < 30; ++i) q.push_back(next_in++);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.allocated(), 100u);
  while (!q.empty()) {
    EXPECT_EQ(q.front(), next_out++);
    q.pop_front();
  }
  EXPECT_EQ(next_out, next_in);
  // An idle session's queue stays at its first slots.
  InflightQueue<int> idle(1024);
  idle.push_back(1);
  idle.pop_front();
  EXPECT_EQ(idle.allocated(), InflightQueue<int>::kInitialSlots);
}

}  // namespace
}  // namespace turnout::proxy::redis
