// The two directions of a PostgreSQL session's relay (see
// pg_session_impl.h for the map). ClientLoop feeds complete client frames
// to the RequestTracker, routes each request at its first frame (once:
// pg_routing.cc) and forwards runs of frames to the primary; each
// BackendLoop relays one backend's frames to the client (the primary's
// replies; a secondary's only notifications) and hands the rest to the
// secondary work of pg_secondary.cc.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/wire.h"
#include "proxy/disconnect.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/side_by_side.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;

// Gathered segments per client write.
constexpr std::size_t kMaxSegments = 16;

// ================================================================== client -> backend

awaitable<bool> PgSession::FlushClientParsed() {
  if (!carried_.held_for_primary.empty()) {
    const std::string held = std::move(carried_.held_for_primary);
    carried_.held_for_primary.clear();
    auto [ec, n] = co_await primary()->stream().Write(asio::buffer(held));
    if (ec) co_return false;
  }
  auto parsed = client_in_.Parsed();
  if (parsed.empty() && own_request_.empty()) co_return true;
  std::error_code ec;
  if (own_request_.empty()) {
    auto [e, n] = co_await primary()->stream().Write(asio::buffer(parsed.data(), parsed.size()));
    ec = e;
  } else {
    // turnout's own request (QueueCommitXidQuery, QueueWriteWithXid) goes
    // ahead of the client's frames, in one write.
    const std::array<asio::const_buffer, 2> out{asio::buffer(own_request_.data(), own_request_.size()),
                                                asio::buffer(parsed.data(), parsed.size())};
    own_request_ = {};
    auto [e, n] = co_await primary()->stream().Write(out);
    ec = e;
  }
  if (ec) {
    if (!IsExpectedDisconnect(ec))
      LogWarn("pg backend write failed", {{"route", route().name}, {"error", ec.message()}});
    ctx_.route.RecordUpstreamError(primary_side_);
    co_return false;
  }
  client_in_.Consume(parsed.size());
  co_return true;
}

awaitable<bool> PgSession::StreamLargeClientFrame() {
  // Fill the buffer first so the prefix holds the names a Parse or Bind
  // starts with.
  client_in_.Compact();
  while (!client_in_.Full())
    if (!co_await ReadClient()) co_return false;
  auto hr = client_decoder_.DecodeHeader(client_in_.Unparsed());
  if (!hr.ok()) co_return false;
  if (tracker_.refusing()) {
    // Part of a refused batch (a Sync is never this large): read past it.
    std::size_t remaining = hr.value.total_size;
    for (;;) {
      const std::size_t n = std::min(remaining, client_in_.Unparsed().size());
      client_in_.CommitParsed(n);
      client_in_.Consume(n);
      remaining -= n;
      if (remaining == 0) co_return true;
      if (!co_await ReadClient()) co_return false;
    }
  }
  // Its replies are not counted for an xid query before the batch's Sync.
  batch_xid_ = {};
  // Secondary work keeps whole requests; one this large is journaled instead.
  if (capturing_ != nullptr) {
    AbandonCapture("turnout: a message larger than limits.buffer_size is not dual-written; journaled for repair");
  } else if ((hr.value.type == 'Q' || !tracker_.unsynced()) && WritesAreDualWritten()) {
    JournalUncaptured("turnout: a statement larger than limits.buffer_size is not dual-written; journaled for repair");
  }
  tracker_.OnLargeClientFrame(hr.value, client_in_.Unparsed());
  std::size_t remaining = hr.value.total_size;
  for (;;) {
    const std::size_t n = std::min(remaining, client_in_.Unparsed().size());
    client_in_.CommitParsed(n);
    remaining -= n;
    if (!co_await FlushClientParsed()) co_return false;
    if (remaining == 0) co_return true;
    if (!co_await ReadClient()) co_return false;
  }
}

awaitable<void> PgSession::ClientLoop() {
  auto& in = client_in_;
  for (;;) {
    for (;;) {
      auto r = client_decoder_.Decode(in.Unparsed());
      if (r.ok()) {
        const ppg::Frame f = r.value;
        Verdict v = tracker_.OnClientFrame(f);
        RequestPlan plan;
        bool ask_xid = false, write_with_xid = false;
        bool routed = false;  // tracker_.request() says what `f` is
        if (v == Verdict::kRoute) {
          // Decided once; a barrier (AwaitPlan) keeps `f` where it is.
          const RequestStart start = tracker_.request();
          if (start.batch_start) {
            plan = PlanRequest(start, /*stream_waited=*/false);
            if (!plan.plan.refused() && plan.wait != RequestPlan::Wait::kNone) {
              if (!co_await AwaitPlan(start, &plan)) co_return;
            }
            batch_xid_ = {};
            if (!plan.plan.refused()) {
              CommitPlan(start, plan);
              ask_xid = WantsCommitXid(start, plan);
              write_with_xid = !ask_xid && WantsWriteXid(start, plan);
              batch_xid_.armed = !ask_xid && !write_with_xid && WantsBatchXid(start, plan);
            }
            v = tracker_.Routed(plan.plan.refused());
          } else {
            v = tracker_.Routed(RouteLaterExecute(start));
          }
          routed = true;
        }
        if (batch_xid_.armed) {
          if (v != Verdict::kForward) {
            batch_xid_ = {};
          } else if (f.type == 'S') {
            // What came before the Sync goes first; the xid query goes
            // with the Sync.
            if (!co_await FlushClientParsed()) co_return;
            QueueBatchXid();
          } else {
            NoteBatchXidFrame(f, routed ? &tracker_.request() : nullptr);
          }
        }
        if (v == Verdict::kForward) {
          if (ask_xid) {
            // What came before the COMMIT goes first; the xid query goes
            // with the COMMIT.
            if (!co_await FlushClientParsed()) co_return;
            QueueCommitXidQuery();
          }
          if (write_with_xid) {
            // The client's Query is replaced by the same with the xid
            // query appended (FlushClientParsed sends it in its place).
            if (!co_await FlushClientParsed()) co_return;
            QueueWriteWithXid(f);
            in.CommitParsed(f.total_size);
            in.Consume(f.total_size);
            continue;
          }
          bool op_complete = false;
          if (plan.work.any) {
            op_complete = StartOp(f, plan.work);
          } else if (capturing_ != nullptr) {
            op_complete = CaptureFrame(f);
          } else if (f.type == 'S' && uncaptured_write_) {
            std::vector<std::string_view> tables(uncaptured_tables_.begin(), uncaptured_tables_.end());
            JournalUncaptured("turnout: a write in an extended batch that began with a read is not dual-written; "
                              "journaled for repair",
                              tables);
          }
          if (carried_.holding) {
            // An atomic COMMIT waits for the secondary to prepare: its
            // frames stay with the op (AtomicCommit sends them).
            if (!co_await FlushClientParsed()) co_return;
            in.CommitParsed(f.total_size);
            in.Consume(f.total_size);
          } else {
            in.CommitParsed(f.total_size);
          }
          if (op_complete && !co_await OpComplete()) co_return;
          continue;
        }
        if (v == Verdict::kDiscard || v == Verdict::kRefuseInBatch) {
          // A refused extended batch (RequestTracker::kRefusalParseSql).
          if (!co_await FlushClientParsed()) co_return;
          if (v == Verdict::kRefuseInBatch && !co_await SendRefusalParse()) co_return;
          in.CommitParsed(f.total_size);
          in.Consume(f.total_size);
          continue;
        }
        if (capturing_ != nullptr) AbandonCapture("turnout: the extended batch was cut short; journaled for repair");
        // Everything before this frame goes out first, in order.
        if (!co_await FlushClientParsed()) co_return;
        bool keep = true;
        switch (v) {
          case Verdict::kTerminate:
            co_return;
          case Verdict::kProtocolError: {
            // The server's words: a type it does not take here, or a
            // message whose layout is broken.
            const std::string text = f.type == 'p'
                                         ? absl::StrCat("invalid frontend message type ", static_cast<int>(f.type))
                                         : std::string("invalid message format");
            co_await SendFatal("08P01", text);
            LogInfo("pg client protocol error", {{"route", route().name}, {"type", std::string(1, f.type)}});
            co_return;
          }
          case Verdict::kDebugUse: {
            ppg::Query q;
            (void)ppg::Decode(f.payload, &q);
            keep = co_await HandleDebugUse(*DebugUseCommand(q.sql));
            break;
          }
          case Verdict::kRefuse:
            keep = co_await HandleRefusal(
                "turnout: high-risk DDL is refused while this route is migrating: it drops or rewrites data of a "
                "table the migration moves (allow it with the strategy's \"ddl\": {\"high_risk\": \"allow\"})");
            break;
          default:
            break;
        }
        in.CommitParsed(f.total_size);
        in.Consume(f.total_size);
        if (!keep) co_return;
        continue;
      }
      if (r.failed()) {
        if (!co_await FlushClientParsed()) co_return;
        if (r.error == ppg::CodecError::kMessageTooLarge) {
          const std::uint32_t len = in.Unparsed().size() >= 5 ? ppg::LoadU32(in.Unparsed().data() + 1) : 0;
          const std::string text = absl::StrCat(
              "message of type '", std::string(1, static_cast<char>(in.Unparsed()[0])), "' is ", len,
              " bytes, over turnout's limit of ", ctx_.config->limits.max_message_bytes,
              " bytes (limits.max_message_size)");
          co_await SendFatal("54000", text);
        } else if (r.error == ppg::CodecError::kUnknownMessageType) {
          const std::string text =
              absl::StrCat("invalid frontend message type ", static_cast<int>(in.Unparsed()[0]));
          co_await SendFatal("08P01", text);
        } else {
          const std::string text = absl::StrCat("invalid message: ", std::string(ppg::DescribeError(r.error)));
          co_await SendFatal(ppg::SqlState(r.error), text);
        }
        LogInfo("pg client protocol error", {{"route", route().name}, {"error", ppg::DescribeError(r.error)}});
        co_return;
      }
      if (r.bytes_needed > in.capacity()) {
        if (!co_await FlushClientParsed()) co_return;
        if (!co_await StreamLargeClientFrame()) co_return;
        continue;
      }
      break;
    }
    if (!co_await FlushClientParsed()) co_return;
    // ReadClient's two halves around the read itself: the loop waits here
    // whenever the client is idle, with no frame of ReadClient's.
    auto [ec, n] = co_await client_.ReadSome(ClientReadBuffer());
    if (!ClientReadDone(ec, n)) co_return;
  }
}

awaitable<bool> PgSession::HandleRefusal(std::string_view message) {
  // Our ErrorResponse must come after every reply still in flight.
  co_await WaitBackendIdle();
  LogInfo("pg high-risk DDL refused", {{"route", route().name}, {"user", user_}});
  std::string out;
  ppg::AppendErrorResponse(&out, ppg::ErrorSpec{.severity = "ERROR", .sqlstate = "0A000", .message = message});
  tracker_.FailTransaction();
  ppg::AppendReadyForQuery(&out, tracker_.txn_status());
  co_return co_await WriteToClient(out);
}

// A Parse the server fails in place of a refused Execute (the batch's
// earlier messages are already there): the server then skips to the Sync
// and rolls back the implicit transaction, as for an error of its own.
awaitable<bool> PgSession::SendRefusalParse() {
  std::string parse;
  ppg::AppendParse(&parse, "", RequestTracker::kRefusalParseSql);
  if (capturing_ != nullptr) {
    // The secondary gets the batch as the primary did (and skips it when
    // the primary failed it).
    auto r = ppg::FrameDecoder(ppg::Direction::kFrontend).Decode(std::string_view(parse));
    if (r.ok()) CaptureFrame(r.value);
  }
  LogInfo("pg high-risk DDL refused in an extended batch", {{"route", route().name}});
  auto [ec, n] = co_await primary()->stream().Write(asio::buffer(parse));
  co_return !ec;
}

awaitable<bool> PgSession::HandleDebugUse(Side side) {
  co_await WaitBackendIdle();
  std::string out, notice, error;
  if (tracker_.txn_status() != ppg::TransactionStatus::kIdle) {
    error = "turnout: cannot switch backends inside a transaction";
  } else {
    co_await WaitSecondaryIdle();
    if (co_await SwitchPrimary(side, &notice, &error)) {
      debug_pinned_ = true;
      if (!notice.empty())
        ppg::AppendNoticeResponse(&out,
                                  ppg::ErrorSpec{.severity = "WARNING", .sqlstate = "01000", .message = notice});
      ppg::AppendCommandComplete(&out, side == Side::kNew ? "TURNOUT USE NEW" : "TURNOUT USE OLD");
    }
  }
  if (!error.empty())
    ppg::AppendErrorResponse(&out, ppg::ErrorSpec{.severity = "ERROR", .sqlstate = "08006", .message = error});
  ppg::AppendReadyForQuery(&out, tracker_.txn_status());
  co_return co_await WriteToClient(out);
}

// ================================================================== backend -> client

bool PgSession::OnBackendFrame(Side side, const ppg::Frame& f) {
  if (side != primary_side_) return OnSecondaryFrame(side, f);
  if (xid_reply_ != XidReply::kNone)
    if (const std::optional<bool> forward = OnXidReply(f)) return *forward;
  // What the xid query said is for the ReadyForQuery that follows it only.
  const CommitXid xid_state =
      f.type == 'Z' ? std::exchange(commit_xid_state_, CommitXid::kNotAsked) : CommitXid::kNotAsked;
  if (!sec_ops_.empty()) {
    // The replies of a request with secondary work are also recorded for it.
    if (SecondaryOp* op = OpAnswering(tracker_.answering_seq())) {
      op->primary.OnFrame(f);
      if (f.type == 'Z') {
        ppg::ReadyForQuery z;
        if (!ppg::Decode(f.payload, &z)) op->primary_status = z.status;
        const bool forward = tracker_.OnBackendFrame(f);
        PrimaryOpDone(*op);
        if (op->sync && !op->finished) {
          // Sync: the client hears the outcome once both sides have it.
          held_z_.assign(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
          held_z_op_ = op->seq;
          return false;
        }
        if (stream_wrote_ || open_writer_) return !HoldForStream(f, forward, xid_state) && forward;
        return forward;
      }
    }
  }
  if (f.type == 'Z' && (stream_wrote_ || open_writer_)) {
    const bool forward = tracker_.OnBackendFrame(f);
    return !HoldForStream(f, forward, xid_state) && forward;
  }
  if (f.type == 'S') {
    ppg::ParameterStatus ps;
    if (!ppg::Decode(f.payload, &ps)) {
      primary()->SetParameter(ps.name, ps.value);
      if (ps.name == "application_name") application_name_.assign(ps.value);
    }
  }
  return tracker_.OnBackendFrame(f);
}

awaitable<void> PgSession::BackendLoop(Side side) {
  const int i = static_cast<int>(side);
  for (;;) {
    while (!backends_[i] || !backends_[i]->ready()) co_await backend_ready_.Wait();
    const bool ended = co_await RelayBackend(side);
    // Losing the primary ends the session; losing a secondary does not:
    // its work is journaled and it is reopened later.
    if (!ended || closing_ || side == primary_side_) co_return;
    SecondaryLost(side);
    if (!co_await WriteRelease()) co_return;
  }
}

awaitable<void> PgSession::NewSideLoops() {
  const int i = static_cast<int>(Side::kNew);
  while (!(backends_[i] && backends_[i]->ready()) && sec_ops_.empty()) co_await backend_ready_.Wait();
  co_await FirstOf(BackendLoop(Side::kNew), SecondarySender());
}

// Returns true when the backend's side ended (closed, failed, or the client
// is gone), false when the loop was cancelled because the session ends.
awaitable<bool> PgSession::RelayBackend(Side side) {
  const int i = static_cast<int>(side);
  BackendConnection& b = *backends_[i];
  auto& in = b.in();
  std::array<asio::const_buffer, kMaxSegments> segments;
  for (;;) {
    std::size_t count = 0;
    const std::uint8_t* run = nullptr;  // start of the current forwarded run
    std::size_t run_len = 0;
    bool large = false;
    bool more = false;  // complete frames left in the buffer (segments ran out)
    for (;;) {
      auto r = b.decoder().Decode(in.Unparsed());
      if (r.ok()) {
        const ppg::Frame& f = r.value;
        if (OnBackendFrame(side, f)) {
          if (run == nullptr) run = f.bytes.data();
          run_len += f.total_size;
        } else if (run != nullptr) {
          segments[count++] = asio::const_buffer(run, run_len);
          run = nullptr;
          run_len = 0;
        }
        in.CommitParsed(f.total_size);
        if (count + 1 == kMaxSegments || stream_hold_) {
          // Nothing may overtake a held ReadyForQuery.
          more = true;
          break;
        }
        continue;
      }
      if (r.failed()) {
        LogWarn("pg backend protocol error", {{"route", route().name},
                                              {"backend", b.backend().name},
                                              {"error", ppg::DescribeError(r.error)}});
        ctx_.route.RecordUpstreamError(side);
        co_return true;
      }
      large = r.bytes_needed > in.capacity();
      break;
    }
    if (run != nullptr) segments[count++] = asio::const_buffer(run, run_len);
    if (count > 0) {
      co_await LockClient();
      auto [ec, n] = co_await client_.Write(std::span<const asio::const_buffer>(segments.data(), count));
      UnlockClient();
      bytes_out_ += n;
      if (ec) co_return true;
    }
    in.Consume(in.Parsed().size());
    if (stream_hold_) co_await ReleaseStreamHold();
    if (!co_await WriteRelease()) co_return true;

    // Drain: close at the first idle point outside a transaction.
    if (draining_ && side == primary_side_ && AtBoundary()) {
      co_await SendFatal("57P01", "terminating connection due to administrator command");
      co_return true;
    }
    if (more) continue;

    if (large) {
      // Stream one frame larger than the buffer straight through, holding
      // the client writer so nothing interleaves with it. A secondary's
      // large reply is read past (its op compares what it saw before).
      auto hr = b.decoder().DecodeHeader(in.Unparsed());
      if (!hr.ok()) co_return true;
      const bool forward = side == primary_side_ && hr.value.type != 'K' && hr.value.type != 'R';
      if (side == primary_side_) tracker_.OnLargeBackendFrame(hr.value.type);
      if (!sec_ops_.empty()) NoteLargeReply(side);
      std::size_t remaining = hr.value.total_size;
      if (forward) co_await LockClient();
      bool ok = true;
      for (;;) {
        auto chunk = in.Unparsed();
        const std::size_t n = std::min(remaining, chunk.size());
        if (forward && n > 0) {
          auto [ec, w] = co_await client_.Write(asio::buffer(chunk.data(), n));
          bytes_out_ += w;
          if (ec) {
            ok = false;
            break;
          }
        }
        in.CommitParsed(n);
        in.Consume(n);
        remaining -= n;
        if (remaining == 0) break;
        auto tail = in.WritableTail();
        auto [rec, got] = co_await b.stream().ReadSome(asio::buffer(tail.data(), tail.size()));
        if (rec) {
          ok = false;
          break;
        }
        in.CommitReceived(got);
      }
      if (forward) UnlockClient();
      if (!ok) co_return true;
      continue;
    }

    auto tail = in.WritableTail();
    auto [ec, n] = co_await b.stream().ReadSome(asio::buffer(tail.data(), tail.size()));
    if (ec) {
      if (ec == std::error_code(boost::system::error_code(asio::error::operation_aborted))) {
        // Cancelled because the session ends, or closed by turnout itself
        // (a secondary that stopped answering): only the latter is a loss.
        const auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) co_return false;
      }
      if (!closing_ && !IsExpectedDisconnect(ec))
        LogWarn("pg backend read failed", {{"route", route().name}, {"backend", b.backend().name}, {"error", ec.message()}});
      if (!closing_ && ec == std::error_code(boost::system::error_code(asio::error::eof)))
        LogInfo("pg backend closed the connection", {{"route", route().name}, {"backend", b.backend().name}});
      co_return true;
    }
    in.CommitReceived(n);
    last_activity_ = Clock::now();
  }
}

}  // namespace turnout::proxy::pg::detail
