#include "control/api_status.h"

#include "absl/strings/cord.h"

namespace turnout::control {
namespace {
constexpr char kDetailsUrl[] = "type.turnout/details";
}

absl::Status WithDetails(absl::Status status, absl::string_view details) {
  status.SetPayload(kDetailsUrl, absl::Cord(details));
  return status;
}

std::string DetailsOf(const absl::Status& status) {
  auto p = status.GetPayload(kDetailsUrl);
  return p ? std::string(*p) : std::string();
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 413;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kUnimplemented: return 501;
    default: return 500;
  }
}

}  // namespace turnout::control
