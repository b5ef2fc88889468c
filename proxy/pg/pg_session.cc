// The protocol-aware PostgreSQL session (DESIGN.md §3).
//
//   client ──► ClientLoop ──frames──► primary BackendConnection
//   client ◄── BackendLoop(old) ◄──── old backend   (always read: NOTIFY)
//   client ◄── BackendLoop(new) ◄──── new backend   (once opened)
//
// Both directions relay by frame header and length out of one bounded
// buffer each: complete frames are inspected in place by the RequestTracker
// (request_tracker.h: accounting, classification, session state), runs of
// frames are forwarded with one (gather) write, and a frame larger than the
// buffer is streamed through by its remaining length. Nothing is allocated
// per message; state changes are copied once, for replay.
//
// This file does the I/O around that: startup (SSLRequest, GSSENCRequest,
// CancelRequest, protocol version), authentication at turnout, opening
// backends (lazily after the first), switching the primary at an idle point
// with the state replayed, drain and idle timeout.
//
// Debug hooks (tests and operators only; off unless the environment has
// TURNOUT_PG_DEBUG_HOOKS=1): a simple Query "TURNOUT DEBUG USE NEW" (or OLD)
// makes that backend the session's primary at the next idle point outside
// a transaction, opening it and replaying the session state on it. The
// routing engine (issue 5) drives the same SwitchPrimary().

#include "proxy/pg/pg_session.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "protocol/io_buffer.h"
#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/wire.h"
#include "proxy/disconnect.h"
#include "proxy/logging.h"
#include "proxy/pg/backend_connection.h"
#include "proxy/pg/cancel_registry.h"
#include "proxy/pg/request_tracker.h"
#include "proxy/pg/scram.h"
#include "proxy/pg/session_state.h"
#include "proxy/stream.h"
#include "proxy/upstream_connect.h"
#include "routing/policy_table.h"

namespace turnout::proxy::pg {
namespace {

// GCC 12 may destroy a temporary twice when it lives across a co_await in
// a conditional expression (seen here as a double free): arguments that
// own memory are built into locals before the co_await, never inline.

namespace ppg = protocol::pg;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
using routing::Side;

// Session-local wake-up for coroutines of one session (one thread): waiters
// re-check their condition after every wake, so spurious wakes are harmless.
class Event {
 public:
  explicit Event(const asio::any_io_executor& ex) : timer_(ex) { timer_.expires_at(Clock::time_point::max()); }
  awaitable<void> Wait() { co_await timer_.async_wait(); }
  void Notify() { timer_.cancel(); }

 private:
  Timer timer_;
};

// TURNOUT_PG_DEBUG_HOOKS=1 (see the file comment).
bool DebugHooksEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("TURNOUT_PG_DEBUG_HOOKS");
    return v != nullptr && std::string_view(v) == "1";
  }();
  return enabled;
}

// Sync dual-write of statements inside explicit transactions (lazy BEGIN on
// the secondary). Off: see HandleDualWrite.
constexpr bool kDualWriteInTransactions = false;

// Gathered segments per client write.
constexpr std::size_t kMaxSegments = 16;
// How long a client may take to start up and authenticate (the server's
// authentication_timeout default).
constexpr auto kStartupTimeout = std::chrono::seconds(60);

class PgSession final : public Session, private RequestTracker::Hooks {
 public:
  PgSession(Socket client, SessionContext ctx)
      : ctx_(std::move(ctx)),
        registration_(ctx_.sessions, this, ctx_.route, ctx_.process_active),
        client_(std::move(client)),
        client_in_(ctx_.config->limits.buffer_bytes),
        client_decoder_(ppg::Direction::kFrontend, ClientLimits(*ctx_.config)),
        ex_(client_.get_executor()),
        backend_ready_(ex_),
        idle_(ex_),
        client_lock_(ex_),
        drain_(ex_),
        tracker_(this, DebugHooksEnabled()) {}

  ~PgSession() override {
    if (cancel_key_) ctx_.services->cancel_keys->Unregister(cancel_key_->process_id);
  }

  void Close() override {
    closing_ = true;
    client_.Close();
    for (auto& b : backends_)
      if (b) b->Close();
  }

  void RequestDrain() override {
    draining_ = true;
    drain_.Notify();
  }

  awaitable<void> Run();

 private:
  using Verdict = RequestTracker::Verdict;

  static ppg::FrameLimits ClientLimits(const routing::Config& cfg) {
    ppg::FrameLimits l;
    l.max_message_size = cfg.limits.max_message_bytes;
    l.max_startup_size = cfg.limits.max_startup_bytes;
    return l;
  }

  const routing::Route& route() const { return ctx_.route.route; }
  BackendConnection* primary() { return backends_[static_cast<int>(primary_side_)].get(); }

  // ---------------------------------------------------------------- startup
  awaitable<bool> Startup();
  awaitable<bool> ReadStartupFrame(ppg::Frame* frame);
  awaitable<bool> Authenticate();
  awaitable<bool> ReadPasswordFrame(ppg::Frame* frame);
  awaitable<void> HandleCancel(const ppg::Frame& frame);
  awaitable<bool> OpenBackend(Side side, OpenFailure* failure);
  LoginParams MakeLogin(const routing::Backend& backend) const;

  // ---------------------------------------------------------------- relay
  awaitable<void> ClientLoop();
  awaitable<void> BackendLoop(Side side);
  awaitable<void> DrainWatch();
  awaitable<void> IdleWatch(absl::Duration idle);

  bool OnBackendFrame(Side side, const ppg::Frame& f);  // true: forward to the client
  bool BackendIdle() const noexcept { return tracker_.BackendIdle(); }
  bool AtBoundary() const noexcept { return tracker_.AtBoundary(); }

  // RequestTracker::Hooks
  routing::Plan Route(routing::RequestClass cls, routing::DdlRisk risk,
                      std::span<const std::string_view> targets) override;
  void Answered(const RequestTracker::Record& r, std::chrono::microseconds latency) override {
    ctx_.route.RecordRequest(r.side, r.cls, static_cast<std::uint64_t>(latency.count()));
  }
  bool Barrier() override { return std::exchange(barrier_, false); }
  void InFlight(bool busy) override {
    cancel_slots_->SetBusy(static_cast<int>(primary_side_), busy);
    if (!busy) idle_.Notify();
  }

  awaitable<bool> FlushClientParsed();
  awaitable<bool> StreamLargeClientFrame();
  awaitable<bool> ReadClient();
  awaitable<bool> WriteToClient(std::string_view bytes);
  awaitable<void> LockClient();
  void UnlockClient();
  awaitable<void> WaitBackendIdle();
  awaitable<bool> HandleDebugUse(Side side);
  awaitable<bool> HandleRefusal(std::string_view message);
  awaitable<bool> SwitchPrimary(Side side, std::string* notice, std::string* error);
  awaitable<bool> EnsureSynced(Side side, std::string* notice, std::string* error);
  awaitable<void> RelayBackend(Side side);
  void SecondaryLost(Side side);
  bool SideDown(Side side) const { return Clock::now() < down_until_[static_cast<int>(side)]; }
  const std::string& BackendName(Side side) const;

  // ---------------------------------------------------------------- dual-write
  // One sync dual-write in progress (DESIGN.md §2): the statement went to the
  // primary and to `secondary`; the primary's ReadyForQuery is held back
  // until the secondary answered too, and both outcomes are compared.
  struct DualOp {
    bool active = false;
    bool primary_done = false;
    bool secondary_done = false;
    Side secondary = Side::kNew;
    std::string sql;
    std::vector<std::string> tables;
    std::string primary_tags, secondary_tags;      // CommandComplete tags, ';'-joined
    std::string primary_error, secondary_error;    // first ErrorResponse message
    std::string held_z;                            // the primary's ReadyForQuery, held back
    bool dropped = false;                          // never reached the secondary
    protocol::pg::TransactionStatus secondary_status = protocol::pg::TransactionStatus::kIdle;
  };
  awaitable<bool> HandleDualWrite(std::string bytes);
  void CaptureOutcome(const ppg::Frame& f, std::string* tags, std::string* error);
  void FinishDual();
  void JournalWrite(routing::JournalKind kind, const std::string& sql, const std::vector<std::string>& tables,
                    std::string primary_outcome, std::string secondary_outcome);
  awaitable<void> SendFatal(std::string_view sqlstate, std::string_view message);

  // ---------------------------------------------------------------- members
  SessionContext ctx_;
  SessionRegistration registration_;
  Stream client_;
  protocol::IoBuffer client_in_;
  ppg::FrameDecoder client_decoder_;
  asio::any_io_executor ex_;
  std::array<std::unique_ptr<BackendConnection>, 2> backends_;
  Side primary_side_ = Side::kOld;

  Event backend_ready_;  // a backend finished opening
  Event idle_;           // a ReadyForQuery left nothing in flight
  Event client_lock_;    // the client writer was released
  Event drain_;          // RequestDrain
  bool client_locked_ = false;
  bool draining_ = false;
  bool closing_ = false;
  Clock::time_point last_activity_ = Clock::now();

  // Client identity (routing::ClientIdentity views these).
  std::string user_, database_, application_name_, address_;
  std::vector<std::pair<std::string, std::string>> startup_options_;
  std::optional<std::string> client_cleartext_;  // only with auth `password`
  std::string auth_reply_;                       // SASLFinal/AuthenticationOk, sent with the welcome

  std::shared_ptr<CancelSlots> cancel_slots_ = std::make_shared<CancelSlots>();
  std::optional<CancelRegistry::Key> cancel_key_;
  std::optional<routing::RouteTableReader> reader_;

  routing::Plan last_plan_;
  bool barrier_ = false;                 // Route() asks for a barrier (see Hooks::Barrier)
  std::optional<Side> switch_to_;        // ... and then a switch of the primary
  std::array<Clock::time_point, 2> down_until_{};  // a backend that failed: not retried before
  std::vector<std::unique_ptr<BackendConnection>> dead_backends_;  // lost secondaries, closed
  DualOp dual_;
  Event dual_done_{ex_};
  std::string release_;                  // bytes a backend loop must write to the client next
  bool debug_pinned_ = false;            // a debug hook chose the primary
  bool dual_in_txn_ = false;             // the dual-write statement came inside a transaction
  bool sec_txn_ = false;                 // the secondary has lazily begun the client's transaction
  bool sec_txn_broken_ = false;          // ... and lost it: the rest of the transaction is journaled
  RequestTracker tracker_;
  std::string scratch_;  // turnout's own replies
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

// ================================================================== helpers

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

awaitable<void> PgSession::SendFatal(std::string_view sqlstate, std::string_view message) {
  std::string out;
  ppg::AppendErrorResponse(&out, ppg::ErrorSpec{.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  co_await WriteToClient(out);
}

awaitable<void> PgSession::WaitBackendIdle() {
  while (!BackendIdle()) co_await idle_.Wait();
}

// ================================================================== startup

awaitable<bool> PgSession::ReadStartupFrame(ppg::Frame* frame) {
  for (;;) {
    auto r = client_decoder_.Decode(client_in_.Unparsed());
    if (r.ok()) {
      *frame = r.value;
      client_in_.CommitParsed(r.value.total_size);
      co_return true;
    }
    if (r.failed()) {
      // The server's words for a broken startup packet.
      const ppg::CodecError e = r.error;
      std::string text = e == ppg::CodecError::kStartupTooLarge || e == ppg::CodecError::kInvalidLength
                             ? "invalid length of startup packet"
                             : std::string(ppg::DescribeError(e));
      co_await SendFatal(ppg::SqlState(e), text);
      co_return false;
    }
    if (r.bytes_needed > client_in_.capacity()) {
      co_await SendFatal("54000", "startup packet larger than turnout's buffer (limits.buffer_size)");
      co_return false;
    }
    if (!co_await ReadClient()) co_return false;
  }
}

awaitable<bool> PgSession::ReadClient() {
  auto tail = client_in_.WritableTail();
  if (tail.empty()) {
    client_in_.Compact();
    tail = client_in_.WritableTail();
  }
  auto [ec, n] = co_await client_.ReadSome(asio::buffer(tail.data(), tail.size()));
  if (ec) {
    if (!IsExpectedDisconnect(ec))
      LogDebug("pg client read failed", {{"route", route().name}, {"error", ec.message()}});
    co_return false;
  }
  client_in_.CommitReceived(n);
  bytes_in_ += n;
  last_activity_ = Clock::now();
  co_return true;
}

awaitable<bool> PgSession::Startup() {
  ppg::Frame f;
  for (;;) {
    if (!co_await ReadStartupFrame(&f)) co_return false;
    const std::size_t size = f.total_size;
    if (f.kind == ppg::FrameKind::kSslRequest) {
      asio::ssl::context* tls = ctx_.services->tls ? ctx_.services->tls->ForRoute(route().name) : nullptr;
      client_in_.Consume(size);
      if (tls == nullptr || client_.is_tls()) {
        if (!co_await WriteToClient("N")) co_return false;
        continue;
      }
      if (!co_await WriteToClient("S")) co_return false;
      // Bytes sent before the handshake would be trusted as if encrypted
      // (CVE-2021-23222): refuse them, as the server does.
      if (!client_in_.Unconsumed().empty()) {
        co_await SendFatal("08P01", "received unencrypted data after SSL request");
        co_return false;
      }
      if (auto ec = co_await client_.StartTlsServer(*tls)) {
        LogDebug("pg client TLS handshake failed", {{"route", route().name}, {"error", ec.message()}});
        co_return false;
      }
      continue;
    }
    if (f.kind == ppg::FrameKind::kGssEncRequest) {
      client_in_.Consume(size);
      if (!co_await WriteToClient("N")) co_return false;
      continue;
    }
    if (f.kind == ppg::FrameKind::kCancelRequest) {
      co_await HandleCancel(f);
      co_return false;
    }
    break;
  }

  ppg::StartupMessage sm;
  if (auto ec = ppg::DecodeStartupMessage(f, &sm)) {
    if (ec == ppg::CodecError::kUnsupportedProtocolVersion) {
      const std::string text = absl::StrCat("unsupported frontend protocol ", f.code >> 16, ".", f.code & 0xffff,
                                            ": server supports 3.0 to 3.0");
      co_await SendFatal("0A000", text);
    } else {
      co_await SendFatal("08P01", "invalid startup packet layout: expected terminator as last byte");
    }
    co_return false;
  }
  std::vector<std::string_view> unrecognized;
  for (const auto& [name, value] : sm.parameters) {
    if (name == "user") {
      user_ = std::string(value);
    } else if (name == "database") {
      database_ = std::string(value);
    } else if (name == "replication") {
      if (value != "false" && value != "0" && value != "off" && value != "no") {
        co_await SendFatal("0A000", "turnout: replication connections are not supported");
        co_return false;
      }
    } else if (name.substr(0, 4) == "_pq_") {
      unrecognized.push_back(name);
    } else {
      if (name == "application_name") application_name_ = std::string(value);
      startup_options_.emplace_back(name, value);
    }
  }
  if (user_.empty()) {
    co_await SendFatal("28000", "no PostgreSQL user name specified in startup packet");
    co_return false;
  }
  if (database_.empty()) database_ = user_;
  client_in_.Consume(f.total_size);

  if (sm.minor() > 0 || !unrecognized.empty()) {
    // protocol-flow: NegotiateProtocolVersion, newest minor we speak is 0.
    std::string out;
    ppg::FrameBuilder b(&out, 'v');
    b.Int32(0).Int32(static_cast<std::int32_t>(unrecognized.size()));
    for (auto o : unrecognized) b.CString(o);
    b.Finish();
    if (!co_await WriteToClient(out)) co_return false;
  }

  if (route().tls.required && !client_.is_tls()) {
    const std::string text = absl::StrCat("no pg_hba.conf entry for host \"", address_, "\", user \"", user_,
                                          "\", database \"", database_, "\", no encryption");
    co_await SendFatal("28000", text);
    co_return false;
  }

  if (!co_await Authenticate()) co_return false;

  // The primary backend is opened now: its ParameterStatus is what the
  // client is told, and a failure shows as the server's own error.
  OpenFailure failure;
  if (!co_await OpenBackend(Side::kOld, &failure)) {
    ctx_.route.RecordUpstreamError(Side::kOld);
    LogWarn("pg backend login failed",
            {{"route", route().name}, {"backend", route().old_backend}, {"error", failure.message}});
    if (!failure.error_frame.empty()) {
      co_await WriteToClient(failure.error_frame);
    } else {
      co_await SendFatal(failure.sqlstate, failure.message);
    }
    co_return false;
  }

  cancel_key_ = ctx_.services->cancel_keys->Register(cancel_slots_);
  std::string out = std::move(auth_reply_);
  for (const auto& [name, value] : primary()->parameters()) ppg::AppendParameterStatus(&out, name, value);
  // turnout's own key: a CancelRequest must come back here, not go to a
  // backend the client cannot know (DESIGN.md §3).
  ppg::AppendBackendKeyData(&out, cancel_key_->process_id, cancel_key_->secret_key);
  ppg::AppendReadyForQuery(&out, ppg::TransactionStatus::kIdle);
  co_return co_await WriteToClient(out);
}

awaitable<bool> PgSession::ReadPasswordFrame(ppg::Frame* f) {
  for (;;) {
    auto r = client_decoder_.Decode(client_in_.Unparsed());
    if (r.ok()) {
      if (r.value.type != 'p') {
        const std::string text =
            absl::StrCat("expected password response, got message type ", static_cast<int>(r.value.type));
        co_await SendFatal("08P01", text);
        co_return false;
      }
      *f = r.value;
      client_in_.CommitParsed(r.value.total_size);
      co_return true;
    }
    if (r.failed() || r.bytes_needed > client_in_.capacity()) {
      co_await SendFatal("08P01", "invalid authentication message");
      co_return false;
    }
    if (!co_await ReadClient()) co_return false;  // psql hangs up here to prompt for a password
  }
}

awaitable<bool> PgSession::Authenticate() {
  const auto auth = route().auth;
  if (auth == routing::ClientAuth::kTrust) {
    ppg::AppendAuthenticationOk(&auth_reply_);
    co_return true;
  }
  const std::string failed = absl::StrCat("password authentication failed for user \"", user_, "\"");
  std::optional<StoredSecret> secret;
  auto lists = ctx_.services->users.find(route().name);
  if (lists != ctx_.services->users.end() && lists->second) {
    if (const std::string* s = lists->second->Secret(user_)) secret = StoredSecret::From(*s);
  }
  auto refuse = [&]() -> awaitable<bool> {
    LogInfo("pg client authentication failed", {{"route", route().name}, {"user", user_}});
    co_await SendFatal("28P01", failed);
    co_return false;
  };

  std::string out;
  ppg::Frame f;
  // md5 with a SCRAM secret upgrades to SCRAM, as the server does for a role
  // whose stored password is SCRAM.
  const bool use_scram = auth == routing::ClientAuth::kScramSha256 ||
                         (auth == routing::ClientAuth::kMd5 && secret &&
                          secret->kind == StoredSecret::Kind::kScram);
  if (auth == routing::ClientAuth::kPassword) {
    ppg::AppendAuthenticationCleartextPassword(&out);
    if (!co_await WriteToClient(out)) co_return false;
    if (!co_await ReadPasswordFrame(&f)) co_return false;
    ppg::PasswordMessage pm;
    if (ppg::Decode(f.payload, &pm)) {
      co_await SendFatal("08P01", "invalid password packet size");
      co_return false;
    }
    client_in_.Consume(f.total_size);
    if (!secret || !secret->CheckCleartext(pm.password, user_)) co_return co_await refuse();
    client_cleartext_ = std::string(pm.password);
  } else if (!use_scram) {  // md5
    std::array<std::uint8_t, 4> salt{};
    RandomBytes(salt.data(), salt.size());
    ppg::AppendAuthenticationMd5Password(&out, salt);
    if (!co_await WriteToClient(out)) co_return false;
    if (!co_await ReadPasswordFrame(&f)) co_return false;
    ppg::PasswordMessage pm;
    if (ppg::Decode(f.payload, &pm)) {
      co_await SendFatal("08P01", "invalid password packet size");
      co_return false;
    }
    client_in_.Consume(f.total_size);
    if (!secret) co_return co_await refuse();
    const std::string md5 =
        secret->kind == StoredSecret::Kind::kMd5 ? secret->text : Md5Secret(secret->text, user_);
    const std::string expected = Md5Response(md5, salt);
    if (expected.size() != pm.password.size() ||
        CRYPTO_memcmp(expected.data(), pm.password.data(), expected.size()) != 0)
      co_return co_await refuse();
  } else {  // SCRAM-SHA-256 (RFC 5802, RFC 7677)
    std::optional<ScramSecret> scram;
    if (secret) {
      if (secret->kind == StoredSecret::Kind::kScram) {
        scram = secret->scram;
      } else if (secret->kind == StoredSecret::Kind::kPlain) {
        scram = ScramSecret::ForPlainPassword(secret->text);
      } else {
        LogWarn("pg user has an md5 secret; SCRAM needs a plain or SCRAM secret",
                {{"route", route().name}, {"user", user_}});
      }
    }
    ScramServer server(scram);
    const std::string_view mechanisms[] = {kScramMechanism};
    ppg::AppendAuthenticationSasl(&out, mechanisms);
    if (!co_await WriteToClient(out)) co_return false;
    if (!co_await ReadPasswordFrame(&f)) co_return false;
    ppg::SaslInitialResponse init;
    if (ppg::Decode(f.payload, &init)) {
      co_await SendFatal("08P01", "malformed SASL message");
      co_return false;
    }
    if (init.mechanism != kScramMechanism) {
      client_in_.Consume(f.total_size);
      co_await SendFatal("28000", "client selected an invalid SASL authentication mechanism");
      co_return false;
    }
    auto server_first = init.data ? server.HandleClientFirst(ppg::AsText(*init.data)) : std::nullopt;
    client_in_.Consume(f.total_size);
    if (!server_first) {
      co_await SendFatal("08P01", "malformed SCRAM message");
      co_return false;
    }
    out.clear();
    ppg::AppendAuthenticationSaslContinue(&out, *server_first);
    if (!co_await WriteToClient(out)) co_return false;
    if (!co_await ReadPasswordFrame(&f)) co_return false;
    ppg::SaslResponse resp;
    if (ppg::Decode(f.payload, &resp)) {
      co_await SendFatal("08P01", "malformed SASL message");
      co_return false;
    }
    bool proof_ok = false;
    auto server_final = server.HandleClientFinal(ppg::AsText(resp.data), &proof_ok);
    client_in_.Consume(f.total_size);
    if (!server_final) {
      co_await SendFatal("08P01", "malformed SCRAM message");
      co_return false;
    }
    if (!proof_ok) co_return co_await refuse();
    ppg::AppendAuthenticationSaslFinal(&auth_reply_, *server_final);
  }
  ppg::AppendAuthenticationOk(&auth_reply_);
  co_return true;
}

awaitable<void> PgSession::HandleCancel(const ppg::Frame& frame) {
  ppg::CancelRequest req;
  if (ppg::DecodeCancelRequest(frame, &req)) co_return;
  auto slots = ctx_.services->cancel_keys->Find(req.process_id, req.secret_key32());
  if (!slots) {
    LogDebug("pg cancel with an unknown key", {{"route", route().name}});
    co_return;
  }
  const auto timeout = ctx_.config->limits.connect_timeout;
  for (const CancelTarget& t : slots->Targets()) {
    auto [ec, socket] = co_await ConnectUpstream(t.address, timeout);
    if (ec) {
      LogWarn("pg cancel: backend unreachable", {{"route", route().name}, {"error", ec.message()}});
      continue;
    }
    std::string msg;
    ppg::AppendCancelRequest(&msg, t.process_id, t.secret_key);
    auto [wec, n] = co_await asio::async_write(socket, asio::buffer(msg), kUseTuple);
    if (wec) continue;
    // The server closes once it has acted on the request; waiting for that
    // keeps the client's "cancel sent" honest (libpq waits the same way).
    Timer timer(ex_, std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
    char c;
    co_await (socket.async_read_some(asio::buffer(&c, 1)) || timer.async_wait());
  }
  LogDebug("pg cancel forwarded", {{"route", route().name}, {"pid", req.process_id}});
}

LoginParams PgSession::MakeLogin(const routing::Backend& backend) const {
  LoginParams login;
  login.user = backend.user.empty() ? user_ : backend.user;
  login.password = backend.password;
  // Without a configured secret, a cleartext password the client gave us is
  // the only one we could pass on (auth `password`, same user).
  if (login.password.empty() && backend.user.empty() && client_cleartext_) login.password = *client_cleartext_;
  login.database = backend.database.empty() ? database_ : backend.database;
  login.options = startup_options_;
  return login;
}

awaitable<bool> PgSession::OpenBackend(Side side, OpenFailure* failure) {
  const std::string& name = BackendName(side);
  const routing::Backend* backend = ctx_.config->FindBackend(name);
  if (backend == nullptr) {
    failure->message = absl::StrCat("turnout: route ", route().name, " has no ",
                                    side == Side::kOld ? "old" : "new", " backend");
    co_return false;
  }
  auto conn = std::make_unique<BackendConnection>(*backend, side, ctx_.config->limits.buffer_bytes,
                                                  ctx_.config->limits.max_message_bytes);
  asio::ssl::context* tls = ctx_.services->tls ? ctx_.services->tls->ForBackend(backend->name) : nullptr;
  if (!co_await conn->Open(tls, MakeLogin(*backend), ctx_.config->limits.connect_timeout, failure))
    co_return false;
  cancel_slots_->Set(static_cast<int>(side), CancelTarget{backend->address, conn->process_id(), conn->secret_key()});
  backends_[static_cast<int>(side)] = std::move(conn);
  co_return true;
}

// ================================================================== routing

// The one place a request meets the routing engine (issue 5 plugs in here):
// the route's policy, refreshed only at a request boundary so a transaction
// finishes under the policy it started with (DESIGN.md §2).
routing::Plan PgSession::Route(routing::RequestClass cls, routing::DdlRisk risk,
                               std::span<const std::string_view> targets) {
  if (AtBoundary()) reader_->Refresh();
  routing::Request req;
  req.request_class = cls;
  req.targets = targets;
  req.client = routing::ClientIdentity{user_, application_name_, address_};
  req.connection_id = ctx_.connection_id;
  req.ddl_risk = risk;
  last_plan_ = reader_->policy().Decide(req, absl::Now());
  routing::Plan plan = last_plan_;
  if (plan.refused()) return plan;
  // The side is chosen at the first statement of a transaction (or batch)
  // and pinned until it ends (DESIGN.md §3).
  const bool in_txn = tracker_.txn_status() != ppg::TransactionStatus::kIdle || sec_txn_;
  const bool may_switch = !in_txn && !tracker_.unsynced() && !debug_pinned_;
  Side want = may_switch ? plan.primary() : primary_side_;
  dual_in_txn_ = tracker_.txn_status() != ppg::TransactionStatus::kIdle;
  if (want != primary_side_ && SideDown(want)) want = primary_side_;
  plan.set_primary(want);
  plan.RemoveSecondariesOn(want);
  // Secondary work the session carries out: sync dual-write of simple
  // Queries. Transaction control starts nothing on the secondary (BEGIN is
  // sent lazily before the first write); once the secondary has begun,
  // every statement of the transaction goes to both.
  routing::Plan out(want);
  if (plan.has(routing::kPlanAtomic)) out.set(routing::kPlanAtomic);
  bool dual = false;
  if (!tracker_.unsynced() && !debug_pinned_) {
    if (sec_txn_ || sec_txn_broken_) {
      dual = true;
    } else if (cls == routing::RequestClass::kWrite || cls == routing::RequestClass::kDdl) {
      for (const auto& sec : plan.secondaries())
        if (sec.role == routing::SecondaryRole::kDualWrite) dual = true;
    }
  }
  if (dual) out.AddSecondary(routing::Secondary{Other(want), routing::SecondaryRole::kDualWrite, routing::Apply::kSync});
  // A switch, or a dual-write, starts from a quiet session.
  if (want != primary_side_) {
    barrier_ = true;
    switch_to_ = want;
  } else if (dual && !BackendIdle()) {
    barrier_ = true;
  }
  return out;
}

const std::string& PgSession::BackendName(Side side) const {
  if (side == Side::kNew) {
    const std::string& n = reader_->policy().inputs().new_backend;
    if (!n.empty()) return n;
    return route().new_backend;
  }
  return route().old_backend;
}

// ================================================================== client -> backend

awaitable<bool> PgSession::FlushClientParsed() {
  auto parsed = client_in_.Parsed();
  if (parsed.empty()) co_return true;
  auto [ec, n] = co_await primary()->stream().Write(asio::buffer(parsed.data(), parsed.size()));
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
        const Verdict v = tracker_.OnClientFrame(f);
        if (v == Verdict::kForward) {
          in.CommitParsed(f.total_size);
          continue;
        }
        if (v == Verdict::kBarrier) {
          // Everything before goes out and is answered; then maybe a switch;
          // then the same frame is fed again (nothing was recorded for it).
          if (!co_await FlushClientParsed()) co_return;
          co_await WaitBackendIdle();
          while (dual_.active) co_await dual_done_.Wait();
          if (switch_to_) {
            const Side side = *switch_to_;
            switch_to_.reset();
            if (side != primary_side_ && tracker_.txn_status() == ppg::TransactionStatus::kIdle) {
              std::string notice, error;
              if (!co_await SwitchPrimary(side, &notice, &error)) {
                down_until_[static_cast<int>(side)] = Clock::now() + std::chrono::seconds(1);
                LogWarn("pg backend unavailable; staying on the other side",
                        {{"route", route().name}, {"backend", BackendName(side)}, {"error", error}});
              }
            }
          }
          continue;
        }
        if (v == Verdict::kDualWrite) {
          std::string bytes(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
          in.CommitParsed(f.total_size);
          if (!co_await HandleDualWrite(std::move(bytes))) co_return;
          continue;
        }
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
                "turnout: high-risk DDL is refused while this route is migrating (allow it in the migration)");
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
    if (!co_await ReadClient()) co_return;
  }
}

awaitable<bool> PgSession::HandleRefusal(std::string_view message) {
  // Our ErrorResponse must come after every reply still in flight.
  co_await WaitBackendIdle();
  std::string out;
  ppg::AppendErrorResponse(&out, ppg::ErrorSpec{.severity = "ERROR", .sqlstate = "0A000", .message = message});
  tracker_.FailTransaction();
  ppg::AppendReadyForQuery(&out, tracker_.txn_status());
  co_return co_await WriteToClient(out);
}

awaitable<bool> PgSession::HandleDebugUse(Side side) {
  co_await WaitBackendIdle();
  std::string out, notice, error;
  if (tracker_.txn_status() != ppg::TransactionStatus::kIdle) {
    error = "turnout: cannot switch backends inside a transaction";
  } else if (co_await SwitchPrimary(side, &notice, &error)) {
    debug_pinned_ = true;
    if (!notice.empty())
      ppg::AppendNoticeResponse(&out, ppg::ErrorSpec{.severity = "WARNING", .sqlstate = "01000", .message = notice});
    ppg::AppendCommandComplete(&out, side == Side::kNew ? "TURNOUT USE NEW" : "TURNOUT USE OLD");
  }
  if (!error.empty())
    ppg::AppendErrorResponse(&out, ppg::ErrorSpec{.severity = "ERROR", .sqlstate = "08006", .message = error});
  ppg::AppendReadyForQuery(&out, tracker_.txn_status());
  co_return co_await WriteToClient(out);
}

// Makes `side` the backend requests go to, opening it (and replaying the
// session state on it) when needed. Only at an idle point outside a
// transaction, so nothing in flight changes its destination.
awaitable<bool> PgSession::SwitchPrimary(Side side, std::string* notice, std::string* error) {
  const int i = static_cast<int>(side);
  BackendConnection* before = primary();
  // Opened and replayed, or caught up since it was last primary.
  if (!co_await EnsureSynced(side, notice, error)) co_return false;
  if (before != nullptr && before != backends_[i].get()) before->MarkSynced(tracker_.state().snapshot());
  // The client keeps seeing one server: report parameters that differ.
  std::string params;
  for (const auto& [name, value] : backends_[i]->parameters())
    if (before == nullptr || before->Parameter(name) != value) ppg::AppendParameterStatus(&params, name, value);
  if (!params.empty() && !co_await WriteToClient(params)) co_return false;
  primary_side_ = side;
  tracker_.set_side(side);
  co_return true;
}

// ================================================================== dual-write

// Brings `side` to the session's state without making it the primary:
// opened (and replayed) when needed, else caught up from its last sync.
awaitable<bool> PgSession::EnsureSynced(Side side, std::string* notice, std::string* error) {
  const int i = static_cast<int>(side);
  if (!backends_[i]) {
    OpenFailure failure;
    if (!co_await OpenBackend(side, &failure)) {
      ctx_.route.RecordUpstreamError(side);
      if (!failure.error_frame.empty()) {
        ppg::ErrorResponse e;
        auto r = ppg::FrameDecoder(ppg::Direction::kBackend).Decode(failure.error_frame);
        if (r.ok() && !ppg::Decode(r.value.payload, &e)) *error = std::string(e.message());
      }
      if (error->empty()) *error = failure.message;
      co_return false;
    }
    std::string replay_error;
    if (!co_await backends_[i]->Replay(tracker_.state(), &replay_error))
      *notice = "turnout: replaying session state on the new connection: " + replay_error;
    if (!backends_[i]->ready()) {
      *error = "turnout: lost the new backend connection while replaying session state";
      co_return false;
    }
    backend_ready_.Notify();
    LogDebug("pg backend opened lazily", {{"route", route().name}, {"backend", backends_[i]->backend().name}});
    co_return true;
  }
  if (side == primary_side_) co_return true;
  BackendConnection& b = *backends_[i];
  std::string out;
  const int replies = tracker_.state().AppendReplay(&out, &b.synced());
  b.MarkSynced(tracker_.state().snapshot());
  if (replies > 0) {
    b.swallow_replies += replies;
    b.swallow_errors.clear();
    auto [ec, n] = co_await b.stream().Write(asio::buffer(out));
    if (ec) {
      *error = "turnout: lost the backend connection while replaying session state";
      co_return false;
    }
    while (b.swallow_replies > 0 && b.ready() && backends_[i]) co_await idle_.Wait();
    if (!b.swallow_errors.empty()) *notice = "turnout: replaying session state: " + b.swallow_errors;
  }
  co_return true;
}

void PgSession::CaptureOutcome(const ppg::Frame& f, std::string* tags, std::string* error) {
  if (f.type == 'C') {
    ppg::PayloadReader r(f.payload);
    std::string_view tag;
    if (r.ReadCString(&tag)) {
      if (!tags->empty()) tags->push_back(';');
      tags->append(tag);
    }
  } else if (f.type == 'E' && error->empty()) {
    ppg::ErrorResponse e;
    if (!ppg::Decode(f.payload, &e)) {
      *error = std::string(e.sqlstate());
      error->push_back(' ');
      error->append(e.message());
    }
    if (error->empty()) *error = "error";
  }
}

void PgSession::JournalWrite(routing::JournalKind kind, const std::string& sql, const std::vector<std::string>& tables,
                             std::string primary_outcome, std::string secondary_outcome) {
  routing::JournalEntry e;
  e.at = absl::Now();
  e.migration_id = reader_->policy().migration_id();
  e.route = route().name;
  e.backend = BackendName(dual_.secondary);
  e.session = ctx_.connection_id;
  e.kind = kind;
  e.statement = sql;
  e.targets = tables;
  e.primary_outcome = std::move(primary_outcome);
  e.secondary_outcome = std::move(secondary_outcome);
  ctx_.services->journal->Append(std::move(e));
}

// Both sides answered (or the secondary never got the statement): compare,
// journal, and let the client have the primary's ReadyForQuery.
void PgSession::FinishDual() {
  DualOp& d = dual_;
  auto outcome = [](const std::string& tags, const std::string& error) {
    return error.empty() ? tags : absl::StrCat(tags, tags.empty() ? "" : "; ", "ERROR ", error);
  };
  const std::string p = outcome(d.primary_tags, d.primary_error);
  const std::string sec = outcome(d.secondary_tags, d.secondary_error);
  if (d.dropped) {
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kJournaled);
    JournalWrite(routing::JournalKind::kDropped, d.sql, d.tables, p, sec);
  } else if (d.primary_error.empty() != d.secondary_error.empty()) {
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kFailed);
    JournalWrite(routing::JournalKind::kFailed, d.sql, d.tables, p, sec);
  } else if (d.primary_tags != d.secondary_tags) {
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kFailed);
    JournalWrite(routing::JournalKind::kDiverged, d.sql, d.tables, p, sec);
  } else {
    ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kApplied);
  }
  // The secondary follows the client's transaction while the primary is in one.
  if (tracker_.txn_status() == ppg::TransactionStatus::kIdle) {
    sec_txn_ = false;
    sec_txn_broken_ = false;
  } else if (d.dropped) {
    sec_txn_ = false;
    sec_txn_broken_ = true;
  } else if (d.secondary_status != ppg::TransactionStatus::kIdle) {
    sec_txn_ = true;
  }
  if (!d.held_z.empty()) {
    release_ += d.held_z;
    d.held_z.clear();
  }
  d.active = false;
  dual_done_.Notify();
}

// A simple Query with dual-write work (the tracker has recorded it; its
// bytes are the last parsed ones in the client buffer). Sync: the primary
// first, then the secondary; the client gets the primary's ReadyForQuery
// and reads on only after both sides answered.
awaitable<bool> PgSession::HandleDualWrite(std::string bytes) {
  const Side sec = Other(primary_side_);
  dual_ = DualOp{};
  dual_.active = true;
  dual_.secondary = sec;
  {
    ppg::Query q;
    if (!ppg::Decode(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()) + 5,
                                                    bytes.size() - 5),
                     &q))
      dual_.sql = std::string(q.sql);
    for (auto t : tracker_.QueryTables()) dual_.tables.emplace_back(t);
  }
  const bool lazy_begin = dual_in_txn_ && !sec_txn_ && !sec_txn_broken_;
  if (!co_await FlushClientParsed()) co_return false;
  // The secondary gets the statement once the primary has applied it: row
  // locks are then taken on the secondary in the order the primary granted
  // them, so concurrent sessions cannot deadlock across the two sides.
  while (dual_.active && !dual_.primary_done) co_await dual_done_.Wait();
  std::string error;
  if (kDualWriteInTransactions == false && (dual_in_txn_ || sec_txn_)) {
    // TODO(issue 5): carrying transactions to the secondary (lazy BEGIN,
    // below) stalls under concurrent mixed load; until that is fixed such
    // writes are journaled for repair, never silently dropped.
    error = "turnout: writes inside transactions are not dual-written yet; journaled for repair";
  } else if (sec_txn_broken_) {
    error = "turnout: the secondary lost this transaction";
  } else if (SideDown(sec) && !backends_[static_cast<int>(sec)]) {
    error = "turnout: backend unavailable (retrying shortly)";
  } else {
    std::string notice;
    if (!co_await EnsureSynced(sec, &notice, &error)) {
      down_until_[static_cast<int>(sec)] = Clock::now() + std::chrono::seconds(1);
      if (error.empty()) error = "turnout: backend unavailable";
    } else {
      BackendConnection& b = *backends_[static_cast<int>(sec)];
      std::string out;
      if (lazy_begin) {
        ppg::FrameBuilder fb(&out, 'Q');
        fb.CString("BEGIN");
        fb.Finish();
        b.swallow_replies += 1;
      }
      out += bytes;
      auto [ec, n] = co_await b.stream().Write(asio::buffer(out));
      if (ec) {
        error = "turnout: lost the backend connection";
        b.Close();
      }
    }
  }
  if (!error.empty() && dual_.active && !dual_.secondary_done) {
    dual_.dropped = true;
    dual_.secondary_done = true;
    dual_.secondary_error = error;
    if (dual_.primary_done) FinishDual();
    if (!release_.empty()) {
      std::string out = std::move(release_);
      release_.clear();
      if (!co_await WriteToClient(out)) co_return false;
    }
  }
  while (dual_.active) co_await dual_done_.Wait();
  co_return true;
}

// ================================================================== backend -> client

bool PgSession::OnBackendFrame(Side side, const ppg::Frame& f) {
  if (side != primary_side_) {
    BackendConnection& b = *backends_[static_cast<int>(side)];
    if (b.swallow_replies > 0 && f.type != 'A') {
      if (f.type == 'E') {
        ppg::ErrorResponse e;
        if (!ppg::Decode(f.payload, &e)) {
          if (!b.swallow_errors.empty()) b.swallow_errors += "; ";
          b.swallow_errors.append(e.message());
        }
      } else if (f.type == 'Z' && --b.swallow_replies == 0) {
        idle_.Notify();
      }
      return false;
    }
    if (dual_.active && side == dual_.secondary && !dual_.secondary_done) {
      if (f.type == 'Z') {
        ppg::ReadyForQuery z;
        if (!ppg::Decode(f.payload, &z)) dual_.secondary_status = z.status;
        dual_.secondary_done = true;
        if (dual_.primary_done) FinishDual();
        return false;
      }
      CaptureOutcome(f, &dual_.secondary_tags, &dual_.secondary_error);
      if (f.type != 'A') return false;
    }
    // A backend that is not serving requests only has asynchronous news.
    if (f.type == 'S') {
      ppg::ParameterStatus ps;
      if (!ppg::Decode(f.payload, &ps)) backends_[static_cast<int>(side)]->SetParameter(ps.name, ps.value);
      return false;
    }
    return f.type == 'A';
  }
  if (dual_.active && !dual_.primary_done) {
    if (f.type == 'Z') {
      dual_.primary_done = true;
      dual_done_.Notify();
      const bool forward = tracker_.OnBackendFrame(f);
      if (!dual_.secondary_done) {
        dual_.held_z.assign(reinterpret_cast<const char*>(f.bytes.data()), f.total_size);
        return false;
      }
      FinishDual();
      return forward;
    }
    CaptureOutcome(f, &dual_.primary_tags, &dual_.primary_error);
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
    co_await RelayBackend(side);
    // Losing the primary ends the session; losing a secondary does not:
    // its work is journaled and it is reopened later.
    if (closing_ || side == primary_side_) co_return;
    SecondaryLost(side);
    if (!release_.empty()) {
      std::string out = std::move(release_);
      release_.clear();
      if (!co_await WriteToClient(out)) co_return;
    }
  }
}

void PgSession::SecondaryLost(Side side) {
  const int i = static_cast<int>(side);
  if (!backends_[i]) return;
  LogWarn("pg secondary backend lost", {{"route", route().name}, {"backend", backends_[i]->backend().name}});
  ctx_.route.RecordUpstreamError(side);
  cancel_slots_->Clear(i);
  backends_[i]->Close();
  dead_backends_.push_back(std::move(backends_[i]));
  down_until_[i] = Clock::now() + std::chrono::seconds(1);
  if (sec_txn_) {
    sec_txn_ = false;
    sec_txn_broken_ = true;
  }
  if (dual_.active && dual_.secondary == side && !dual_.secondary_done) {
    dual_.secondary_done = true;
    dual_.dropped = true;
    if (dual_.secondary_error.empty()) dual_.secondary_error = "turnout: connection to the backend lost";
    if (dual_.primary_done) FinishDual();
  }
}

awaitable<void> PgSession::RelayBackend(Side side) {
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
        if (count + 1 == kMaxSegments) {
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
        co_return;
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
      if (ec) co_return;
    }
    in.Consume(in.Parsed().size());
    if (!release_.empty()) {
      std::string out = std::move(release_);
      release_.clear();
      if (!co_await WriteToClient(out)) co_return;
    }

    // Drain: close at the first idle point outside a transaction.
    if (draining_ && side == primary_side_ && AtBoundary()) {
      co_await SendFatal("57P01", "terminating connection due to administrator command");
      co_return;
    }
    if (more) continue;

    if (large) {
      // Stream one frame larger than the buffer straight through, holding
      // the client writer so nothing interleaves with it.
      auto hr = b.decoder().DecodeHeader(in.Unparsed());
      if (!hr.ok()) co_return;
      const bool forward = side == primary_side_ && hr.value.type != 'K' && hr.value.type != 'R';
      if (side == primary_side_) tracker_.OnLargeBackendFrame(hr.value.type);
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
      if (!ok) co_return;
      continue;
    }

    auto tail = in.WritableTail();
    auto [ec, n] = co_await b.stream().ReadSome(asio::buffer(tail.data(), tail.size()));
    if (ec) {
      if (!closing_ && !IsExpectedDisconnect(ec))
        LogWarn("pg backend read failed", {{"route", route().name}, {"backend", b.backend().name}, {"error", ec.message()}});
      if (!closing_ && ec == std::error_code(boost::system::error_code(asio::error::eof)))
        LogInfo("pg backend closed the connection", {{"route", route().name}, {"backend", b.backend().name}});
      co_return;
    }
    in.CommitReceived(n);
    last_activity_ = Clock::now();
  }
}

// ================================================================== drain, idle

awaitable<void> PgSession::DrainWatch() {
  // An idle session closes at once; a running query or open transaction
  // finishes first, and BackendLoop closes at its ReadyForQuery.
  for (;;) {
    if (draining_ && AtBoundary()) {
      co_await SendFatal("57P01", "terminating connection due to administrator command");
      co_return;
    }
    co_await drain_.Wait();
  }
}

awaitable<void> PgSession::IdleWatch(absl::Duration idle) {
  const auto limit = std::chrono::microseconds(absl::ToInt64Microseconds(idle));
  Timer timer(ex_);
  for (;;) {
    timer.expires_at(last_activity_ + limit);
    auto [ec] = co_await timer.async_wait();
    if (ec) co_return;
    if (Clock::now() - last_activity_ >= limit) {
      LogInfo("idle timeout", {{"route", route().name}});
      co_await SendFatal("57P05", "terminating connection due to idle-session timeout");
      co_return;
    }
  }
}

// ================================================================== run

awaitable<void> PgSession::Run() {
  {
    address_ = client_.remote_endpoint().address().to_string();
  }
  reader_.emplace(*ctx_.services->route_table, route().name, routing::Protocol::kPostgres);
  bool started = false;
  {
    Timer timer(ex_, kStartupTimeout);
    auto r = co_await (Startup() || timer.async_wait());
    started = r.index() == 0 && std::get<0>(r);
    if (r.index() == 1) LogInfo("pg client startup timed out", {{"route", route().name}});
  }
  if (started && !closing_) {
    LogDebug("pg session started", {{"route", route().name}, {"user", user_}, {"database", database_}});
    auto loops = ClientLoop() || BackendLoop(Side::kOld) || BackendLoop(Side::kNew) || DrainWatch();
    const auto idle = ctx_.config->limits.idle_timeout;
    if (idle > absl::ZeroDuration()) {
      co_await (std::move(loops) || IdleWatch(idle));
    } else {
      co_await std::move(loops);
    }
  }
  for (auto& b : backends_) {
    if (!b) continue;
    cancel_slots_->Clear(static_cast<int>(b->side()));
    if (!closing_) co_await b->Terminate();
    b->Close();
  }
  client_.Close();
  ctx_.route.bytes_from_clients.fetch_add(bytes_in_, std::memory_order_relaxed);
  ctx_.route.bytes_to_clients.fetch_add(bytes_out_, std::memory_order_relaxed);
}

}  // namespace

awaitable<void> RunPgSession(Socket client, SessionContext ctx) {
  const std::string route = ctx.route.route.name;
  try {
    PgSession session(std::move(client), std::move(ctx));
    co_await session.Run();
  } catch (const std::exception& e) {
    // Nothing escapes a session (STYLE.md "Errors").
    LogError("pg session failed", {{"route", route}, {"error", e.what()}});
  }
}

}  // namespace turnout::proxy::pg
