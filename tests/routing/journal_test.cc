// The dual-write journal: durable across reopen, bounded with an alarm,
// repairs remembered, torn lines tolerated, safe under concurrent appends.
#include "routing/journal.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace turnout::routing {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("journal-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "turnout-journal.log").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

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

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(JournalTest, EntriesSurviveReopenExactly) {
  {
    auto j = Journal::Open(path_, {});
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_EQ((*j)->Append(Entry("insert into orders values ($1)")), 1u);
    EXPECT_EQ((*j)->Append(Entry("update orders set x = 1")), 2u);
    EXPECT_EQ((*j)->FlushedSeq(), 0u);
    ASSERT_TRUE((*j)->Flush().ok());
    EXPECT_EQ((*j)->FlushedSeq(), 2u);
  }
  auto j = Journal::Open(path_, {});
  ASSERT_TRUE(j.ok());
  auto pending = (*j)->Pending();
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
  EXPECT_EQ((*j)->Append(Entry("x")), 3u);
}

TEST_F(JournalTest, UnflushedEntriesAreNotOnDisk) {
  {
    auto j = Journal::Open(path_, {});
    (*j)->Append(Entry("lost if we crash now"));
  }
  auto j = Journal::Open(path_, {});
  EXPECT_EQ((*j)->PendingCount(), 0u);
}

TEST_F(JournalTest, RepairedEntriesStayRepairedAfterReopen) {
  {
    auto j = Journal::Open(path_, {});
    (*j)->Append(Entry("a"));
    (*j)->Append(Entry("b"));
    (*j)->Append(Entry("c"));
    (*j)->MarkRepaired({1, 3});
    ASSERT_TRUE((*j)->Flush().ok());
    EXPECT_EQ((*j)->PendingCount(), 1u);
  }
  auto j = Journal::Open(path_, {});
  auto pending = (*j)->Pending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].statement, "b");
}

TEST_F(JournalTest, TornLastLineIsIgnored) {
  {
    auto j = Journal::Open(path_, {});
    (*j)->Append(Entry("whole"));
    ASSERT_TRUE((*j)->Flush().ok());
  }
  std::ofstream(path_, std::ios::app) << "entry\t2\t17000\tm1\tord";  // crash mid-write
  auto j = Journal::Open(path_, {});
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->PendingCount(), 1u);
}

TEST_F(JournalTest, TheDatabaseRoundTripsAndOlderFilesStillLoad) {
  {
    auto j = Journal::Open(path_, {});
    JournalEntry e = Entry("insert into t values (1)");
    e.database = "shop";
    (*j)->Append(e);
    ASSERT_TRUE((*j)->Flush().ok());
  }
  // A line written before entries named their database (13 fields), then
  // one torn inside its last fields (no closing ".").
  std::ofstream(path_, std::ios::app) << "entry\t7\t17000\tm1\torders\tpg-new\t3\tfailed\tupdate t\t\tt\tUPDATE 1\tERROR\n"
                                      << "entry\t8\t17000\tm1\torders\tpg-new\t3\tfailed\tupdate t\t\tt\tUPDATE 1\tERROR\tsh";
  auto j = Journal::Open(path_, {});
  ASSERT_TRUE(j.ok());
  auto pending = (*j)->Pending("");
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].database, "shop");
  EXPECT_EQ(pending[0].statement, "insert into t values (1)");
  EXPECT_EQ(pending[1].seq, 7u);
  EXPECT_EQ(pending[1].database, "");
}

// Full: an alarm, and a record is folded into an overflow entry that names
// its targets (never refused); repairs free room for whole entries again.
TEST_F(JournalTest, BoundedWithAnAlarmFoldsWhenFullAndRepairsFreeRoom) {
  auto j = Journal::Open(path_, {.max_entries = 3});
  for (int i = 0; i < 3; ++i) EXPECT_NE((*j)->Append(Entry("w")), 0u);
  EXPECT_TRUE((*j)->full());
  EXPECT_NE((*j)->Append(Entry("folded")), 0u);
  EXPECT_EQ((*j)->dropped_when_full(), 0u);
  EXPECT_EQ((*j)->coalesced_when_full(), 1u);
  bool overflow = false;
  for (const auto& e : (*j)->Pending()) overflow |= e.statement == Journal::kOverflowStatement;
  EXPECT_TRUE(overflow);
  std::vector<std::uint64_t> all;
  for (const auto& e : (*j)->Pending()) all.push_back(e.seq);
  (*j)->MarkRepaired(all);
  EXPECT_FALSE((*j)->full());
  const std::uint64_t seq = (*j)->Append(Entry("fits again"));
  ASSERT_NE(seq, 0u);
  EXPECT_EQ((*j)->Pending().back().statement, "fits again");
}

TEST_F(JournalTest, RepairsCompactTheFileAndSeqNumbersStayStable) {
  // Issue 14: a journal file was never compacted (11.7 MB).
  constexpr int kEntries = 3000;
  std::vector<std::uint64_t> seqs;
  std::uintmax_t full_size = 0;
  {
    auto j = Journal::Open(path_, {.compact_after_repaired = 1000});
    ASSERT_TRUE(j.ok());
    for (int i = 0; i < kEntries; ++i) seqs.push_back((*j)->Append(Entry("insert " + std::to_string(i))));
    ASSERT_TRUE((*j)->Flush().ok());
    full_size = std::filesystem::file_size(path_);
    // Repair all but every tenth; the kept ones are the pending.
    std::vector<std::uint64_t> repaired;
    for (int i = 0; i < kEntries; ++i)
      if (i % 10 != 0) repaired.push_back(seqs[i]);
    (*j)->MarkRepaired(repaired);
    ASSERT_TRUE((*j)->Flush().ok());
    EXPECT_EQ((*j)->compactions(), 1u);
    EXPECT_LT(std::filesystem::file_size(path_), full_size / 5);
    EXPECT_FALSE(std::filesystem::exists(path_ + ".compact"));
    // Appends after the rewrite go to the new file, numbered on.
    EXPECT_EQ((*j)->Append(Entry("after")), seqs.back() + 1);
    ASSERT_TRUE((*j)->Flush().ok());
    EXPECT_EQ((*j)->FlushedSeq(), seqs.back() + 1);
  }
  auto j = Journal::Open(path_, {.compact_after_repaired = 1000});
  ASSERT_TRUE(j.ok());
  auto pending = (*j)->Pending();
  ASSERT_EQ(pending.size(), kEntries / 10 + 1u);
  for (int i = 0; i < kEntries / 10; ++i) {
    EXPECT_EQ(pending[i].seq, seqs[i * 10]);
    EXPECT_EQ(pending[i].statement, "insert " + std::to_string(i * 10));
    EXPECT_EQ(pending[i].params, Entry("").params);
  }
  EXPECT_EQ(pending.back().seq, seqs.back() + 1);
  EXPECT_EQ(pending.back().statement, "after");
  // Numbers are never reused, even those of repaired entries the rewrite left out.
  (*j)->MarkRepaired({pending.back().seq});
  EXPECT_EQ((*j)->Append(Entry("next")), seqs.back() + 2);
}

TEST_F(JournalTest, NoCompactionWhileMostEntriesArePending) {
  auto j = Journal::Open(path_, {.compact_after_repaired = 10});
  ASSERT_TRUE(j.ok());
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 100; ++i) seqs.push_back((*j)->Append(Entry("insert")));
  (*j)->MarkRepaired({seqs.begin(), seqs.begin() + 40});  // 40 of 100: under half
  ASSERT_TRUE((*j)->Flush().ok());
  EXPECT_EQ((*j)->compactions(), 0u);
  // Reloading (the repaired numbers read first) keeps only the pending.
  auto reopened = Journal::Open(path_, {.compact_after_repaired = 10});
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->PendingCount(), 60u);
  EXPECT_EQ((*reopened)->Pending().front().seq, seqs[40]);
  // One more repair tips it over half: the next flush rewrites.
  (*reopened)->MarkRepaired({seqs.begin() + 40, seqs.begin() + 60});
  ASSERT_TRUE((*reopened)->Flush().ok());
  EXPECT_EQ((*reopened)->compactions(), 1u);
  EXPECT_EQ((*reopened)->PendingCount(), 40u);
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
  auto j = Journal::Open(path_, {.max_entries = 1000000});
  std::atomic<bool> stop{false};
  std::thread flusher([&] {
    while (!stop) (void)(*j)->Flush();
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) (*j)->Append(Entry("w"));
    });
  for (auto& w : writers) w.join();
  stop = true;
  flusher.join();
  ASSERT_TRUE((*j)->Flush().ok());
  EXPECT_EQ((*j)->FlushedSeq(), 8000u);
  j->reset();
  auto again = Journal::Open(path_, {.max_entries = 1000000});
  EXPECT_EQ((*again)->PendingCount(), 8000u);
}

}  // namespace
}  // namespace turnout::routing
