#pragma once
// What the session knows about the conversation it relays, sans I/O: the
// frames each side sends go in (as views into the session's buffers), and
// out come a verdict per client frame, the request accounting that drain,
// cancel and backend switches wait on, the statement classes routing needs,
// and the session state to replay (SessionState).
//
// Routing: the frame that starts a request (a simple Query; the first
// Parse, Bind or Execute of an extended batch), and an Execute later in a
// batch, is answered kRoute with what routing needs (request(): class,
// DDL risk, tables) and recorded only once the session answers with
// Routed(): the session decides once, and may first wait (a barrier) with
// the frame held where it is. The tracker never calls into the routing
// engine, and is not fed the same frame twice.
//
// Request accounting: every Query, Sync and FunctionCall closes a request
// with a sequence number; every ReadyForQuery answers the oldest one; the
// difference is what is in flight. The server answers each of those with
// exactly one ReadyForQuery, with one exception: it ignores Sync (and
// Flush) during copy-in (copyfromparse.c), and libpq sends COPY in extended
// mode as Parse/Bind/Describe/Execute/Sync and another Sync after CopyDone.
// Syncs sent after the Execute of a COPY FROM STDIN are therefore
// conditional until the server says whether the copy started
// (CopyInResponse: they were swallowed) or not (ReadyForQuery first).
//
// Statement classes (DESIGN.md §3): a simple Query is classified as a whole;
// Parse classifies its statement once, and Bind/Execute look the class up
// through the portal ("a named statement keeps the class computed at
// Parse"). Nothing here allocates per message in steady state: scratch is
// reused, names are looked up by view, and only state changes (named
// statements, SET, ...) are copied.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/sql_classifier.h"
#include "proxy/pg/session_state.h"
#include "routing/plan.h"
#include "routing/request.h"

namespace turnout::proxy::pg {

routing::RequestClass ToRequestClass(protocol::pg::StatementClass c) noexcept;

// Recognises the debug hook "TURNOUT DEBUG USE NEW|OLD" (see pg_session_impl.h).
std::optional<routing::Side> DebugUseCommand(std::string_view sql);

class RequestTracker {
 public:
  using Clock = std::chrono::steady_clock;

  struct Record {
    std::uint64_t seq = std::numeric_limits<std::uint64_t>::max();
    Clock::time_point start;
    routing::RequestClass cls = routing::RequestClass::kSession;
    routing::Side side = routing::Side::kOld;
  };

  // What the tracker tells its session about answered requests (for
  // metrics and cancel); it decides nothing.
  class Hooks {
   public:
    virtual ~Hooks() = default;
    // The request `r` was answered (its ReadyForQuery) after `latency`.
    virtual void Answered(const Record& r, std::chrono::microseconds latency) = 0;
    // Requests went in flight (true) or none is left (false).
    virtual void InFlight(bool busy) = 0;
  };

  // What a kRoute frame asks of routing.
  struct RequestStart {
    routing::RequestClass cls = routing::RequestClass::kWrite;
    routing::DdlRisk risk = routing::DdlRisk::kNone;
    // Normalised, at most 16; views valid until Routed().
    std::span<const std::string_view> tables;
    char type = 0;  // 'Q', 'P', 'B' or 'E'
    // The first frame of a request: where the request (a Query, a whole
    // extended batch) is routed. False: an Execute later in its batch,
    // which goes where the batch goes; routing still refuses it, or notes
    // a write the batch's plan did not foresee.
    bool batch_start = true;
    // The statement is a COMMIT (or END) alone: it ends the transaction.
    bool commit = false;
    // One INSERT, UPDATE, DELETE or MERGE alone: a query after it in the
    // same implicit transaction runs in that transaction, and nothing in
    // it commits before (as a CALL or a COPY's sub-protocol might).
    bool dml = false;
  };

  enum class Verdict : std::uint8_t {
    kForward,
    kTerminate,
    kDebugUse,
    kRefuse,
    kProtocolError,
    // Route it: request() says what it is. Nothing is recorded until the
    // session answers Routed(); meanwhile the frame's bytes must stay
    // where they are and no other client frame may come in.
    kRoute,
    // Drop it: part of an extended batch being refused (see below).
    kDiscard,
    // A refused Execute in the middle of an extended batch whose first
    // messages already reached the server: send kRefusalParse in its place,
    // so the server fails the batch as it would fail one of its own (the
    // rest skipped until Sync, the implicit transaction rolled back); the
    // batch's Sync is forwarded as usual.
    kRefuseInBatch,
  };
  // Refusals of HIGH-risk DDL (DESIGN.md §3), the same for both protocols:
  //   Query                       kRefuse: turnout answers ErrorResponse +
  //                               ReadyForQuery itself.
  //   extended, refused at the    the batch's frames are kDiscard up to its
  //   batch's first message       Sync, which is kRefuse (one ErrorResponse
  //                               + ReadyForQuery, as the server would send).
  //   extended, refused later     kRefuseInBatch, then kDiscard to the Sync.
  // A Parse parses nothing on the server when the type in it is unknown, so
  // this statement fails at Parse with the reason in its text.
  static constexpr std::string_view kRefusalParseSql =
      "SELECT NULL::\"turnout refused high-risk DDL: route is migrating\"";

  RequestTracker(Hooks* hooks, bool debug_hooks) : hooks_(hooks), debug_hooks_(debug_hooks) {}
  RequestTracker(const RequestTracker&) = delete;
  RequestTracker& operator=(const RequestTracker&) = delete;

  // ---- client -> backend
  // A whole frame. kForward: relay it as is; kRoute: route it, then Routed().
  Verdict OnClientFrame(const protocol::pg::Frame& f);
  // The request of the last kRoute frame.
  const RequestStart& request() const noexcept { return request_; }
  // The session's routing answer for the kRoute frame: the frame is
  // recorded and gets its verdict (kForward; kRefuse, kDiscard or
  // kRefuseInBatch when `refused`).
  Verdict Routed(bool refused);
  // A frame larger than the buffer, streamed; `prefix` is its first bytes.
  void OnLargeClientFrame(const protocol::pg::FrameHeader& h, protocol::pg::Bytes prefix);

  // ---- backend (the primary) -> client
  // A whole frame; false when the client must not see it.
  bool OnBackendFrame(const protocol::pg::Frame& f);
  void OnLargeBackendFrame(char type) {
    if (type != 'E') return;
    state_.OnError();
    last_word_ = Ended::kOther;
  }

  // ---- state
  // The request being assembled (its number once closed), and the oldest
  // one not yet answered: the one whose replies are arriving.
  std::uint64_t open_seq() const noexcept { return open_seq_; }
  std::uint64_t answering_seq() const noexcept { return ResponseSeq(); }
  std::uint64_t InFlight() const noexcept {
    const std::uint64_t answered = response_seq_ + ignored_syncs_;
    return open_seq_ > answered ? open_seq_ - answered : 0;
  }
  // Nothing in flight and no copy running: the backend is waiting for us.
  bool BackendIdle() const noexcept { return InFlight() == 0 && !copy_in_; }
  // Also between transactions, with no half-sent extended batch: where a
  // session may be closed (drain) or moved to another backend.
  bool AtBoundary() const noexcept {
    return BackendIdle() && !unsynced_ && txn_status_ == protocol::pg::TransactionStatus::kIdle;
  }
  protocol::pg::TransactionStatus txn_status() const noexcept { return txn_status_; }
  // How the replies before the last ReadyForQuery ended: the last word
  // before it was a COMMIT's or a ROLLBACK's CommandComplete (a COMMIT of a
  // failed transaction is answered ROLLBACK), or something else (another
  // tag, an error, nothing).
  enum class Ended : std::uint8_t { kOther, kCommit, kRollback };
  Ended ended_by() const noexcept { return ended_by_; }
  // turnout answered a request itself with an error (a refusal).
  void FailTransaction() noexcept {
    if (txn_status_ == protocol::pg::TransactionStatus::kInTransaction)
      txn_status_ = protocol::pg::TransactionStatus::kFailed;
  }
  const SessionState& state() const noexcept { return state_; }
  // Extended messages sent since the last Sync.
  bool unsynced() const noexcept { return unsynced_; }
  // A batch is being refused: its frames are dropped up to its Sync.
  bool refusing() const noexcept { return refusing_ != Refusing::kNo; }
  // The tables of the last simple Query, and what its statements were.
  std::span<const std::string_view> QueryTables() { return TargetsOf(query_meta_); }
  const protocol::pg::Classification& classification() const noexcept { return classification_; }
  // The side requests are sent to, recorded with each request.
  void set_side(routing::Side side) noexcept { side_ = side; }

 private:
  struct StatementMeta {
    protocol::pg::StatementClass statement_class = protocol::pg::StatementClass::kUnknown;
    // The highest risk among its statements, as routing sees it (RoutingRisk).
    protocol::pg::DdlRisk ddl_risk = protocol::pg::DdlRisk::kNone;
    bool copy_from = false;           // COPY ... FROM: copy-in on Execute
    bool commit = false;              // COMMIT or END, alone
    bool dml = false;                 // RequestStart::dml
    std::optional<SessionOp> op;      // a state change when executed
    std::vector<std::string> tables;  // normalised; [0, table_count) live, capacity reused
    std::size_t table_count = 0;
  };
  // Lookups by a view into the receive buffer, without building a string.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using NameMap = std::unordered_map<std::string, V, NameHash, std::equal_to<>>;

  static constexpr std::size_t kMaxTargets = 16;  // tables of one request passed to the policy
  // Requests in flight with a latency record: the ring starts at
  // kFirstRecords and doubles while a pipeline is deeper, up to kRecordRing;
  // deeper pipelines are counted without latency. (64 records held by every
  // session were 1.5 kB of each idle one.)
  static constexpr std::size_t kFirstRecords = 4;
  static constexpr std::size_t kRecordRing = 64;

  void Classify(std::string_view sql, StatementMeta* meta);
  // A statement's risk for the high-risk DDL policy (routing/ddl_policy.h):
  // temporary objects, and DROP without CASCADE of objects that hold no
  // rows, are never HIGH.
  protocol::pg::DdlRisk RoutingRisk(const protocol::pg::StatementInfo& st) const;
  bool IsTempTable(const protocol::pg::TableRef& t) const;
  // Temporary tables the session creates (confirmed once their request
  // succeeded) and drops, from classification_ of the request `seq`.
  void NoteTempTables(std::uint64_t seq);
  Verdict Refuse();
  // Answers kRoute for the frame being read (see pending_).
  Verdict AskRoute(char type, routing::RequestClass cls, const StatementMeta& meta, bool batch_start);
  // What a Query, Parse, Bind or Execute records once it is routed (or
  // needs no routing).
  Verdict AcceptQuery();
  Verdict AcceptParse();
  Verdict AcceptBind();
  Verdict AcceptExecute();
  std::span<const std::string_view> TargetsOf(const StatementMeta& meta);
  StatementMeta* PortalStatement(std::string_view portal);
  void TouchRequest();  // a message of the request that says nothing of its class
  void StartRequest(routing::RequestClass cls);
  void RaiseRequestClass(routing::RequestClass cls);
  void CloseRequest();
  void OnReadyForQuery(protocol::pg::TransactionStatus status);
  void OnCopyIn();
  std::uint64_t ResponseSeq() const noexcept { return response_seq_ + ignored_syncs_; }

  Hooks* hooks_;
  bool debug_hooks_;
  routing::Side side_ = routing::Side::kOld;

  protocol::pg::SqlClassifier classifier_;
  protocol::pg::Classification classification_;
  StatementMeta query_meta_;  // the current simple Query
  StatementMeta parse_meta_;  // the current Parse, until it replaces its statement's
  StatementMeta unnamed_statement_;
  NameMap<StatementMeta> statements_;
  StatementMeta* unnamed_portal_ = nullptr;
  NameMap<StatementMeta*> portals_;
  NameMap<protocol::pg::StatementClass> sql_prepared_;  // SQL PREPARE name -> class
  std::array<std::string_view, kMaxTargets> target_views_{};

  // The frame answered kRoute, decoded once and kept (as views into the
  // frame) until Routed() records it.
  struct Pending {
    char type = 0;  // 0: none
    routing::RequestClass cls = routing::RequestClass::kWrite;  // 'Q', 'E'
    protocol::pg::Parse parse;                                  // 'P'
    std::string_view portal;                                    // 'B'
    StatementMeta* meta = nullptr;                              // 'B', 'E'
  };
  Pending pending_;
  RequestStart request_;

  std::uint64_t open_seq_ = 0;       // the request being assembled
  std::uint64_t response_seq_ = 0;   // the oldest request not yet answered
  std::uint64_t ignored_syncs_ = 0;  // Syncs the server swallowed in copy-in, not yet settled
  bool open_started_ = false;
  bool open_classified_ = false;
  bool unsynced_ = false;            // extended messages since the last Sync
  bool copy_in_ = false;             // CopyInResponse seen, CopyDone/CopyFail not yet sent
  bool copy_from_pending_ = false;   // an Execute of COPY FROM awaits its CopyInResponse
  std::uint64_t copy_from_seq_ = 0;
  std::uint64_t conditional_syncs_ = 0;  // Syncs sent after that Execute
  protocol::pg::TransactionStatus txn_status_ = protocol::pg::TransactionStatus::kIdle;
  std::vector<Record> records_ = std::vector<Record>(kFirstRecords);  // a power of two long
  Record& RecordOf(std::uint64_t seq) noexcept { return records_[seq & (records_.size() - 1)]; }
  void GrowRecords();

  enum class Refusing : std::uint8_t { kNo, kWholeBatch, kRestOfBatch };
  Refusing refusing_ = Refusing::kNo;
  // Normalised names of this session's temporary tables (bounded), and
  // those created by requests not yet answered.
  static constexpr std::size_t kMaxTempTables = 1024;
  std::vector<std::string> temp_tables_;
  std::vector<std::pair<std::uint64_t, std::string>> pending_temp_;
  bool request_failed_ = false;  // an ErrorResponse since the last ReadyForQuery
  Ended last_word_ = Ended::kOther;  // of the replies since the last ReadyForQuery
  Ended ended_by_ = Ended::kOther;

  SessionState state_;
};

}  // namespace turnout::proxy::pg
