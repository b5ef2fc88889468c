#include "proxy/journal_flusher.h"

#include "proxy/logging.h"

namespace turnout::proxy {

JournalFlusher::JournalFlusher(routing::Journal* journal, std::chrono::milliseconds interval) : journal_(journal) {
  thread_ = std::thread([this, interval] {
    bool failing = false;
    while (!stop_.load(std::memory_order_relaxed)) {
      auto st = journal_->Flush();
      // Log the first failure of a run, not every 20 ms.
      if (!st.ok() && !failing) LogError("journal flush failed", {{"error", std::string(st.message())}});
      failing = !st.ok();
      std::this_thread::sleep_for(interval);
    }
  });
}

JournalFlusher::~JournalFlusher() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (auto st = journal_->Flush(); !st.ok()) LogError("journal flush failed", {{"error", std::string(st.message())}});
}

}  // namespace turnout::proxy
