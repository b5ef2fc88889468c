#pragma once
// A turnout with protocol-mode Postgres routes over the harness clusters,
// one route per auth method and upstream TLS mode, and helpers to run real
// clients (psql, pgbench, python3 with psycopg2/psycopg, node-pg) against it.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {

// Users of the auth routes' users file, one per kind of secret.
inline constexpr char kPlainUser[] = "alice";      // secret stored in clear
inline constexpr char kPlainPassword[] = "alice-pw";
inline constexpr char kMd5User[] = "bob";          // "md5..." secret
inline constexpr char kMd5Password[] = "bob-pw";
inline constexpr char kScramUser[] = "carol";      // SCRAM-SHA-256 secret
inline constexpr char kScramPassword[] = "carol-pw";

struct PgRoutes {
  int trust = 0;        // auth trust; old pg-old, new pg-new (verify-full)
  int password = 0;     // auth password
  int md5 = 0;          // auth md5
  int scram = 0;        // auth scram-sha-256
  int tls = 0;          // client TLS required, harness certificate
  int up_md5 = 0;       // upstream login as md5user (md5)
  int up_plain = 0;     // upstream login as plainuser (cleartext)
  int up_require = 0;   // upstream TLS require (new cluster)
  int up_verify = 0;    // upstream TLS verify-full (new cluster)
  int up_badname = 0;   // upstream verify-full with a name the certificate lacks
  std::vector<int> all() const {
    return {trust, password, md5, scram, tls, up_md5, up_plain, up_require, up_verify, up_badname};
  }
};

class PgTurnout {
 public:
  // Starts turnout; `limits_yaml` lines go under `limits:` (two-space indent).
  // Debug hooks (TURNOUT DEBUG USE NEW/OLD) are enabled. Retries with fresh
  // ports when one was taken meanwhile (tests run in parallel).
  bool Start(const std::string& limits_yaml = "");
  const PgRoutes& routes() const { return routes_; }
  TurnoutProcess& process() { return *turnout_; }
  std::string Log() const { return turnout_->Log(); }

 private:
  bool StartOnce(const std::string& limits_yaml);
  std::unique_ptr<TurnoutProcess> turnout_ = std::make_unique<TurnoutProcess>();
  PgRoutes routes_;
};

// libpq URL for a route port.
std::string PgUrl(int port, const std::string& user, const std::string& dbname = "postgres",
                  const std::string& params = "sslmode=disable");

// psql -X -tA -v ON_ERROR_STOP=1 URL -c sql, with PGPASSWORD.
RunResult Psql(const std::string& url, const std::string& password, const std::string& sql,
               const std::string& input = "", int timeout_ms = 60000);

// /usr/bin/python3 -c script (Debian's psycopg2 / psycopg), env added.
RunResult Python(const std::string& script, const std::map<std::string, std::string>& env,
                 int timeout_ms = 60000);

}  // namespace turnout::testing
