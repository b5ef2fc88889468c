#include "proxy/redis/secondary_channel.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/disconnect.h"
#include "proxy/intent_ring.h"
#include "proxy/logging.h"
#include "proxy/secondary/outcome.h"
#include "routing/shadow_samples.h"

namespace turnout::proxy::redis {

using namespace asio::experimental::awaitable_operators;
namespace resp = protocol::resp;
using routing::JournalKind;

namespace {
constexpr std::size_t kMaxBatchBuffers = 128;
constexpr std::size_t kMaxBatchBytes = 256 * 1024;

std::uint64_t MicrosSince(std::chrono::steady_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t).count();
  return static_cast<std::uint64_t>(std::max<std::int64_t>(us, 0));
}
}  // namespace

SecondaryChannel::SecondaryChannel(asio::any_io_executor executor, routing::Side side, Env env)
    : executor_(executor),
      side_(side),
      env_(std::move(env)),
      ops_(secondary::QueueLimits::Of(env_.config->limits), env_.session_id * 2 + static_cast<int>(side)),
      send_wake_(executor),
      reply_wake_(executor),
      abort_wake_(executor) {
  send_wake_.expires_at(Clock::time_point::max());
  reply_wake_.expires_at(Clock::time_point::max());
  abort_wake_.expires_at(Clock::time_point::max());
}

awaitable<void> SecondaryChannel::AbortWait() { co_await abort_wake_.async_wait(); }

void SecondaryChannel::set_backend(const routing::Backend* b, const OwnedUpstreamState& state) {
  backend_ = b;
  if (!conn_) conn_state_ = state;
}

bool SecondaryChannel::Retarget(const routing::Backend* b, const OwnedUpstreamState& state) {
  if (b == backend_) return true;
  if (!ops_.empty()) return false;
  backend_ = b;
  conn_state_ = state;
  if (conn_) {
    // Idle: the reader is not reading and nothing is in flight, so closing
    // loses nothing; the loops end and Run() opens the new backend lazily.
    retarget_ = true;
    send_wake_.cancel();
    reply_wake_.cancel();
  }
  return true;
}

bool SecondaryChannel::down() const {
  if (conn_ && conn_->is_open()) return false;
  return backend_ != nullptr && env_.services->backend_health->IsDown(backend_->name, Clock::now());
}

SecondaryOp& SecondaryChannel::Enqueue(SecondaryOp op, std::span<const std::string_view> keys) {
  if (op.is_write()) RecordIntent(op, keys, true);
  op.shadow = op.kind == OpKind::kShadow;
  if (op.is_write()) ++unresolved_writes_;
  if (op.kind == OpKind::kState) {
    // No reply-FIFO entry refers to a session-state op: nothing releases it.
    op.primary_done = true;
    op.released = true;
  }
  const std::size_t bytes = op.command.size() + op.wire.size();
  SecondaryOp& added = ops_.Push(std::move(op), bytes);
  if (added.ready && sender_waiting_) send_wake_.cancel();
  return added;
}

void SecondaryChannel::JournalNotQueued(std::string_view command, std::vector<std::string> keys,
                                        std::string reason) {
  SecondaryOp op;
  op.command.assign(command);
  op.keys = std::move(keys);
  // Journaled before the primary is asked, but on disk only at the next
  // flush: the intent record covers that window.
  const std::uint64_t entry = Journal(op, JournalKind::kDropped, std::move(reason));
  RecordIntent(op, {}, false);
  SettleIntent(op, entry);
}

void SecondaryChannel::RecordIntent(SecondaryOp& op, std::span<const std::string_view> keys,
                                    bool journal_if_no_slot) {
  IntentRing* ring = env_.services ? env_.services->intents : nullptr;
  if (ring == nullptr) return;
  const IntentWhere where{IntentProtocol::kRedis, migration_id_, env_.route->route.name,
                          backend_ ? std::string_view(backend_->name) : std::string_view(), ""};
  const std::span<const std::string> owned(op.keys);
  op.intent = op.keys.empty() ? ring->Record(where, keys) : ring->Record(where, owned);
  if (op.intent != IntentRing::kNoSlot) return;
  // Many keys: spread over several slots.
  if (op.keys.empty() ? ring->RecordSpread(where, keys, op.more_intents)
                      : ring->RecordSpread(where, owned, op.more_intents))
    return;
  if (!journal_if_no_slot) return;
  // No slot can hold it (the ring is full, or its keys are too long): the
  // journal records it now, before the primary is asked. The entry stays
  // (a repair of keys already equal is harmless); it is counted.
  ring->CountOverflow();
  routing::JournalEntry e = EntryOf(op, JournalKind::kDropped,
                                    "in flight with no intent slot free: journaled before it was sent");
  if (env_.services->journal) env_.services->journal->Append(std::move(e));
}

void SecondaryChannel::SettleIntent(SecondaryOp& op, std::uint64_t entry) {
  if (op.intent == IntentRing::kNoSlot && op.more_intents.empty()) return;
  IntentRing* ring = env_.services->intents;
  auto settle = [&](std::uint32_t slot) {
    if (entry != 0) {
      ring->Journaled(slot, entry);  // freed once the journal is on disk past it
    } else {
      ring->Clear(slot);
    }
  };
  if (op.intent != IntentRing::kNoSlot) settle(op.intent);
  for (std::uint32_t slot : op.more_intents) settle(slot);
  op.intent = IntentRing::kNoSlot;
  op.more_intents.clear();
}

void SecondaryChannel::PrimaryReply(SecondaryOp& op) {
  op.primary_done = true;
  if (op.kind == OpKind::kDualWrite && !op.ready && !op.secondary_done) {
    // Only what the authoritative side applied goes to the other side
    // (issue 13 item 8): a write it refused (-LOADING, -OOM, -WRONGTYPE,
    // -READONLY ...) changed nothing there, so nothing is sent. A reply that
    // never came (connection lost) leaves the op not ready: Stop() journals
    // it as not applied, and the repair copies its keys.
    if (op.primary.is_error()) {
      op.skipped = true;
      op.replies_expected = 0;
    }
    op.ready = true;
    if (sender_waiting_) send_wake_.cancel();
  }
  MaybeFinish(op);
}

void SecondaryChannel::CopyReady(SecondaryOp& op) {
  if (op.secondary_done) {  // abandoned meanwhile
    op.primary_done = true;
    MaybeFinish(op);
    return;
  }
  const bool null_reply = op.primary.bytes() == "*-1\r\n" || op.primary.bytes() == "$-1\r\n" ||
                          op.primary.bytes() == "_\r\n";
  // A copy is taken after an error reply too: a script (EVAL, FCALL) that
  // fails keeps the writes it made before the error (Redis does not roll a
  // script back), and a copy of a key the command did not change is the
  // value new should hold anyway.
  const bool committed = op.kind == OpKind::kCopy ? !(op.nil_is_noop && null_reply)
                                                  : op.primary.first_byte() == '*' && op.primary.bytes().size() > 1 &&
                                                        op.primary.bytes()[1] != '-';
  if (!committed) {
    // A blocking pop that timed out, or the transaction did not commit
    // (WATCH abort, EXECABORT): nothing changed, nothing to apply.
    op.wire.clear();
    op.replies_expected = 0;
    op.skipped = true;
    op.captured = true;
  } else if (op.kind == OpKind::kBlock && !op.deferred) {
    // A block without copies: `wire` holds MULTI and the writes.
    const std::size_t before = op.wire.size();
    resp::AppendCommand(op.wire, {"EXEC"});
    op.replies_expected += 1;
    ops_.Grow(op, op.wire.size() - before);
  }
  op.ready = true;
  if (op.kind == OpKind::kCopy) op.primary_done = true;
  if (sender_waiting_) send_wake_.cancel();
  if (op.skipped && op.deferred && env_.on_progress) env_.on_progress();
}

void SecondaryChannel::Release(SecondaryOp& op) {
  op.released = true;
  if (op.finished) Trim();
}

void SecondaryChannel::Stop() {
  stop_ = true;
  ++trim_blocked_;
  for (std::uint64_t s = sender_.next_send(); s < end_seq(); ++s) {
    SecondaryOp& op = At(s);
    if (op.secondary_done) continue;
    if (!op.ready) {
      op.primary_done = true;
      SecondaryFailed(op, JournalKind::kDropped, "session ended before the authoritative side answered");
    }
  }
  --trim_blocked_;
  Trim();
  send_wake_.cancel();
  reply_wake_.cancel();
}

void SecondaryChannel::Abort() {
  aborted_ = true;
  if (key_waiter_) key_waiter_->Notify();
  if (conn_) conn_->Close();
  if (source_) source_->Close();
  abort_wake_.cancel();
  send_wake_.cancel();
  reply_wake_.cancel();
}

void SecondaryChannel::AbandonAll(std::string_view reason) {
  ++trim_blocked_;
  for (SecondaryOp& op : ops_) {
    op.released = true;
    op.primary_done = true;
    if (!op.secondary_done) {
      const JournalKind kind = op.sent ? JournalKind::kFailed : JournalKind::kDropped;
      SecondaryFailed(op, kind, std::string(reason));
    } else {
      MaybeFinish(op);
    }
  }
  --trim_blocked_;
  Trim();
}

void SecondaryChannel::ApplyStateOp(const SecondaryOp& op) {
  if (op.state_reset) {
    conn_state_ = OwnedUpstreamState{backend_ ? backend_->redis_db : 0, false, ""};
  }
  if (op.state_db >= 0) conn_state_.db = op.state_db;
  if (op.state_protocol != 0) conn_state_.resp3 = op.state_protocol == 3;
  if (op.state_name) conn_state_.client_name = *op.state_name;
}

awaitable<void> SecondaryChannel::Run() {
  while (!aborted_) {
    if (retarget_) {
      if (conn_) conn_->Close();
      conn_.reset();
      retarget_ = false;
    }
    if (!HasSendable()) {
      if (stop_) co_return;
      sender_waiting_ = true;
      co_await send_wake_.async_wait();
      sender_waiting_ = false;
      continue;
    }
    if (!conn_ || !conn_->is_open()) {
      if (backend_ == nullptr) {
        DropSendable("no backend configured for this side");
        continue;
      }
      const auto now = Clock::now();
      if (!env_.services->backend_health->MayTry(backend_->name, now)) {
        DropSendable(absl::StrCat("backend ", backend_->name, " is down"));
        continue;
      }
      auto conn = std::make_unique<BackendConnection>(side_, *backend_, env_.config->limits.buffer_bytes,
                                                      ServerReplyLimits());
      asio::ssl::context* tls =
          env_.services->tls ? env_.services->tls->ForBackend(backend_->name) : nullptr;
      const UpstreamState state{conn_state_.db, conn_state_.resp3, conn_state_.client_name};
      std::string error;
      auto opened = co_await (conn->Open(tls, env_.config->limits.connect_timeout, state, error) || AbortWait());
      if (aborted_ || opened.index() == 1) co_return;
      const bool ok = std::get<0>(opened);
      if (!ok) {
        env_.services->backend_health->ReportFailure(backend_->name, Clock::now());
        env_.route->RecordUpstreamError(side_);
        LogWarn("redis secondary backend unavailable",
                {{"route", env_.route->route.name}, {"backend", backend_->name}, {"error", error}});
        DropSendable(error);
        continue;
      }
      env_.services->backend_health->ReportSuccess(backend_->name);
      conn_ = std::move(conn);
      partial_active_ = false;
    }
    lost_ = false;
    co_await (SenderLoop() && ReaderLoop());
    if (aborted_) co_return;
    if (lost_) {
      conn_->Close();
      env_.services->backend_health->ReportFailure(backend_->name, Clock::now());
      env_.route->RecordUpstreamError(side_);
      LogWarn("redis secondary backend connection lost",
              {{"route", env_.route->route.name}, {"backend", backend_->name}, {"error", lost_reason_}});
      FailInFlight(lost_reason_);
      continue;
    }
    if (stop_ && !HasSendable() && sender_.in_flight() == 0) co_return;
  }
}

awaitable<void> SecondaryChannel::SenderLoop() {
  for (;;) {
    if (aborted_ || lost_ || retarget_) co_return;
    out_bufs_.clear();
    std::size_t batch = 0;
    waiting_on_main_ = false;
    while (SecondaryOp* next = sender_.Next()) {
      SecondaryOp& op = *next;
      if (!op.ready) break;
      if (!stop_ && env_.main_answered && op.barrier > (*env_.main_answered)[static_cast<int>(side_)]) {
        waiting_on_main_ = true;
        break;
      }
      if (op.deferred && !op.captured && !op.skipped) {
        if (!out_bufs_.empty()) break;  // send what is gathered first
        co_await PrepareCopy(op);
        if (aborted_ || lost_ || retarget_) co_return;
        continue;  // its wire is complete now (or it failed and is skipped over)
      }
      if (op.kind == OpKind::kState) {
        // RESET logs the connection out: log in again behind it.
        if (op.state_reset && backend_) op.replies_expected += conn_->AppendLogin(op.wire, backend_->redis_db);
        ApplyStateOp(op);
      }
      if (op.replies_expected == 0) {
        sender_.Passed();
        sender_.Done(op);
        continue;
      }
      sender_.Sent(op);
      const std::string& wire = op.Wire();
      out_bufs_.emplace_back(wire.data(), wire.size());
      batch += wire.size();
      if (out_bufs_.size() >= kMaxBatchBuffers || batch >= kMaxBatchBytes) break;
    }
    if (!out_bufs_.empty()) {
      if (reader_waiting_) reply_wake_.cancel();
      auto [ec, n] = co_await conn_->stream().Write(out_bufs_);
      if (aborted_) co_return;
      if (ec) {
        ConnectionLost(absl::StrCat("write failed: ", ec.message()));
        co_return;
      }
      continue;
    }
    if (stop_ && !HasSendable()) {
      reply_wake_.cancel();
      co_return;
    }
    sender_waiting_ = true;
    co_await send_wake_.async_wait();
    sender_waiting_ = false;
  }
}

awaitable<void> SecondaryChannel::ReaderLoop() {
  for (;;) {
    if (!ProcessReplies()) {
      ConnectionLost("invalid reply");
      co_return;
    }
    if (aborted_ || lost_) co_return;
    if (sender_.in_flight() == 0) {
      if (retarget_ || (stop_ && !HasSendable())) co_return;
      reader_waiting_ = true;
      co_await reply_wake_.async_wait();
      reader_waiting_ = false;
      continue;
    }
    auto& in = conn_->in();
    auto tail = in.WritableTail();
    if (tail.empty()) {
      ConnectionLost("reply line longer than the buffer");
      co_return;
    }
    // A secondary that stops answering must not hold sync clients (or the
    // queue) forever: no byte for kReplyTimeout with work in flight closes
    // the connection, and the work in flight is journaled.
    Timer timeout(executor_, kReplyTimeout);
    auto r = co_await (conn_->stream().ReadSome(asio::buffer(tail.data(), tail.size())) || timeout.async_wait());
    if (aborted_) co_return;
    if (r.index() == 1) {
      ConnectionLost(absl::StrCat("no reply for ", kReplyTimeout.count(), " s"));
      co_return;
    }
    auto [ec, n] = std::get<0>(r);
    if (ec) {
      ConnectionLost(IsExpectedDisconnect(ec) ? std::string("connection closed by the backend")
                                              : absl::StrCat("read failed: ", ec.message()));
      co_return;
    }
    in.CommitReceived(n);
  }
}

bool SecondaryChannel::ProcessReplies() {
  auto& in = conn_->in();
  auto& parser = conn_->parser();
  for (;;) {
    SecondaryOp* head = sender_.Head();
    const auto unparsed = in.Unparsed();
    if (unparsed.empty()) return true;
    const auto status = parser.Parse(unparsed);
    if (status == resp::ParseStatus::kError) return false;
    const std::string_view text(reinterpret_cast<const char*>(unparsed.data()), unparsed.size());
    if (head == nullptr) {
      // Nothing expected: only a RESP3 push may come (tracking is not
      // enabled here, but a server may push anyway).
      if (status == resp::ParseStatus::kComplete && text[0] == '>') {
        in.CommitParsed(parser.frame().length);
        in.Consume(parser.frame().length);
        continue;
      }
      if (status == resp::ParseStatus::kNeedMore) return true;
      return false;
    }
    SecondaryOp& op = *head;
    const bool last = op.replies_seen + 1 == op.replies_expected;
    const bool capture = op.kind == OpKind::kDualWrite || op.kind == OpKind::kShadow ||
                         (op.kind == OpKind::kBlock && last) ||
                         (op.kind == OpKind::kCopy && !op.secondary.is_error());
    if (status == resp::ParseStatus::kNeedMore) {
      const std::size_t v = parser.validated();
      if (v < in.capacity() / 2) return true;
      if (!partial_active_) {
        partial_active_ = true;
        if (capture) op.secondary.Clear();
      }
      if (capture) op.secondary.Append(text.substr(0, v), kCompareCap);
      in.Consume(v);
      parser.DropPrefix(v);
      continue;
    }
    const std::size_t len = parser.frame().length;
    const std::string_view frame = text.substr(0, len);
    if (!partial_active_ && !frame.empty() && frame[0] == '>') {
      in.CommitParsed(len);
      in.Consume(len);
      continue;
    }
    // The digest of one reply frame: the op is done at its last reply.
    sender_.OnReply([&](SecondaryOp& answered) {
      if (capture) {
        if (!partial_active_) answered.secondary.Clear();
        answered.secondary.Append(frame, kCompareCap);
      }
      partial_active_ = false;
      in.CommitParsed(len);
      in.Consume(len);
      return ++answered.replies_seen >= answered.replies_expected ? secondary::Digest::kDone
                                                                  : secondary::Digest::kMore;
    });
  }
}

// The sender marked the op's secondary side done (sender_.Done).
void SecondaryChannel::SecondaryDone(SecondaryOp& op) {
  ++resolved_;
  op.secondary_us = MicrosSince(op.start);
  if (op.is_write() && unresolved_writes_ > 0) --unresolved_writes_;
  if (op.kind != OpKind::kState && op.failure.empty())
    env_.route->RecordRequest(side_, op.cls, op.secondary_us);
  // A sync reply, or a session waiting for a copy to be read, may go on.
  const bool wake = op.sync || (op.deferred && !op.captured);
  MaybeFinish(op);  // may drop `op`
  if (wake && env_.on_progress) env_.on_progress();
}

void SecondaryChannel::SecondaryFailed(SecondaryOp& op, JournalKind kind, std::string reason) {
  op.failure = std::move(reason);
  op.failure_kind = kind;
  sender_.Done(op);
}

void SecondaryChannel::DropSendable(const std::string& reason) {
  while (SecondaryOp* next = sender_.Next()) {
    SecondaryOp& op = *next;
    if (!op.ready) break;
    sender_.Passed();
    if (op.kind == OpKind::kState) {
      ApplyStateOp(op);
      sender_.Done(op);
      continue;
    }
    if (op.replies_expected == 0) {
      sender_.Done(op);
      continue;
    }
    SecondaryFailed(op, JournalKind::kDropped, reason);
  }
  sender_.CatchUp();
}

void SecondaryChannel::FailInFlight(const std::string& reason) {
  sender_.FailInFlight([&](SecondaryOp& op) {
    // Sent, outcome unknown: the repair re-copies its keys either way.
    SecondaryFailed(op, op.kind == OpKind::kState ? JournalKind::kDropped : JournalKind::kFailed,
                    absl::StrCat(reason, " before the reply"));
  });
  partial_active_ = false;
}

void SecondaryChannel::ConnectionLost(const std::string& reason) {
  if (lost_) return;
  lost_ = true;
  lost_reason_ = reason;
  if (conn_) conn_->Close();
  send_wake_.cancel();
  reply_wake_.cancel();
}

void SecondaryChannel::MaybeFinish(SecondaryOp& op) {
  sender_.MaybeFinish(op);
  if (op.finished && op.released) Trim();
}

// Both sides are done (sender_.MaybeFinish): the keys go to the next
// writer, and the outcome is taken.
void SecondaryChannel::Finish(SecondaryOp& op) {
  if (!op.stripes.empty()) {
    env_.services->key_order->Release(op.stripes, op.stripe_owner);
    op.stripes.clear();
  }
  const secondary::OutcomeStep step(*env_.route, *env_.services);
  switch (op.kind) {
    case OpKind::kState: return;
    case OpKind::kShadow: {
      if (!op.failure.empty()) return;  // never compared: not a result
      step.Shadow(CompareCaptured(op.primary, op.secondary, op.compare), [&](routing::ShadowSample& s) {
        s.request = RenderCommandFrame(op.command);
        s.primary = RenderReply(op.primary);
        s.secondary = RenderReply(op.secondary);
        s.primary_latency_us = op.primary_us;
        s.secondary_latency_us = op.secondary_us;
      });
      return;
    }
    case OpKind::kDualWrite:
    case OpKind::kCopy:
    case OpKind::kBlock: {
      if (op.skipped) {
        SettleIntent(op, 0);
        return;
      }
      if (!op.failure.empty()) {
        SettleIntent(op, Journal(op, op.failure_kind, op.failure));
        return;
      }
      std::optional<RouteRuntime::ShadowMismatch> m;
      if (op.kind == OpKind::kDualWrite) {
        m = CompareCaptured(op.primary, op.secondary, CompareMode::kFull);
      } else if (op.kind == OpKind::kCopy) {
        if (op.secondary.is_error()) m = RouteRuntime::ShadowMismatch::kError;
      } else {
        m = CompareExec(op.primary, op.secondary, op.positions, op.copies);
      }
      const secondary::SecondaryOutcome outcome = secondary::OutcomeOfComparison(m);
      if (outcome == secondary::SecondaryOutcome::kApplied) {
        step.DualWrite(outcome, [](routing::JournalEntry&) {});
        SettleIntent(op, 0);
        return;
      }
      SettleIntent(op, Journal(op, secondary::JournalKindOf(outcome), RenderReply(op.secondary)));
      return;
    }
  }
}

// A write not applied: counted by the outcome of its journal kind and
// journaled (proxy/secondary/outcome.h).
std::uint64_t SecondaryChannel::Journal(const SecondaryOp& op, JournalKind kind, std::string secondary_outcome) {
  return secondary::OutcomeStep(*env_.route, *env_.services)
      .DualWrite(secondary::OutcomeOf(kind),
                 [&](routing::JournalEntry& e) { e = EntryOf(op, kind, std::move(secondary_outcome)); });
}

routing::JournalEntry SecondaryChannel::EntryOf(const SecondaryOp& op, JournalKind kind,
                                                std::string secondary_outcome) const {
  routing::JournalEntry e;
  e.at = absl::Now();
  e.migration_id = migration_id_;
  e.route = env_.route->route.name;
  e.backend = backend_ ? backend_->name : std::string();
  e.session = env_.session_id;
  e.kind = kind;
  if (op.kind == OpKind::kBlock) {
    // MULTI <writes> EXEC, one statement.
    std::string s;
    std::string_view rest = op.command;
    protocol::resp::RequestParser parser;
    while (!rest.empty() && parser.Parse(rest) == resp::ParseStatus::kComplete) {
      const auto args = parser.command().args;
      if (!s.empty()) s.append("; ");
      s.append(RenderArgs(args, 1024));
      rest.remove_prefix(parser.command().frame_length);
      parser.Reset();
      if (s.size() > 8192) break;
    }
    e.statement = std::move(s);
  } else {
    e.statement = RenderCommandFrame(op.command, 8192);
  }
  if (!op.keys.empty()) {
    e.targets = op.keys;
  } else {
    const auto args = ArgsOfFrame(op.command);
    if (!args.empty()) {
      if (const auto* info = resp::LookupCommand(args)) e.targets = KeysOf(*info, args);
    }
  }
  e.primary_outcome = RenderReply(op.primary);
  e.secondary_outcome = std::move(secondary_outcome);
  return e;
}

void SecondaryChannel::Trim() {
  if (trim_blocked_ > 0) return;
  ops_.Trim();
  sender_.Trimmed();
  if (room_wanted_ && HasRoom(*room_wanted_)) {
    room_wanted_.reset();
    if (env_.on_progress) env_.on_progress();
  }
}

}  // namespace turnout::proxy::redis
