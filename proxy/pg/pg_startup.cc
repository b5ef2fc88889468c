// Startup of a PostgreSQL session: SSLRequest, GSSENCRequest, CancelRequest,
// protocol version, authentication at turnout (trust, password, md5,
// SCRAM-SHA-256), and opening backend connections with the client's
// startup parameters.

#include <array>

#include "absl/strings/str_cat.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/wire.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/scram.h"
#include "proxy/pg/server_pool.h"
#include "proxy/upstream_connect.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using namespace asio::experimental::awaitable_operators;

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

// Sends a cleartext or md5 challenge and reads the PasswordMessage that
// answers it.
awaitable<bool> PgSession::ExchangePassword(const std::string& challenge, std::string* password) {
  if (!co_await WriteToClient(challenge)) co_return false;
  ppg::Frame f;
  if (!co_await ReadPasswordFrame(&f)) co_return false;
  ppg::PasswordMessage pm;
  if (ppg::Decode(f.payload, &pm)) {
    co_await SendFatal("08P01", "invalid password packet size");
    co_return false;
  }
  *password = std::string(pm.password);
  client_in_.Consume(f.total_size);
  co_return true;
}

awaitable<bool> PgSession::Authenticate() {
  const auto auth = route().auth;
  if (auth == routing::ClientAuth::kTrust) {
    ppg::AppendAuthenticationOk(&auth_reply_);
    co_return true;
  }
  std::optional<StoredSecret> secret;
  auto lists = ctx_.services->users.find(route().name);
  if (lists != ctx_.services->users.end() && lists->second) {
    if (const std::string* s = lists->second->Secret(user_)) secret = StoredSecret::From(*s);
  }
  // md5 with a SCRAM secret upgrades to SCRAM, as the server does for a role
  // whose stored password is SCRAM.
  const bool use_scram = auth == routing::ClientAuth::kScramSha256 ||
                         (auth == routing::ClientAuth::kMd5 && secret &&
                          secret->kind == StoredSecret::Kind::kScram);
  bool accepted = false;
  if (use_scram) {
    if (!co_await AuthenticateScram(secret, &accepted)) co_return false;
  } else if (auth == routing::ClientAuth::kPassword) {
    std::string challenge, password;
    ppg::AppendAuthenticationCleartextPassword(&challenge);
    if (!co_await ExchangePassword(challenge, &password)) co_return false;
    accepted = secret && secret->CheckCleartext(password, user_, ctx_.services->scram_keys.get());
    if (accepted) client_cleartext_ = std::move(password);
  } else {  // md5
    std::array<std::uint8_t, 4> salt{};
    RandomBytes(salt.data(), salt.size());
    std::string challenge, response;
    ppg::AppendAuthenticationMd5Password(&challenge, salt);
    if (!co_await ExchangePassword(challenge, &response)) co_return false;
    accepted = secret && secret->CheckMd5Response(response, user_, salt);
  }
  if (!accepted) {
    LogInfo("pg client authentication failed", {{"route", route().name}, {"user", user_}});
    const std::string text = absl::StrCat("password authentication failed for user \"", user_, "\"");
    co_await SendFatal("28P01", text);
    co_return false;
  }
  ppg::AppendAuthenticationOk(&auth_reply_);
  co_return true;
}

// SCRAM-SHA-256 (RFC 5802, RFC 7677). False when the exchange broke off;
// `accepted` says whether the client proved the password.
awaitable<bool> PgSession::AuthenticateScram(const std::optional<StoredSecret>& secret, bool* accepted) {
  std::optional<ScramSecret> scram;
  if (secret) {
    scram = secret->ScramVerifier(*ctx_.services->scram_keys);
    if (!scram)
      LogWarn("pg user has an md5 secret; SCRAM needs a plain or SCRAM secret",
              {{"route", route().name}, {"user", user_}});
  }
  ScramServer server(scram);
  std::string out;
  ppg::Frame f;
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
  *accepted = proof_ok;
  if (proof_ok) ppg::AppendAuthenticationSaslFinal(&auth_reply_, *server_final);
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
  login.scram_keys = ctx_.services->scram_keys.get();
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
  const LoginParams login = MakeLogin(*backend);
  const bool pooled = backend->pool.idle > 0 && ctx_.pg_pool != nullptr;
  std::string key = pooled ? ServerPool::Key(*backend, login) : std::string();
  std::unique_ptr<BackendConnection> conn = pooled ? ctx_.pg_pool->Take(key, *backend, side) : nullptr;
  auto& counters = ctx_.route.sides[static_cast<int>(side)];
  if (conn != nullptr) {
    counters.server_logins_reused.fetch_add(1, std::memory_order_relaxed);
  } else {
    conn = std::make_unique<BackendConnection>(*backend, side, ctx_.config->limits.buffer_bytes,
                                               ctx_.config->limits.max_message_bytes);
    asio::ssl::context* tls = ctx_.services->tls ? ctx_.services->tls->ForBackend(backend->name) : nullptr;
    if (!co_await conn->Open(tls, login, ctx_.config->limits.connect_timeout, failure)) co_return false;
    conn->set_pool_key(std::move(key));
    counters.server_logins_opened.fetch_add(1, std::memory_order_relaxed);
  }
  cancel_slots_->Set(static_cast<int>(side), CancelTarget{backend->address, conn->process_id(), conn->secret_key()});
  backends_[static_cast<int>(side)] = std::move(conn);
  co_return true;
}

}  // namespace turnout::proxy::pg::detail
