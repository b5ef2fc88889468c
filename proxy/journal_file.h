#pragma once
// The dual-write journal's file (routing/journal.h keeps the format and the
// state; routing/ is pure, so the file lives here, with the process that owns
// the journal and flushes it: journal_flusher.h).
//
// Crash safety: appends go through one O_APPEND descriptor and each flush
// ends in fdatasync, so an acknowledged flush survives a crash and a crash
// mid-append leaves at most a torn last line (the format ignores it).
// Compaction writes `<path>.compact`, fsyncs it, renames it over the journal
// and fsyncs the folder: the file is the old one or the new one, never a mix.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "routing/journal.h"
#include "routing/journal_sink.h"

namespace turnout::proxy {

class JournalFile final : public routing::JournalSink {
 public:
  // Opens (creating, mode 0600) the file for appending.
  static absl::StatusOr<std::unique_ptr<JournalFile>> Open(std::string path);
  ~JournalFile() override;
  JournalFile(const JournalFile&) = delete;
  JournalFile& operator=(const JournalFile&) = delete;

  void Load(absl::FunctionRef<void(std::string_view line)> line) const override;
  absl::Status Append(std::string_view lines) override;
  absl::Status Sync() override;
  absl::Status Rewrite(std::string_view text) override;

  const std::string& path() const { return path_; }

 private:
  JournalFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;
  int fd_;  // O_APPEND; replaced by the rewritten file's after a compaction
};

// Opens (creating) the journal file at `path` and loads its unrepaired entries.
absl::StatusOr<std::unique_ptr<routing::Journal>> OpenJournalFile(std::string path, routing::Journal::Options options);

}  // namespace turnout::proxy
