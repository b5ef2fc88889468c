#pragma once
// A background thread of a test stopped and joined on every way out of the
// test, a failed ASSERT too: sets `stop`, then joins `thread`.

#include <atomic>
#include <thread>

namespace turnout::testing {

struct StopAndJoin {
  std::thread& thread;
  std::atomic<bool>& stop;
  ~StopAndJoin() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

}  // namespace turnout::testing
