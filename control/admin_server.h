#pragma once
// The admin HTTP listener (Boost.Beast) on its own thread: keep-alive,
// request body and header limits, read timeouts. Requests are handed to an
// AdminHandler; the server knows HTTP, not migrations.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

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
};

using AdminHandler = std::function<HttpReply(const HttpRequest&)>;

class AdminServer {
 public:
  AdminServer(routing::AdminListener settings, AdminHandler handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and starts serving; fails if the address is taken.
  absl::Status Start();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace turnout::control
