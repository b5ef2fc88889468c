#pragma once
// The control plane's own connections to Redis backends (dry run,
// verification, repair, data movement): hiredis with RAII handles, logged in
// with each backend's credentials. Never used on the relay path. Postgres
// has its counterpart in control/pg_client.h.

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "routing/config.h"

namespace turnout::control {

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
// Pipelining: commands appended to the output buffer (false when hiredis
// refuses one), then their replies read back in order (null after a
// connection error). The first read sends what is buffered.
bool RedisAppend(redisContext* c, const std::vector<std::string>& args);
RedisReply RedisNextReply(redisContext* c);

}  // namespace turnout::control
