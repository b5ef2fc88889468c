#include "control/pg_side.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace turnout::control {
namespace {

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Reads what is left of a COPY OUT so the connection can be used again.
void DrainCopyOut(const PgSide& s) {
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(s.conn, &buf, 0);
    if (buf) PQfreemem(buf);
    if (n < 0) break;
  }
  while (PGresult* r = PQgetResult(s.conn)) PQclear(r);
}

// Ends a COPY IN without committing its rows.
void AbortCopyIn(const PgSide& s, const char* why) {
  PQputCopyEnd(s.conn, why);
  while (PGresult* r = PQgetResult(s.conn)) PQclear(r);
}

}  // namespace

absl::StatusOr<PgOwnedSide> PgConnectSide(const routing::Backend& b, const char* name, const char* application_name) {
  auto c = PgConnect(b, application_name);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(name, " (", c.status().message(), ")"));
  PgOwnedSide s;
  s.owned = *std::move(c);
  s.conn = s.owned.get();
  s.name = name;
  return s;
}

absl::Status PgFailed(const PgSide& s, const PGresult* r, const std::string& what) {
  const std::string msg = Trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(s.conn));
  if (PQstatus(s.conn) != CONNECTION_OK)
    return absl::UnavailableError(absl::StrCat(s.name, ": ", what, ": ", msg.empty() ? "connection lost" : msg));
  return absl::InternalError(absl::StrCat(s.name, ": ", what, ": ", msg));
}

absl::StatusOr<PgResult> PgExec(const PgSide& s, const std::string& sql, const std::vector<std::string>& params,
                                const std::string& what) {
  std::vector<const char*> p;
  for (const auto& v : params) p.push_back(v.c_str());
  PgResult r(PQexecParams(s.conn, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return PgFailed(s, r.get(), what.empty() ? sql : what);
  return r;
}

absl::StatusOr<PgResult> PgExecScript(const PgSide& s, const std::string& sql, const std::string& what) {
  PgResult r(PQexec(s.conn, sql.c_str()));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return PgFailed(s, r.get(), what);
  return r;
}

std::string PgIdentifier(PGconn* c, std::string_view name) {
  char* e = PQescapeIdentifier(c, name.data(), name.size());
  std::string out = e ? e : "\"\"";
  PQfreemem(e);
  return out;
}

std::string PgLiteral(PGconn* c, std::string_view value) {
  char* e = PQescapeLiteral(c, value.data(), value.size());
  std::string out = e ? e : "NULL";
  PQfreemem(e);
  return out;
}

absl::Status PgFixOutputSettings(const PgSide& s) {
  // A simple Query: a replication connection refuses the extended protocol.
  return PgExecScript(s,
                      "select set_config('datestyle', 'ISO, MDY', false), set_config('timezone', 'UTC', false), "
                      "set_config('intervalstyle', 'postgres', false), set_config('extra_float_digits', '1', false), "
                      "set_config('bytea_output', 'hex', false)",
                      "session settings")
      .status();
}

std::string PgValue(const PgResult& r, int row, int col) { return PQgetvalue(r.get(), row, col); }

absl::StatusOr<std::int64_t> PgCopyAcross(const PgSide& from, const std::string& copy_out, const PgSide& to,
                                          const std::string& copy_in, const std::string& what_out,
                                          const std::string& what_in, const std::function<absl::Status()>& check) {
  PgResult in(PQexec(to.conn, copy_in.c_str()));
  if (PQresultStatus(in.get()) != PGRES_COPY_IN) return PgFailed(to, in.get(), what_in);
  PgResult out(PQexec(from.conn, copy_out.c_str()));
  if (PQresultStatus(out.get()) != PGRES_COPY_OUT) {
    absl::Status st = PgFailed(from, out.get(), what_out);
    AbortCopyIn(to, "source failed");
    return st;
  }
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
    const int put = PQputCopyData(to.conn, buf, n);
    PQfreemem(buf);
    if (put != 1) {
      absl::Status st = PgFailed(to, nullptr, what_in);
      DrainCopyOut(from);
      return st;
    }
    if (check && ++chunks % 20000 == 0)
      if (absl::Status st = check(); !st.ok()) return st;
  }
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
    else rows = std::atoll(PQcmdTuples(r.get()));
  }
  if (!st.ok()) return st;
  return rows;
}

}  // namespace turnout::control
