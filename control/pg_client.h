#pragma once
// The control plane's one libpq layer (dry run, verification, repair, data
// movement, the change stream, the state store); never on the relay path.
//
//   handles     PgConn, PgResult, PgNotify: RAII over PQfinish, PQclear,
//               PQfreemem.
//   connecting  PgConnect (a configured backend, blocking, 5 s timeout),
//               PgConnectDsn (a libpq dsn, non-blocking and interruptible),
//               PgConnectSide (a connection named in its errors).
//   statements  PgExec (parameters, extended protocol), PgExecScript (several
//               statements, simple Query), PgSend + PgCollect (asynchronous):
//               a failed statement is an error status that names the side
//               ("new: apply changes: ERROR: …"), Unavailable once the
//               connection is gone.
//   escaping    PgIdentifier / PgLiteral (the connection's encoding rules),
//               PgQuoteIdent (before there is a connection).
//   COPY        PgCopyAcross: one COPY streamed from one server into another.
//
// The change stream's applier, feeder and replication connection drive libpq
// asynchronously on a polled socket (PQsendQuery, PQconsumeInput,
// PQgetCopyData); they take the handles, errors and escaping from here and
// keep their own loops, so a change costs no extra allocation or round trip.

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "routing/config.h"

namespace turnout::control {

// ---- Handles.

struct PgConnDeleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
struct PgResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;
// Memory libpq hands over (a CopyData payload, a notification).
struct PgFreeDeleter {
  void operator()(void* p) const noexcept { PQfreemem(p); }
};
using PgNotify = std::unique_ptr<PGnotify, PgFreeDeleter>;
// The next notification libpq has read (PQconsumeInput), or null.
inline PgNotify PgNextNotify(PGconn* c) { return PgNotify(PQnotifies(c)); }

// ---- Connecting.

// Logs in to a Postgres backend (its database, or "postgres") with its
// credentials and TLS settings; an error starts with the backend's name.
absl::StatusOr<PgConn> PgConnect(const routing::Backend& b, const char* application_name = "turnout-control");
// The same login as a logical replication connection (`replication=database`:
// replication commands and plain SQL; protocol-replication).
absl::StatusOr<PgConn> PgConnectReplication(const routing::Backend& b, const char* application_name);
// Connects to `dsn` (a libpq connection string; what it says wins over
// `application_name` and the timeout) without blocking past `timeout`, and
// gives up early once `stopping` (may be null) is set: Cancelled. An error's
// message is libpq's reason on one line, never the dsn.
absl::StatusOr<PgConn> PgConnectDsn(const std::string& dsn, const std::string& application_name,
                                    std::chrono::milliseconds timeout, const std::atomic<bool>* stopping);

// True when `c` is null or libpq knows it is gone.
bool PgConnectionLost(const PGconn* c);
// Reads whatever the server sent while `c` sat idle, so a connection the
// server has closed (pg_terminate_backend, a restart) is seen as lost before
// a statement is sent on it.
bool PgStillConnected(PGconn* c);

// A connection (not owned) and its name in messages ("old", "source", …).
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

// ---- Errors.

// libpq's message on one line: its messages end in a newline, may span lines
// ("\n\tIs the server running…") and repeat a line when it tried twice (SSL,
// then plain); a status message is one line, each reason once.
std::string PgOneLine(const char* text);
// The error of a failed call on `s` ("<name>: <what>: <server message>"):
// Unavailable when the connection is gone, else Internal. `r` may be null
// (a failed send or read: the connection's message).
absl::Status PgFailed(const PgSide& s, const PGresult* r, absl::string_view what);
// A failure a retry of the transaction fixes: SQLSTATE 40001
// serialization_failure, 40P01 deadlock_detected.
bool PgRetryable(const PGresult* r);

// ---- Statements.

// True for a statement that completed (with or without rows).
bool PgOk(const PGresult* r);
// `sql` with text parameters (null pointers are SQL NULLs), as libpq returns
// it: null or failed results included. The one PQexecParams of the layer.
PgResult PgRun(PGconn* c, const char* sql, const std::vector<const char*>& params);
// Runs `sql` with text parameters; a failure is PgFailed(`what`, or the
// statement).
absl::StatusOr<PgResult> PgExec(const PgSide& s, const std::string& sql, const std::vector<std::string>& params = {},
                                absl::string_view what = {});
// Runs `sql`, which may hold several statements (simple Query, no
// parameters; a replication connection accepts only this); the result of the
// last one.
absl::StatusOr<PgResult> PgExecScript(const PgSide& s, const std::string& sql, absl::string_view what);
// Sends `sql` without waiting (PQsendQueryParams); PgCollect reads its
// results.
absl::Status PgSend(const PgSide& s, const std::string& sql, const std::vector<std::string>& params,
                    absl::string_view what);
// Waits for the rest of a query's results on `s`: the first, or its error.
absl::StatusOr<PgResult> PgCollect(const PgSide& s, absl::string_view what);

// A value as text ("" for NULL), and the row count a command reports
// (PQcmdTuples; 0 when it reports none).
std::string PgValue(const PgResult& r, int row, int col);
std::int64_t PgAffected(const PgResult& r);

// Sets every setting that changes how a value prints (runtime-config-client
// "Locale and Formatting"; bytea_output) to one fixed choice, so that two
// connections, on one server or two, print equal values alike.
absl::Status PgFixOutputSettings(const PgSide& s);

// ---- Escaping.

// `name` quoted as an identifier, `value` as a literal, by the connection's
// encoding rules (PQescapeIdentifier / PQescapeLiteral). A name libpq
// cannot quote (invalid in the encoding) comes back empty, a value as NULL.
std::string PgIdentifier(PGconn* c, std::string_view name);
std::string PgLiteral(PGconn* c, std::string_view value);
// `values` as the text of a one-dimensional array parameter ($1::text[],
// $1::oid[]): every element quoted, so commas, braces and quotes in it
// stay inside it.
std::string PgArray(const std::vector<std::string>& values);
// "name" with its quotes doubled, for SQL written before a connection exists.
std::string PgQuoteIdent(absl::string_view name);

// ---- COPY.

// Streams `copy_out` (COPY … TO STDOUT) on `from` into `copy_in` (COPY …
// FROM STDIN) on `to`; returns the rows `to` took. `what_out` and `what_in`
// name the two halves in errors; after an error both connections are usable
// again. `check`, when given, is asked every 20,000 chunks: a status it
// returns stops the copy there as it is (the caller drops both connections).
// `trim_padding`, for a binary COPY, names the columns whose trailing spaces
// are cut on the way (character(n) on both sides: new pads them back;
// protocol/pg/binary_copy_trim.h); empty or all false: the bytes pass as
// they are.
absl::StatusOr<std::int64_t> PgCopyAcross(const PgSide& from, const std::string& copy_out, const PgSide& to,
                                          const std::string& copy_in, absl::string_view what_out,
                                          absl::string_view what_in, const std::function<absl::Status()>& check = {},
                                          const std::vector<bool>& trim_padding = {});

}  // namespace turnout::control
