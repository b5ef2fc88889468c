#include "control/backend_clients.h"

#include "absl/strings/str_cat.h"

namespace turnout::control {

namespace {

absl::StatusOr<PgConn> Connect(const routing::Backend& b, const char* application_name, bool replication) {
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
  if (PQstatus(c.get()) != CONNECTION_OK) {
    std::string err = PQerrorMessage(c.get());
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return absl::UnavailableError(absl::StrCat(b.name, ": ", err));
  }
  return c;
}

}  // namespace

absl::StatusOr<PgConn> PgConnect(const routing::Backend& b, const char* application_name) {
  return Connect(b, application_name, false);
}

absl::StatusOr<PgConn> PgConnectReplication(const routing::Backend& b, const char* application_name) {
  return Connect(b, application_name, true);
}

absl::StatusOr<PgResult> PgQuery(PGconn* c, const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> p;
  for (const auto& s : params) p.push_back(s.c_str());
  PgResult r(PQexecParams(c, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return absl::InternalError(PQresultErrorMessage(r.get()));
  return r;
}

RedisReply RedisCommand(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return RedisReply(
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
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
