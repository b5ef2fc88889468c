#pragma once
// Opening a TCP connection to a backend within the configured timeout.

#include <system_error>
#include <utility>

#include "absl/time/time.h"
#include "proxy/asio.h"
#include "routing/config.h"

namespace turnout::proxy {

// Resolves and connects; on timeout the error is asio::error::timed_out.
// TCP_NODELAY is set: the protocols are request/response and latency-bound.
awaitable<std::pair<std::error_code, Socket>> ConnectUpstream(const routing::HostPort& address,
                                                              absl::Duration timeout);

}  // namespace turnout::proxy
