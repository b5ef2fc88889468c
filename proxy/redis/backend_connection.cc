#include "proxy/redis/backend_connection.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/upstream_connect.h"

namespace turnout::proxy::redis {

using namespace asio::experimental::awaitable_operators;
namespace resp = protocol::resp;

BackendConnection::BackendConnection(routing::Side side, const routing::Backend& backend,
                                     std::size_t buffer_bytes, resp::ReplyLimits limits)
    : side_(side), backend_(&backend), in_(buffer_bytes), parser_(limits) {}

int BackendConnection::AppendLogin(std::string& out, int db) const {
  int n = 0;
  if (!backend_->user.empty()) {
    resp::AppendCommand(out, {"AUTH", backend_->user, backend_->password});
    ++n;
  } else if (!backend_->password.empty()) {
    resp::AppendCommand(out, {"AUTH", backend_->password});
    ++n;
  }
  if (db != 0) {
    char buf[16];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, db);
    resp::AppendCommand(out, {"SELECT", std::string_view(buf, end - buf)});
    ++n;
  }
  return n;
}

awaitable<bool> BackendConnection::Open(asio::ssl::context* tls, absl::Duration timeout,
                                        const UpstreamState& state, std::string& error) {
  auto [ec, socket] = co_await ConnectUpstream(backend_->address, timeout);
  if (ec) {
    error = absl::StrCat("turnout: backend ", backend_->name, " unreachable: ", ec.message());
    co_return false;
  }
  stream_.emplace(std::move(socket));
  in_.Clear();
  parser_.Reset();
  auto executor = co_await asio::this_coro::executor;
  Timer timer(executor, std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
  if (backend_->tls_mode != routing::UpstreamTlsMode::kDisable) {
    if (tls == nullptr) {
      error = absl::StrCat("turnout: backend ", backend_->name, ": no TLS context");
      stream_->Close();
      co_return false;
    }
    const std::string& name =
        backend_->tls_server_name.empty() ? backend_->address.host : backend_->tls_server_name;
    const bool verify = backend_->tls_mode == routing::UpstreamTlsMode::kVerifyFull;
    auto r = co_await (stream_->StartTlsClient(*tls, name, verify) || timer.async_wait());
    std::error_code tls_ec = r.index() == 0 ? std::get<0>(r)
                                            : std::error_code(boost::system::error_code(asio::error::timed_out));
    if (tls_ec) {
      error = absl::StrCat("turnout: backend ", backend_->name, " TLS handshake failed: ", tls_ec.message());
      stream_->Close();
      co_return false;
    }
  }
  auto r = co_await (Login(state, error) || timer.async_wait());
  if (r.index() == 1) {
    error = absl::StrCat("turnout: backend ", backend_->name, " login timed out");
    stream_->Close();
    co_return false;
  }
  if (!std::get<0>(r)) {
    stream_->Close();
    co_return false;
  }
  co_return true;
}

awaitable<bool> BackendConnection::Login(const UpstreamState& state, std::string& error) {
  std::string out;
  int n = AppendLogin(out, state.db);
  if (state.resp3) {
    resp::AppendCommand(out, {"HELLO", "3"});
    ++n;
  }
  if (!state.client_name.empty()) {
    resp::AppendCommand(out, {"CLIENT", "SETNAME", state.client_name});
    ++n;
  }
  if (n == 0) co_return true;
  auto [wec, written] = co_await stream_->Write(asio::buffer(out));
  if (wec) {
    error = absl::StrCat("turnout: backend ", backend_->name, " closed the connection: ", wec.message());
    co_return false;
  }
  while (n > 0) {
    const auto status = parser_.Parse(in_.Unparsed());
    if (status == resp::ParseStatus::kError) {
      error = absl::StrCat("turnout: backend ", backend_->name, " sent an invalid reply");
      co_return false;
    }
    if (status == resp::ParseStatus::kComplete) {
      const auto& frame = parser_.frame();
      if (frame.is_error()) {
        std::string_view text = in_.UnconsumedText().substr(0, frame.length);
        text.remove_prefix(1);
        if (const auto eol = text.find("\r\n"); eol != std::string_view::npos) text = text.substr(0, eol);
        error = absl::StrCat("turnout: backend ", backend_->name, " refused the login: ",
                             std::string(text));
        co_return false;
      }
      in_.CommitParsed(frame.length);
      in_.Consume(frame.length);
      --n;
      continue;
    }
    auto tail = in_.WritableTail();
    if (tail.empty()) {
      error = absl::StrCat("turnout: backend ", backend_->name, " sent an oversized login reply");
      co_return false;
    }
    auto [rec, got] = co_await stream_->ReadSome(asio::buffer(tail.data(), tail.size()));
    if (rec) {
      error = absl::StrCat("turnout: backend ", backend_->name, " closed the connection: ", rec.message());
      co_return false;
    }
    in_.CommitReceived(got);
  }
  co_return true;
}

}  // namespace turnout::proxy::redis
