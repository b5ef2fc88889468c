#pragma once
// Makes the dual-write journal durable in batches: one thread flushes and
// fsyncs it every few milliseconds, so sessions only ever queue entries.

#include <atomic>
#include <chrono>
#include <thread>

#include "routing/journal.h"

namespace turnout::proxy {

class JournalFlusher {
 public:
  explicit JournalFlusher(routing::Journal* journal, std::chrono::milliseconds interval = std::chrono::milliseconds(20));
  ~JournalFlusher();  // flushes one last time
  JournalFlusher(const JournalFlusher&) = delete;
  JournalFlusher& operator=(const JournalFlusher&) = delete;

 private:
  routing::Journal* journal_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace turnout::proxy
