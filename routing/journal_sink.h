#pragma once
// Where the dual-write journal (journal.h) keeps its lines. The journal owns
// the format and decides what to write and when; the sink only stores text.
// routing/ stays pure (STYLE.md), so the file that implements this lives with
// the process that owns it: proxy/journal_file.h.
//
// The journal calls the sink from one thread at a time: Load while opening,
// then Append, Sync and Rewrite from Flush (serialised there), so a sink
// needs no lock of its own.

#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace turnout::routing {

class JournalSink {
 public:
  virtual ~JournalSink() = default;

  // Calls `line` with each stored line in order, without its '\n'. A torn
  // last line (a crash mid-append) is passed as it is: the format knows to
  // ignore it. The journal reads twice (journal.h: repaired numbers first),
  // so Load must be repeatable; nothing stored reads as no lines.
  virtual void Load(absl::FunctionRef<void(std::string_view line)> line) const = 0;
  // Appends whole lines; not yet durable. On error the journal queues the
  // same lines again for the next flush.
  virtual absl::Status Append(std::string_view lines) = 0;
  // Makes everything appended so far durable (a file: fdatasync).
  virtual absl::Status Sync() = 0;
  // Replaces everything stored with `text`, atomically: after a crash the
  // store holds the old lines or the new ones, never a mix; later appends go
  // after `text`. On error the old lines are intact and appends go on after
  // them.
  virtual absl::Status Rewrite(std::string_view text) = 0;
};

}  // namespace turnout::routing
