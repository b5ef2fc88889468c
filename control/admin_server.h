#pragma once
// The admin HTTP listener (Boost.Beast) on its own thread: keep-alive,
// request body and header limits, read timeouts. Requests are handed to an
// AdminHandler; the server knows HTTP, not migrations.
//
// Probes never wait (STYLE.md): the admin thread only parses, routes and
// answers short requests. A handler whose work talks to backends returns a
// deferred reply; the server runs it on a worker thread and writes its reply
// when it is done, while the admin thread goes on answering /healthz, /readyz
// and /metrics. The client sees the same synchronous request and reply.

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "routing/config.h"

namespace turnout::control {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra response headers (e.g. Retry-After on a 429).
  std::vector<std::pair<std::string, std::string>> headers;
  // Long work: when set, the server calls it on a worker thread and sends
  // the reply it returns instead of this one.
  std::function<HttpReply()> deferred;
};

using AdminHandler = std::function<HttpReply(const HttpRequest&)>;

// Worker threads for deferred replies. The admin API admits at most as many
// long requests (AdminApiDeps::max_long_requests) so none queues here.
inline constexpr std::size_t kAdminWorkerThreads = 4;

class AdminServer {
 public:
  AdminServer(routing::AdminListener settings, AdminHandler handler,
              std::size_t worker_threads = kAdminWorkerThreads);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving; fails if the address is taken.
  absl::Status Start();
  // Stops accepting and answering; waits for deferred work already running
  // (it cannot be interrupted), whose replies are then dropped.
  void Stop();
  // The bound port (useful when settings asked for port 0).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The server's request reading without sockets, for the admin fuzz target:
// feeds `bytes` to the same Beast parser with the same limits, `chunk` bytes
// at a time (0 = all at once), and returns each request it completes, or the
// reply the server sends for a request it cannot read (400, 413, 431; the
// connection is then closed). Stops at the first error or when the bytes
// end inside a request.
struct ReadOutcome {
  std::optional<HttpRequest> request;
  std::optional<HttpReply> error_reply;
};
std::vector<ReadOutcome> ReadHttpRequests(std::string_view bytes, std::size_t chunk, std::size_t body_limit);

}  // namespace turnout::control
