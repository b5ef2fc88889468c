#include "tests/support/admin_client.h"

#include <boost/json.hpp>

#include <sstream>

#include "tests/support/process.h"

namespace turnout::testing {

HttpResult AdminClient::Call(const std::string& method, const std::string& path, const std::string& body,
                             const std::vector<std::string>& extra_headers) const {
  std::vector<std::string> argv = {"curl", "-s", "-S", "-X", method, "-w", "\n%{http_code}", "--max-time", "120"};
  if (!token_.empty()) {
    argv.push_back("-H");
    argv.push_back("Authorization: Bearer " + token_);
  }
  for (const auto& h : extra_headers) {
    argv.push_back("-H");
    argv.push_back(h);
  }
  if (!body.empty()) {
    argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", "@-"});
  }
  argv.push_back("http://127.0.0.1:" + std::to_string(port_) + path);
  // Long admin work (repair, verify) may take as long as curl allows.
  RunResult r = RunProgram(argv, body, {}, 125000);
  HttpResult out;
  const auto nl = r.out.rfind('\n');
  if (nl == std::string::npos) {
    out.body = "curl: " + r.err;  // no answer: why, for the test's message
    return out;
  }
  out.status = std::atoi(r.out.c_str() + nl + 1);
  out.body = out.status == 0 ? "curl: " + r.err : r.out.substr(0, nl);
  boost::system::error_code ec;
  out.json = boost::json::parse(out.body, ec);
  if (ec) out.json = nullptr;
  return out;
}

double AdminClient::Metric(const std::string& series) const {
  std::istringstream body(Get("/metrics").body);
  for (std::string line; std::getline(body, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

}  // namespace turnout::testing
