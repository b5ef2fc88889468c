#pragma once
// An admin request's body and names, checked before the service reads them
// (migration_service.h). Each check returns INVALID_ARGUMENT (HTTP 400)
// naming the field; the texts are part of the API.

#include <boost/json/value.hpp>

#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace turnout::control {

// The rule for every name an admin request gives (migration ids, route,
// scope and backend names): 1 to 128 letters, digits, '_', '-' or '.', and
// not "." or "..". Names end up in the state file and in URL paths; the rule
// keeps both readable (a raw byte in a name once made the file unloadable).
bool ValidName(absl::string_view name);
// INVALID_ARGUMENT (HTTP 400) naming `field` when `name` breaks the rule.
absl::Status CheckName(absl::string_view field, absl::string_view name);

// Table names and key globs of a scope: free text, but bounded and printable
// (they are shown in replies and stored in the state file).
absl::Status CheckPattern(const std::string& field, const std::string& text);
// Only the listed keys may appear in a request body, which must be an object.
absl::Status CheckBody(const boost::json::value& body, std::initializer_list<const char*> allowed);
// A non-empty array of non-empty strings, each passing CheckPattern.
absl::StatusOr<std::vector<std::string>> StringList(const boost::json::value& v, const std::string& field);

// A migration's `data` (DataSpec, control/data_movement.h) and
// `failure_handling`, in the shapes the API guide documents.
absl::Status ValidateData(const boost::json::value& v);
absl::Status ValidateFailureHandling(const boost::json::value& v);

}  // namespace turnout::control
