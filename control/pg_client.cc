#include "control/pg_client.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "protocol/pg/binary_copy_trim.h"

namespace turnout::control {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// PgCopyAcross sends rewritten rows in batches of about this size.
constexpr std::size_t kCopyBatchBytes = 64 * 1024;

// PgConnectDsn's poll() timeout: bounds how long `stopping` waits to be seen.
constexpr milliseconds kConnectPollInterval{250};

absl::StatusOr<PgConn> ConnectBackend(const routing::Backend& b, const char* application_name, bool replication) {
  const char* sslmode = b.tls_mode == routing::UpstreamTlsMode::kDisable   ? "disable"
                        : b.tls_mode == routing::UpstreamTlsMode::kRequire ? "require"
                                                                           : "verify-full";
  const std::string port = std::to_string(b.address.port);
  const std::string db = b.database.empty() ? "postgres" : b.database;
  const std::string user = b.user.empty() ? "postgres" : b.user;
  // Keyword arrays: no escaping of values into a conninfo string.
  std::vector<const char*> keys = {"host", "port", "dbname", "user", "password", "sslmode", "connect_timeout",
                                   "application_name"};
  std::vector<const char*> values = {b.address.host.c_str(), port.c_str(), db.c_str(), user.c_str(),
                                     b.password.c_str(), sslmode, "5", application_name};
  if (!b.tls_ca_file.empty()) {
    keys.push_back("sslrootcert");
    values.push_back(b.tls_ca_file.c_str());
  }
  if (replication) {
    keys.push_back("replication");
    values.push_back("database");
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConn c(PQconnectdbParams(keys.data(), values.data(), 0));
  if (PQstatus(c.get()) != CONNECTION_OK)
    return absl::UnavailableError(absl::StrCat(b.name, ": ", PgOneLine(PQerrorMessage(c.get()))));
  return c;
}

// Reads what is left of a COPY OUT so the connection can be used again.
void DrainCopyOut(const PgSide& s) {
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(s.conn, &buf, 0);
    if (buf) PQfreemem(buf);
    if (n < 0) break;
  }
  while (PgResult r{PQgetResult(s.conn)}) {
  }
}

// Ends a COPY IN without committing its rows.
void AbortCopyIn(const PgSide& s, const char* why) {
  PQputCopyEnd(s.conn, why);
  while (PgResult r{PQgetResult(s.conn)}) {
  }
}

}  // namespace

absl::StatusOr<PgConn> PgConnect(const routing::Backend& b, const char* application_name) {
  return ConnectBackend(b, application_name, false);
}

absl::StatusOr<PgConn> PgConnectReplication(const routing::Backend& b, const char* application_name) {
  return ConnectBackend(b, application_name, true);
}

absl::StatusOr<PgConn> PgConnectDsn(const std::string& dsn, const std::string& application_name,
                                    milliseconds timeout, const std::atomic<bool>* stopping) {
  // The dsn comes last so that what it says wins over these defaults.
  const std::string timeout_s = std::to_string(std::max<long>(2, (timeout.count() + 999) / 1000));
  const char* keys[] = {"connect_timeout", "application_name", "keepalives", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "dbname", nullptr};
  const char* values[] = {timeout_s.c_str(), application_name.c_str(), "1", "10", "3", "3", dsn.c_str(), nullptr};
  PgConn conn(PQconnectStartParams(keys, values, /*expand_dbname=*/1));
  PGconn* c = conn.get();
  if (c == nullptr) return absl::ResourceExhaustedError("out of memory");
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);  // "already exists, skipping" and the like
  if (PQstatus(c) == CONNECTION_BAD) return absl::UnavailableError(PgOneLine(PQerrorMessage(c)));

  // libpq's own connect_timeout applies only to blocking connects; this loop
  // enforces it and lets `stopping` interrupt a slow attempt.
  const auto deadline = Clock::now() + timeout;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) return absl::UnavailableError(PgOneLine(PQerrorMessage(c)));
    if (stopping != nullptr && stopping->load()) return absl::CancelledError("stopping");
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return absl::UnavailableError(absl::StrCat("timed out after ", timeout.count(), " ms"));
    pollfd p{PQsocket(c), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min(left, kConnectPollInterval).count()));
    if (n < 0 && errno != EINTR) return absl::UnavailableError(absl::StrCat("poll: ", std::strerror(errno)));
    if (n > 0) st = PQconnectPoll(c);
  }
  return conn;
}

bool PgConnectionLost(const PGconn* c) { return c == nullptr || PQstatus(c) != CONNECTION_OK; }

bool PgStillConnected(PGconn* c) {
  for (int i = 0; i < 8 && !PgConnectionLost(c); ++i) {
    pollfd p{PQsocket(c), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) break;
    if (PQconsumeInput(c) == 0) return false;
  }
  return !PgConnectionLost(c);
}

absl::StatusOr<PgOwnedSide> PgConnectSide(const routing::Backend& b, const char* name, const char* application_name) {
  auto c = PgConnect(b, application_name);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(name, " (", c.status().message(), ")"));
  PgOwnedSide s;
  s.owned = *std::move(c);
  s.conn = s.owned.get();
  s.name = name;
  return s;
}

std::string PgOneLine(const char* text) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text == nullptr ? "" : text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && std::find(lines.begin(), lines.end(), line) == lines.end()) lines.emplace_back(line);
  }
  return absl::StrJoin(lines, " ");
}

absl::Status PgFailed(const PgSide& s, const PGresult* r, absl::string_view what) {
  const std::string msg = PgOneLine(r ? PQresultErrorMessage(r) : PQerrorMessage(s.conn));
  if (PgConnectionLost(s.conn))
    return absl::UnavailableError(absl::StrCat(s.name, ": ", what, ": ", msg.empty() ? "connection lost" : msg));
  return absl::InternalError(absl::StrCat(s.name, ": ", what, ": ", msg));
}

bool PgRetryable(const PGresult* r) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  return state != nullptr && (std::strcmp(state, "40001") == 0 || std::strcmp(state, "40P01") == 0);
}

bool PgOk(const PGresult* r) {
  const auto st = PQresultStatus(r);
  return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

PgResult PgRun(PGconn* c, const char* sql, const std::vector<const char*>& params) {
  return PgResult(
      PQexecParams(c, sql, static_cast<int>(params.size()), nullptr, params.data(), nullptr, nullptr, 0));
}

namespace {
std::vector<const char*> Pointers(const std::vector<std::string>& params) {
  std::vector<const char*> p;
  p.reserve(params.size());
  for (const auto& v : params) p.push_back(v.c_str());
  return p;
}
}  // namespace

absl::StatusOr<PgResult> PgExec(const PgSide& s, const std::string& sql, const std::vector<std::string>& params,
                                absl::string_view what) {
  PgResult r = PgRun(s.conn, sql.c_str(), Pointers(params));
  if (!PgOk(r.get())) return PgFailed(s, r.get(), what.empty() ? absl::string_view(sql) : what);
  return r;
}

absl::StatusOr<PgResult> PgExecScript(const PgSide& s, const std::string& sql, absl::string_view what) {
  PgResult r(PQexec(s.conn, sql.c_str()));
  if (!PgOk(r.get())) return PgFailed(s, r.get(), what);
  return r;
}

absl::Status PgSend(const PgSide& s, const std::string& sql, const std::vector<std::string>& params,
                    absl::string_view what) {
  const std::vector<const char*> p = Pointers(params);
  if (!PQsendQueryParams(s.conn, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0))
    return PgFailed(s, nullptr, what);
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PgCollect(const PgSide& s, absl::string_view what) {
  PgResult first;
  absl::Status st = absl::OkStatus();
  for (PgResult r(PQgetResult(s.conn)); r; r.reset(PQgetResult(s.conn))) {
    if (!PgOk(r.get())) {
      if (st.ok()) st = PgFailed(s, r.get(), what);
    } else if (!first) {
      first = std::move(r);
    }
  }
  if (!st.ok()) return st;
  if (!first) return PgFailed(s, nullptr, what);
  return first;
}

std::string PgValue(const PgResult& r, int row, int col) { return PQgetvalue(r.get(), row, col); }

std::int64_t PgAffected(const PgResult& r) { return std::atoll(PQcmdTuples(r.get())); }

absl::Status PgFixOutputSettings(const PgSide& s) {
  // A simple Query: a replication connection refuses the extended protocol.
  return PgExecScript(s,
                      "select set_config('datestyle', 'ISO, MDY', false), set_config('timezone', 'UTC', false), "
                      "set_config('intervalstyle', 'postgres', false), set_config('extra_float_digits', '1', false), "
                      "set_config('bytea_output', 'hex', false)",
                      "session settings")
      .status();
}

std::string PgIdentifier(PGconn* c, std::string_view name) {
  char* e = PQescapeIdentifier(c, name.data(), name.size());
  if (e == nullptr) return {};
  std::string out = e;
  PQfreemem(e);
  return out;
}

std::string PgLiteral(PGconn* c, std::string_view value) {
  char* e = PQescapeLiteral(c, value.data(), value.size());
  if (e == nullptr) return "NULL";
  std::string out = e;
  PQfreemem(e);
  return out;
}

std::string PgArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += i ? ",\"" : "\"";
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string PgQuoteIdent(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

absl::StatusOr<std::int64_t> PgCopyAcross(const PgSide& from, const std::string& copy_out, const PgSide& to,
                                          const std::string& copy_in, absl::string_view what_out,
                                          absl::string_view what_in, const std::function<absl::Status()>& check,
                                          const std::vector<bool>& trim_padding) {
  PgResult in(PQexec(to.conn, copy_in.c_str()));
  if (PQresultStatus(in.get()) != PGRES_COPY_IN) return PgFailed(to, in.get(), what_in);
  PgResult out(PQexec(from.conn, copy_out.c_str()));
  if (PQresultStatus(out.get()) != PGRES_COPY_OUT) {
    absl::Status st = PgFailed(from, out.get(), what_out);
    AbortCopyIn(to, "source failed");
    return st;
  }
  // Trimmed rows are gathered and sent by the batch: each is a few dozen bytes.
  std::optional<protocol::pg::BinaryCopyTrimmer> trimmer;
  if (std::find(trim_padding.begin(), trim_padding.end(), true) != trim_padding.end()) trimmer.emplace(trim_padding);
  std::string batch;
  auto put = [&](const char* data, std::size_t n) { return PQputCopyData(to.conn, data, static_cast<int>(n)) == 1; };
  std::int64_t chunks = 0;
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(from.conn, &buf, 0);
    if (n == -1) break;
    if (n < 0) {
      absl::Status st = PgFailed(from, nullptr, what_out);
      AbortCopyIn(to, "source failed");
      return st;
    }
    bool sent = true;
    if (!trimmer) {
      sent = put(buf, static_cast<std::size_t>(n));
    } else if (trimmer->Feed(std::string_view(buf, static_cast<std::size_t>(n)), &batch)) {
      PQfreemem(buf);
      DrainCopyOut(from);
      AbortCopyIn(to, "source sent what is not binary COPY");
      return absl::InternalError(absl::StrCat(what_out, ": the rows are not in binary COPY format"));
    } else if (batch.size() >= kCopyBatchBytes) {
      sent = put(batch.data(), batch.size());
      batch.clear();
    }
    PQfreemem(buf);
    if (!sent) {
      absl::Status st = PgFailed(to, nullptr, what_in);
      DrainCopyOut(from);
      return st;
    }
    if (check && ++chunks % 20000 == 0)
      if (absl::Status st = check(); !st.ok()) return st;
  }
  if (trimmer && !trimmer->Finished()) {
    AbortCopyIn(to, "source ended inside a row");
    for (PgResult r(PQgetResult(from.conn)); r; r.reset(PQgetResult(from.conn))) {
    }
    return absl::InternalError(absl::StrCat(what_out, ": the binary COPY ended inside a row"));
  }
  if (!batch.empty() && !put(batch.data(), batch.size())) return PgFailed(to, nullptr, what_in);
  for (PgResult r(PQgetResult(from.conn)); r; r.reset(PQgetResult(from.conn))) {
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      absl::Status st = PgFailed(from, r.get(), what_out);
      AbortCopyIn(to, "source failed");
      return st;
    }
  }
  if (PQputCopyEnd(to.conn, nullptr) != 1) return PgFailed(to, nullptr, what_in);
  std::int64_t rows = 0;
  absl::Status st = absl::OkStatus();
  for (PgResult r(PQgetResult(to.conn)); r; r.reset(PQgetResult(to.conn))) {
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) st = PgFailed(to, r.get(), what_in);
    else rows = PgAffected(r);
  }
  if (!st.ok()) return st;
  return rows;
}

}  // namespace turnout::control
