#pragma once
// The control plane's own connections to the real backends (dry run,
// verification, repair, data movement): libpq and hiredis with RAII handles,
// logged in with each backend's credentials and TLS settings. Never used on
// the relay path.

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/config.h"

namespace turnout::control {

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// Logs in to a Postgres backend (its database, or "postgres").
absl::StatusOr<PgConn> PgConnect(const routing::Backend& b, const char* application_name = "turnout-control");
// The same login as a logical replication connection (`replication=database`:
// replication commands and plain SQL; protocol-replication).
absl::StatusOr<PgConn> PgConnectReplication(const routing::Backend& b, const char* application_name);
// Runs `sql` with text parameters; an error result is an error status.
absl::StatusOr<PgResult> PgQuery(PGconn* c, const std::string& sql, const std::vector<std::string>& params = {});

struct RedisDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using RedisConn = std::unique_ptr<redisContext, RedisDeleter>;
struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

// Connects, AUTHs with the backend's user and password, SELECTs its db.
absl::StatusOr<RedisConn> RedisConnect(const routing::Backend& b);
// One command with binary-safe arguments; null on a connection error.
RedisReply RedisCommand(redisContext* c, const std::vector<std::string>& args);

}  // namespace turnout::control
