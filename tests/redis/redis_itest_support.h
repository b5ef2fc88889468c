#pragma once
// Shared pieces of the Redis session integration tests: a turnout config
// with one protocol-mode Redis route, and a raw RESP connection that frames
// replies with turnout's own ReplyParser (so tests compare exact bytes).

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/turnout_process.h"

namespace turnout::testing {

struct RedisRouteOptions {
  std::string auth = "trust";        // routes[].auth
  std::string users_file;            // routes[].users_file
  std::string tls_cert, tls_key;     // routes[].tls
  bool tls_required = false;
  std::string backend_address;       // default: the harness' old server
  std::string backend_tls;           // extra YAML under the backend (tls: ...)
  bool backend_auth = true;          // log in upstream as the harness' ACL user
  int redis_db = 0;
  std::string limits;                // YAML lines under limits:
  int workers = 2;
};

// A config with the route "redis" on 127.0.0.1:port to backend "redis-old".
std::string RedisConfig(int port, const RedisRouteOptions& options = {});

// Starts turnout with one Redis route on a fresh port.
struct RedisTurnout {
  TurnoutProcess process;
  int port = 0;
  // ASSERTs inside; check HasFatalFailure() after.
  void Start(const RedisRouteOptions& options = {});
  // VmRSS of the turnout process in KiB.
  long RssKiB() const;
};

class RespConn {
 public:
  explicit RespConn(int port, int timeout_ms = 5000);
  ~RespConn();
  RespConn(const RespConn&) = delete;
  RespConn& operator=(const RespConn&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void Send(std::string_view bytes);
  // Reads until n complete replies are framed; returns them as raw bytes.
  // Fewer on timeout, close or a framing error (then the test fails on size).
  std::vector<std::string> Read(std::size_t n, int timeout_ms = 5000);
  std::string ReadOne(int timeout_ms = 5000);
  // Sends one command as a RESP array and returns its raw reply.
  std::string Call(std::initializer_list<std::string_view> args, int timeout_ms = 5000);
  // Reads until the peer closes or timeout_ms passes: (bytes, closed).
  std::pair<std::string, bool> ReadToClose(int timeout_ms = 3000);
  // Whatever arrives within timeout_ms (for "nothing else came" checks).
  std::string Drain(int timeout_ms);

 private:
  int fd_ = -1;
  std::string pending_;
};

// RESP encoding of one command.
std::string Cmd(std::initializer_list<std::string_view> args);
std::string Cmd(const std::vector<std::string>& args);

}  // namespace turnout::testing
