#pragma once
// OpenSSL contexts built once at startup: one server context per route that
// offers TLS (its certificate and key), one client context per backend that
// uses TLS (its trust anchor). Sessions borrow them; contexts are thread-safe
// for handshakes once configured.

#include <boost/asio/ssl/context.hpp>

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "routing/config.h"

namespace turnout::proxy {

class TlsContexts {
 public:
  static absl::StatusOr<std::shared_ptr<TlsContexts>> Build(const routing::Config& config);

  // nullptr when the route does not offer TLS / the backend does not use it.
  boost::asio::ssl::context* ForRoute(const std::string& route) const;
  boost::asio::ssl::context* ForBackend(const std::string& backend) const;

 private:
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>> routes_;
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>> backends_;
};

}  // namespace turnout::proxy
