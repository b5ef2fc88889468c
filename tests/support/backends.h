#pragma once
// The servers `make test` starts (tests/harness/backends.sh), as exported in
// TURNOUT_TEST_* environment variables. A missing variable is a test failure,
// never a skip: integration tests must run against real servers.

#include <string>

namespace turnout::testing {

struct TestBackends {
  std::string dir;
  std::string ca_file, server_cert, server_key;
  int pg_old_port = 0, pg_new_port = 0;
  std::string pg_user, pg_password;
  std::string pg_md5_user, pg_md5_password;
  std::string pg_plain_user, pg_plain_password;
  int redis_old_port = 0, redis_new_port = 0;
  std::string redis_user, redis_password;

  // Reads the environment once; throws std::runtime_error naming the missing
  // variable (GoogleTest reports it as a failure of the test).
  static const TestBackends& Get();

  // libpq connection string for a harness cluster as the turnout superuser.
  std::string PgConnString(int port, const std::string& dbname = "postgres") const;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// Polls until something accepts on 127.0.0.1:port, up to timeout_ms.
bool WaitForPort(int port, int timeout_ms);

}  // namespace turnout::testing
