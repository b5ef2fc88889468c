#pragma once
// Redis data movement of one route (DESIGN.md §6), over hiredis.
//
// For each key glob of the migration's key scopes (or "*" when none): SCAN
// with MATCH and COUNT `batch_size`; for each page, DUMP and PTTL on old and
// RESTORE on new, each side pipelined (redisAppendCommandArgv, then
// redisGetReply per command). Checkpoint: the glob and the SCAN cursor, after
// every batch of `batch_size` keys (a sparse glob needs several pages per
// batch); SCAN's guarantee (every key present for the whole iteration is
// returned) holds across a restart of turnout, not of old's server.
//
// Conflict rule for a key new already has:
//   none     RESTORE without REPLACE; BUSYKEY → keep new's key
//   replace  RESTORE … REPLACE
//   merge    hash, set, zset of the same type on both: old's fields and
//            members are added where new lacks them (HSETNX, SADD, ZADD NX:
//            new's values and scores win); other types keep new's key
// TTLs travel with the key (PTTL → RESTORE's ttl); a merged key keeps new's.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/data_movement.h"
#include "control/migration.h"
#include "routing/config.h"

namespace turnout::control {

absl::Status CopyRedis(const routing::Backend& old_backend, const routing::Backend& new_backend,
                       const std::vector<std::string>& globs, const DataSpec& spec, RouteProgress& progress,
                       BackfillContext& ctx);

}  // namespace turnout::control
