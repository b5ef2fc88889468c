#include "proxy/tls_contexts.h"

#include "absl/strings/str_cat.h"

namespace turnout::proxy {

namespace ssl = boost::asio::ssl;

absl::StatusOr<std::shared_ptr<TlsContexts>> TlsContexts::Build(const routing::Config& config) {
  auto out = std::make_shared<TlsContexts>();
  for (const auto& r : config.routes) {
    if (r.tls.cert_file.empty()) continue;
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    // TLS 1.2 is the floor Postgres 15 and Redis 7 default to as well.
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(r.tls.cert_file, ec);
    if (!ec) ctx->use_private_key_file(r.tls.key_file, ssl::context::pem, ec);
    if (ec)
      return absl::InvalidArgumentError(absl::StrCat("route ", r.name, ": cannot load TLS certificate/key: ",
                                                     ec.message()));
    out->routes_[r.name] = std::move(ctx);
  }
  for (const auto& b : config.backends) {
    if (b.tls_mode == routing::UpstreamTlsMode::kDisable) continue;
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (!b.tls_ca_file.empty()) {
      boost::system::error_code ec;
      ctx->load_verify_file(b.tls_ca_file, ec);
      if (ec)
        return absl::InvalidArgumentError(absl::StrCat("backend ", b.name, ": cannot load CA file ",
                                                       b.tls_ca_file, ": ", ec.message()));
    }
    out->backends_[b.name] = std::move(ctx);
  }
  return out;
}

ssl::context* TlsContexts::ForRoute(const std::string& route) const {
  auto it = routes_.find(route);
  return it == routes_.end() ? nullptr : it->second.get();
}

ssl::context* TlsContexts::ForBackend(const std::string& backend) const {
  auto it = backends_.find(backend);
  return it == backends_.end() ? nullptr : it->second.get();
}

}  // namespace turnout::proxy
