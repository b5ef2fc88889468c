#pragma once
// One logical replication connection to a Postgres source (libpq,
// `replication=database`; protocol-replication): a slot created with an
// exported snapshot, START_REPLICATION with pgoutput, CopyData in, standby
// status updates out. The bytes are decoded by protocol/pg/pgoutput.h.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/pg_client.h"
#include "routing/config.h"

namespace turnout::control {

// A CopyData payload as libpq allocated it.
struct CopyData {
  std::unique_ptr<char, PgFreeDeleter> bytes;
  int size = 0;
};

class ReplicationConnection {
 public:
  static absl::StatusOr<ReplicationConnection> Open(const routing::Backend& source);

  struct Slot {
    std::uint64_t consistent_point = 0;  // the first LSN the slot will send
    std::string snapshot;                // valid while this connection stays idle
  };
  // CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT. The snapshot
  // shows exactly the data committed before consistent_point: copy under it,
  // then stream from consistent_point, and no change is missed or seen twice.
  absl::StatusOr<Slot> CreateSlot(const std::string& slot);

  // START_REPLICATION SLOT … LOGICAL from `lsn` (the server starts at the
  // slot's confirmed position if that is later), protocol version 1, with
  // logical messages (DDL travels as one).
  absl::Status Start(const std::string& slot, const std::string& publication, std::uint64_t lsn);

  // The next CopyData payload; an empty one (size 0) when nothing arrived
  // within `wait`, or as soon as `also` (another socket, -1 for none) is
  // readable. An error when the stream or the connection ended.
  absl::StatusOr<CopyData> Next(std::chrono::milliseconds wait, int also = -1);

  // Tells the server everything up to `flushed` is applied durably on the
  // target: the slot may forget it. `reply_requested` asks for a keepalive
  // at once (its position is how far the server has decoded).
  absl::Status Confirm(std::uint64_t flushed, bool reply_requested = false);

  PGconn* get() const { return conn_.get(); }

 private:
  explicit ReplicationConnection(PgConn c) : conn_(std::move(c)) {}
  PgConn conn_;
};

// Microseconds since 2000-01-01 (the replication protocol's clock) of now.
std::int64_t PgEpochMicrosNow();

}  // namespace turnout::control
