#pragma once
// One upstream connection of a Redis client session: at most one per backend
// per session, opened lazily by the first command routed to that backend
// (DESIGN.md §3's rule, kept for Redis), logged in with the backend's own
// credentials and brought to the client's session state (database, protocol
// version, client name) before the first command goes out.
//
// The session's reply writer owns the receive side (in(), parser()); the
// request loop owns the send side. Neither touches the other's half.

#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "protocol/io_buffer.h"
#include "protocol/resp/reply_parser.h"
#include "proxy/asio.h"
#include "proxy/stream.h"
#include "routing/config.h"
#include "routing/plan.h"

namespace turnout::proxy::redis {

// Limits for what a server sends (issue 13 item 12). Its replies are trusted
// input: a Lua script may return a table nested far deeper than any client
// request, and refusing it desynchronised the client. The framing parser
// keeps one small entry per open level on the heap (no recursion), so the
// depth is bounded only by the bytes that carry it (4 per level, "*1\r\n").
inline protocol::resp::ReplyLimits ServerReplyLimits() {
  protocol::resp::ReplyLimits l;
  l.max_depth = std::size_t{1} << 20;
  return l;
}

// The client-visible session state an upstream connection must reproduce.
struct UpstreamState {
  int db = 0;
  bool resp3 = false;
  std::string_view client_name;  // empty: none
};

class BackendConnection {
 public:
  BackendConnection(routing::Side side, const routing::Backend& backend, std::size_t buffer_bytes,
                    protocol::resp::ReplyLimits limits);

  // TCP connect, TLS as backend.tls_mode asks, then AUTH (backend user and
  // password), SELECT, HELLO 3 and CLIENT SETNAME as `state` needs, checking
  // each reply. On failure returns false with a one-line reason for the client.
  awaitable<bool> Open(asio::ssl::context* tls, absl::Duration timeout, const UpstreamState& state,
                       std::string& error);

  // The login commands alone (after the client's RESET logged the upstream
  // connection out); returns how many commands were appended.
  int AppendLogin(std::string& out, int db) const;

  bool is_open() const noexcept { return stream_.has_value() && stream_->is_open(); }
  void Close() noexcept {
    if (stream_) stream_->Close();
  }

  routing::Side side() const noexcept { return side_; }
  const routing::Backend& backend() const noexcept { return *backend_; }
  Stream& stream() noexcept { return *stream_; }
  protocol::IoBuffer& in() noexcept { return in_; }
  protocol::resp::ReplyParser& parser() noexcept { return parser_; }

 private:
  awaitable<bool> Login(const UpstreamState& state, std::string& error);

  routing::Side side_;
  const routing::Backend* backend_;
  std::optional<Stream> stream_;
  protocol::IoBuffer in_;
  protocol::resp::ReplyParser parser_;
};

}  // namespace turnout::proxy::redis
