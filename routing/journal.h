#pragma once
// The dual-write journal (DESIGN.md §2 "Dual-write is never dropped: it is
// applied or journaled"): secondary writes that failed, diverged, or could
// not be queued, kept until repaired.
//
// Durability: Append() only queues the entry in memory (cheap, callable from
// any worker thread); Flush() appends every queued entry to the sink and
// makes it durable (a file: write, then fdatasync), in one batch. The owner
// calls Flush() every few milliseconds from one thread, so the window an
// acknowledged write can lose its journal entry to a crash is one flush
// interval; FlushedSeq() tells what is durable.
//
// Bounded, and never losing a record: past `max_entries` unrepaired entries
// full() turns true (a clear alarm: readiness, metric) and Append() stops
// keeping statements. It folds each entry into an overflow entry of its
// (migration, route, backend, database) that names only the tables or keys
// touched, deduplicated: what repair needs (control/journal_repair.cc re-copies
// targets, it never replays statements). An overflow entry holds at most
// kOverflowTargets targets, then the next one starts, so memory grows with
// the distinct targets written while full, not with the writes. Repaired
// entries stop counting.
//
// Storage: the journal owns the format below and the decisions (what to
// write, when to compact); a JournalSink (journal_sink.h) stores the lines.
// routing/ is pure, so the file sink lives with the process that owns it
// (proxy/journal_file.h: OpenJournalFile). InMemory() has no sink.
//
// File format: one entry per line, tab-separated C-escaped fields, so it is
// greppable and survives a torn last line (ignored on load). Repairs append a
// "repaired <seq>" line. A target added to an overflow entry appends
// "targets <seq> <targets> ." (older readers skip the line: the entry then
// names fewer targets, as before this format).
//
// Compaction: once repaired entries are over half of the file's entries (and
// at least `compact_after_repaired`), Flush() rewrites the file with only the
// unrepaired ones, atomically (JournalSink::Rewrite; the file sink writes a
// temporary file, fsyncs it, renames it over, fsyncs the folder). Sequence
// numbers are kept (the intent record names entries by them): each entry
// keeps its own, and a first line "next <seq>" keeps the numbering going
// past the repaired entries the rewrite left out. Loading
// reads the file twice (repaired numbers first) so that repaired entries are
// never held in memory.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "routing/journal_sink.h"

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
    std::size_t compact_after_repaired = 10000;  // repaired entries in the file before it is rewritten
  };
  ~Journal();
  // Loads the sink's unrepaired entries; later flushes append to it. A
  // journal on a file: proxy/journal_file.h OpenJournalFile.
  static std::unique_ptr<Journal> Open(std::unique_ptr<JournalSink> sink, Options options);
  // An in-memory journal (tests, or when no path is configured).
  static std::unique_ptr<Journal> InMemory(Options options);

  // Queues an entry; returns its sequence number, never 0. When full the
  // entry is folded into an overflow entry and the number returned is the
  // one FlushedSeq() passes once that record is on disk.
  std::uint64_t Append(JournalEntry entry);
  // Writes everything queued to the sink and makes it durable; safe to call
  // from one thread at a time.
  absl::Status Flush();
  std::uint64_t FlushedSeq() const;

  // Unrepaired entries, oldest first, optionally of one migration; at most `limit`.
  std::vector<JournalEntry> Pending(const std::string& migration_id = "", std::size_t limit = SIZE_MAX) const;
  std::size_t PendingCount(const std::string& migration_id = "") const;
  // Marks entries repaired (durably, at the next Flush).
  void MarkRepaired(const std::vector<std::uint64_t>& seqs);

  bool full() const;
  // Records refused: always 0 since full journals coalesce (kept for the
  // turnout_dualwrite_journal_refused_total series).
  std::uint64_t dropped_when_full() const;
  // Entries folded into overflow entries (targets only) while full.
  std::uint64_t coalesced_when_full() const;

  static constexpr std::size_t kOverflowTargets = 1024;
  static constexpr const char* kOverflowStatement = "(journal full: recorded by tables/keys only; repair re-copies them)";
  // Rewrites done so far (compaction).
  std::uint64_t compactions() const;

 private:
  Journal(std::unique_ptr<JournalSink> sink, Options options) : sink_(std::move(sink)), options_(options) {}
  static std::string Encode(const JournalEntry& e);

  // Null for InMemory(). Set once; only Open and Flush (under flush_mu_) call it.
  const std::unique_ptr<JournalSink> sink_;
  const Options options_;
  mutable std::mutex mu_;
  std::deque<JournalEntry> entries_;      // unrepaired, oldest first
  std::vector<std::string> unflushed_;    // encoded lines waiting for Flush
  std::uint64_t next_seq_ = 1;
  std::uint64_t queued_seq_ = 0;   // highest seq in unflushed_
  std::uint64_t flushed_seq_ = 0;  // highest seq on disk
  std::uint64_t full_drops_ = 0;
  std::uint64_t coalesced_ = 0;
  // The open overflow entry of each (migration, route, backend, database).
  struct Overflow {
    std::uint64_t seq = 0;
    std::unordered_set<std::string> targets;
  };
  std::map<std::tuple<std::string, std::string, std::string, std::string>, Overflow> overflow_;
  // Entry and repaired lines in the file (or queued for it) since it was
  // last rewritten: what decides compaction.
  std::size_t file_entries_ = 0;
  std::size_t file_repaired_ = 0;
  std::uint64_t compactions_ = 0;
  std::size_t compact_floor_ = 0;  // after a failed rewrite: wait for twice as many repaired
  bool ShouldCompactLocked() const;
  JournalEntry* FindLocked(std::uint64_t seq);
  std::uint64_t CoalesceLocked(JournalEntry entry);
  std::mutex flush_mu_;
};

}  // namespace turnout::routing
