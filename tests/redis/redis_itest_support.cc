#include "tests/redis/redis_itest_support.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "tests/support/backends.h"

namespace turnout::testing {

std::string RedisConfig(int port, const RedisRouteOptions& o) {
  const auto& b = TestBackends::Get();
  std::ostringstream y;
  y << "instance_id: test-0\n"
    << "workers: " << o.workers << "\n"
    << "log_level: debug\n"
    << "admin:\n  enabled: false\n";
  if (!o.limits.empty()) y << "limits:\n" << o.limits;
  y << "backends:\n"
    << "  - name: redis-old\n    protocol: redis\n    address: "
    << (o.backend_address.empty() ? "127.0.0.1:" + std::to_string(b.redis_old_port) : o.backend_address) << "\n";
  if (o.backend_auth) y << "    user: " << b.redis_user << "\n    password: " << b.redis_password << "\n";
  if (o.redis_db != 0) y << "    redis_db: " << o.redis_db << "\n";
  y << o.backend_tls;
  y << "routes:\n"
    << "  - name: redis\n    protocol: redis\n    mode: protocol\n    listen: 127.0.0.1:" << port << "\n"
    << "    old: redis-old\n    auth: " << o.auth << "\n";
  if (!o.users_file.empty()) y << "    users_file: " << o.users_file << "\n";
  if (!o.tls_cert.empty()) {
    y << "    tls:\n      cert_file: " << o.tls_cert << "\n      key_file: " << o.tls_key << "\n"
      << "      required: " << (o.tls_required ? "true" : "false") << "\n";
  }
  return y.str();
}

void RedisTurnout::Start(const RedisRouteOptions& options) {
  port = FreePort();
  ASSERT_TRUE(process.Start(RedisConfig(port, options), {port})) << process.Log();
}

long RedisTurnout::RssKiB() const {
  // TurnoutProcess keeps its pid to itself; its config path is unique, so
  // find the process whose command line names it.
  const std::string config = process.ConfigPath();
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (args.find(config) == std::string::npos || args.find("turnout") == std::string::npos) continue;
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
  }
  return -1;
}

RespConn::RespConn(int port, int timeout_ms) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    ADD_FAILURE() << "connect to " << port << " failed";
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  (void)timeout_ms;
}

RespConn::~RespConn() {
  if (fd_ >= 0) ::close(fd_);
}

void RespConn::Send(std::string_view bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      ADD_FAILURE() << "send failed: " << std::strerror(errno);
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

std::vector<std::string> RespConn::Read(std::size_t n, int timeout_ms) {
  std::vector<std::string> out;
  protocol::resp::ReplyParser parser;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::size_t start = 0;
  for (;;) {
    while (out.size() < n) {
      const auto st = parser.Parse(std::string_view(pending_).substr(start));
      if (st == protocol::resp::ParseStatus::kComplete) {
        out.emplace_back(pending_.substr(start, parser.frame().length));
        start += parser.frame().length;
        continue;
      }
      if (st == protocol::resp::ParseStatus::kError) {
        ADD_FAILURE() << "unframeable reply bytes: " << pending_.substr(start, 200);
        pending_.erase(0, start);
        return out;
      }
      break;
    }
    if (out.size() >= n) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[65536];
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got <= 0) break;
    pending_.append(buf, static_cast<std::size_t>(got));
  }
  pending_.erase(0, start);
  return out;
}

std::string RespConn::ReadOne(int timeout_ms) {
  auto r = Read(1, timeout_ms);
  return r.empty() ? std::string("<no reply>") : r[0];
}

std::string RespConn::Call(std::initializer_list<std::string_view> args, int timeout_ms) {
  Send(Cmd(args));
  return ReadOne(timeout_ms);
}

std::pair<std::string, bool> RespConn::ReadToClose(int timeout_ms) {
  std::string out = std::move(pending_);
  pending_.clear();
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (left <= 0) return {out, false};
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return {out, false};
    char buf[65536];
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got <= 0) return {out, true};
    out.append(buf, static_cast<std::size_t>(got));
  }
}

std::string RespConn::Drain(int timeout_ms) {
  std::string out = std::move(pending_);
  pending_.clear();
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (left <= 0) return out;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return out;
    char buf[65536];
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got <= 0) return out;
    out.append(buf, static_cast<std::size_t>(got));
  }
}

std::string Cmd(std::initializer_list<std::string_view> args) {
  std::string out;
  protocol::resp::AppendCommand(out, args);
  return out;
}

std::string Cmd(const std::vector<std::string>& args) {
  std::vector<std::string_view> v(args.begin(), args.end());
  std::string out;
  protocol::resp::AppendCommand(out, v);
  return out;
}

}  // namespace turnout::testing
