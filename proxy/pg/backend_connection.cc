#include "proxy/pg/backend_connection.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/wire.h"
#include "proxy/pg/scram.h"
#include "proxy/pg/session_state.h"
#include "proxy/upstream_connect.h"

namespace turnout::proxy::pg {

namespace ppg = protocol::pg;
using namespace asio::experimental::awaitable_operators;

namespace {

ppg::FrameLimits BackendLimits(std::size_t max_message_bytes) {
  ppg::FrameLimits limits;
  limits.max_message_size = max_message_bytes;
  return limits;
}

}  // namespace

BackendConnection::BackendConnection(const routing::Backend& backend, routing::Side side,
                                     std::size_t buffer_bytes, std::size_t max_message_bytes)
    : backend_(&backend),
      side_(side),
      in_(buffer_bytes),
      decoder_(ppg::Direction::kBackend, BackendLimits(max_message_bytes)) {}

BackendConnection::~BackendConnection() { Close(); }

void BackendConnection::Close() noexcept {
  ready_ = false;
  if (stream_) stream_->Close();
}

awaitable<void> BackendConnection::Terminate() {
  if (stream_ && stream_->is_open() && ready_) {
    std::string x;
    ppg::AppendTerminate(&x);
    co_await WriteAll(x);
  }
  Close();
}

bool BackendConnection::Reusable() const noexcept {
  return ready_ && stream_ && stream_->is_open() && in_.Unconsumed().empty() && last_frame_size_ == 0 &&
         swallow_replies == 0;
}

awaitable<bool> BackendConnection::Reset(std::string_view query) {
  std::string out;
  ppg::AppendQuery(&out, query);
  if (co_await WriteAll(out)) co_return false;
  // RESET ALL puts back what the last client SET: ReadAnswers takes the
  // ParameterStatus it brings, and the next client is told those values.
  const Answers a = co_await ReadAnswers(1, nullptr);
  synced_ = {};
  swallow_errors.clear();
  co_return !a.ec && !a.failed && a.status == ppg::TransactionStatus::kIdle;
}

bool BackendConnection::Quiet() noexcept {
  if (!Reusable()) return false;
  char byte;
  const ssize_t n = ::recv(stream_->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void BackendConnection::Rebind(const routing::Backend& backend, routing::Side side) noexcept {
  backend_ = &backend;
  side_ = side;
}

std::string_view BackendConnection::Parameter(std::string_view name) const noexcept {
  for (const auto& [k, v] : parameters_)
    if (k == name) return v;
  return {};
}

void BackendConnection::SetParameter(std::string_view name, std::string_view value) {
  for (auto& [k, v] : parameters_) {
    if (k == name) {
      v.assign(value);
      return;
    }
  }
  parameters_.emplace_back(name, value);
}

awaitable<std::error_code> BackendConnection::WriteAll(std::string_view bytes) {
  auto [ec, n] = co_await stream_->Write(asio::buffer(bytes.data(), bytes.size()));
  co_return ec;
}

void BackendConnection::DropLastFrame() noexcept {
  // Hands the buffer over to the session with nothing half-read.
  if (last_frame_size_ != 0) {
    in_.CommitParsed(last_frame_size_);
    in_.Consume(last_frame_size_);
    last_frame_size_ = 0;
  }
}

awaitable<std::error_code> BackendConnection::ReadFrame(ppg::Frame* frame) {
  DropLastFrame();
  for (;;) {
    auto r = decoder_.Decode(in_.Unparsed());
    if (r.ok()) {
      *frame = r.value;
      last_frame_size_ = r.value.total_size;
      co_return std::error_code{};
    }
    if (r.failed()) co_return r.error_code();
    if (r.bytes_needed > in_.capacity()) co_return make_error_code(ppg::CodecError::kMessageTooLarge);
    auto tail = in_.WritableTail();
    auto [ec, n] = co_await stream_->ReadSome(asio::buffer(tail.data(), tail.size()));
    if (ec) co_return ec;
    in_.CommitReceived(n);
  }
}

awaitable<bool> BackendConnection::Open(asio::ssl::context* tls, const LoginParams& login,
                                        absl::Duration timeout, OpenFailure* failure) {
  Timer timer(co_await asio::this_coro::executor,
              std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  auto result = co_await (OpenImpl(tls, login, failure) || timer.async_wait());
  if (result.index() == 1) {
    Close();
    failure->error_frame.clear();
    failure->message = absl::StrCat("turnout: backend ", backend_->name, " did not answer within ",
                                    absl::FormatDuration(timeout));
    co_return false;
  }
  const bool ok = std::get<0>(result);
  if (!ok) Close();
  ready_ = ok;
  co_return ok;
}

awaitable<bool> BackendConnection::OpenImpl(asio::ssl::context* tls, const LoginParams& login,
                                            OpenFailure* failure) {
  auto [cec, socket] = co_await ConnectUpstream(backend_->address, absl::Hours(1));  // Open() bounds the login
  if (cec) {
    failure->message = absl::StrCat("turnout: backend ", backend_->name, " unreachable: ", cec.message());
    co_return false;
  }
  stream_.emplace(std::move(socket));
  if (backend_->tls_mode != routing::UpstreamTlsMode::kDisable) {
    // protocol-flow: SSL Session Encryption. One byte answers the request;
    // anything more before the handshake would be injected plaintext.
    std::string req;
    ppg::AppendSslRequest(&req);
    if (auto ec = co_await WriteAll(req)) {
      failure->message = absl::StrCat("turnout: backend ", backend_->name, ": ", ec.message());
      co_return false;
    }
    char answer = 0;
    auto [rec, n] = co_await stream_->ReadSome(asio::buffer(&answer, 1));
    if (rec || n != 1 || (answer != 'S' && answer != 'N')) {
      failure->message = absl::StrCat("turnout: backend ", backend_->name, ": bad answer to SSLRequest");
      co_return false;
    }
    if (answer == 'N') {
      failure->message = absl::StrCat("turnout: backend ", backend_->name, " does not support TLS (tls.mode ",
                                      backend_->tls_mode == routing::UpstreamTlsMode::kRequire ? "require"
                                                                                              : "verify-full",
                                      ")");
      co_return false;
    }
    if (tls == nullptr) {
      failure->message = absl::StrCat("turnout: backend ", backend_->name, ": no TLS context");
      co_return false;
    }
    const std::string name =
        backend_->tls_server_name.empty() ? backend_->address.host : backend_->tls_server_name;
    const bool verify = backend_->tls_mode == routing::UpstreamTlsMode::kVerifyFull;
    if (auto ec = co_await stream_->StartTlsClient(*tls, name, verify)) {
      failure->message =
          absl::StrCat("turnout: backend ", backend_->name, ": TLS handshake failed: ", ec.message());
      co_return false;
    }
  }
  co_return co_await Login(login, failure);
}

awaitable<bool> BackendConnection::Login(const LoginParams& login, OpenFailure* failure) {
  auto fail = [&](std::string text, std::string sqlstate = "08006") {
    failure->sqlstate = std::move(sqlstate);
    failure->message = absl::StrCat("turnout: backend ", backend_->name, ": ", text);
    return false;
  };
  std::vector<std::pair<std::string_view, std::string_view>> params;
  params.emplace_back("user", login.user);
  params.emplace_back("database", login.database);
  for (const auto& [k, v] : login.options) params.emplace_back(k, v);
  std::string out;
  ppg::AppendStartupMessage(&out, params);
  if (auto ec = co_await WriteAll(out)) co_return fail(ec.message());

  std::optional<ScramClient> scram;
  for (;;) {
    ppg::Frame f;
    if (auto ec = co_await ReadFrame(&f)) co_return fail(ec.message());
    switch (f.type) {
      case 'R': {
        ppg::Authentication auth;
        if (ppg::Decode(f.payload, &auth)) co_return fail("malformed authentication request");
        out.clear();
        switch (auth.type) {
          case ppg::AuthType::kOk:
            break;
          case ppg::AuthType::kCleartextPassword:
            if (login.password.empty()) co_return fail("asks for a password and none is configured", "28P01");
            ppg::AppendPasswordMessage(&out, login.password);
            break;
          case ppg::AuthType::kMd5Password:
            if (login.password.empty()) co_return fail("asks for a password and none is configured", "28P01");
            ppg::AppendPasswordMessage(&out, Md5Response(Md5Secret(login.password, login.user), auth.salt));
            break;
          case ppg::AuthType::kSasl: {
            bool offered = false;
            for (auto m : auth.mechanisms) offered |= m == kScramMechanism;
            if (!offered) co_return fail("offers no SASL mechanism turnout supports", "28000");
            if (login.password.empty()) co_return fail("asks for a password and none is configured", "28P01");
            scram.emplace(login.password, std::string(), login.scram_keys);
            ppg::AppendSaslInitialResponse(&out, kScramMechanism, scram->ClientFirst());
            break;
          }
          case ppg::AuthType::kSaslContinue: {
            if (!scram) co_return fail("unexpected SASL message");
            auto final_msg = scram->HandleServerFirst(ppg::AsText(auth.data));
            if (!final_msg) co_return fail("malformed SCRAM message from the server");
            ppg::AppendSaslResponse(&out, *final_msg);
            break;
          }
          case ppg::AuthType::kSaslFinal:
            if (!scram || !scram->VerifyServerFinal(ppg::AsText(auth.data)))
              co_return fail("the server's SCRAM signature is wrong", "28000");
            break;
          default:
            co_return fail(absl::StrCat("asks for an unsupported authentication method (",
                                        static_cast<int>(auth.type), ")"),
                           "28000");
        }
        if (!out.empty()) {
          if (auto ec = co_await WriteAll(out)) co_return fail(ec.message());
        }
        break;
      }
      case 'S': {
        ppg::ParameterStatus ps;
        if (!ppg::Decode(f.payload, &ps)) SetParameter(ps.name, ps.value);
        break;
      }
      case 'K': {
        ppg::BackendKeyData key;
        if (!ppg::Decode(f.payload, &key)) {
          process_id_ = key.process_id;
          secret_key_ = key.secret_key32();
        }
        break;
      }
      case 'E':
        // The server's own refusal (wrong database, password, too many
        // clients): the client sees exactly what the server said.
        failure->error_frame.assign(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
        co_return false;
      case 'N':
      case 'v':  // NegotiateProtocolVersion: we asked for 3.0 with no options
        break;
      case 'Z':
        DropLastFrame();
        co_return true;
      default:
        co_return fail(absl::StrCat("unexpected message '", std::string(1, f.type), "' during login"));
    }
  }
}

awaitable<bool> BackendConnection::Replay(const SessionState& state, std::string* failure) {
  std::string out;
  int replies = state.AppendReplay(&out, &synced_);
  synced_ = state.snapshot();
  if (replies == 0) co_return true;
  if (auto ec = co_await WriteAll(out)) {
    *failure = ec.message();
    co_return false;
  }
  const Answers a = co_await ReadAnswers(replies, failure);
  if (a.ec) {
    *failure = a.ec.message();
    co_return false;
  }
  co_return !a.failed;
}

awaitable<BackendConnection::Answers> BackendConnection::ReadAnswers(int replies, std::string* errors) {
  Answers a;
  while (replies > 0) {
    ppg::Frame f;
    if ((a.ec = co_await ReadFrame(&f))) co_return a;
    if (f.type == 'Z') {
      --replies;
      ppg::ReadyForQuery z;
      if (ppg::Decode(f.payload, &z)) a.failed = true;
      else a.status = z.status;
    } else if (f.type == 'E') {
      ppg::ErrorResponse e;
      if (errors != nullptr && !ppg::Decode(f.payload, &e)) {
        if (!errors->empty()) *errors += "; ";
        errors->append(e.message());
      }
      a.failed = true;
    } else if (f.type == 'S') {
      ppg::ParameterStatus ps;
      if (!ppg::Decode(f.payload, &ps)) SetParameter(ps.name, ps.value);
    }
    // The rest (CommandComplete, notices, a notification sent before an
    // UNLISTEN) says nothing here.
  }
  DropLastFrame();
  co_return a;
}

}  // namespace turnout::proxy::pg
