// The op queue both protocols share (proxy/secondary/op_queue.h): the
// admission decision at each bound, numbers that survive trimming, the
// accounting Trim takes back, and shadow work shed by sampling.
#include "proxy/secondary/op_queue.h"

#include <gtest/gtest.h>

#include <string>

namespace turnout::proxy::secondary {
namespace {

struct TestOp : QueuedOp {
  std::string payload;
};

using Queue = OpQueue<TestOp>;

TestOp Op(std::string payload = "", bool shadow = false) {
  TestOp op;
  op.payload = std::move(payload);
  op.shadow = shadow;
  return op;
}

void FinishAndRelease(TestOp& op) {
  op.finished = true;
  op.released = true;
}

TEST(SecondaryOpQueueTest, AdmitsUntilTheOpBoundThenEachKindAsItMust) {
  Queue q({.max_ops = 2, .max_bytes = 1000, .max_shadow_ops = 2});
  EXPECT_EQ(q.Admit(Work::kAsyncWrite, 10), Admission::kAdmit);
  q.Push(Op("a"), 10);
  EXPECT_EQ(q.Admit(Work::kSyncWrite, 10), Admission::kAdmit);
  q.Push(Op("b"), 10);
  EXPECT_EQ(q.Admit(Work::kSyncWrite, 10), Admission::kWait);
  EXPECT_EQ(q.Admit(Work::kAsyncWrite, 10), Admission::kDrop);
  EXPECT_EQ(q.Admit(Work::kShadow, 10), Admission::kShed);
  EXPECT_FALSE(q.HasRoom(0));
}

TEST(SecondaryOpQueueTest, AdmitsUntilTheByteBound) {
  Queue q({.max_ops = 10, .max_bytes = 100, .max_shadow_ops = 10});
  q.Push(Op(), 60);
  EXPECT_EQ(q.Admit(Work::kAsyncWrite, 40), Admission::kAdmit);
  EXPECT_EQ(q.Admit(Work::kAsyncWrite, 41), Admission::kDrop);
  EXPECT_EQ(q.Admit(Work::kSyncWrite, 41), Admission::kWait);
  EXPECT_TRUE(q.HasRoom(40));
  EXPECT_FALSE(q.HasRoom(41));
}

TEST(SecondaryOpQueueTest, AnEmptyQueueAdmitsOneOpOfAnySize) {
  Queue q({.max_ops = 10, .max_bytes = 100, .max_shadow_ops = 10});
  EXPECT_EQ(q.Admit(Work::kSyncWrite, 5000), Admission::kAdmit);
  q.Push(Op(), 5000);
  EXPECT_EQ(q.bytes(), 5000u);
  EXPECT_EQ(q.Admit(Work::kSyncWrite, 1), Admission::kWait);
}

TEST(SecondaryOpQueueTest, ShadowIsShedAtItsOwnBoundsWhileDualWritesStillFit) {
  Queue q({.max_ops = 10, .max_bytes = 1000, .max_shadow_ops = 1, .max_shadow_bytes = 50});
  EXPECT_EQ(q.Admit(Work::kShadow, 10), Admission::kAdmit);  // below half of 1: none; at 0 of 1, admitted
  q.Push(Op("s", true), 10);
  EXPECT_EQ(q.shadow_ops(), 1u);
  EXPECT_EQ(q.Admit(Work::kShadow, 10), Admission::kShed);
  EXPECT_EQ(q.Admit(Work::kAsyncWrite, 10), Admission::kAdmit);

  Queue bytes({.max_ops = 10, .max_bytes = 1000, .max_shadow_ops = 100, .max_shadow_bytes = 50});
  bytes.Push(Op("s", true), 40);
  EXPECT_EQ(bytes.Admit(Work::kShadow, 11), Admission::kShed);  // shadow bytes
  EXPECT_EQ(bytes.Admit(Work::kAsyncWrite, 11), Admission::kAdmit);

  Queue none({.max_ops = 10, .max_bytes = 1000, .max_shadow_ops = 0});
  EXPECT_EQ(none.Admit(Work::kShadow, 1), Admission::kShed);
}

TEST(SecondaryOpQueueTest, NumbersSurviveTrimmingOfFinishedAndReleasedHeads) {
  Queue q;
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(q.Push(Op(std::to_string(i)), 1).seq, static_cast<std::uint64_t>(i));
  EXPECT_EQ(q.base_seq(), 1u);
  EXPECT_EQ(q.end_seq(), 6u);
  // Finished but not released, or released but not finished: kept.
  q.Find(1)->finished = true;
  q.Find(2)->released = true;
  EXPECT_EQ(q.Trim(), 0u);
  q.Find(1)->released = true;
  q.Find(2)->finished = true;
  FinishAndRelease(*q.Find(4));  // behind an unfinished op: kept
  EXPECT_EQ(q.Trim(), 2u);
  EXPECT_EQ(q.base_seq(), 3u);
  EXPECT_EQ(q.Find(1), nullptr);
  EXPECT_EQ(q.Find(2), nullptr);
  ASSERT_NE(q.Find(3), nullptr);
  EXPECT_EQ(q.Find(3)->payload, "3");
  EXPECT_EQ(q.At(4).payload, "4");
  EXPECT_EQ(q.Find(5)->payload, "5");
  EXPECT_EQ(q.Find(6), nullptr);
  EXPECT_EQ(q.Emplace(false).seq, 6u);  // numbering goes on
  FinishAndRelease(*q.Find(3));
  EXPECT_EQ(q.Trim(), 2u);  // 3 and 4
  EXPECT_EQ(q.front().payload, "5");
  EXPECT_EQ(q.size(), 2u);
}

TEST(SecondaryOpQueueTest, TrimTakesBackWhatEachOpWasCountedFor) {
  Queue q({.max_ops = 10, .max_bytes = 100, .max_shadow_ops = 10});
  TestOp& w = q.Push(Op("write"), 30);
  TestOp& s = q.Emplace(true);
  q.Grow(s, 20);
  q.Grow(w, 5);  // a block that gained its EXEC
  q.Push(Op("later"), 10);
  EXPECT_EQ(q.bytes(), 65u);
  EXPECT_EQ(q.shadow_ops(), 1u);
  EXPECT_EQ(q.shadow_bytes(), 20u);
  w.payload = "ROLLBACK, shorter or longer than what was counted";
  FinishAndRelease(q.At(1));
  FinishAndRelease(q.At(2));
  EXPECT_EQ(q.Trim(), 2u);
  EXPECT_EQ(q.bytes(), 10u);
  EXPECT_EQ(q.shadow_ops(), 0u);
  EXPECT_EQ(q.shadow_bytes(), 0u);
  FinishAndRelease(q.At(3));
  q.Trim();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_EQ(q.Admit(Work::kSyncWrite, 100), Admission::kAdmit);
}

// Shadow ops admitted at each fill level of a bound of 100 over many draws:
// all below half, then a share falling linearly to none at the bound.
TEST(SecondaryOpQueueTest, ShadowIsSampledAsItFillsNotShedAllAtOnce) {
  ShadowSampler sampler(42);
  constexpr int kDraws = 20000;
  auto admitted = [&](std::size_t queued) {
    int n = 0;
    for (int i = 0; i < kDraws; ++i) n += sampler.Admits(queued, 100) ? 1 : 0;
    return n;
  };
  EXPECT_EQ(admitted(0), kDraws);
  EXPECT_EQ(admitted(49), kDraws);
  EXPECT_EQ(admitted(50), kDraws);  // (100 - 50) / 50
  const int at60 = admitted(60);    // 40 / 50 = 0.8
  const int at75 = admitted(75);    // 0.5
  const int at99 = admitted(99);    // 0.02
  EXPECT_NEAR(at60, kDraws * 0.8, kDraws * 0.03);
  EXPECT_NEAR(at75, kDraws * 0.5, kDraws * 0.03);
  EXPECT_NEAR(at99, kDraws * 0.02, kDraws * 0.01);
  EXPECT_GT(at99, 0);
  EXPECT_EQ(admitted(100), 0);
  EXPECT_EQ(admitted(150), 0);
}

// Through the queue: a client faster than its secondary keeps finding the
// shadow queue past half full, yet shadow ops keep being admitted.
TEST(SecondaryOpQueueTest, AQueueKeptFullStillAdmitsSomeShadowWork) {
  Queue q({.max_ops = 1000, .max_bytes = 1u << 20, .max_shadow_ops = 8}, 7);
  int admitted = 0, shed = 0;
  for (int i = 0; i < 4000; ++i) {
    if (q.Admit(Work::kShadow, 10) == Admission::kAdmit) {
      q.Push(Op("s", true), 10);
      ++admitted;
    } else {
      ++shed;
    }
    // The secondary answers one op for every two the client sends.
    if (i % 2 == 1 && !q.empty()) {
      FinishAndRelease(q.front());
      q.Trim();
    }
    EXPECT_LT(q.shadow_ops(), 9u);
  }
  EXPECT_GE(q.shadow_ops(), 4u);  // kept past half ...
  EXPECT_GT(shed, 0);             // ... by shedding some ...
  EXPECT_GT(admitted, 1500);      // ... and admitting about as many as are answered
}

}  // namespace
}  // namespace turnout::proxy::secondary
