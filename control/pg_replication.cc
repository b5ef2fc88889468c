#include "control/pg_replication.h"

#include <poll.h>

#include "absl/strings/str_cat.h"
#include "control/pg_client.h"
#include "protocol/pg/pgoutput.h"

namespace turnout::control {
namespace pgo = protocol::pg::pgoutput;
namespace {

// Errors name the side: the replication connection reads old.
absl::Status Failed(PGconn* c, const PGresult* r, const std::string& what) {
  return PgFailed(PgSide{c, "old"}, r, what);
}

}  // namespace

std::int64_t PgEpochMicrosNow() {
  // 946684800: seconds from 1970-01-01 to 2000-01-01.
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return us - 946684800LL * 1000000LL;
}

absl::StatusOr<ReplicationConnection> ReplicationConnection::Open(const routing::Backend& source) {
  auto c = PgConnectReplication(source, "turnout-change-stream");
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat("old (replication): ", c.status().message()));
  ReplicationConnection repl(*std::move(c));
  // pgoutput prints values with the walsender's settings; the applier reads
  // them back (and matches REPLICA IDENTITY FULL rows by their text) with
  // the same ones.
  if (auto st = PgFixOutputSettings(PgSide{repl.get(), "old (replication)"}); !st.ok()) return st;
  return repl;
}

absl::StatusOr<ReplicationConnection::Slot> ReplicationConnection::CreateSlot(const std::string& slot) {
  const std::string sql =
      absl::StrCat("CREATE_REPLICATION_SLOT ", PgIdentifier(get(), slot), " LOGICAL pgoutput EXPORT_SNAPSHOT");
  PgResult r(PQexec(get(), sql.c_str()));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1)
    return Failed(get(), r.get(), "create replication slot " + slot);
  // Columns: slot_name, consistent_point, snapshot_name, output_plugin.
  Slot s;
  if (!pgo::ParseLsn(PQgetvalue(r.get(), 0, 1), &s.consistent_point))
    return absl::InternalError(absl::StrCat("old: slot ", slot, ": unreadable consistent point ", PQgetvalue(r.get(), 0, 1)));
  s.snapshot = PQgetvalue(r.get(), 0, 2);
  return s;
}

absl::Status ReplicationConnection::Start(const std::string& slot, const std::string& publication, std::uint64_t lsn) {
  const std::string sql = absl::StrCat("START_REPLICATION SLOT ", PgIdentifier(get(), slot), " LOGICAL ",
                                       pgo::FormatLsn(lsn), " (proto_version '1', publication_names ",
                                       PgLiteral(get(), publication), ", messages 'true')");
  PgResult r(PQexec(get(), sql.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COPY_BOTH) return Failed(get(), r.get(), "start replication from slot " + slot);
  return absl::OkStatus();
}

absl::StatusOr<CopyData> ReplicationConnection::Next(std::chrono::milliseconds wait, int also) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (bool consumed = false;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(get(), &buf, /*async=*/1);
    if (n > 0) return CopyData{std::unique_ptr<char, PgFreeDeleter>(buf), n};
    if (n == -1) {
      PgResult r(PQgetResult(get()));
      // Retried like a lost connection (the walsender ended the stream).
      return absl::UnavailableError(Failed(get(), r.get(), "the replication stream ended").message());
    }
    if (n == -2) return Failed(get(), nullptr, "read the replication stream");
    // Nothing whole in libpq's buffer: read what the socket has (without
    // blocking) before deciding to wait.
    if (!consumed) {
      consumed = true;
      if (PQconsumeInput(get()) == 0) return Failed(get(), nullptr, "read the replication stream");
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return CopyData{};
    pollfd p[2] = {{PQsocket(get()), POLLIN, 0}, {also, POLLIN, 0}};
    if (::poll(p, also >= 0 ? 2 : 1, static_cast<int>(left.count())) < 0 && errno != EINTR)
      return absl::UnavailableError("old: poll on the replication connection failed");
    if (also >= 0 && p[1].revents != 0) return CopyData{};
    consumed = false;
  }
}

absl::Status ReplicationConnection::Confirm(std::uint64_t flushed, bool reply_requested) {
  const std::string msg =
      pgo::EncodeStandbyStatusUpdate(flushed, flushed, flushed, PgEpochMicrosNow(), reply_requested);
  if (PQputCopyData(get(), msg.data(), static_cast<int>(msg.size())) != 1 || PQflush(get()) != 0)
    return Failed(get(), nullptr, "confirm the applied position");
  return absl::OkStatus();
}

}  // namespace turnout::control
