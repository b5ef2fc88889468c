// An idle session's free buffer pages go back to the kernel (mincore shows
// them gone), the bytes it still holds stay, and the buffer works on.
#include "proxy/idle_pages.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace turnout::proxy {
namespace {

const std::size_t kPage = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));

// How many of the buffer's storage pages are resident, from its start.
std::size_t ResidentPages(const std::uint8_t* start, std::size_t pages) {
  std::vector<unsigned char> v(pages);
  EXPECT_EQ(::mincore(const_cast<std::uint8_t*>(start), pages * kPage, v.data()), 0);
  std::size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

TEST(IdlePagesTest, FreePagesGoBackAndTheHeldBytesStay) {
  protocol::IoBuffer b(16 * kPage);
  const std::uint8_t* start = b.FreeSpace().data();
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(start) % kPage, 0u) << "the storage starts on a page";
  // Every page written, then three pages and a half of it received.
  std::memset(b.FreeSpace().data(), 'x', 16 * kPage);
  ASSERT_EQ(ResidentPages(start, 16), 16u);
  b.CommitReceived(3 * kPage + kPage / 2);

  ReleaseIdlePages(b);

  // The four pages holding received bytes stay (the fourth only in part);
  // the twelve after them are gone.
  EXPECT_EQ(ResidentPages(start, 16), 4u);
  for (std::uint8_t c : b.Unconsumed()) ASSERT_EQ(c, 'x');
  EXPECT_EQ(b.Unconsumed().size(), 3 * kPage + kPage / 2);

  // The next read lands in fresh pages.
  auto tail = b.WritableTail();
  ASSERT_EQ(tail.size(), 12 * kPage + kPage / 2);
  std::memset(tail.data(), 'y', tail.size());
  b.CommitReceived(tail.size());
  EXPECT_EQ(b.Unconsumed()[3 * kPage + kPage / 2], 'y');
  EXPECT_EQ(ResidentPages(start, 16), 16u);
}

TEST(IdlePagesTest, AnEmptyBufferGivesBackEveryPage) {
  protocol::IoBuffer b(8 * kPage);
  const std::uint8_t* start = b.FreeSpace().data();
  std::memset(b.FreeSpace().data(), 'x', 8 * kPage);
  b.CommitReceived(100);
  b.Consume(100);  // forwarded: the buffer is empty again
  ReleaseIdlePages(b);
  EXPECT_EQ(ResidentPages(start, 8), 0u);
}

TEST(IdlePagesTest, ABufferSmallerThanAPageIsLeftAlone) {
  protocol::IoBuffer b(100);
  std::memset(b.FreeSpace().data(), 'x', 100);
  b.CommitReceived(10);
  ReleaseIdlePages(b);  // no whole free page: nothing to do
  for (std::uint8_t c : b.Unconsumed()) ASSERT_EQ(c, 'x');
}

}  // namespace
}  // namespace turnout::proxy
