// The journal's file (proxy/journal_file.h): what routing/journal.h writes
// survives a reopen on disk, a torn last line on disk is ignored, compaction
// replaces the file by rename and leaves no temporary behind, appends after a
// rewrite land in the new file, and a file that cannot be opened stops
// startup. The format and the bounded state are tested without a file in
// tests/routing/journal_test.cc.
#include "proxy/journal_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace turnout::proxy {
namespace {

class JournalFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("journal-file-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "turnout-journal.log").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static routing::JournalEntry Entry(const std::string& statement) {
    routing::JournalEntry e;
    e.at = absl::FromUnixSeconds(1700000000);
    e.migration_id = "m1";
    e.route = "orders";
    e.backend = "pg-new";
    e.kind = routing::JournalKind::kFailed;
    e.statement = statement;
    e.params = {"1", "tab\there"};
    e.targets = {"public.orders"};
    e.secondary_outcome = "ERROR 23505\nduplicate";
    return e;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(JournalFileTest, FlushedEntriesSurviveReopenAndUnflushedOnesDoNot) {
  {
    auto j = OpenJournalFile(path_, {});
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_EQ((*j)->Append(Entry("insert into orders values ($1)")), 1u);
    ASSERT_TRUE((*j)->Flush().ok());
    EXPECT_EQ((*j)->FlushedSeq(), 1u);
    (*j)->Append(Entry("lost if we crash now"));
  }
  EXPECT_EQ(std::filesystem::status(path_).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto j = OpenJournalFile(path_, {});
  ASSERT_TRUE(j.ok()) << j.status();
  auto pending = (*j)->Pending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].statement, "insert into orders values ($1)");
  EXPECT_EQ(pending[0].params, Entry("").params);
  EXPECT_EQ(pending[0].secondary_outcome, Entry("").secondary_outcome);
  // 2 was queued, never written: the file numbers on from what it holds.
  EXPECT_EQ((*j)->Append(Entry("x")), 2u);
}

TEST_F(JournalFileTest, TornLastLineOnDiskIsIgnored) {
  {
    auto j = OpenJournalFile(path_, {});
    ASSERT_TRUE(j.ok());
    (*j)->Append(Entry("whole"));
    ASSERT_TRUE((*j)->Flush().ok());
  }
  std::ofstream(path_, std::ios::app) << "entry\t2\t17000\tm1\tord";  // crash mid-write
  auto j = OpenJournalFile(path_, {});
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->PendingCount(), 1u);
}

TEST_F(JournalFileTest, CompactionRenamesANewFileAndAppendsGoOnInIt) {
  constexpr int kEntries = 3000;
  std::vector<std::uint64_t> seqs;
  {
    auto j = OpenJournalFile(path_, {.compact_after_repaired = 1000});
    ASSERT_TRUE(j.ok());
    for (int i = 0; i < kEntries; ++i) seqs.push_back((*j)->Append(Entry("insert " + std::to_string(i))));
    ASSERT_TRUE((*j)->Flush().ok());
    const auto full_size = std::filesystem::file_size(path_);
    std::vector<std::uint64_t> repaired(seqs.begin() + 1, seqs.end());  // all but the first
    (*j)->MarkRepaired(repaired);
    ASSERT_TRUE((*j)->Flush().ok());
    EXPECT_EQ((*j)->compactions(), 1u);
    EXPECT_LT(std::filesystem::file_size(path_), full_size / 100);
    EXPECT_FALSE(std::filesystem::exists(path_ + ".compact"));
    // The descriptor now appends to the renamed file, not the unlinked one.
    (*j)->Append(Entry("after"));
    ASSERT_TRUE((*j)->Flush().ok());
  }
  std::ifstream in(path_);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "next\t" + std::to_string(kEntries + 1));
  auto j = OpenJournalFile(path_, {});
  ASSERT_TRUE(j.ok());
  auto pending = (*j)->Pending();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].seq, seqs.front());
  EXPECT_EQ(pending[1].statement, "after");
  EXPECT_EQ(pending[1].seq, seqs.back() + 1);
}

TEST_F(JournalFileTest, ConcurrentAppendsAndFlushesAreAllOnDisk) {
  auto j = OpenJournalFile(path_, {.max_entries = 1000000});
  ASSERT_TRUE(j.ok());
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
  auto again = OpenJournalFile(path_, {.max_entries = 1000000});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->PendingCount(), 8000u);
}

TEST_F(JournalFileTest, AFileThatCannotBeOpenedIsAnError) {
  auto j = OpenJournalFile((dir_ / "missing-folder" / "journal.log").string(), {});
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("cannot open"), std::string::npos) << j.status();
}

}  // namespace
}  // namespace turnout::proxy
