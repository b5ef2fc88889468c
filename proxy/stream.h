#pragma once
// One connection, plain TCP or TLS, behind one interface, so each protocol
// session is written once for both. A Postgres session starts plain and may
// upgrade after SSLRequest; a Redis TLS listener upgrades before the first
// byte. The TLS branch costs one predictable test per operation.

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

#include "proxy/asio.h"

namespace turnout::proxy {

class Stream {
 public:
  explicit Stream(Socket socket) : plain_(std::move(socket)) {}
  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&&) noexcept = default;

  bool is_tls() const noexcept { return tls_ != nullptr; }
  bool is_open() const noexcept { return lowest().is_open(); }

  // TLS handshakes; on failure the stream stays unusable and the caller closes.
  awaitable<std::error_code> StartTlsServer(asio::ssl::context& ctx);
  // `server_name` is sent as SNI and, with `verify`, checked against the
  // certificate (RFC 6125 host name rules, as libpq's verify-full).
  awaitable<std::error_code> StartTlsClient(asio::ssl::context& ctx, const std::string& server_name,
                                            bool verify);

  // Both hand back the operation itself rather than a coroutine around it:
  // a pending read (one per connection while idle) then keeps no frame of
  // its own, and the hot path allocates none. The error is Boost's (both
  // branches have the same awaitable type); it converts to std::error_code.
  using IoResult = std::tuple<boost::system::error_code, std::size_t>;

  template <typename MutableBuffers>
  awaitable<IoResult> ReadSome(const MutableBuffers& buffers) {
    if (tls_) return tls_->async_read_some(buffers, kUseTuple);
    return plain_->async_read_some(buffers, kUseTuple);
  }

  // Writes all of `buffers` (a buffer sequence: scatter/gather in one call).
  template <typename ConstBuffers>
  awaitable<IoResult> Write(const ConstBuffers& buffers) {
    if (tls_) return asio::async_write(*tls_, buffers, kUseTuple);
    return asio::async_write(*plain_, buffers, kUseTuple);
  }

  // Closes the socket at once (no TLS close_notify): used on errors and drain.
  void Close() noexcept;
  // Sends close_notify when TLS, then closes.
  awaitable<void> Shutdown();

  tcp::socket::executor_type get_executor() { return lowest().get_executor(); }
  int native_handle() noexcept { return lowest().native_handle(); }
  tcp::endpoint remote_endpoint() const;

 private:
  using TlsStream = asio::ssl::stream<Socket>;
  Socket& lowest() noexcept { return tls_ ? tls_->next_layer() : *plain_; }
  const Socket& lowest() const noexcept { return tls_ ? tls_->next_layer() : *plain_; }

  std::optional<Socket> plain_;
  std::unique_ptr<TlsStream> tls_;
};

}  // namespace turnout::proxy
