#include "tests/pg/pg_itest_support.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "proxy/pg/scram.h"

namespace turnout::testing {

bool PgTurnout::Start(const std::string& limits_yaml) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) turnout_ = std::make_unique<TurnoutProcess>();
    if (StartOnce(limits_yaml)) return true;
    const std::string log = turnout_->Log();
    if (log.find("cannot listen") == std::string::npos && log.find("used by another route") == std::string::npos)
      return false;
  }
  return false;
}

bool PgTurnout::StartOnce(const std::string& limits_yaml) {
  const auto& b = TestBackends::Get();
  // Ten distinct ports: FreePort may hand out one it gave a moment ago.
  std::set<int> taken;
  for (int* p : {&routes_.trust, &routes_.password, &routes_.md5, &routes_.scram, &routes_.tls, &routes_.up_md5,
                 &routes_.up_plain, &routes_.up_require, &routes_.up_verify, &routes_.up_badname}) {
    do {
      *p = FreePort();
    } while (!taken.insert(*p).second);
  }
  {
    // One user per kind of secret; SCRAM secret made like the server's.
    std::ofstream users(turnout_->dir() + "/users.txt");
    users << "# test users\n"
          << "\"" << kPlainUser << "\" \"" << kPlainPassword << "\"\n"
          << "\"" << kMd5User << "\" \"" << proxy::pg::Md5Secret(kMd5Password, kMd5User) << "\"\n"
          << "\"" << kScramUser << "\" \""
          << proxy::pg::ScramSecret::FromPassword(kScramPassword, "0123456789abcdef", 4096).ToString() << "\"\n";
  }
  const std::string old_addr = "127.0.0.1:" + std::to_string(b.pg_old_port);
  const std::string new_addr = "127.0.0.1:" + std::to_string(b.pg_new_port);
  std::ostringstream y;
  y << "instance_id: test-0\nworkers: 2\nadmin:\n  enabled: false\n";
  if (!limits_yaml.empty()) y << "limits:\n" << limits_yaml;
  auto backend = [&](const std::string& name, const std::string& addr, const std::string& user,
                     const std::string& password, const std::string& tls) {
    y << "  - name: " << name << "\n    protocol: postgres\n    address: " << addr << "\n    user: " << user
      << "\n    password: " << password << "\n"
      << tls;
  };
  y << "backends:\n";
  backend("pg-old", old_addr, b.pg_user, b.pg_password, "");
  backend("pg-new", new_addr, b.pg_user, b.pg_password,
          "    tls:\n      mode: verify-full\n      ca_file: " + b.ca_file + "\n");
  backend("pg-old-md5", old_addr, b.pg_md5_user, b.pg_md5_password, "");
  backend("pg-old-plain", old_addr, b.pg_plain_user, b.pg_plain_password, "");
  backend("pg-new-require", new_addr, b.pg_user, b.pg_password, "    tls:\n      mode: require\n");
  backend("pg-new-badname", new_addr, b.pg_user, b.pg_password,
          "    tls:\n      mode: verify-full\n      ca_file: " + b.ca_file + "\n      server_name: wrong.example\n");
  auto route = [&](const std::string& name, int port, const std::string& old, const std::string& extra) {
    y << "  - name: " << name << "\n    protocol: postgres\n    listen: 127.0.0.1:" << port << "\n    old: " << old
      << "\n"
      << extra;
  };
  const std::string users = "    users_file: " + turnout_->dir() + "/users.txt\n";
  y << "routes:\n";
  route("trust", routes_.trust, "pg-old", "    new: pg-new\n");
  route("password", routes_.password, "pg-old", "    auth: password\n" + users);
  route("md5", routes_.md5, "pg-old", "    auth: md5\n" + users);
  route("scram", routes_.scram, "pg-old", "    auth: scram-sha-256\n" + users);
  route("tls", routes_.tls, "pg-old",
        "    tls:\n      cert_file: " + b.server_cert + "\n      key_file: " + b.server_key + "\n      required: true\n");
  route("up-md5", routes_.up_md5, "pg-old-md5", "");
  route("up-plain", routes_.up_plain, "pg-old-plain", "");
  route("up-require", routes_.up_require, "pg-new-require", "");
  route("up-verify", routes_.up_verify, "pg-new", "");
  route("up-badname", routes_.up_badname, "pg-new-badname", "");
  ::setenv("TURNOUT_PG_DEBUG_HOOKS", "1", 1);
  return turnout_->Start(y.str(), routes_.all());
}

std::string PgUrl(int port, const std::string& user, const std::string& dbname, const std::string& params) {
  return "postgres://" + user + "@127.0.0.1:" + std::to_string(port) + "/" + dbname + "?" + params;
}

RunResult Psql(const std::string& url, const std::string& password, const std::string& sql,
               const std::string& input, int timeout_ms) {
  std::vector<std::string> argv = {"psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", url};
  if (!sql.empty()) {
    argv.push_back("-c");
    argv.push_back(sql);
  }
  return RunProgram(argv, input, {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}}, timeout_ms);
}

RunResult Python(const std::string& script, const std::map<std::string, std::string>& env, int timeout_ms) {
  return RunProgram({"/usr/bin/python3", "-c", script}, "", env, timeout_ms);
}

}  // namespace turnout::testing
