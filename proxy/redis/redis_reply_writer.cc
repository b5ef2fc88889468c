// The reply writer: the FIFO head's next reply, from its backend's buffer
// (forwarded in place, gathered into one client write) or local_out_; pub/sub
// messages and RESP3 pushes out of band; the state replies change.
#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/disconnect.h"
#include "proxy/logging.h"
#include "proxy/redis/redis_session_impl.h"

namespace turnout::proxy::redis {

using namespace asio::experimental::awaitable_operators;

awaitable<void> RedisSession::WriterLoop() {
  while (!closed_) {
    const bool progress = Collect();
    if (fatal_) {
      co_await FlushClient();
      Close();
      co_return;
    }
    if (!client_segs_.empty()) {
      if (!co_await FlushClient()) {
        Close();
        co_return;
      }
    }
    FinishPartials();
    if (progress && waiting_space_) space_.cancel();
    if (close_after_write_) {
      if (linger_) co_await Linger();
      Close();
      co_return;
    }
    if (draining_ && AtBoundary()) {
      Close();
      co_return;
    }
    if (progress) continue;
    if (kill_probe_side_) {
      if (!co_await ProbeKilled()) co_return;
      continue;
    }
    if (tracker_.fifo().empty()) {
      if (input_done_) co_return;
      const std::optional<Side> idle = tracker_.idle_read_side();
      if (idle && Backend(*idle) && Backend(*idle)->is_open()) {
        writer_idle_reading_ = true;
        const bool ok = co_await ReadBackend(*Backend(*idle));
        writer_idle_reading_ = false;
        barrier_pending_ = false;
        if (!ok) co_return;
      } else {
        co_await wake_.async_wait(kUseTuple);
      }
      continue;
    }
    const Entry& head = tracker_.fifo().front();
    if (head.stage == OpStage::kHeld) {
      // A sync dual-write: the reply is sent once the secondary applied
      // it; the channel wakes us (on_progress).
      const SecondaryOp* op = OpOf(head);
      if (op != nullptr && !op->secondary_done) co_await wake_.async_wait(kUseTuple);
      continue;
    }
    BackendConnection* conn = Backend(head.side);
    if (conn == nullptr) {
      UpstreamLost(nullptr);
      continue;
    }
    if (!co_await ReadBackend(*conn)) co_return;
  }
}

awaitable<bool> RedisSession::ProbeKilled() {
  const Side side = *kill_probe_side_;
  kill_probe_side_.reset();
  BackendConnection* conn = Backend(side);
  if (conn != nullptr && conn->is_open() && tracker_.fifo().empty()) {
    auto tail = conn->in().WritableTail();
    Timer t(executor_, kKillProbe);
    auto r = co_await (conn->stream().ReadSome(asio::buffer(tail.data(), tail.size())) || t.async_wait());
    if (closed_) co_return false;
    if (r.index() == 0) {
      auto [ec, n] = std::get<0>(r);
      if (ec) {
        LogDebug("redis client killed its own connection", {{"route", route_.name}});
        Close();
        co_return false;
      }
      conn->in().CommitReceived(n);  // not for us to judge: Collect reads it
    }
  }
  ReleaseKillBarrier();
  co_return true;
}

void RedisSession::ReleaseKillBarrier() {
  kill_barrier_ = false;
  if (waiting_space_) space_.cancel();
}

// Reads more replies from `conn`. False when the session is over.
awaitable<bool> RedisSession::ReadBackend(BackendConnection& conn) {
  auto tail = conn.in().WritableTail();
  if (tail.empty()) {
    LogWarn("redis reply line longer than the buffer", {{"route", route_.name}, {"backend", conn.backend().name}});
    UpstreamLost(&conn);
    co_await FlushClient();
    Close();
    co_return false;
  }
  auto [ec, n] = co_await conn.stream().ReadSome(asio::buffer(tail.data(), tail.size()));
  if (closed_) co_return false;
  if (ec) {
    if (!IsExpectedDisconnect(ec))
      LogWarn("redis backend read failed", {{"route", route_.name}, {"backend", conn.backend().name},
                                            {"error", ec.message()}});
    else
      LogInfo("redis backend closed the connection", {{"route", route_.name}, {"backend", conn.backend().name}});
    UpstreamLost(&conn);
    co_await FlushClient();
    Close();
    co_return false;
  }
  conn.in().CommitReceived(n);
  co_return true;
}

// The head's backend is gone: the client learns it, then the session ends
// (a client library reconnects, as it does when a server goes away).
void RedisSession::UpstreamLost(BackendConnection* conn) {
  if (conn != nullptr) ctx_.route.RecordUpstreamError(conn->side());
  client_segs_.clear();
  write_scratch_.clear();
  if (!tracker_.fifo().empty()) {
    resp::AppendError(write_scratch_, absl::StrCat("ERR turnout: connection to backend ",
                                                   conn ? conn->backend().name : std::string("?"), " lost"));
    client_segs_.push_back({nullptr, 0, write_scratch_.size()});
  }
  fatal_ = true;
}

// Gathers every reply that is ready, in FIFO order, into client_segs_.
// Synchronous: no view it records can move before FlushClient writes it.
bool RedisSession::Collect() {
  client_segs_.clear();
  write_scratch_.clear();
  bool progress = false;
  const auto now = Clock::now();
  while (client_segs_.size() < kMaxWriteSegments && !fatal_ && !close_after_write_) {
    BackendConnection* conn = nullptr;
    Entry* head = tracker_.fifo().empty() ? nullptr : &tracker_.fifo().front();
    if (head == nullptr) {
      if (!tracker_.idle_read_side()) break;
      conn = Backend(*tracker_.idle_read_side());
      if (conn == nullptr || !conn->is_open()) break;
    } else if (head->kind == EntryKind::kLocal) {
      if (!(head->flags & kFlagSuppress)) {
        const std::size_t off = write_scratch_.size();
        write_scratch_.append(local_out_, local_consumed_, head->local_len);
        client_segs_.push_back({nullptr, off, head->local_len});
      }
      local_consumed_ += head->local_len;
      if (local_consumed_ == local_out_.size()) {
        local_out_.clear();
        local_consumed_ = 0;
      }
      if (head->flags & kFlagCloseAfter) {
        close_after_write_ = true;
        linger_ = (head->flags & kFlagLinger) != 0;
      }
      tracker_.Pop();
      progress = true;
      continue;
    } else {
      if (head->stage == OpStage::kHeld) {
        const SecondaryOp* op = OpOf(*head);
        if (op != nullptr && !op->secondary_done) break;
        EmitHeld(*head);
        progress = true;
        continue;
      }
      conn = Backend(head->side);
      if (conn == nullptr) break;
    }
    auto& in = conn->in();
    auto& parser = conn->parser();
    const int s = static_cast<int>(conn->side());
    if (partial_take_[s] != 0) break;  // finish that write first
    const auto unparsed = in.Unparsed();
    const auto status = parser.Parse(unparsed);
    if (status == resp::ParseStatus::kError) {
      LogWarn("redis backend sent an invalid reply", {{"route", route_.name}, {"backend", conn->backend().name},
                                                      {"error", parser.error_code().message()}});
      UpstreamLost(conn);
      break;
    }
    const std::string_view text(reinterpret_cast<const char*>(unparsed.data()), unparsed.size());
    if (status == resp::ParseStatus::kNeedMore) {
      const std::size_t v = parser.validated();
      if (v < in.capacity() / 2) break;
      // A reply larger than half the buffer: forward what is validated.
      const bool first_chunk = !partial_active_[s];
      if (!partial_active_[s]) {
        partial_active_[s] = true;
        partial_oob_[s] = tracker_.IsOutOfBand(text, head);
      }
      bool drop = !partial_oob_[s] && head != nullptr &&
                  (head->kind == EntryKind::kSwallow || (head->flags & kFlagSuppress));
      if (!partial_oob_[s] && head != nullptr && HasOpWork(*head)) {
        // Streamed through: never held (sync waits only for replies that
        // fit the buffer).
        FeedOp(*head, text.substr(0, v), first_chunk, false);
      }
      if (!drop) client_segs_.push_back({unparsed.data(), 0, v});
      partial_take_[s] = v;
      progress = true;
      break;
    }
    const std::size_t len = parser.frame().length;
    const auto frame = text.substr(0, len);
    in.CommitParsed(len);
    progress = true;
    bool oob;
    const bool streamed = partial_active_[s];
    if (partial_active_[s]) {
      partial_active_[s] = false;
      oob = partial_oob_[s];
    } else {
      oob = tracker_.IsOutOfBand(frame, head);
    }
    if (oob || head == nullptr) {
      if (!oob) {
        LogWarn("redis backend sent an unexpected reply", {{"route", route_.name},
                                                           {"backend", conn->backend().name}});
        UpstreamLost(conn);
        break;
      }
      client_segs_.push_back({unparsed.data(), 0, len});
      continue;
    }
    if (head->flags & kFlagExecSelect) NoteExecReply(*head, frame, streamed);
    if (HasOpWork(*head)) {
      HandleOpReply(*head, frame, unparsed.data(), now, streamed);
    } else {
      HandleReply(*head, *conn, frame, unparsed.data(), now);
    }
  }
  return progress;
}

// One reply for the FIFO head: forward or swallow it, apply its effect on
// the session state, pop the head when it has all its replies.
void RedisSession::HandleReply(Entry& head, BackendConnection& conn, std::string_view frame, const std::uint8_t* data,
                               Clock::time_point now) {
  const ReplyEffect r = tracker_.OnReply(head, frame);
  if (r.forward) client_segs_.push_back({data, 0, frame.size()});
  if (r.kill == ReplyEffect::Kill::kProbe) {
    kill_probe_side_ = head.side;
  } else if (r.kill == ReplyEffect::Kill::kRelease) {
    ReleaseKillBarrier();
  }
  if (r.login_failed) {
    LogWarn("redis backend refused the re-login after RESET",
            {{"route", route_.name}, {"backend", conn.backend().name}});
    UpstreamLost(&conn);
    return;
  }
  if (!r.done) return;
  if (head.kind == EntryKind::kForward) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - head.start).count();
    ctx_.route.RecordRequest(head.side, head.cls, static_cast<std::uint64_t>(std::max<std::int64_t>(us, 0)));
  }
  const Side answered = head.side;
  tracker_.Pop();
  NoteAnswered(answered);
}

awaitable<bool> RedisSession::FlushClient() {
  if (client_segs_.empty()) co_return true;
  client_bufs_.clear();
  std::size_t total = 0;
  for (const auto& seg : client_segs_) {
    const void* p = seg.data ? static_cast<const void*>(seg.data)
                             : static_cast<const void*>(write_scratch_.data() + seg.offset);
    client_bufs_.emplace_back(p, seg.size);
    total += seg.size;
  }
  client_segs_.clear();
  auto [ec, n] = co_await client_->Write(client_bufs_);
  ctx_.route.bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
  last_activity_ = Clock::now();
  if (ec) {
    if (!closed_ && !IsExpectedDisconnect(ec))
      LogWarn("redis client write failed", {{"route", route_.name}, {"error", ec.message()}});
    co_return false;
  }
  (void)total;
  co_return true;
}

// After a client write: drop the bytes written (and swallowed) from each
// backend's buffer, including the forwarded prefix of a partial reply.
void RedisSession::FinishPartials() {
  for (int s = 0; s < 2; ++s) {
    BackendConnection* conn = backends_[s].get();
    if (conn == nullptr) continue;
    auto& in = conn->in();
    in.Consume(in.Parsed().size() + partial_take_[s]);
    if (partial_take_[s] != 0) {
      conn->parser().DropPrefix(partial_take_[s]);
      partial_take_[s] = 0;
    }
  }
}

// After a protocol error: read and discard what the client still sends for
// a moment, so closing does not reset the connection before the client
// has read the error.
awaitable<void> RedisSession::Linger() {
  Timer timer(executor_, std::chrono::milliseconds(250));
  auto discard = [this]() -> awaitable<void> {
    std::array<char, 4096> sink;
    for (;;) {
      auto [ec, n] = co_await client_->ReadSome(asio::buffer(sink));
      if (ec) co_return;
    }
  };
  co_await (discard() || timer.async_wait());
}

}  // namespace turnout::proxy::redis
