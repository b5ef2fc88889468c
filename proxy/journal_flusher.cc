#include "proxy/journal_flusher.h"

#include "proxy/intent_ring.h"
#include "proxy/logging.h"

namespace turnout::proxy {

JournalFlusher::JournalFlusher(routing::Journal* journal, std::chrono::milliseconds interval, IntentRing* intents)
    : journal_(journal), intents_(intents) {
  thread_ = std::thread([this, interval] {
    while (!stop_.load(std::memory_order_relaxed)) {
      FlushOnce();
      std::this_thread::sleep_for(interval);
    }
  });
}

bool JournalFlusher::FlushOnce() {
  auto st = journal_->Flush();
  if (!st.ok()) {
    // Log the first failure of a run, not every 20 ms.
    if (!failing_) LogError("journal flush failed", {{"error", std::string(st.message())}});
    failing_ = true;
    return false;
  }
  failing_ = false;
  // Read after the flush: every entry up to it is on disk, so the intents
  // it records may go.
  if (intents_ != nullptr) intents_->ClearFlushed(journal_->FlushedSeq());
  return true;
}

JournalFlusher::~JournalFlusher() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  FlushOnce();
}

}  // namespace turnout::proxy
