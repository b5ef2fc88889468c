#pragma once
// The dual-write journal (DESIGN.md §2 "Dual-write is never dropped: it is
// applied or journaled"): secondary writes that failed, diverged, or could
// not be queued, kept until repaired.
//
// Durability: Append() only queues the entry in memory (cheap, callable from
// any worker thread); Flush() appends every queued entry to the file and
// fsyncs it, in one batch. The owner calls Flush() every few milliseconds
// from one thread, so the window an acknowledged write can lose its journal
// entry to a crash is one flush interval; FlushedSeq() tells what is durable.
//
// Bounded: past `max_entries` unrepaired entries Append() refuses (returns 0)
// and full() turns true: a clear alarm (metric, readiness) rather than
// unbounded growth. Repaired entries stop counting.
//
// File format: one entry per line, tab-separated C-escaped fields, so it is
// greppable and survives a torn last line (ignored on load). Repairs append a
// "repaired <seq>" line.

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace turnout::routing {

enum class JournalKind : std::uint8_t {
  kFailed,    // the secondary returned an error, the primary did not
  kDiverged,  // both answered but differently (affected rows, reply)
  kDropped,   // could not be queued (async queue full) or the secondary was down
};
const char* JournalKindName(JournalKind k);

struct JournalEntry {
  std::uint64_t seq = 0;  // assigned by Append
  absl::Time at;
  std::string migration_id;
  std::string route;
  std::string backend;  // the secondary backend that missed the write
  std::uint64_t session = 0;
  JournalKind kind = JournalKind::kFailed;
  std::string statement;  // SQL, or the Redis command with its arguments
  std::vector<std::string> params;   // Postgres bind parameters (text form)
  std::vector<std::string> targets;  // tables or keys touched
  // Postgres: the database the session wrote in (empty: the backend's own).
  std::string database;
  std::string primary_outcome;
  std::string secondary_outcome;
  bool repaired = false;
};

class Journal {
 public:
  struct Options {
    std::size_t max_entries = 100000;  // unrepaired entries kept
  };
  // Opens (creating) the file and loads its unrepaired entries.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& path, Options options);
  // An in-memory journal (tests, or when no path is configured).
  static std::unique_ptr<Journal> InMemory(Options options);

  // Queues an entry; returns its sequence number, or 0 when the journal is full.
  std::uint64_t Append(JournalEntry entry);
  // Writes and fsyncs everything queued; safe to call from one thread at a time.
  absl::Status Flush();
  std::uint64_t FlushedSeq() const;

  // Unrepaired entries, oldest first, optionally of one migration; at most `limit`.
  std::vector<JournalEntry> Pending(const std::string& migration_id = "", std::size_t limit = SIZE_MAX) const;
  std::size_t PendingCount(const std::string& migration_id = "") const;
  // Marks entries repaired (durably, at the next Flush).
  void MarkRepaired(const std::vector<std::uint64_t>& seqs);

  bool full() const;
  std::uint64_t dropped_when_full() const;
  const std::string& path() const { return path_; }

 private:
  explicit Journal(std::string path, Options options) : path_(std::move(path)), options_(options) {}
  static std::string Encode(const JournalEntry& e);

  const std::string path_;
  const Options options_;
  mutable std::mutex mu_;
  std::deque<JournalEntry> entries_;      // unrepaired, oldest first
  std::vector<std::string> unflushed_;    // encoded lines waiting for Flush
  std::uint64_t next_seq_ = 1;
  std::uint64_t queued_seq_ = 0;   // highest seq in unflushed_
  std::uint64_t flushed_seq_ = 0;  // highest seq on disk
  std::uint64_t full_drops_ = 0;
  std::mutex flush_mu_;
  int fd_ = -1;
};

}  // namespace turnout::routing
