#include "control/redis_client.h"

#include "absl/strings/str_cat.h"

namespace turnout::control {

bool RedisAppend(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) == REDIS_OK;
}

RedisReply RedisNextReply(redisContext* c) {
  void* r = nullptr;
  if (redisGetReply(c, &r) != REDIS_OK) return nullptr;
  return RedisReply(static_cast<redisReply*>(r));
}

// redisCommandArgv is the same append and blocking read.
RedisReply RedisCommand(redisContext* c, const std::vector<std::string>& args) {
  if (!RedisAppend(c, args)) return nullptr;
  return RedisNextReply(c);
}

absl::StatusOr<RedisConn> RedisConnect(const routing::Backend& b) {
  if (b.tls_mode != routing::UpstreamTlsMode::kDisable)
    return absl::UnimplementedError(absl::StrCat(b.name, ": TLS to Redis is not supported by the control plane yet"));
  timeval tv{5, 0};
  RedisConn c(redisConnectWithTimeout(b.address.host.c_str(), b.address.port, tv));
  if (!c || c->err) return absl::UnavailableError(absl::StrCat(b.name, ": ", c ? c->errstr : "no context"));
  redisSetTimeout(c.get(), tv);
  if (!b.password.empty()) {
    RedisReply r = b.user.empty() ? RedisCommand(c.get(), {"AUTH", b.password})
                                  : RedisCommand(c.get(), {"AUTH", b.user, b.password});
    if (!r || r->type == REDIS_REPLY_ERROR) return absl::PermissionDeniedError(absl::StrCat(b.name, ": AUTH refused"));
  }
  if (b.redis_db != 0) {
    RedisReply r = RedisCommand(c.get(), {"SELECT", std::to_string(b.redis_db)});
    if (!r || r->type == REDIS_REPLY_ERROR) return absl::InternalError(absl::StrCat(b.name, ": SELECT failed"));
  }
  return c;
}

}  // namespace turnout::control
