#pragma once
// The client session's state as the backends see it (DESIGN.md §3 "Session
// state ... is recorded and replayed on a connection opened later"): SET and
// RESET (transactional), SET LOCAL (until the transaction ends), named
// prepared statements from Parse and from SQL PREPARE (not transactional),
// LISTEN / UNLISTEN (take effect at commit), DISCARD ALL.
//
// A statement changes the recorded state only once its backend acknowledged
// it, matched in order within its request:
//
//   client side (forwarding)          backend side (replies, same order)
//   OnStatement(op, seq)  ──────────► CommandComplete "SET" of request seq
//   OnParse(name, ..., seq) ────────► ParseComplete of request seq
//   OnClose(name, seq)    ──────────► CloseComplete of request seq
//                                     ReadyForQuery ends request seq: what
//                                     was not acknowledged failed
//
// Transactional changes are held until the transaction ends: applied at
// COMMIT (or at the end of an implicit transaction without error), dropped
// at ROLLBACK or error. Known simplification: ROLLBACK TO SAVEPOINT does not
// undo SETs made after the savepoint.
//
// Allocation happens only for statements that change state (their text is
// kept for replay), never per relayed message.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/pg/messages.h"
#include "protocol/pg/sql_classifier.h"

namespace turnout::proxy::pg {

// An SQL identifier as the server resolves it: unquoted folds to lower
// case, quoted keeps its case without the quotes.
std::string NormalizeIdentifier(std::string_view s);

struct SessionOp {
  enum class Kind : std::uint8_t {
    kSet,            // SET name ... (transactional)
    kSetLocal,       // SET LOCAL (until the transaction ends)
    kReset,          // RESET name
    kResetAll,       // RESET ALL
    kListen,
    kUnlisten,
    kUnlistenAll,    // UNLISTEN *
    kPrepare,        // SQL PREPARE name AS ...
    kDeallocate,
    kDeallocateAll,
    kDiscardAll,
    kNoState,        // same tag as a state change, no state (SET TRANSACTION, DISCARD PLANS)
  };
  Kind kind = Kind::kNoState;
  std::string key;   // normalised parameter, channel or statement name
  std::string text;  // the statement, for replay
  // The CommandComplete tag that acknowledges it.
  std::string_view tag() const noexcept;
  bool transactional() const noexcept;

  // The op a classified statement stands for; nullopt when it changes no
  // state turnout replays.
  static std::optional<SessionOp> From(const protocol::pg::StatementInfo& st);
};

class SessionState {
 public:
  // ---- client side: a request (Query, or messages up to Sync) gets a
  // sequence number; its state-changing parts are announced with it.
  void OnStatement(SessionOp op, std::uint64_t seq);
  void OnParse(std::string_view name, std::string_view query, std::span<const std::uint32_t> param_types,
               std::uint64_t seq);
  void OnCloseStatement(std::string_view name, std::uint64_t seq);
  bool HasPendingAcks() const noexcept { return !effects_.empty(); }

  // ---- backend side, for the request `seq` whose replies are arriving.
  void OnCommandComplete(std::string_view tag, std::uint64_t seq);
  void OnParseComplete(std::uint64_t seq);
  void OnCloseComplete(std::uint64_t seq);
  void OnError() noexcept { request_error_ = true; }
  // Ends requests up to and including `last_seq`.
  void OnReadyForQuery(std::uint64_t last_seq, protocol::pg::TransactionStatus status);

  struct Prepared {
    bool sql = false;          // from SQL PREPARE (text is the statement)
    std::string text;          // PREPARE statement, or the Parse query
    std::vector<std::uint32_t> param_types;
    bool operator==(const Prepared&) const = default;
  };
  // What a backend connection was last brought to.
  struct Snapshot {
    std::vector<std::pair<std::string, std::string>> settings;  // key -> SET text, first-set order
    std::vector<std::pair<std::string, Prepared>> prepared;     // name -> statement
    std::vector<std::pair<std::string, std::string>> listens;   // channel -> LISTEN text
    bool operator==(const Snapshot&) const = default;
  };

  // ---- replay on a connection opened later (`from` nullptr: a fresh one),
  // or one that has been idle since `from`: settings first (so names
  // resolve under the same search_path), then prepared statements, then
  // LISTEN, each as the difference from what the connection has. Appends
  // Query / Parse / Close messages; returns how many ReadyForQuery replies
  // they produce.
  int AppendReplay(std::string* out, const Snapshot* from = nullptr) const;
  const Snapshot& snapshot() const noexcept { return current_; }
  // SET LOCAL statements of the open transaction, to replay after BEGIN.
  const std::vector<std::string>& local_settings() const noexcept { return local_; }

  const std::vector<std::pair<std::string, std::string>>& settings() const noexcept { return current_.settings; }
  const std::vector<std::pair<std::string, Prepared>>& prepared() const noexcept { return current_.prepared; }
  const std::vector<std::pair<std::string, std::string>>& listens() const noexcept { return current_.listens; }
  bool empty() const noexcept {
    return current_.settings.empty() && current_.prepared.empty() && current_.listens.empty();
  }

 private:
  enum class Ack : std::uint8_t { kCommandComplete, kParseComplete, kCloseComplete };
  struct Effect {
    std::uint64_t seq;
    Ack ack;
    SessionOp op;             // kCommandComplete
    std::string name;         // Parse / Close
    Prepared prepared;        // Parse
  };

  Effect* FindEffect(std::uint64_t seq, Ack ack, std::string_view tag);
  void Acknowledged(Effect& e);
  void Apply(const SessionOp& op);
  void ApplyPending();

  std::vector<Effect> effects_;            // announced, not yet acknowledged
  std::vector<SessionOp> pending_;         // acknowledged, transaction open
  std::vector<std::string> local_;         // SET LOCAL of the open transaction
  bool request_error_ = false;
  enum class End : std::uint8_t { kNone, kCommit, kRollback } end_ = End::kNone;

  Snapshot current_;
};

}  // namespace turnout::proxy::pg
