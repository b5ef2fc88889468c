// The dual-write journal: durable across reopen, bounded with an alarm,
// repairs remembered, torn lines tolerated, safe under concurrent appends.
// The lines go to a sink in memory (the journal is pure); the file that
// stores them for the process is tested in tests/proxy/journal_file_test.cc.
#include "routing/journal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>

namespace turnout::routing {
namespace {

// What a file would hold, shared by the sinks of successive opens (a reopen
// after a restart), with switches to fail like a disk.
struct Stored {
  std::string text;
  std::string text_before_rewrite;  // what a rewrite replaced, if one happened
  int rewrites = 0;
  bool fail_append = false;
  bool fail_sync = false;
  bool fail_rewrite = false;
};

class MemorySink final : public JournalSink {
 public:
  explicit MemorySink(std::shared_ptr<Stored> stored) : stored_(std::move(stored)) {}
  // std::getline's split: every '\n'-ended line, then a last one without it.
  void Load(absl::FunctionRef<void(std::string_view line)> line) const override {
    std::string_view rest = stored_->text;
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      line(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }
  absl::Status Append(std::string_view lines) override {
    if (stored_->fail_append) return absl::InternalError("append failed");
    stored_->text += lines;
    return absl::OkStatus();
  }
  absl::Status Sync() override {
    return stored_->fail_sync ? absl::InternalError("sync failed") : absl::OkStatus();
  }
  absl::Status Rewrite(std::string_view text) override {
    if (stored_->fail_rewrite) return absl::InternalError("rewrite failed");
    stored_->text_before_rewrite = std::exchange(stored_->text, std::string(text));
    ++stored_->rewrites;
    return absl::OkStatus();
  }

 private:
  std::shared_ptr<Stored> stored_;
};

class JournalTest : public ::testing::Test {
 protected:
  // Opens a journal on what earlier opens stored, as after a restart.
  std::unique_ptr<Journal> Open(Journal::Options options) {
    return Journal::Open(std::make_unique<MemorySink>(stored_), options);
  }

  static JournalEntry Entry(const std::string& statement) {
    JournalEntry e;
    e.at = absl::FromUnixSeconds(1700000000);
    e.migration_id = "m1";
    e.route = "orders";
    e.backend = "pg-new";
    e.session = 42;
    e.kind = JournalKind::kFailed;
    e.statement = statement;
    e.params = {"1", "tab\there", ""};
    e.targets = {"public.orders"};
    e.primary_outcome = "INSERT 0 1";
    e.secondary_outcome = "ERROR 23505 duplicate key value\nviolates";
    return e;
  }

  std::shared_ptr<Stored> stored_ = std::make_shared<Stored>();
};

TEST_F(JournalTest, EntriesSurviveReopenExactly) {
  {
    auto j = Open({});
    EXPECT_EQ(j->Append(Entry("insert into orders values ($1)")), 1u);
    EXPECT_EQ(j->Append(Entry("update orders set x = 1")), 2u);
    EXPECT_EQ(j->FlushedSeq(), 0u);
    ASSERT_TRUE(j->Flush().ok());
    EXPECT_EQ(j->FlushedSeq(), 2u);
  }
  auto j = Open({});
  auto pending = j->Pending();
  ASSERT_EQ(pending.size(), 2u);
  const JournalEntry want = Entry("insert into orders values ($1)");
  EXPECT_EQ(pending[0].seq, 1u);
  EXPECT_EQ(pending[0].statement, want.statement);
  EXPECT_EQ(pending[0].params, want.params);
  EXPECT_EQ(pending[0].targets, want.targets);
  EXPECT_EQ(pending[0].secondary_outcome, want.secondary_outcome);
  EXPECT_EQ(pending[0].at, want.at);
  EXPECT_EQ(pending[0].session, 42u);
  // Sequence numbers continue after a reopen.
  EXPECT_EQ(j->Append(Entry("x")), 3u);
}

TEST_F(JournalTest, UnflushedEntriesAreNotStored) {
  {
    auto j = Open({});
    j->Append(Entry("lost if we crash now"));
  }
  auto j = Open({});
  EXPECT_EQ(j->PendingCount(), 0u);
}

TEST_F(JournalTest, RepairedEntriesStayRepairedAfterReopen) {
  {
    auto j = Open({});
    j->Append(Entry("a"));
    j->Append(Entry("b"));
    j->Append(Entry("c"));
    j->MarkRepaired({1, 3});
    ASSERT_TRUE(j->Flush().ok());
    EXPECT_EQ(j->PendingCount(), 1u);
  }
  auto j = Open({});
  auto pending = j->Pending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].statement, "b");
}

TEST_F(JournalTest, TornLastLineIsIgnored) {
  {
    auto j = Open({});
    j->Append(Entry("whole"));
    ASSERT_TRUE(j->Flush().ok());
  }
  stored_->text += "entry\t2\t17000\tm1\tord";  // crash mid-write
  auto j = Open({});
  EXPECT_EQ(j->PendingCount(), 1u);
}

TEST_F(JournalTest, TheDatabaseRoundTripsAndOlderFilesStillLoad) {
  {
    auto j = Open({});
    JournalEntry e = Entry("insert into t values (1)");
    e.database = "shop";
    j->Append(e);
    ASSERT_TRUE(j->Flush().ok());
  }
  // A line written before entries named their database (13 fields), then
  // one torn inside its last fields (no closing ".").
  stored_->text += std::string("entry\t7\t17000\tm1\torders\tpg-new\t3\tfailed\tupdate t\t\tt\tUPDATE 1\tERROR\n") +
                  "entry\t8\t17000\tm1\torders\tpg-new\t3\tfailed\tupdate t\t\tt\tUPDATE 1\tERROR\tsh";
  auto j = Open({});
  auto pending = j->Pending("");
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].database, "shop");
  EXPECT_EQ(pending[0].statement, "insert into t values (1)");
  EXPECT_EQ(pending[1].seq, 7u);
  EXPECT_EQ(pending[1].database, "");
}

// Full: an alarm, and a record is folded into an overflow entry that names
// its targets (never refused); repairs free room for whole entries again.
TEST_F(JournalTest, BoundedWithAnAlarmFoldsWhenFullAndRepairsFreeRoom) {
  auto j = Open({.max_entries = 3});
  for (int i = 0; i < 3; ++i) EXPECT_NE(j->Append(Entry("w")), 0u);
  EXPECT_TRUE(j->full());
  EXPECT_NE(j->Append(Entry("folded")), 0u);
  EXPECT_EQ(j->dropped_when_full(), 0u);
  EXPECT_EQ(j->coalesced_when_full(), 1u);
  bool overflow = false;
  for (const auto& e : j->Pending()) overflow |= e.statement == Journal::kOverflowStatement;
  EXPECT_TRUE(overflow);
  std::vector<std::uint64_t> all;
  for (const auto& e : j->Pending()) all.push_back(e.seq);
  j->MarkRepaired(all);
  EXPECT_FALSE(j->full());
  const std::uint64_t seq = j->Append(Entry("fits again"));
  ASSERT_NE(seq, 0u);
  EXPECT_EQ(j->Pending().back().statement, "fits again");
}

TEST_F(JournalTest, RepairsCompactTheFileAndSeqNumbersStayStable) {
  // Issue 14: a journal file was never compacted (11.7 MB).
  constexpr int kEntries = 3000;
  std::vector<std::uint64_t> seqs;
  std::size_t full_size = 0;
  {
    auto j = Open({.compact_after_repaired = 1000});
    for (int i = 0; i < kEntries; ++i) seqs.push_back(j->Append(Entry("insert " + std::to_string(i))));
    ASSERT_TRUE(j->Flush().ok());
    full_size = stored_->text.size();
    // Repair all but every tenth; the kept ones are the pending.
    std::vector<std::uint64_t> repaired;
    for (int i = 0; i < kEntries; ++i)
      if (i % 10 != 0) repaired.push_back(seqs[i]);
    j->MarkRepaired(repaired);
    ASSERT_TRUE(j->Flush().ok());
    EXPECT_EQ(j->compactions(), 1u);
    EXPECT_EQ(stored_->rewrites, 1);
    EXPECT_LT(stored_->text.size(), full_size / 5);
    // Appends after the rewrite go to the new file, numbered on.
    EXPECT_EQ(j->Append(Entry("after")), seqs.back() + 1);
    ASSERT_TRUE(j->Flush().ok());
    EXPECT_EQ(j->FlushedSeq(), seqs.back() + 1);
  }
  auto j = Open({.compact_after_repaired = 1000});
  auto pending = j->Pending();
  ASSERT_EQ(pending.size(), kEntries / 10 + 1u);
  for (int i = 0; i < kEntries / 10; ++i) {
    EXPECT_EQ(pending[i].seq, seqs[i * 10]);
    EXPECT_EQ(pending[i].statement, "insert " + std::to_string(i * 10));
    EXPECT_EQ(pending[i].params, Entry("").params);
  }
  EXPECT_EQ(pending.back().seq, seqs.back() + 1);
  EXPECT_EQ(pending.back().statement, "after");
  // Numbers are never reused, even those of repaired entries the rewrite left out.
  j->MarkRepaired({pending.back().seq});
  EXPECT_EQ(j->Append(Entry("next")), seqs.back() + 2);
}

TEST_F(JournalTest, NoCompactionWhileMostEntriesArePending) {
  auto j = Open({.compact_after_repaired = 10});
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 100; ++i) seqs.push_back(j->Append(Entry("insert")));
  j->MarkRepaired({seqs.begin(), seqs.begin() + 40});  // 40 of 100: under half
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_EQ(j->compactions(), 0u);
  // Reloading (the repaired numbers read first) keeps only the pending.
  auto reopened = Open({.compact_after_repaired = 10});
  EXPECT_EQ(reopened->PendingCount(), 60u);
  EXPECT_EQ(reopened->Pending().front().seq, seqs[40]);
  // One more repair tips it over half: the next flush rewrites.
  reopened->MarkRepaired({seqs.begin() + 40, seqs.begin() + 60});
  ASSERT_TRUE(reopened->Flush().ok());
  EXPECT_EQ(reopened->compactions(), 1u);
  EXPECT_EQ(reopened->PendingCount(), 40u);
}

// A sink that fails: nothing queued is lost, FlushedSeq() never passes
// what is not durable, and a failed rewrite leaves the old lines to append to.
TEST_F(JournalTest, AFailedAppendKeepsTheLinesForTheNextFlush) {
  auto j = Open({});
  j->Append(Entry("a"));
  stored_->fail_append = true;
  EXPECT_FALSE(j->Flush().ok());
  EXPECT_EQ(j->FlushedSeq(), 0u);
  j->Append(Entry("b"));
  stored_->fail_append = false;
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_EQ(j->FlushedSeq(), 2u);
  auto reopened = Open({});
  ASSERT_EQ(reopened->PendingCount(), 2u);
  EXPECT_EQ(reopened->Pending()[0].statement, "a");
}

TEST_F(JournalTest, AFailedSyncIsReportedAndNotCountedDurable) {
  auto j = Open({});
  j->Append(Entry("a"));
  stored_->fail_sync = true;
  EXPECT_FALSE(j->Flush().ok());
  EXPECT_EQ(j->FlushedSeq(), 0u);
  stored_->fail_sync = false;
  j->Append(Entry("b"));
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_EQ(j->FlushedSeq(), 2u);
}

TEST_F(JournalTest, AFailedRewriteAppendsAndRetriesOnceRepairsDouble) {
  auto j = Open({.compact_after_repaired = 10});
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 100; ++i) seqs.push_back(j->Append(Entry("insert")));
  ASSERT_TRUE(j->Flush().ok());
  stored_->fail_rewrite = true;
  j->MarkRepaired({seqs.begin(), seqs.begin() + 60});
  ASSERT_TRUE(j->Flush().ok());  // appended instead
  EXPECT_EQ(j->compactions(), 0u);
  EXPECT_EQ(Open({})->PendingCount(), 40u);
  stored_->fail_rewrite = false;
  // 60 repaired failed once: the next try waits for 120.
  j->MarkRepaired({seqs.begin() + 60, seqs.begin() + 70});
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_EQ(j->compactions(), 0u);
  for (int i = 0; i < 60; ++i) seqs.push_back(j->Append(Entry("more")));
  j->MarkRepaired({seqs.begin() + 70, seqs.begin() + 130});
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_EQ(j->compactions(), 1u);
  EXPECT_EQ(Open({})->PendingCount(), 30u);
}

TEST_F(JournalTest, PendingFiltersByMigration) {
  auto j = Journal::InMemory({});
  auto e = Entry("a");
  j->Append(e);
  e.migration_id = "m2";
  j->Append(e);
  EXPECT_EQ(j->PendingCount("m1"), 1u);
  EXPECT_EQ(j->PendingCount("m2"), 1u);
  EXPECT_EQ(j->Pending("m2")[0].migration_id, "m2");
  EXPECT_EQ(j->Pending("", 1).size(), 1u);
}

TEST_F(JournalTest, ConcurrentAppendsAndFlushesLoseNothing) {
  auto j = Open({.max_entries = 1000000});
  std::atomic<bool> stop{false};
  std::thread flusher([&] {
    while (!stop) (void)j->Flush();
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) j->Append(Entry("w"));
    });
  for (auto& w : writers) w.join();
  stop = true;
  flusher.join();
  ASSERT_TRUE(j->Flush().ok());
  EXPECT_EQ(j->FlushedSeq(), 8000u);
  j.reset();
  auto again = Open({.max_entries = 1000000});
  EXPECT_EQ(again->PendingCount(), 8000u);
}

}  // namespace
}  // namespace turnout::routing
