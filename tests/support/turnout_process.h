#pragma once
// A turnout process for one test: its config written to a fresh folder, the
// binary started, and helpers to reach its routes and read its log.

#include <string>
#include <vector>

#include "tests/support/process.h"

namespace turnout::testing {

class TurnoutProcess {
 public:
  TurnoutProcess();
  ~TurnoutProcess();

  const std::string& dir() const { return dir_; }
  std::string ConfigPath() const { return dir_ + "/turnout.yaml"; }
  std::string LogPath() const { return dir_ + "/turnout.log"; }
  std::string Log() const;

  // Writes `yaml` as the config, starts turnout on it and waits until every
  // port in `ports` accepts (false if the process died or timed out).
  bool Start(const std::string& yaml, const std::vector<int>& ports);
  void WriteConfig(const std::string& yaml) const;

  void Signal(int signo) const { child_.Signal(signo); }
  int Wait(int timeout_ms) { return child_.Wait(timeout_ms); }
  bool running() const { return child_.running(); }
  pid_t pid() const { return child_.pid(); }

 private:
  std::string dir_;
  ChildProcess child_;
};

// A config with a Postgres route to the harness' old cluster and a Redis route
// to its old server, both in relay mode, plus `extra` top-level YAML.
std::string RelayConfig(int pg_port, int redis_port, const std::string& limits_yaml = "");

}  // namespace turnout::testing
