#pragma once
#include <system_error>

namespace turnout::proxy {

// The one place that decides which errors are a peer going away (EOF, reset,
// broken pipe, a TLS peer that skipped close_notify, our own cancellation)
// and so belong in debug logs, not in the error log.
bool IsExpectedDisconnect(const std::error_code& ec);

}  // namespace turnout::proxy
