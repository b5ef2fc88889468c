#pragma once
// Talks to turnout's admin port with curl, as an operator would.

#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace turnout::testing {

struct HttpResult {
  int status = 0;
  std::string body;
  boost::json::value json;  // parsed body when it is JSON, else null
};

class AdminClient {
 public:
  AdminClient(int port, std::string token) : port_(port), token_(std::move(token)) {}
  HttpResult Call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::vector<std::string>& extra_headers = {}) const;
  HttpResult Get(const std::string& path, const std::vector<std::string>& headers = {}) const {
    return Call("GET", path, "", headers);
  }
  HttpResult Post(const std::string& path, const std::string& body = "") const { return Call("POST", path, body); }
  HttpResult Patch(const std::string& path, const std::string& body) const { return Call("PATCH", path, body); }
  HttpResult Delete(const std::string& path) const { return Call("DELETE", path); }
  void set_token(std::string t) { token_ = std::move(t); }
  // The value of the /metrics line for `series` ("name{labels}" exactly as
  // printed), or -1 when there is none.
  double Metric(const std::string& series) const;

 private:
  int port_;
  std::string token_;
};

}  // namespace turnout::testing
