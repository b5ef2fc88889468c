#include "proxy/redis/redis_session.h"

#include <algorithm>
#include <array>

#include "absl/time/clock.h"
#include "proxy/disconnect.h"
#include "proxy/idle_pages.h"
#include "proxy/logging.h"
#include "proxy/redis/redis_session_impl.h"
#include "proxy/side_by_side.h"

namespace turnout::proxy::redis {

using namespace asio::experimental::awaitable_operators;

RedisSession::RedisSession(Socket client, SessionContext ctx)
    : raw_(std::move(client)),
      executor_(raw_->get_executor()),
      ctx_(std::move(ctx)),
      registration_(ctx_.sessions, this, ctx_.route, ctx_.process_active),
      route_(ctx_.route.route),
      client_in_(ctx_.config->limits.buffer_bytes),
      parser_(MakeRequestLimits(*ctx_.config)),
      walker_(MakeRequestLimits(*ctx_.config).max_bulk_length,
              MakeRequestLimits(*ctx_.config).max_multibulk_length),
      tracker_(MakeTrackerOptions(ctx_)),
      wake_(executor_),
      space_(executor_),
      room_(executor_),
      reader_(*ctx_.services->route_table, route_.name, route_.protocol),
      channel_created_(executor_),
      drain_timer_(executor_),
      exec_wake_(executor_),
      idle_timer_(executor_) {
  wake_.expires_at(Clock::time_point::max());
  space_.expires_at(Clock::time_point::max());
  channel_created_.expires_at(Clock::time_point::max());
  parser_.set_authenticated(tracker_.authenticated());
  if (auto it = ctx_.services->users.find(route_.name); it != ctx_.services->users.end())
    users_ = it->second.get();
  boost::system::error_code ep_ec;
  const auto ep = raw_->remote_endpoint(ep_ec);
  if (!ep_ec) address_ = ep.address().to_string();
  reader_.Refresh();
  has_policy_ = reader_.table()->Find(route_.name) != nullptr;
  new_backend_name_ = NewBackendName();
  // The write-segment vectors are not reserved here: each grows to the
  // deepest pipeline the session has seen and keeps that capacity (no
  // allocation per message once warm). Reserved for the deepest write
  // (kMaxWriteSegments), they were 15 kB of every idle session.
}

void RedisSession::Close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  if (raw_) raw_->close(ignored);
  if (client_) client_->Close();
  for (auto& b : backends_)
    if (b) b->Close();
  // Secondary work already queued is still applied (or journaled): the
  // channels stop gracefully, bounded by kChannelDrain (Run).
  for (auto& c : channels_)
    if (c) c->Stop();
  wake_.cancel();
  space_.cancel();
  room_.cancel();
  channel_created_.cancel();
  drain_timer_.cancel();
  if (key_waiter_) key_waiter_->Notify();
}

void RedisSession::RequestDrain() {
  draining_ = true;
  if (AtBoundary()) {
    Close();
  } else {
    wake_.cancel();
  }
}

awaitable<void> RedisSession::Run() {
  if (!co_await StartClientTls()) {
    Close();
    co_return;
  }
  channels_running_ = 2;
  co_await AllOf(MainLoops(), ChannelLoops());
  Close();
  for (auto& c : channels_)
    if (c) c->AbandonAll("session ended before the secondary applied it");
  LogDebug("redis session closed", {{"route", route_.name}, {"connection", ctx_.connection_id}});
}

// The client-facing loops, then the graceful stop of the secondary channels.
awaitable<void> RedisSession::MainLoops() {
  co_await ((RequestLoop() && WriterLoop()) || IdleWatch(ctx_.config->limits.idle_timeout));
  main_done_ = true;
  for (auto& c : channels_)
    if (c) c->Stop();
  channel_created_.cancel();
  drain_timer_.expires_after(kChannelDrain);
  std::uint64_t progress = ChannelProgress();
  while (channels_running_ > 0) {
    auto [ec] = co_await drain_timer_.async_wait(kUseTuple);
    if (ec) continue;  // a channel finished
    if (ChannelProgress() == progress) break;  // stuck: what is left is journaled
    progress = ChannelProgress();
    drain_timer_.expires_after(kChannelDrain);
  }
  for (auto& c : channels_)
    if (c) c->Abort();
}

std::uint64_t RedisSession::ChannelProgress() const {
  std::uint64_t n = 0;
  for (const auto& c : channels_)
    if (c) n += c->resolved();
  return n;
}

awaitable<void> RedisSession::ChannelLoops() {
  // Once the main loops ended without a channel, each ChannelLoop ends at
  // once and counts itself out.
  while (!channels_[0] && !channels_[1] && !main_done_ && !closed_) co_await channel_created_.async_wait(kUseTuple);
  co_await AllOf(ChannelLoop(0), ChannelLoop(1));
}

// Runs channel `s` once the request loop created it.
awaitable<void> RedisSession::ChannelLoop(int s) {
  for (;;) {
    if (channels_[s]) {
      co_await channels_[s]->Run();
      break;
    }
    if (main_done_ || closed_) break;
    co_await channel_created_.async_wait(kUseTuple);
  }
  --channels_running_;
  drain_timer_.cancel();
}

TrackerOptions RedisSession::MakeTrackerOptions(const SessionContext& ctx) {
  TrackerOptions o;
  o.trust = ctx.route.route.auth == routing::ClientAuth::kTrust;
  if (const auto* b = ctx.config->FindBackend(ctx.route.route.old_backend)) o.default_db = b->redis_db;
  o.unknown_passthrough = ctx.route.route.redis_unknown_passthrough;
  o.max_inflight = kMaxInflight;
  return o;
}

resp::RequestLimits RedisSession::MakeRequestLimits(const routing::Config& cfg) {
  resp::RequestLimits l;
  const auto max_message = static_cast<std::int64_t>(std::min<std::uint64_t>(cfg.limits.max_message_bytes, INT64_MAX));
  l.max_bulk_length = std::min(l.max_bulk_length, max_message);
  // networking.c: any count up to INT_MAX (memory grows with the
  // arguments that actually arrive, never with the announced count).
  l.max_multibulk_length = INT32_MAX;
  return l;
}

// TLS from the first byte when the route has a certificate. Unless TLS is
// required, a plain client is still served: a TLS ClientHello starts with
// 0x16 (RFC 8446 §5.1, a handshake record), which no RESP frame does. The
// peek happens while the session is registered, so drain can close it.
awaitable<bool> RedisSession::StartClientTls() {
  asio::ssl::context* tls = ctx_.services->tls ? ctx_.services->tls->ForRoute(route_.name) : nullptr;
  bool use_tls = tls != nullptr;
  if (use_tls && !route_.tls.required) {
    std::uint8_t first = 0;
    auto [ec, n] = co_await raw_->async_receive(asio::buffer(&first, 1), tcp::socket::message_peek);
    if (ec || n == 0 || closed_) co_return false;
    use_tls = first == 0x16;
  }
  client_.emplace(std::move(*raw_));
  raw_.reset();
  if (!use_tls) co_return true;
  Timer timer(executor_, std::chrono::microseconds(absl::ToInt64Microseconds(ctx_.config->limits.connect_timeout)));
  auto r = co_await (client_->StartTlsServer(*tls) || timer.async_wait());
  if (r.index() == 1 || std::get<0>(r)) {
    LogDebug("client TLS handshake failed", {{"route", route_.name}});
    co_return false;
  }
  co_return true;
}

awaitable<void> RedisSession::RequestLoop() {
  while (!closed_ && !stop_reading_) {
    if (draining_ && !tracker_.in_multi()) break;
    if (tracker_.fifo().full() || local_out_.size() > kMaxLocalBytes) {
      co_await WaitForSpace();
      continue;
    }
    auto tail = client_in_.WritableTail();
    if (tail.empty()) {
      // A command larger than the buffer: stream it through, then go on
      // with whatever followed it in the buffer.
      co_await StreamLargeRequest();
      co_await ProcessInput();
      continue;
    }
    auto [ec, n] = co_await client_->ReadSome(asio::buffer(tail.data(), tail.size()));
    if (ec) {
      if (!closed_ && !IsExpectedDisconnect(ec))
        LogWarn("redis client read failed", {{"route", route_.name}, {"error", ec.message()}});
      // Redis frees a client on EOF. Replies already in flight are still
      // written (a client that half-closed gets them); with a command
      // blocked upstream, or the writer waiting for pub/sub messages, the
      // session ends at once; with nothing in flight the writer ends as
      // soon as it sees input_done_ (queued secondary work still drains).
      if (ec != std::error_code(boost::system::error_code(asio::error::eof)) || tracker_.blocking_inflight() > 0 ||
          writer_idle_reading_)
        Close();
      break;
    }
    client_in_.CommitReceived(n);
    ctx_.route.bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
    last_activity_ = Clock::now();
    if (idle_pages_released_) {
      // Busy again: IdleWatch schedules the next release from here.
      idle_pages_released_ = false;
      idle_timer_.cancel();
    }
    co_await ProcessInput();
    // A command started and not finished (a client trickling bytes, or one
    // that stopped mid-command): PartialCommandTimeout closes it.
    if (client_in_.Unparsed().empty()) {
      partial_since_.reset();
    } else if (!partial_since_) {
      partial_since_ = last_activity_;
    }
  }
  input_done_ = true;
  wake_.cancel();
}

awaitable<void> RedisSession::WaitForSpace() {
  waiting_space_ = true;
  co_await space_.async_wait(kUseTuple);
  waiting_space_ = false;
}

// Frames and dispatches every complete command in the buffer, then sends
// what was gathered for each backend and drops the framed bytes.
awaitable<void> RedisSession::ProcessInput() {
  batch_start_ = Clock::now();
  while (!closed_ && !stop_reading_) {
    if (tracker_.fifo().full() || local_out_.size() > kMaxLocalBytes || kill_barrier_) {
      co_await FlushUpstream();
      WakeWriter();
      co_await WaitForSpace();
      continue;
    }
    const auto input = client_in_.Unparsed();
    const auto status = parser_.Parse(input);
    if (status == resp::ParseStatus::kNeedMore) break;
    if (status == resp::ParseStatus::kError) {
      // networking.c: the error reply, then close after it is written.
      std::string& out = local_out_;
      const std::size_t before = out.size();
      parser_.AppendErrorReply(out);
      PushLocal(before, kFlagCloseAfter | kFlagLinger);
      LogDebug("redis protocol error", {{"route", route_.name}, {"error", parser_.error_code().message()}});
      stop_reading_ = true;
      break;
    }
    const resp::Command& cmd = parser_.command();
    co_await Dispatch(cmd, input.data());
    client_in_.CommitParsed(cmd.frame_length);
  }
  co_await FlushUpstream();
  WakeWriter();
}

// Sends the gathered segments to each backend, then consumes the framed
// client bytes they pointed into.
awaitable<void> RedisSession::FlushUpstream() {
  for (int s = 0; s < 2; ++s) {
    auto& segs = upstream_segs_[s];
    if (segs.empty()) continue;
    upstream_bufs_.clear();
    for (const auto& seg : segs) {
      const void* p = seg.data ? static_cast<const void*>(seg.data)
                               : static_cast<const void*>(synth_[s].data() + seg.offset);
      upstream_bufs_.emplace_back(p, seg.size);
    }
    segs.clear();
    BackendConnection* conn = backends_[s].get();
    if (conn == nullptr || !conn->is_open()) {
      synth_[s].clear();
      continue;
    }
    auto [ec, n] = co_await conn->stream().Write(upstream_bufs_);
    synth_[s].clear();
    if (ec) {
      if (!closed_) {
        LogWarn("redis backend write failed", {{"route", route_.name},
                                               {"backend", conn->backend().name},
                                               {"error", ec.message()}});
        ctx_.route.RecordUpstreamError(conn->side());
        conn->Close();  // the writer reports it to the client
      }
    }
  }
  client_in_.Consume(client_in_.Parsed().size());
}

bool RedisSession::AtBoundary() const {
  return tracker_.fifo().empty() && !tracker_.in_multi() && !tracker_.SubscribedView() &&
         client_in_.Unconsumed().empty();
}

awaitable<void> RedisSession::IdleWatch(absl::Duration idle) {
  const bool has_idle = idle > absl::ZeroDuration();
  const auto limit = has_idle ? std::chrono::microseconds(absl::ToInt64Microseconds(idle))
                              : std::chrono::microseconds(kPartialCommandTimeout);
  const auto partial_limit = std::min<std::chrono::microseconds>(limit, kPartialCommandTimeout);
  for (;;) {
    auto next = last_activity_ + limit;
    if (partial_since_) next = std::min(next, *partial_since_ + partial_limit);
    if (!idle_pages_released_) next = std::min(next, last_activity_ + kReleaseIdlePagesAfter);
    idle_timer_.expires_at(next);
    auto [ec] = co_await idle_timer_.async_wait();
    if (closed_) co_return;
    if (ec) continue;  // a read after a release: deadlines from now on
    const auto now = Clock::now();
    if (!idle_pages_released_ && now - last_activity_ >= kReleaseIdlePagesAfter) {
      idle_pages_released_ = true;
      ReleaseIdlePages(client_in_);
      for (auto& b : backends_)
        if (b) ReleaseIdlePages(b->in());
    }
    if (partial_since_ && now - *partial_since_ >= partial_limit) {
      LogInfo("redis client left a command incomplete for too long; closing", {{"route", route_.name}});
      co_return;
    }
    if (has_idle && now - last_activity_ >= limit && tracker_.fifo().empty() && !tracker_.SubscribedView() &&
        !tracker_.monitoring()) {
      LogInfo("idle timeout", {{"route", route_.name}});
      co_return;
    }
    if (now - last_activity_ >= limit) last_activity_ = now;
  }
}

awaitable<void> RunRedisSession(Socket client, SessionContext ctx) {
  RedisSession session(std::move(client), std::move(ctx));
  co_await session.Run();
}

}  // namespace turnout::proxy::redis
