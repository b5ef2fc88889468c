// The meeting point of sessions waiting for new to apply their commits and
// the feeder and applier that report the change stream's position
// (routing/stream_positions.h).

#include "routing/stream_positions.h"

#include <vector>

#include "gtest/gtest.h"

namespace turnout::routing {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1705284000);
const absl::Time kLive = kNow + absl::Seconds(3);

struct CountingWaiter final : StreamPosition::Waiter {
  int woken = 0;
  void Wake() noexcept override { ++woken; }
};

TEST(StreamPositionTest, NotLiveUntilTheStreamReports) {
  StreamPosition p;
  CountingWaiter w;
  const auto t = p.RequestSample();
  EXPECT_EQ(p.Wait(t, &w, kNow), StreamPosition::WaitState::kNotLive);
  p.Applied(100, kLive);
  EXPECT_EQ(p.Wait(t, &w, kNow), StreamPosition::WaitState::kWaiting);
  // Reports stop: past the last promise the stream is not waited for.
  p.Cancel(&w);
  EXPECT_EQ(p.Wait(t, &w, kLive), StreamPosition::WaitState::kNotLive);
}

TEST(StreamPositionTest, ReportedHereOnlyByThisProcesssApplierAndUntilItStopsVouching) {
  StreamPosition p;
  CountingWaiter w;
  const auto t = p.RequestSample();
  p.SampleTaken(p.TakeSampleRequest(), 150);
  // Heard from another sidecar's applier: live, and it wakes waiters, but
  // the stream does not run here.
  p.Applied(100, kLive, StreamPosition::Report::kHeard);
  EXPECT_FALSE(p.reported_here(kNow));
  EXPECT_EQ(p.Wait(t, &w, kNow), StreamPosition::WaitState::kWaiting);
  p.Applied(150, kLive, StreamPosition::Report::kHeard);
  EXPECT_EQ(w.woken, 1);
  p.Applied(160, kLive + absl::Seconds(1));
  EXPECT_TRUE(p.reported_here(kNow));
  EXPECT_TRUE(p.reported_here(kLive));
  EXPECT_FALSE(p.reported_here(kLive + absl::Seconds(1)));
  p.Stopped();
  EXPECT_FALSE(p.reported_here(kNow));
}

TEST(StreamPositionTest, OneSampleAnswersEveryEarlierRequest) {
  StreamPosition p;
  int wakeups = 0;
  p.SetSampleListener([&] { ++wakeups; });
  p.Applied(100, kLive);
  const auto t1 = p.RequestSample();
  const auto t2 = p.RequestSample();
  EXPECT_EQ(wakeups, 2);  // no sample running yet: each request may wake the feeder
  const auto taken = p.TakeSampleRequest();
  EXPECT_EQ(taken, t2);
  EXPECT_EQ(p.TakeSampleRequest(), 0u);  // one at a time
  const auto t3 = p.RequestSample();     // after the sample started: needs the next one
  EXPECT_EQ(wakeups, 2);

  CountingWaiter w1, w2, w3;
  EXPECT_EQ(p.Wait(t1, &w1, kNow), StreamPosition::WaitState::kWaiting);
  EXPECT_EQ(p.Wait(t2, &w2, kNow), StreamPosition::WaitState::kWaiting);
  EXPECT_EQ(p.Wait(t3, &w3, kNow), StreamPosition::WaitState::kWaiting);
  p.SampleTaken(taken, 200);
  EXPECT_EQ(p.TakeSampleRequest(), t3);
  EXPECT_EQ(w1.woken + w2.woken + w3.woken, 0);  // new is at 100, old was at 200

  p.Applied(199, kLive);
  EXPECT_EQ(w1.woken + w2.woken, 0);
  p.Applied(200, kLive);
  EXPECT_EQ(w1.woken, 1);
  EXPECT_EQ(w2.woken, 1);
  EXPECT_EQ(w3.woken, 0);  // its sample is not taken yet
  p.SampleTaken(t3, 250);
  EXPECT_EQ(w3.woken, 0);
  p.Applied(260, kLive);
  EXPECT_EQ(w3.woken, 1);
  // Reached tickets answer at once, without registering.
  EXPECT_EQ(p.Wait(t1, &w1, kNow), StreamPosition::WaitState::kReached);
  EXPECT_EQ(p.Wait(t3, &w3, kNow), StreamPosition::WaitState::kReached);
}

TEST(StreamPositionTest, NudgesBeforeAFenceAreAnsweredByIt) {
  StreamPosition p;
  int wakeups = 0;
  p.SetSampleListener([&] { ++wakeups; });
  EXPECT_FALSE(p.TakeNudge());  // nobody asked: no fence is written
  p.Nudge();
  p.Nudge();  // a second session before the feeder looked: the same fence
  EXPECT_EQ(wakeups, 1);
  EXPECT_TRUE(p.TakeNudge());
  EXPECT_FALSE(p.TakeNudge());
  p.Nudge();  // after the fence was sent: it needs the next one
  EXPECT_EQ(wakeups, 2);
  EXPECT_TRUE(p.TakeNudge());
  // A nudge is not a sample: tickets still wait for theirs.
  EXPECT_EQ(p.TakeSampleRequest(), 0u);
}

TEST(StreamPositionTest, ASampleWithAFenceAsksForOneQuery) {
  StreamPosition p;
  int wakeups = 0;
  p.SetSampleListener([&] { ++wakeups; });
  const auto t = p.RequestSample(/*with_fence=*/true);
  EXPECT_EQ(wakeups, 1);
  // The feeder finds both wishes at once: one fence answers the ticket.
  EXPECT_TRUE(p.TakeNudge());
  EXPECT_EQ(p.TakeSampleRequest(), t);
  EXPECT_FALSE(p.TakeNudge());
}

TEST(StreamPositionTest, AFailedSampleReleasesItsWaiters) {
  StreamPosition p;
  p.Applied(100, kLive);
  const auto t = p.RequestSample();
  CountingWaiter w;
  EXPECT_EQ(p.Wait(t, &w, kNow), StreamPosition::WaitState::kWaiting);
  p.SampleTaken(p.TakeSampleRequest(), 0);
  EXPECT_EQ(w.woken, 1);
  EXPECT_EQ(p.Wait(t, &w, kNow), StreamPosition::WaitState::kNotLive);
  EXPECT_EQ(p.TakeSampleRequest(), 0u);
}

TEST(StreamPositionTest, StoppedReleasesEveryWaiterAndCancelIsFinal) {
  StreamPosition p;
  p.Applied(100, kLive);
  CountingWaiter a, b;
  EXPECT_EQ(p.Wait(p.RequestSample(), &a, kNow), StreamPosition::WaitState::kWaiting);
  EXPECT_EQ(p.Wait(p.RequestSample(), &b, kNow), StreamPosition::WaitState::kWaiting);
  p.Cancel(&b);
  p.Cancel(&b);
  p.Stopped();
  EXPECT_EQ(a.woken, 1);
  EXPECT_EQ(b.woken, 0);
  EXPECT_FALSE(p.live(kNow));
}

using Commit = StreamPosition::DecodedCommit;

TEST(StreamPositionTest, AnXidWaitsForItsOwnCommitsEndAndNoSample) {
  StreamPosition p;
  int wakeups = 0;
  p.SetSampleListener([&] { ++wakeups; });
  p.Applied(100, kLive);
  CountingWaiter w;
  // Decoded after the session came to wait: the end becomes its target.
  EXPECT_EQ(p.Wait(0, 7, &w, kNow), StreamPosition::WaitState::kWaiting);
  const Commit decoded[] = {{6, 140}, {7, 150}, {8, 160}};
  p.Committed(decoded);
  EXPECT_EQ(w.woken, 0);
  p.Applied(149, kLive);
  EXPECT_EQ(w.woken, 0);  // an earlier commit's end is not its own
  p.Applied(150, kLive);
  EXPECT_EQ(w.woken, 1);
  EXPECT_EQ(wakeups, 0);  // the feeder was never asked
  // Decoded before the session came to wait: found among the recent ones.
  CountingWaiter late;
  EXPECT_EQ(p.Wait(0, 8, &late, kNow), StreamPosition::WaitState::kWaiting);
  p.Applied(160, kLive);
  EXPECT_EQ(late.woken, 1);
  EXPECT_EQ(p.Wait(0, 6, &late, kNow), StreamPosition::WaitState::kReached);
}

TEST(StreamPositionTest, AnXidNotDecodedWaitsForItsSampleInstead) {
  StreamPosition p;
  p.Applied(100, kLive);
  CountingWaiter w;
  EXPECT_EQ(p.Wait(0, 9, &w, kNow), StreamPosition::WaitState::kWaiting);
  p.Applied(500, kLive);
  EXPECT_EQ(w.woken, 0);  // no end known for it: nothing to compare with
  // The session's fallback: a sample (with a fence) as well as the xid.
  const auto t = p.RequestSample(/*with_fence=*/true);
  EXPECT_EQ(p.Wait(t, 9, &w, kNow), StreamPosition::WaitState::kWaiting);
  p.SampleTaken(p.TakeSampleRequest(), 600);
  EXPECT_EQ(w.woken, 0);
  p.Applied(600, kLive);
  EXPECT_EQ(w.woken, 1);
}

TEST(StreamPositionTest, TheNearerOfSampleAndXidEndReleases) {
  StreamPosition p;
  p.Applied(100, kLive);
  CountingWaiter w;
  const auto t = p.RequestSample();
  p.SampleTaken(p.TakeSampleRequest(), 300);
  EXPECT_EQ(p.Wait(t, 5, &w, kNow), StreamPosition::WaitState::kWaiting);
  const Commit decoded[] = {{5, 200}};
  p.Committed(decoded);
  p.Applied(200, kLive);
  EXPECT_EQ(w.woken, 1);
  // A failed sample releases waiters of its tickets only, not those by xid.
  CountingWaiter by_xid;
  EXPECT_EQ(p.Wait(0, 11, &by_xid, kNow), StreamPosition::WaitState::kWaiting);
  (void)p.RequestSample();
  p.SampleTaken(p.TakeSampleRequest(), 0);
  EXPECT_EQ(by_xid.woken, 0);
  p.Cancel(&by_xid);
}

TEST(StreamPositionTest, RecentCommitsAreARingThatForgetsTheOldest) {
  StreamPosition p;
  p.Applied(1, kLive);
  std::vector<Commit> many;
  for (std::uint32_t x = 1; x <= 5000; ++x) many.push_back({x, 1000 + x});
  p.Committed(many);
  CountingWaiter w;
  // Kept: the last 4,096; xid 1 fell out and waits (for the fallback).
  EXPECT_EQ(p.Wait(0, 5000, &w, kNow), StreamPosition::WaitState::kWaiting);
  p.Applied(6000, kLive);
  EXPECT_EQ(w.woken, 1);
  EXPECT_EQ(p.Wait(0, 1000, &w, kNow), StreamPosition::WaitState::kReached);
  EXPECT_EQ(p.Wait(0, 1, &w, kNow), StreamPosition::WaitState::kWaiting);
  p.Cancel(&w);
}

TEST(StreamPositionsTest, OneEntryPerRouteThatStays) {
  StreamPositions all;
  StreamPosition& a = all.For("db");
  all.For("other").Applied(5, kLive);
  EXPECT_EQ(&all.For("db"), &a);
  EXPECT_EQ(all.For("other").applied(), 5u);
  EXPECT_EQ(a.applied(), 0u);
}

}  // namespace
}  // namespace turnout::routing
