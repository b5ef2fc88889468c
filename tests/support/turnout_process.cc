#include "tests/support/turnout_process.h"

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/backends.h"

namespace turnout::testing {

TurnoutProcess::TurnoutProcess() {
  char tmpl[] = "/tmp/turnout-test.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
}

TurnoutProcess::~TurnoutProcess() {
  if (child_.running()) {
    child_.Signal(SIGKILL);
    child_.Wait(5000);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TurnoutProcess::Log() const {
  std::ifstream in(LogPath());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void TurnoutProcess::WriteConfig(const std::string& yaml) const {
  std::ofstream(ConfigPath()) << yaml;
}

bool TurnoutProcess::Start(const std::string& yaml, const std::vector<int>& ports) {
  WriteConfig(yaml);
  child_.Start({TURNOUT_BINARY, "--config", ConfigPath()}, LogPath());
  for (int port : ports) {
    if (!WaitForPort(port, 10000)) return false;
  }
  return child_.running();
}

std::string RelayConfig(int pg_port, int redis_port, const std::string& limits_yaml) {
  const auto& b = TestBackends::Get();
  std::ostringstream y;
  y << "instance_id: test-0\n"
    << "workers: 2\n"
    << "admin:\n  enabled: false\n";
  if (!limits_yaml.empty()) y << "limits:\n" << limits_yaml;
  y << "backends:\n"
    << "  - name: pg-old\n    protocol: postgres\n    address: 127.0.0.1:" << b.pg_old_port << "\n"
    << "  - name: redis-old\n    protocol: redis\n    address: 127.0.0.1:" << b.redis_old_port << "\n"
    << "routes:\n"
    << "  - name: pg\n    protocol: postgres\n    mode: relay\n    listen: 127.0.0.1:" << pg_port
    << "\n    old: pg-old\n"
    << "  - name: redis\n    protocol: redis\n    mode: relay\n    listen: 127.0.0.1:" << redis_port
    << "\n    old: redis-old\n";
  return y.str();
}

}  // namespace turnout::testing
