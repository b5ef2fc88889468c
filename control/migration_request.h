#pragma once
// An admin request's body and names, checked and parsed into the typed
// commands the service works on (migration_service.h), as strategy_json.h
// does for strategies: the service never reads a request body. Each check
// returns INVALID_ARGUMENT (HTTP 400) naming the field; the texts are part
// of the API.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "control/migration.h"

namespace turnout::control {

// POST /api/v1/migrations. `strategy`, `data` and `failure_handling` stay
// JSON, as Migration stores them, but are checked: the defaults are
// Migration's (big_bang, "none", "rollback_all").
struct CreateMigrationCommand {
  std::string id;
  std::string description;
  boost::json::value strategy = boost::json::object{{"type", "big_bang"}};
  boost::json::value data = "none";
  boost::json::value failure_handling = "rollback_all";
};
absl::StatusOr<CreateMigrationCommand> ParseCreateMigration(const boost::json::value& body);

// PATCH /api/v1/migrations/{id}: what the body gives changes, nothing else
// (at least one field). Checked like CreateMigrationCommand.
struct PatchMigrationCommand {
  std::optional<boost::json::value> strategy;
  std::optional<std::string> description;
  std::optional<boost::json::value> data;
  std::optional<boost::json::value> failure_handling;
};
absl::StatusOr<PatchMigrationCommand> ParsePatchMigration(const boost::json::value& body);

// POST …/interlay/{route}: the backend the route moves to (a valid name;
// whether it exists and fits the route is the service's to check).
struct AddInterlayCommand {
  std::string endpoint;
};
absl::StatusOr<AddInterlayCommand> ParseAddInterlay(const boost::json::value& body);

// POST …/api/{scope}: the scope named `scope` (from the path), with either
// tables (Postgres) or key globs (Redis).
absl::StatusOr<ApiScope> ParseScope(const std::string& scope, const boost::json::value& body);

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
