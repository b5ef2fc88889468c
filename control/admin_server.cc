#include "control/admin_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace turnout::control {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kHeaderLimit = 16 * 1024;
constexpr auto kReadTimeout = std::chrono::seconds(30);

std::string ErrorJson(absl::string_view error, absl::string_view details) {
  // Built by hand: the server has no JSON dependency and the texts are ours.
  auto esc = [](absl::string_view s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      out += c;
    }
    return out;
  };
  return absl::StrCat(R"({"status":"error","error":")", esc(error), R"(","details":")", esc(details), "\"}");
}

}  // namespace

struct AdminServer::Impl {
  routing::AdminListener settings;
  AdminHandler handler;
  asio::io_context context{1};
  tcp::acceptor acceptor{context};
  std::thread thread;

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(settings.max_body_bytes);
      stream.expires_after(kReadTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      HttpReply reply;
      bool keep_alive = false;
      unsigned version = 11;
      if (ec == http::error::body_limit) {
        reply = {413, "application/json",
                 ErrorJson("request body too large", absl::StrCat("the limit is ", settings.max_body_bytes, " bytes (admin.max_body_size)"))};
      } else if (ec == http::error::header_limit) {
        reply = {431, "application/json", ErrorJson("request headers too large", absl::StrCat("the limit is ", kHeaderLimit, " bytes"))};
      } else if (ec) {
        co_return;  // closed, timed out, or not HTTP: nothing to answer
      } else {
        auto& req = parser.get();
        keep_alive = req.keep_alive();
        version = req.version();
        HttpRequest r;
        r.method = std::string(req.method_string());
        r.target = std::string(req.target());
        for (const auto& f : req) r.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
        r.body = std::move(req.body());
        try {
          reply = handler(r);
        } catch (const std::exception& e) {
          reply = {500, "application/json", ErrorJson("internal error", e.what())};
        }
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), version};
      res.set(http::field::server, "turnout");
      res.set(http::field::content_type, reply.content_type);
      res.keep_alive(keep_alive);
      res.body() = std::move(reply.body);
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(stream, res, kTuple);
      if (wec || !keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (ec) {
        if (!acceptor.is_open()) co_return;
        continue;
      }
      asio::co_spawn(context, Serve(std::move(socket)), asio::detached);
    }
  }
};

AdminServer::AdminServer(routing::AdminListener settings, AdminHandler handler) : impl_(new Impl) {
  impl_->settings = std::move(settings);
  impl_->handler = std::move(handler);
}

AdminServer::~AdminServer() { Stop(); }

absl::Status AdminServer::Start() {
  beast::error_code ec;
  const auto addr = asio::ip::make_address(impl_->settings.listen.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("admin.listen: ", impl_->settings.listen.host, " is not an IP address"));
  const tcp::endpoint ep(addr, impl_->settings.listen.port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("admin: cannot listen on ", impl_->settings.listen.ToString(), ": ", ec.message()));
  asio::co_spawn(impl_->context, impl_->Accept(), asio::detached);
  impl_->thread = std::thread([this] { impl_->context.run(); });
  return absl::OkStatus();
}

void AdminServer::Stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->context, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  impl_->context.stop();
  impl_->thread.join();
}

}  // namespace turnout::control
