#pragma once
// libpq work the control plane's table copies share (data movement, repair):
// statements on a connection that error messages name ("old", "source", …),
// and a COPY streamed from one server into another.

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/backend_clients.h"

namespace turnout::control {

// A connection (not owned) and its name in messages.
struct PgSide {
  PGconn* conn = nullptr;
  std::string name;
  PGconn* get() const { return conn; }
};

// A side with a connection of its own.
struct PgOwnedSide : PgSide {
  PgConn owned;
};
// Logs in to `b` as `application_name`; an error names the side
// ("old (…)").
absl::StatusOr<PgOwnedSide> PgConnectSide(const routing::Backend& b, const char* name, const char* application_name);

// The error of a failed call on `s` ("<name>: <what>: <server message>"):
// Unavailable when the connection is gone, else Internal.
absl::Status PgFailed(const PgSide& s, const PGresult* r, const std::string& what);
// Runs `sql` with text parameters; an error result is PgFailed(`what`, or
// the statement).
absl::StatusOr<PgResult> PgExec(const PgSide& s, const std::string& sql, const std::vector<std::string>& params = {},
                                const std::string& what = "");
// Runs `sql`, which may hold several statements (simple Query, no
// parameters); the result of the last one.
absl::StatusOr<PgResult> PgExecScript(const PgSide& s, const std::string& sql, const std::string& what);
std::string PgValue(const PgResult& r, int row, int col);
// Sets every setting that changes how a value prints (runtime-config-client
// "Locale and Formatting"; bytea_output) to one fixed choice, so that two
// connections, on one server or two, print equal values alike.
absl::Status PgFixOutputSettings(const PgSide& s);
// `name` quoted as an identifier, `value` as a literal, by the connection's
// encoding rules (PQescapeIdentifier / PQescapeLiteral).
std::string PgIdentifier(PGconn* c, std::string_view name);
std::string PgLiteral(PGconn* c, std::string_view value);

// Streams `copy_out` (COPY … TO STDOUT) on `from` into `copy_in` (COPY …
// FROM STDIN) on `to`; returns the rows `to` took. `what_out` and `what_in`
// name the two halves in errors; after an error both connections are usable
// again. `check`, when given, is asked every 20,000 chunks: a status it
// returns stops the copy there as it is (the caller drops both connections).
absl::StatusOr<std::int64_t> PgCopyAcross(const PgSide& from, const std::string& copy_out, const PgSide& to,
                                          const std::string& copy_in, const std::string& what_out,
                                          const std::string& what_in,
                                          const std::function<absl::Status()>& check = {});

}  // namespace turnout::control
