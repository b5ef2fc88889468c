#include "tests/support/backends.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace turnout::testing {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    throw std::runtime_error(std::string(name) +
                             " is not set: run the integration tests through `make test` "
                             "(tests/harness/backends.sh run -- ctest ...)");
  return v;
}

int EnvPort(const char* name) { return std::stoi(Env(name)); }

}  // namespace

const TestBackends& TestBackends::Get() {
  static const TestBackends b = [] {
    TestBackends t;
    t.dir = Env("TURNOUT_TEST_DIR");
    t.ca_file = Env("TURNOUT_TEST_CA");
    t.server_cert = Env("TURNOUT_TEST_SERVER_CERT");
    t.server_key = Env("TURNOUT_TEST_SERVER_KEY");
    t.pg_old_port = EnvPort("TURNOUT_TEST_PG_OLD_PORT");
    t.pg_new_port = EnvPort("TURNOUT_TEST_PG_NEW_PORT");
    t.pg_user = Env("TURNOUT_TEST_PG_USER");
    t.pg_password = Env("TURNOUT_TEST_PG_PASSWORD");
    t.pg_md5_user = Env("TURNOUT_TEST_PG_MD5_USER");
    t.pg_md5_password = Env("TURNOUT_TEST_PG_MD5_PASSWORD");
    t.pg_plain_user = Env("TURNOUT_TEST_PG_PLAIN_USER");
    t.pg_plain_password = Env("TURNOUT_TEST_PG_PLAIN_PASSWORD");
    t.redis_old_port = EnvPort("TURNOUT_TEST_REDIS_OLD_PORT");
    t.redis_new_port = EnvPort("TURNOUT_TEST_REDIS_NEW_PORT");
    t.redis_user = Env("TURNOUT_TEST_REDIS_USER");
    t.redis_password = Env("TURNOUT_TEST_REDIS_PASSWORD");
    return t;
  }();
  return b;
}

std::string TestBackends::PgConnString(int port, const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port) + " dbname=" + dbname + " user=" + pg_user +
         " password=" + pg_password + " sslmode=disable connect_timeout=10";
}

namespace {
// One ephemeral port from the kernel (free at the time of the call).
int EphemeralPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("FreePort: bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}
}  // namespace

int FreePort() {
  // The kernel may hand out a just-closed port again: two calls in a row
  // (a listener and an admin port) must not get the same one.
  static std::mutex mu;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mu);
  for (;;) {
    const int port = EphemeralPort();
    if (given.insert(port).second) return port;
  }
}

bool WaitForPort(int port, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace turnout::testing
