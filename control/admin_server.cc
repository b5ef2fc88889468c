#include "control/admin_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

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

using Parser = http::request_parser<http::string_body>;

void Configure(Parser& parser, std::size_t body_limit) {
  parser.header_limit(kHeaderLimit);
  parser.body_limit(body_limit);
}

HttpRequest ToHttpRequest(http::request<http::string_body>&& req) {
  HttpRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  for (const auto& f : req) r.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
  r.body = std::move(req.body());
  return r;
}

// What the server answers when it cannot read a request; nullopt closes the
// connection without a reply (the peer left, timed out, or sent half a
// message). A request Beast rejects (a Content-Length of "1e20", a bad
// method or field) gets a 400 rather than a silent close.
std::optional<HttpReply> ReplyToReadError(const beast::error_code& ec, std::size_t body_limit) {
  if (ec == http::error::body_limit)
    return HttpReply{413, "application/json",
                     ErrorJson("request body too large", absl::StrCat("the limit is ", body_limit, " bytes (admin.max_body_size)"))};
  if (ec == http::error::header_limit)
    return HttpReply{431, "application/json", ErrorJson("request headers too large", absl::StrCat("the limit is ", kHeaderLimit, " bytes"))};
  if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == http::error::need_more ||
      ec.category() != beast::error_code(http::error::bad_method).category())
    return std::nullopt;
  return HttpReply{400, "application/json", ErrorJson("malformed HTTP request", ec.message())};
}

HttpReply RunGuarded(const std::function<HttpReply()>& fn) {
  try {
    HttpReply reply = fn();
    reply.deferred = nullptr;  // one level only
    return reply;
  } catch (const std::exception& e) {
    return {500, "application/json", ErrorJson("internal error", e.what())};
  }
}

}  // namespace

std::vector<ReadOutcome> ReadHttpRequests(std::string_view bytes, std::size_t chunk, std::size_t body_limit) {
  std::vector<ReadOutcome> out;
  if (chunk == 0) chunk = bytes.size() == 0 ? 1 : bytes.size();
  auto parser = std::make_unique<Parser>();
  Configure(*parser, body_limit);
  parser->eager(true);
  std::string pending;
  std::size_t fed = 0;
  while (fed < bytes.size()) {
    const std::size_t n = std::min(chunk, bytes.size() - fed);
    pending.append(bytes.substr(fed, n));
    fed += n;
    for (;;) {
      beast::error_code ec;
      const std::size_t used = parser->put(asio::buffer(pending), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) break;
      if (ec) {
        ReadOutcome o;
        o.error_reply = ReplyToReadError(ec, body_limit);
        out.push_back(std::move(o));
        return out;
      }
      if (!parser->is_done()) {
        if (used == 0) break;
        continue;
      }
      ReadOutcome o;
      o.request = ToHttpRequest(parser->release());
      out.push_back(std::move(o));
      parser = std::make_unique<Parser>();
      Configure(*parser, body_limit);
      parser->eager(true);
      if (pending.empty()) break;
    }
  }
  return out;
}

struct AdminServer::Impl {
  routing::AdminListener settings;
  AdminHandler handler;
  asio::io_context context{1};
  tcp::acceptor acceptor{context};
  std::thread thread;
  // Runs deferred replies (long work) off the thread that answers probes.
  std::unique_ptr<asio::thread_pool> workers;

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      Parser parser;
      Configure(parser, settings.max_body_bytes);
      stream.expires_after(kReadTimeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      HttpReply reply;
      bool keep_alive = false;
      unsigned version = 11;
      if (ec) {
        auto error_reply = ReplyToReadError(ec, settings.max_body_bytes);
        if (!error_reply) co_return;  // closed, timed out, or half a message: nothing to answer
        reply = *std::move(error_reply);
      } else {
        keep_alive = parser.get().keep_alive();
        version = parser.get().version();
        const HttpRequest r = ToHttpRequest(parser.release());
        try {
          reply = handler(r);
        } catch (const std::exception& e) {
          reply = {500, "application/json", ErrorJson("internal error", e.what())};
        }
      }
      if (reply.deferred) {
        auto work = std::move(reply.deferred);
        // No read is pending while the work runs: the timeout would close
        // the connection under a long repair.
        stream.expires_never();
        // A named function object, not a temporary in the co_await
        // expression: GCC 12 destroys such temporaries twice (PR 99576).
        auto job = [work = std::move(work)]() -> asio::awaitable<HttpReply> { co_return RunGuarded(work); };
        auto [eptr, result] = co_await asio::co_spawn(workers->get_executor(), std::move(job), kTuple);
        reply = eptr ? HttpReply{500, "application/json", ErrorJson("internal error", "long request failed")} : std::move(result);
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), version};
      res.set(http::field::server, "turnout");
      res.set(http::field::content_type, reply.content_type);
      for (const auto& [name, value] : reply.headers) res.set(name, value);
      res.keep_alive(keep_alive);
      res.body() = std::move(reply.body);
      res.prepare_payload();
      stream.expires_after(kReadTimeout);
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

AdminServer::AdminServer(routing::AdminListener settings, AdminHandler handler, std::size_t worker_threads)
    : impl_(new Impl) {
  impl_->settings = std::move(settings);
  impl_->handler = std::move(handler);
  impl_->workers = std::make_unique<asio::thread_pool>(worker_threads == 0 ? 1 : worker_threads);
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
  // Work already running finishes (a repair cannot be interrupted); its
  // completion lands in the stopped context and is dropped with it.
  impl_->workers->join();
}

int AdminServer::port() const {
  beast::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace turnout::control
