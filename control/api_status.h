#pragma once
// The control plane's errors are absl::Status; this is the one place where a
// status becomes an HTTP reply: code → HTTP status, message → "error", and an
// optional payload → "details" (DESIGN.md §5 reply shape).

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace turnout::control {

// Attaches a human explanation shown as "details".
absl::Status WithDetails(absl::Status status, absl::string_view details);
std::string DetailsOf(const absl::Status& status);

// 400 invalid argument, 401 unauthenticated, 403 permission denied, 404 not
// found, 409 failed precondition / already exists / aborted, 413 resource
// exhausted, 503 unavailable, 500 otherwise.
int HttpStatusOf(const absl::Status& status);

}  // namespace turnout::control
