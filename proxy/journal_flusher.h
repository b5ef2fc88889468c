#pragma once
// Makes the dual-write journal durable in batches: one thread flushes and
// fsyncs it every few milliseconds, so sessions only ever queue entries.
// After each flush it frees the intent-record slots (intent_ring.h) whose
// writes are now on disk in the journal.

#include <atomic>
#include <chrono>
#include <thread>

#include "routing/journal.h"

namespace turnout::proxy {

class IntentRing;

class JournalFlusher {
 public:
  explicit JournalFlusher(routing::Journal* journal, std::chrono::milliseconds interval = std::chrono::milliseconds(20),
                          IntentRing* intents = nullptr);
  ~JournalFlusher();  // flushes one last time
  JournalFlusher(const JournalFlusher&) = delete;
  JournalFlusher& operator=(const JournalFlusher&) = delete;

 private:
  // One flush, then the intents it made durable are freed.
  bool FlushOnce();

  routing::Journal* journal_;
  IntentRing* intents_;
  bool failing_ = false;  // the flusher thread's, then the destructor's
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace turnout::proxy
