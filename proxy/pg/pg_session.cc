// The PostgreSQL session's lifecycle (see pg_session_impl.h for the map):
// construction, the client writer shared by every loop, drain and idle
// timeout, and Run, which starts the loops and tears the session down.

#include "proxy/pg/pg_session.h"

#include <cstdlib>

#include "protocol/pg/message_writer.h"
#include "proxy/disconnect.h"
#include "proxy/idle_pages.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/server_pool.h"
#include "proxy/side_by_side.h"

namespace turnout::proxy::pg {
namespace detail {

namespace ppg = protocol::pg;
using namespace asio::experimental::awaitable_operators;

// How long a client may take to start up and authenticate (the server's
// authentication_timeout default).
constexpr auto kStartupTimeout = std::chrono::seconds(60);

// The watchdog's bound (StallWatch): TURNOUT_PG_STALL_TIMEOUT in seconds,
// 0 to disable; 300 by default. A session is stalled when turnout holds its
// client loop (a barrier, a sync dual-write, a refusal waiting for replies)
// and nothing is read from the client or any backend meanwhile: no input
// may wedge a session for longer. It must exceed the longest statement a
// client pipelines behind such a wait (the server's own statement_timeout
// is the tool for slow statements).
std::chrono::seconds StallTimeout() {
  static const std::chrono::seconds limit = [] {
    const char* v = std::getenv("TURNOUT_PG_STALL_TIMEOUT");
    if (v == nullptr || *v == '\0') return std::chrono::seconds(300);
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0) return std::chrono::seconds(300);
    return std::chrono::seconds(n);
  }();
  return limit;
}

bool DebugHooksEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("TURNOUT_PG_DEBUG_HOOKS");
    return v != nullptr && std::string_view(v) == "1";
  }();
  return enabled;
}

PgSession::PgSession(Socket client, SessionContext ctx)
    : ctx_(std::move(ctx)),
      registration_(ctx_.sessions, this, ctx_.route, ctx_.process_active),
      client_(std::move(client)),
      client_in_(ctx_.config->limits.buffer_bytes),
      client_decoder_(ppg::Direction::kFrontend, ClientLimits(*ctx_.config)),
      ex_(client_.get_executor()),
      backend_ready_(ex_),
      idle_(ex_),
      client_lock_(ex_),
      watch_timer_(ex_),
      sec_progress_(ex_),
      tracker_(this, DebugHooksEnabled()) {}

PgSession::~PgSession() {
  if (cancel_key_) ctx_.services->cancel_keys->Unregister(cancel_key_->process_id);
  if (carried_.writer_hold)
    ctx_.route.dual_writers[static_cast<int>(*carried_.writer_hold)].fetch_sub(1, std::memory_order_acq_rel);
  if (open_writer_) stream_pos_->RemoveOpenWriter();
}

void PgSession::Close() {
  closing_ = true;
  client_.Close();
  for (auto& b : backends_)
    if (b) b->Close();
}

void PgSession::RequestDrain() {
  draining_ = true;
  watch_timer_.cancel();
}

ppg::FrameLimits PgSession::ClientLimits(const routing::Config& cfg) {
  ppg::FrameLimits l;
  l.max_message_size = cfg.limits.max_message_bytes;
  l.max_startup_size = cfg.limits.max_startup_bytes;
  return l;
}

// ================================================================== the client writer

// Every loop writes to the client; one write at a time, whole frames only.
awaitable<void> PgSession::LockClient() {
  while (client_locked_) co_await client_lock_.Wait();
  client_locked_ = true;
}

void PgSession::UnlockClient() {
  client_locked_ = false;
  client_lock_.Notify();
}

awaitable<bool> PgSession::WriteToClient(std::string_view bytes) {
  co_await LockClient();
  auto [ec, n] = co_await client_.Write(asio::buffer(bytes.data(), bytes.size()));
  UnlockClient();
  bytes_out_ += n;
  if (ec && !IsExpectedDisconnect(ec))
    LogDebug("pg client write failed", {{"route", route().name}, {"error", ec.message()}});
  co_return !ec;
}

// Replies held back for secondary work and now due (see PgSession::held_z_).
awaitable<bool> PgSession::WriteRelease() {
  if (release_.empty()) co_return true;
  std::string out = std::move(release_);
  release_.clear();
  co_return co_await WriteToClient(out);
}

awaitable<void> PgSession::SendFatal(std::string_view sqlstate, std::string_view message) {
  std::string out;
  ppg::AppendErrorResponse(&out, ppg::ErrorSpec{.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  co_await WriteToClient(out);
}

awaitable<void> PgSession::WaitBackendIdle() {
  while (!BackendIdle() || stream_hold_) co_await idle_.Wait();
}

asio::mutable_buffer PgSession::ClientReadBuffer() {
  auto tail = client_in_.WritableTail();
  if (tail.empty()) {
    client_in_.Compact();
    tail = client_in_.WritableTail();
  }
  reading_client_ = true;
  return asio::buffer(tail.data(), tail.size());
}

bool PgSession::ClientReadDone(std::error_code ec, std::size_t n) {
  reading_client_ = false;
  if (ec) {
    if (!IsExpectedDisconnect(ec))
      LogDebug("pg client read failed", {{"route", route().name}, {"error", ec.message()}});
    return false;
  }
  client_in_.CommitReceived(n);
  bytes_in_ += n;
  last_activity_ = Clock::now();
  if (idle_pages_released_) {
    // Busy again: Watch schedules the next release from here.
    idle_pages_released_ = false;
    watch_timer_.cancel();
  }
  return true;
}

awaitable<bool> PgSession::ReadClient() {
  auto [ec, n] = co_await client_.ReadSome(ClientReadBuffer());
  co_return ClientReadDone(ec, n);
}

// ================================================================== drain, idle, stall

awaitable<void> PgSession::Watch(std::chrono::microseconds idle, std::chrono::microseconds stall) {
  for (;;) {
    if (draining_ && AtBoundary()) {
      co_await SendFatal("57P01", "terminating connection due to administrator command");
      co_return;
    }
    // The nearer of the two deadlines. A session waiting for its client is
    // not stalled however long it waits: its stall deadline is a whole
    // limit from now. (From its last activity, a session idle for longer
    // than the limit was woken again at once, forever: one core busy per
    // such session.)
    auto next = Clock::time_point::max();
    if (idle.count() > 0) next = last_activity_ + idle;
    if (stall.count() > 0) next = std::min(next, (reading_client_ ? Clock::now() : last_activity_) + stall);
    if (!idle_pages_released_) next = std::min(next, last_activity_ + kReleaseIdlePagesAfter);
    watch_timer_.expires_at(next);
    auto [ec] = co_await watch_timer_.async_wait();
    // Cancelled: by RequestDrain (looked at above), or because the session
    // ends (the next co_await throws).
    if (ec) continue;
    const auto quiet = Clock::now() - last_activity_;
    if (!idle_pages_released_ && quiet >= kReleaseIdlePagesAfter) ReleaseIdlePages();
    if (idle.count() > 0 && quiet >= idle) {
      LogInfo("idle timeout", {{"route", route().name}});
      co_await SendFatal("57P05", "terminating connection due to idle-session timeout");
      co_return;
    }
    if (stall.count() == 0 || reading_client_ || quiet < stall) continue;
    LogWarn("pg session stalled; closing it",
            {{"route", route().name},
             {"user", user_},
             {"seconds", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(stall).count())},
             {"in_flight", std::to_string(tracker_.InFlight())},
             {"unsynced", tracker_.unsynced() ? "true" : "false"},
             {"secondary_ops", std::to_string(sec_ops_.size())},
             {"capturing", capturing_ != nullptr ? "true" : "false"},
             {"transaction", std::string(1, static_cast<char>(tracker_.txn_status()))}});
    // Best effort: a client that stopped reading must not hold us here.
    Timer bound(ex_, std::chrono::seconds(1));
    co_await (SendFatal("XX000", "turnout: the session made no progress within the stall timeout; closing it") ||
              bound.async_wait());
    closing_ = true;  // torn down without waiting for the backends
    co_return;
  }
}

void PgSession::ReleaseIdlePages() {
  idle_pages_released_ = true;
  proxy::ReleaseIdlePages(client_in_);
  for (auto& b : backends_)
    if (b) proxy::ReleaseIdlePages(b->in());
}

// ================================================================== run

bool PgSession::MayParkBackend(const BackendConnection& b, bool secondary_quiet) const {
  // Only where nothing of the session's is on its way from the server: its
  // next words are the reset's. The client left between transactions, with
  // nothing of turnout's own in flight on the primary; the other side (a
  // primary before a switch, which happens only when it is quiet, or the
  // secondary) had no op queued or unanswered and no carried transaction.
  // (The connection's own state is the pool's to judge: ServerPool::Give.)
  if (ctx_.pg_pool == nullptr || b.pool_key().empty() || !tracker_.AtBoundary()) return false;
  if (b.side() == primary_side_) return !stream_hold_ && xid_reply_ == XidReply::kNone && own_request_.empty();
  return secondary_quiet;
}

// Its own coroutine, so that the timer and the race's state are freed once
// the session runs: Run's frame lives as long as the session.
awaitable<bool> PgSession::StartupInTime() {
  Timer timer(ex_, kStartupTimeout);
  auto r = co_await (Startup() || timer.async_wait());
  if (r.index() == 1) LogInfo("pg client startup timed out", {{"route", route().name}});
  co_return r.index() == 0 && std::get<0>(r);
}

awaitable<void> PgSession::Run() {
  address_ = client_.remote_endpoint().address().to_string();
  reader_.emplace(*ctx_.services->route_table, route().name, routing::Protocol::kPostgres);
  const bool started = co_await StartupInTime();
  if (started && !closing_) {
    LogDebug("pg session started", {{"route", route().name}, {"user", user_}, {"database", database_}});
    const auto idle = std::chrono::microseconds(absl::ToInt64Microseconds(ctx_.config->limits.idle_timeout));
    const auto stall = std::chrono::duration_cast<std::chrono::microseconds>(StallTimeout());
    co_await FirstOf(ClientLoop(), BackendLoop(Side::kOld), NewSideLoops(), Watch(idle, stall));
  }
  const bool forced = closing_;
  if (!forced) co_await FinishSecondaryWork();
  // Before the abandon below forgets what was unanswered.
  const bool secondary_quiet = !SecondaryBusy() && capturing_ == nullptr && !carried_.open && !carried_.holding &&
                               carried_.held_for_primary.empty();
  closing_ = true;
  AbandonSecondaryWork("turnout: the client session ended before the secondary applied it", true);
  for (auto& b : backends_) {
    if (!b) continue;
    cancel_slots_->Clear(static_cast<int>(b->side()));
    if (!forced && MayParkBackend(*b, secondary_quiet)) {
      ctx_.pg_pool->Give(std::move(b), ctx_.config);
      continue;
    }
    if (!forced && b->ready()) co_await b->Terminate();
    b->Close();
  }
  client_.Close();
  ctx_.route.bytes_from_clients.fetch_add(bytes_in_, std::memory_order_relaxed);
  ctx_.route.bytes_to_clients.fetch_add(bytes_out_, std::memory_order_relaxed);
}

}  // namespace detail

awaitable<void> RunPgSession(Socket client, SessionContext ctx) {
  const std::string route = ctx.route.route.name;
  try {
    detail::PgSession session(std::move(client), std::move(ctx));
    co_await session.Run();
  } catch (const std::exception& e) {
    // Nothing escapes a session (STYLE.md "Errors").
    LogError("pg session failed", {{"route", route}, {"error", e.what()}});
  }
}

}  // namespace turnout::proxy::pg
