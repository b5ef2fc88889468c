#pragma once
// The secondary's copy of the client's transaction (DESIGN.md §2), one per
// PostgreSQL session, and what keeps it apart from other sessions'.
//
// Under statement dual-write a transaction is carried lazily: the
// secondary gets BEGIN (and the transaction's SET LOCALs) with the
// transaction's first write, then its other writes, then its end, each
// after the primary answered it (pg_secondary.cc). From that first write
// until the end reaches the secondary, the transaction is `open`; if the
// secondary's connection goes meanwhile it is `lost`, and the rest of the
// transaction is journaled instead of sent. Its writes' tables and intent
// slots are gathered here so its end names, and settles, all of them.
//
// Who changes what: the lazy BEGIN (Begin) at StartOp; the end, as the
// primary answered it, in PrimaryOpDone (pg_secondary_queue.cc); the
// two-phase commit (`holding`, AtomicCommit) and the opposite-authority
// gate (`writer_hold`) in pg_transactions.cc; a lost connection
// (SecondaryLost). Nothing here does I/O.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/plan.h"

namespace turnout::proxy::pg::detail {

struct CarriedTransaction {
  bool open = false;    // the secondary holds a copy of the client's transaction
  bool lost = false;    // ... and lost it: the rest of it is journaled
  bool sync = true;     // the mode the transaction started with
  bool atomic = false;  // ... and whether it commits in two phases

  // Two-phase commit (`atomic: true`): while `holding`, the client's COMMIT
  // frames go to the atomic op, not yet to the primary; `held_for_primary`
  // are those frames when the op was abandoned: they go to the primary
  // after all, ahead of anything else (FlushClientParsed).
  bool holding = false;
  std::string held_for_primary;
  std::uint64_t atomic_count = 0;  // numbers the two-phase gids of the session

  std::vector<std::string> tables;     // written in the transaction (its end's journal entry and intent)
  std::vector<std::uint32_t> intents;  // intent slots of its writes, settled at its end

  // Counted in RouteRuntime::dual_writers for this side while the session
  // has dual-write work in flight (UpdateWriterHold).
  std::optional<routing::Side> writer_hold;

  // The transaction's writes go to the secondary, or to the journal once lost.
  bool followed() const noexcept { return open || lost; }

  // The transaction reaches the secondary with its first write: appends
  // its BEGIN and the SET LOCALs so far to `out`; returns the replies
  // they bring.
  int Begin(std::string* out, std::span<const std::string> local_settings, bool sync_apply, bool atomic_commit);
  // The secondary's connection went while it held the transaction.
  void Lose() noexcept;
  // A request outside a transaction: a transaction lost earlier is behind.
  void ForgetLoss() noexcept { lost = false; }
  // Remembers tables the transaction writes (each once).
  void AddTables(std::span<const std::string_view> written);
  void AddTables(std::span<const std::string> written);
};

}  // namespace turnout::proxy::pg::detail
