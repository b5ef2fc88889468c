#include "proxy/stream.h"

#include <boost/asio/ssl/host_name_verification.hpp>

#include <openssl/ssl.h>

namespace turnout::proxy {

awaitable<std::error_code> Stream::StartTlsServer(asio::ssl::context& ctx) {
  tls_ = std::make_unique<TlsStream>(std::move(*plain_), ctx);
  plain_.reset();
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
  co_return std::error_code(ec);
}

awaitable<std::error_code> Stream::StartTlsClient(asio::ssl::context& ctx, const std::string& server_name,
                                                  bool verify) {
  tls_ = std::make_unique<TlsStream>(std::move(*plain_), ctx);
  plain_.reset();
  // SNI is only for names, never for IP literals (RFC 6066 §3).
  boost::system::error_code addr_ec;
  asio::ip::make_address(server_name, addr_ec);
  if (addr_ec) SSL_set_tlsext_host_name(tls_->native_handle(), server_name.c_str());
  if (verify) {
    tls_->set_verify_mode(asio::ssl::verify_peer);
    tls_->set_verify_callback(asio::ssl::host_name_verification(server_name));
  } else {
    tls_->set_verify_mode(asio::ssl::verify_none);
  }
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::client, asio::as_tuple(asio::use_awaitable));
  co_return std::error_code(ec);
}

void Stream::Close() noexcept {
  boost::system::error_code ignored;
  lowest().close(ignored);
}

awaitable<void> Stream::Shutdown() {
  if (tls_ && lowest().is_open()) co_await tls_->async_shutdown(asio::as_tuple(asio::use_awaitable));
  Close();
}

tcp::endpoint Stream::remote_endpoint() const {
  boost::system::error_code ec;
  return lowest().remote_endpoint(ec);
}

}  // namespace turnout::proxy
