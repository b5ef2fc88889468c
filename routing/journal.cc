#include "routing/journal.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace turnout::routing {
namespace {

constexpr const char* kKinds[] = {"failed", "diverged", "dropped"};

std::string JoinEscaped(const std::vector<std::string>& v) {
  std::vector<std::string> escaped;
  for (const auto& s : v) escaped.push_back(absl::CEscape(s));
  return absl::StrJoin(escaped, "\x1f");  // unit separator: never produced by CEscape
}

std::vector<std::string> SplitEscaped(absl::string_view s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  for (absl::string_view part : absl::StrSplit(s, '\x1f')) {
    std::string u;
    absl::CUnescape(part, &u);
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace

const char* JournalKindName(JournalKind k) { return kKinds[static_cast<int>(k)]; }

std::string Journal::Encode(const JournalEntry& e) {
  return absl::StrCat("entry\t", e.seq, "\t", absl::ToUnixMicros(e.at), "\t", absl::CEscape(e.migration_id), "\t",
                      absl::CEscape(e.route), "\t", absl::CEscape(e.backend), "\t", e.session, "\t",
                      kKinds[static_cast<int>(e.kind)], "\t", absl::CEscape(e.statement), "\t", JoinEscaped(e.params),
                      "\t", JoinEscaped(e.targets), "\t", absl::CEscape(e.primary_outcome), "\t",
                      absl::CEscape(e.secondary_outcome), "\t", absl::CEscape(e.database), "\t.\n");
}

namespace {

// An "entry" line's fields into `e`; false for a torn or foreign line.
bool DecodeEntry(const std::vector<absl::string_view>& f, JournalEntry& e) {
  // A torn last line (crash mid-write) lacks the closing "." field:
  // skipped. Files written before entries named their database have 13
  // fields and no marker.
  const bool complete = (f.size() == 15 && f[14] == ".") || f.size() == 13;
  if (!complete || f[0] != "entry" || !absl::SimpleAtoi(f[1], &e.seq)) return false;
  std::int64_t micros = 0;
  (void)absl::SimpleAtoi(f[2], &micros);
  e.at = absl::FromUnixMicros(micros);
  absl::CUnescape(f[3], &e.migration_id);
  absl::CUnescape(f[4], &e.route);
  absl::CUnescape(f[5], &e.backend);
  (void)absl::SimpleAtoi(f[6], &e.session);
  for (int k = 0; k < 3; ++k)
    if (f[7] == kKinds[k]) e.kind = static_cast<JournalKind>(k);
  absl::CUnescape(f[8], &e.statement);
  e.params = SplitEscaped(f[9]);
  e.targets = SplitEscaped(f[10]);
  absl::CUnescape(f[11], &e.primary_outcome);
  absl::CUnescape(f[12], &e.secondary_outcome);
  if (f.size() == 15) absl::CUnescape(f[13], &e.database);
  return true;
}

}  // namespace

std::unique_ptr<Journal> Journal::Open(std::unique_ptr<JournalSink> sink, Options options) {
  std::unique_ptr<Journal> j(new Journal(std::move(sink), options));
  // First pass: the repaired numbers and the numbering, so the second keeps
  // only unrepaired entries in memory.
  std::vector<std::uint64_t> repaired;
  j->sink_->Load([&](std::string_view line) {
    std::vector<absl::string_view> f = absl::StrSplit(absl::string_view(line.data(), line.size()), '\t');
    std::uint64_t seq = 0;
    if (f.size() < 2 || !absl::SimpleAtoi(f[1], &seq)) return;
    if (f.size() == 2 && f[0] == "repaired") {
      repaired.push_back(seq);
      ++j->file_repaired_;
    } else if (f.size() == 2 && f[0] == "next") {
      j->next_seq_ = std::max(j->next_seq_, seq);
    } else if (f[0] == "entry" && (f.size() == 15 || f.size() == 13)) {
      j->next_seq_ = std::max(j->next_seq_, seq + 1);
      ++j->file_entries_;
    }
  });
  std::sort(repaired.begin(), repaired.end());
  j->sink_->Load([&](std::string_view line) {
    std::vector<absl::string_view> f = absl::StrSplit(absl::string_view(line.data(), line.size()), '\t');
    std::uint64_t seq = 0;
    if (f.size() == 4 && f[0] == "targets" && f[3] == "." && absl::SimpleAtoi(f[1], &seq)) {
      if (JournalEntry* e = j->FindLocked(seq))
        for (auto& t : SplitEscaped(f[2])) e->targets.push_back(std::move(t));
      return;
    }
    if (f.empty() || f[0] != "entry" || f.size() < 2 || !absl::SimpleAtoi(f[1], &seq) ||
        std::binary_search(repaired.begin(), repaired.end(), seq))
      return;
    JournalEntry e;
    if (DecodeEntry(f, e)) j->entries_.push_back(std::move(e));
  });
  j->flushed_seq_ = j->queued_seq_ = j->next_seq_ - 1;
  return j;
}

Journal::~Journal() = default;

std::unique_ptr<Journal> Journal::InMemory(Options options) {
  return std::unique_ptr<Journal>(new Journal(nullptr, options));
}

JournalEntry* Journal::FindLocked(std::uint64_t seq) {
  // Entries are kept in seq order (appended, and loaded, in that order).
  auto it = std::lower_bound(entries_.begin(), entries_.end(), seq,
                             [](const JournalEntry& e, std::uint64_t s) { return e.seq < s; });
  return it != entries_.end() && it->seq == seq ? &*it : nullptr;
}

std::uint64_t Journal::CoalesceLocked(JournalEntry entry) {
  ++coalesced_;
  auto& o = overflow_[{entry.migration_id, entry.route, entry.backend, entry.database}];
  JournalEntry* open = o.seq != 0 ? FindLocked(o.seq) : nullptr;
  if (open == nullptr || open->targets.size() + entry.targets.size() > kOverflowTargets) {
    // Start the next overflow entry (the previous one was repaired or filled).
    o = Overflow{};
    JournalEntry first = std::move(entry);
    first.statement = kOverflowStatement;
    first.params.clear();
    std::vector<std::string> unique;
    for (auto& t : first.targets)
      if (o.targets.insert(t).second) unique.push_back(std::move(t));
    first.targets = std::move(unique);
    first.seq = next_seq_++;
    first.repaired = false;
    if (sink_) {
      unflushed_.push_back(Encode(first));
      ++file_entries_;
    }
    queued_seq_ = o.seq = first.seq;
    entries_.push_back(std::move(first));
    return o.seq;
  }
  std::vector<std::string> added;
  for (auto& t : entry.targets)
    if (o.targets.insert(t).second) added.push_back(std::move(t));
  if (added.empty()) return queued_seq_;  // named already: durable with what is queued
  if (sink_) unflushed_.push_back(absl::StrCat("targets\t", o.seq, "\t", JoinEscaped(added), "\t.\n"));
  open->targets.insert(open->targets.end(), added.begin(), added.end());
  // A number of its own, so FlushedSeq() passes it only once this line is
  // on disk; it names no entry (the entry is o.seq).
  queued_seq_ = next_seq_++;
  return queued_seq_;
}

std::uint64_t Journal::Append(JournalEntry entry) {
  std::lock_guard<std::mutex> l(mu_);
  if (entries_.size() >= options_.max_entries) return CoalesceLocked(std::move(entry));
  entry.seq = next_seq_++;
  entry.repaired = false;
  if (sink_) {
    unflushed_.push_back(Encode(entry));
    ++file_entries_;
  }
  queued_seq_ = entry.seq;
  entries_.push_back(std::move(entry));
  return queued_seq_;
}

bool Journal::ShouldCompactLocked() const {
  return sink_ && file_repaired_ >= std::max(options_.compact_after_repaired, compact_floor_) &&
         file_repaired_ * 2 > file_entries_;
}

absl::Status Journal::Flush() {
  std::lock_guard<std::mutex> serial(flush_mu_);
  std::vector<std::string> lines;
  std::uint64_t upto;
  std::string rewrite;  // non-empty: the whole file, compacted
  std::size_t rewrite_entries = 0, entries_at = 0, repaired_at = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    lines.swap(unflushed_);
    upto = queued_seq_;
    if (ShouldCompactLocked()) {
      // Everything queued so far is in this state: the rewrite replaces
      // `lines`; what is queued from now on is appended to the new file.
      rewrite = absl::StrCat("next\t", next_seq_, "\n");
      for (const auto& e : entries_) rewrite += Encode(e);
      rewrite_entries = entries_.size();
      entries_at = file_entries_;
      repaired_at = file_repaired_;
    }
  }
  if (!rewrite.empty()) {
    if (sink_->Rewrite(rewrite).ok()) {
      std::lock_guard<std::mutex> l(mu_);
      file_entries_ = rewrite_entries + (file_entries_ - entries_at);
      file_repaired_ -= repaired_at;
      compact_floor_ = 0;
      ++compactions_;
      flushed_seq_ = std::max(flushed_seq_, upto);
      return absl::OkStatus();
    }
    // Not rewritten: the old file is intact; append to it as usual, and
    // try again only once the repaired share doubled (not every flush).
    std::lock_guard<std::mutex> l(mu_);
    compact_floor_ = 2 * std::max<std::size_t>(repaired_at, 1);
  }
  if (sink_ && !lines.empty()) {
    // One write of the whole batch, then one sync.
    if (absl::Status written = sink_->Append(absl::StrJoin(lines, "")); !written.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      unflushed_.insert(unflushed_.begin(), lines.begin(), lines.end());
      return written;
    }
    if (absl::Status synced = sink_->Sync(); !synced.ok()) return synced;
  }
  std::lock_guard<std::mutex> l(mu_);
  flushed_seq_ = std::max(flushed_seq_, upto);
  return absl::OkStatus();
}

std::uint64_t Journal::FlushedSeq() const {
  std::lock_guard<std::mutex> l(mu_);
  return sink_ ? flushed_seq_ : queued_seq_;
}

std::vector<JournalEntry> Journal::Pending(const std::string& migration_id, std::size_t limit) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<JournalEntry> out;
  for (const auto& e : entries_) {
    if (out.size() >= limit) break;
    if (migration_id.empty() || e.migration_id == migration_id) out.push_back(e);
  }
  return out;
}

std::size_t Journal::PendingCount(const std::string& migration_id) const {
  std::lock_guard<std::mutex> l(mu_);
  if (migration_id.empty()) return entries_.size();
  return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                [&](const JournalEntry& e) { return e.migration_id == migration_id; }));
}

void Journal::MarkRepaired(const std::vector<std::uint64_t>& seqs) {
  std::lock_guard<std::mutex> l(mu_);
  for (std::uint64_t s : seqs) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [s](const JournalEntry& e) { return e.seq == s; });
    if (it == entries_.end()) continue;
    entries_.erase(it);
    if (sink_) {
      unflushed_.push_back(absl::StrCat("repaired\t", s, "\n"));
      ++file_repaired_;
    }
  }
}

std::uint64_t Journal::compactions() const {
  std::lock_guard<std::mutex> l(mu_);
  return compactions_;
}

bool Journal::full() const {
  std::lock_guard<std::mutex> l(mu_);
  return entries_.size() >= options_.max_entries;
}

std::uint64_t Journal::dropped_when_full() const {
  std::lock_guard<std::mutex> l(mu_);
  return full_drops_;
}

std::uint64_t Journal::coalesced_when_full() const {
  std::lock_guard<std::mutex> l(mu_);
  return coalesced_;
}

}  // namespace turnout::routing
