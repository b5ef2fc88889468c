// The queue bounds both protocols share (proxy/secondary/queue_limits.h):
// read from the configuration, shadow shed first, an empty queue always
// admits one op.
#include "proxy/secondary/queue_limits.h"

#include <gtest/gtest.h>

namespace turnout::proxy::secondary {
namespace {

TEST(QueueLimitsTest, ComeFromTheConfiguration) {
  routing::Limits l;
  EXPECT_EQ(QueueLimits::Of(l).max_ops, 4096u);
  EXPECT_EQ(QueueLimits::Of(l).max_bytes, 16u << 20);
  EXPECT_EQ(QueueLimits::Of(l).max_shadow_ops, 512u);
  l.secondary_queue_ops = 3;
  l.secondary_queue_bytes = 100;
  l.shadow_queue_ops = 1;
  const QueueLimits q = QueueLimits::Of(l);
  EXPECT_EQ(q.max_ops, 3u);
  EXPECT_EQ(q.max_bytes, 100u);
  EXPECT_EQ(q.max_shadow_ops, 1u);
}

TEST(QueueLimitsTest, BoundOpsAndBytes) {
  const QueueLimits q{.max_ops = 3, .max_bytes = 100, .max_shadow_ops = 1};
  EXPECT_TRUE(q.Admits(false, 2, 50, 0, 50));
  EXPECT_FALSE(q.Admits(false, 3, 0, 0, 1));    // ops
  EXPECT_FALSE(q.Admits(false, 2, 50, 0, 51));  // bytes
}

TEST(QueueLimitsTest, ShadowIsShedFirst) {
  const QueueLimits q{.max_ops = 3, .max_bytes = 100, .max_shadow_ops = 1};
  EXPECT_TRUE(q.Admits(true, 1, 10, 0, 10));
  EXPECT_FALSE(q.Admits(true, 1, 10, 1, 10));  // one shadow already queued
  EXPECT_TRUE(q.Admits(false, 1, 10, 1, 10));  // a dual-write still fits
  const QueueLimits none{.max_ops = 3, .max_bytes = 100, .max_shadow_ops = 0};
  EXPECT_FALSE(none.Admits(true, 0, 0, 0, 1));
}

TEST(QueueLimitsTest, AnEmptyQueueAdmitsOneOpOfAnySize) {
  const QueueLimits q{.max_ops = 3, .max_bytes = 100, .max_shadow_ops = 1};
  EXPECT_TRUE(q.Admits(false, 0, 0, 0, 1000));
  EXPECT_FALSE(q.Admits(false, 1, 1, 0, 1000));
}

}  // namespace
}  // namespace turnout::proxy::secondary
