// The sender both protocols share (proxy/secondary/sender.h): ops go out in
// sequence, each once the protocol says it may; replies are matched to the
// oldest op sent and not done; ops done before they were sent are passed
// over by both cursors; a lost connection fails what was in flight; an op
// is finished once, when both sides are done. Each case is a script of
// steps against a queue of ops and a recording protocol.
#include "proxy/secondary/sender.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/secondary/op_queue.h"
#include "routing/read_your_writes.h"

namespace turnout::proxy::secondary {
namespace {

struct TestOp : QueuedOp {
  bool ready = false;  // the protocol's "may go out"
  int replies_expected = 1;
  int replies_seen = 0;
};

struct Recorder {
  bool Sendable(const TestOp& op) const { return op.ready; }
  void SecondaryDone(TestOp& op) {
    done.push_back(op.seq);
    if (sender != nullptr) sender->MaybeFinish(op);
  }
  void Finish(TestOp& op) { finished.push_back(op.seq); }

  Sender<TestOp, Recorder>* sender = nullptr;
  std::vector<std::uint64_t> done, finished;
};

using Seqs = std::vector<std::uint64_t>;

// A queue of `n` ops, each not ready, its primary not done.
struct Fixture {
  explicit Fixture(int n, std::size_t max_in_flight = Sender<TestOp, Recorder>::kUnbounded)
      : sender(ops, protocol, max_in_flight, &fence) {
    protocol.sender = &sender;
    for (int i = 0; i < n; ++i) ops.Push(TestOp{}, 1);
  }
  TestOp& op(std::uint64_t seq) { return ops.At(seq); }
  // Sends every sendable op, as a protocol's send loop does; their numbers.
  Seqs SendAll() {
    Seqs out;
    while (TestOp* next = sender.NextSendable()) {
      sender.Sent(*next);
      out.push_back(next->seq);
    }
    return out;
  }
  // One reply frame for the op at the head; its number (0: none awaited).
  std::uint64_t Reply() {
    TestOp* head = sender.Head();
    if (head == nullptr) return 0;
    const std::uint64_t seq = head->seq;
    sender.OnReply([](TestOp& o) { return ++o.replies_seen >= o.replies_expected ? Digest::kDone : Digest::kMore; });
    return seq;
  }

  OpQueue<TestOp> ops;
  Recorder protocol;
  routing::ReadYourWritesFence fence;
  Sender<TestOp, Recorder> sender;
};

TEST(SecondarySenderTest, SendsInSequenceAndAnOpNotReadyHoldsBackTheOnesAfterIt) {
  struct Case {
    const char* name;
    std::vector<bool> ready;  // per op, 1..n
    Seqs sent;
  };
  const Case cases[] = {
      {"all ready", {true, true, true}, {1, 2, 3}},
      {"none ready", {false, false, false}, {}},
      {"the head not ready", {false, true, true}, {}},
      {"a middle op not ready", {true, false, true}, {1}},
      {"the last not ready", {true, true, false}, {1, 2}},
  };
  for (const Case& c : cases) {
    Fixture f(static_cast<int>(c.ready.size()));
    for (std::size_t i = 0; i < c.ready.size(); ++i) f.op(i + 1).ready = c.ready[i];
    EXPECT_EQ(f.SendAll(), c.sent) << c.name;
    EXPECT_EQ(f.sender.in_flight(), c.sent.size()) << c.name;
    for (std::uint64_t s : c.sent) EXPECT_TRUE(f.op(s).sent) << c.name;
  }
}

TEST(SecondarySenderTest, AnOpBecomingReadyLetsTheOnesBehindItGo) {
  Fixture f(3);
  f.op(2).ready = f.op(3).ready = true;
  EXPECT_TRUE(f.SendAll().empty());
  EXPECT_FALSE(f.sender.HasSendable());
  f.op(1).ready = true;
  EXPECT_TRUE(f.sender.HasSendable());
  EXPECT_EQ(f.SendAll(), (Seqs{1, 2, 3}));
  EXPECT_TRUE(f.sender.all_sent());
}

TEST(SecondarySenderTest, TheInFlightBoundHoldsTheNextOpUntilAReply) {
  struct Case {
    std::size_t max_in_flight;
    Seqs first, after_one_reply;
  };
  const Case cases[] = {
      {1, {1}, {2}},
      {2, {1, 2}, {3}},
      {Sender<TestOp, Recorder>::kUnbounded, {1, 2, 3}, {}},
  };
  for (const Case& c : cases) {
    Fixture f(3, c.max_in_flight);
    for (std::uint64_t s = 1; s <= 3; ++s) f.op(s).ready = true;
    EXPECT_EQ(f.SendAll(), c.first) << c.max_in_flight;
    EXPECT_EQ(f.Reply(), 1u) << c.max_in_flight;
    EXPECT_EQ(f.SendAll(), c.after_one_reply) << c.max_in_flight;
  }
}

TEST(SecondarySenderTest, RepliesMatchTheOldestOpSentAndNotDone) {
  Fixture f(3);
  for (std::uint64_t s = 1; s <= 3; ++s) f.op(s).ready = true;
  f.op(2).replies_expected = 3;  // a MULTI block, a state op with a login, a Postgres prefix
  f.SendAll();
  // Frame by frame: 1, then three frames of 2, then 3; then nothing awaited.
  const Seqs expected = {1, 2, 2, 2, 3, 0};
  Seqs got;
  for (std::size_t i = 0; i < expected.size(); ++i) got.push_back(f.Reply());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(f.protocol.done, (Seqs{1, 2, 3}));
  EXPECT_EQ(f.sender.in_flight(), 0u);
}

TEST(SecondarySenderTest, OpsDoneBeforeTheyWereSentArePassedOverByBothCursors) {
  Fixture f(4);
  for (std::uint64_t s = 1; s <= 4; ++s) f.op(s).ready = true;
  f.sender.Done(f.op(2));  // journaled before it went out (a full queue, a lost transaction)
  EXPECT_EQ(f.SendAll(), (Seqs{1, 3, 4}));
  EXPECT_FALSE(f.op(2).sent);
  EXPECT_EQ(f.Reply(), 1u);
  EXPECT_EQ(f.Reply(), 3u);
  EXPECT_EQ(f.Reply(), 4u);
  EXPECT_EQ(f.Reply(), 0u);
}

TEST(SecondarySenderTest, AnOpWithNothingToSendIsPassedAndDoneInItsTurn) {
  Fixture f(3);
  for (std::uint64_t s = 1; s <= 3; ++s) f.op(s).ready = true;
  f.op(2).replies_expected = 0;
  Seqs sent;
  while (TestOp* next = f.sender.NextSendable()) {
    if (next->replies_expected == 0) {
      f.sender.Passed();
      f.sender.Done(*next);
      continue;
    }
    f.sender.Sent(*next);
    sent.push_back(next->seq);
  }
  EXPECT_EQ(sent, (Seqs{1, 3}));
  EXPECT_EQ(f.protocol.done, (Seqs{2}));
  EXPECT_EQ(f.Reply(), 1u);
  EXPECT_EQ(f.Reply(), 3u);
}

TEST(SecondarySenderTest, ALostConnectionFailsWhatWasInFlightOnly) {
  Fixture f(4);
  f.op(1).ready = f.op(2).ready = f.op(3).ready = true;  // 4 is not ready: never sent
  f.op(2).replies_expected = 2;
  f.SendAll();
  EXPECT_EQ(f.Reply(), 1u);
  EXPECT_EQ(f.Reply(), 2u);  // one of its two frames
  Seqs failed;
  f.sender.FailInFlight([&](TestOp& op) {
    failed.push_back(op.seq);
    f.sender.Done(op);
  });
  EXPECT_EQ(failed, (Seqs{2, 3}));
  EXPECT_EQ(f.sender.in_flight(), 0u);
  EXPECT_EQ(f.sender.Head(), nullptr);
  EXPECT_FALSE(f.op(4).secondary_done);
  f.op(4).ready = true;  // a new connection carries on from the next op
  EXPECT_EQ(f.SendAll(), (Seqs{4}));
  EXPECT_EQ(f.Reply(), 4u);
}

TEST(SecondarySenderTest, DigestVerdictsMoveTheHeadOnlyWhenDone) {
  struct Case {
    Digest verdict;
    bool done;
  };
  const Case cases[] = {{Digest::kMore, false}, {Digest::kDone, true}, {Digest::kLost, false}};
  for (const Case& c : cases) {
    Fixture f(2);
    f.op(1).ready = f.op(2).ready = true;
    f.SendAll();
    EXPECT_EQ(f.sender.OnReply([&](TestOp&) { return c.verdict; }), c.verdict);
    EXPECT_EQ(f.op(1).secondary_done, c.done);
    EXPECT_EQ(f.sender.Head()->seq, c.done ? 2u : 1u);
    EXPECT_EQ(f.sender.in_flight(), c.done ? 1u : 2u);
  }
}

TEST(SecondarySenderTest, AnOpFinishesOnceWhenBothSidesAreDoneInEitherOrder) {
  struct Case {
    const char* name;
    bool primary_first;
  };
  for (const Case c : {Case{"primary first", true}, Case{"secondary first", false}}) {
    Fixture f(1);
    TestOp& op = f.op(1);
    op.ready = true;
    f.SendAll();
    if (c.primary_first) {
      op.primary_done = true;
      EXPECT_FALSE(f.sender.MaybeFinish(op)) << c.name;
      f.Reply();
    } else {
      f.Reply();
      EXPECT_TRUE(f.protocol.finished.empty()) << c.name;
      op.primary_done = true;
      EXPECT_TRUE(f.sender.MaybeFinish(op)) << c.name;
    }
    EXPECT_TRUE(op.finished) << c.name;
    EXPECT_FALSE(f.sender.MaybeFinish(op)) << c.name;
    EXPECT_EQ(f.protocol.finished, (Seqs{1})) << c.name;
  }
}

TEST(SecondarySenderTest, CursorsFollowTheQueueWhenItsHeadIsTrimmed) {
  Fixture f(3);
  for (std::uint64_t s = 1; s <= 3; ++s) {
    f.op(s).ready = true;
    f.op(s).primary_done = true;
    f.op(s).released = true;
  }
  f.sender.Done(f.op(1));  // finished before it was sent
  f.sender.Done(f.op(2));
  EXPECT_EQ(f.ops.Trim(), 2u);
  f.sender.Trimmed();
  EXPECT_EQ(f.sender.next_send(), 3u);
  EXPECT_EQ(f.sender.next_reply(), 3u);
  EXPECT_EQ(f.SendAll(), (Seqs{3}));
  EXPECT_EQ(f.Reply(), 3u);
}

TEST(SecondarySenderTest, CatchUpSkipsTheRepliesOfPassedOpsOnlyWithNothingInFlight) {
  for (const bool in_flight : {false, true}) {
    Fixture f(3);
    for (std::uint64_t s = 1; s <= 3; ++s) f.op(s).ready = true;
    if (in_flight) f.sender.Sent(*f.sender.Next());
    while (TestOp* next = f.sender.Next()) {  // dropped: the connection could not open
      f.sender.Passed();
      f.sender.Done(*next);
    }
    f.sender.CatchUp();
    EXPECT_EQ(f.sender.next_reply(), in_flight ? 1u : 4u) << in_flight;
  }
}

TEST(SecondarySenderTest, AResentOpGoesOutAgainInItsTurnAndIsMatchedAgain) {
  // Postgres two-phase commit: PREPARE TRANSACTION answered, then the same
  // op carries COMMIT PREPARED once the primary committed.
  Fixture f(1);
  TestOp& op = f.op(1);
  op.ready = true;
  EXPECT_EQ(f.SendAll(), (Seqs{1}));
  EXPECT_EQ(f.Reply(), 1u);
  EXPECT_TRUE(op.secondary_done);
  f.sender.Resend(op);
  EXPECT_FALSE(op.sent);
  EXPECT_FALSE(op.secondary_done);
  op.replies_seen = 0;
  op.ready = false;  // until the primary committed
  EXPECT_TRUE(f.SendAll().empty());
  op.ready = true;
  EXPECT_EQ(f.SendAll(), (Seqs{1}));
  EXPECT_EQ(f.Reply(), 1u);
  EXPECT_EQ(f.sender.in_flight(), 0u);
  EXPECT_EQ(f.protocol.done, (Seqs{1, 1}));
}

TEST(SecondarySenderTest, AnAsyncWriteFencesReadsUntilItsSecondarySideIsDoneHoweverThatEnds) {
  // Ops 1, 2 and 4 are async dual-writes counted in the session's fence;
  // op 3 (a sync write, or shadow work) is not. Reads of the secondary are
  // held back while the fence is pending.
  Fixture f(4);
  for (std::uint64_t seq : {1, 2, 4}) f.op(seq).fence_seq = f.fence.OnQueued();
  for (std::uint64_t seq = 1; seq <= 4; ++seq) f.op(seq).ready = true;
  EXPECT_EQ(f.SendAll(), (Seqs{1, 2, 3, 4}));
  EXPECT_TRUE(f.fence.pending());
  // Applied on the secondary (answered), whether or not the primary is done.
  EXPECT_EQ(f.Reply(), 1u);
  EXPECT_EQ(f.fence.resolved(), 1u);
  EXPECT_TRUE(f.fence.pending());
  // Settled by the caller itself (abandoned: journaled for repair).
  f.sender.MarkDone(f.op(2));
  EXPECT_EQ(f.fence.resolved(), 2u);
  // An op outside the fence changes nothing.
  EXPECT_EQ(f.Reply(), 3u);
  EXPECT_EQ(f.fence.resolved(), 2u);
  EXPECT_TRUE(f.fence.pending());
  // Lost with the connection: journaled as failed, so no longer awaited.
  f.sender.FailInFlight([&](TestOp& op) { f.sender.Done(op); });
  EXPECT_EQ(f.fence.resolved(), 3u);
  EXPECT_FALSE(f.fence.pending());
  EXPECT_EQ(f.protocol.done, (Seqs{1, 3, 4}));
}

}  // namespace
}  // namespace turnout::proxy::secondary
