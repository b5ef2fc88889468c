#pragma once
// Per-key verification of Redis keys on two servers (issue 12), over the
// control plane's own hiredis connections:
//
//   keys      SCAN … MATCH glob on both servers at once (each round sends
//             both SCANs before reading either reply), so a key present on
//             one side only is found;
//   per key   TYPE and PTTL of a batch pipelined on both servers, then each
//             key's value command (GET, LRANGE, SMEMBERS, ZRANGE WITHSCORES,
//             HGETALL; DUMP for other types) pipelined likewise;
//   compared  by type, by TTL (equal within a tolerance: the two PTTLs are
//             read a few milliseconds apart; a key with a TTL on one side
//             only differs), and by value, order-insensitive where Redis is
//             (hash fields, set members, sorted-set members with their
//             scores), in order where it is not (lists).
//
// While writes flow, a key written between the reads of the two sides can
// differ for an instant: differing keys are compared again after
// `recheck_delay` and only those that still differ are reported.

#include <hiredis/hiredis.h>

#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace turnout::control {

struct RedisVerifyOptions {
  std::size_t batch = 512;               // keys per pipelined round trip
  std::int64_t ttl_tolerance_ms = 2000;  // |PTTL old - PTTL new| allowed
  absl::Duration recheck_delay = absl::Milliseconds(300);
  std::size_t max_reported = 100;        // differences kept, in key order
  std::size_t max_value_chars = 64;      // values in `detail` are cut here
  // After every batch of the first comparison, with its keys (the throttle
  // of continuous verification); a status other than OK ends the run.
  std::function<absl::Status(std::int64_t keys)> after_batch;
};

struct RedisKeyDifference {
  enum class Reason { kOnlyOld, kOnlyNew, kType, kValue, kTtl };
  std::string key;
  Reason reason = Reason::kValue;
  std::string old_type, new_type;           // TYPE ("none" when missing)
  std::int64_t old_ttl_ms = -1, new_ttl_ms = -1;  // PTTL: -1 none, -2 missing
  std::string detail;  // the first differing field, member, score or value (truncated)
};

struct RedisVerifyResult {
  std::int64_t keys_compared = 0;
  std::int64_t keys_differing = 0;
  std::vector<RedisKeyDifference> differences;  // the first max_reported, in key order
  std::string mode;  // "recheck" or "single pass"
};

// Compares the keys matching any of `globs` on both servers.
absl::StatusOr<RedisVerifyResult> VerifyRedisKeys(redisContext* old_c, redisContext* new_c,
                                                  const std::vector<std::string>& globs,
                                                  const RedisVerifyOptions& options = {});

const char* RedisDifferenceReasonName(RedisKeyDifference::Reason r);
boost::json::object RedisKeyDifferenceToJson(const RedisKeyDifference& d);

}  // namespace turnout::control
