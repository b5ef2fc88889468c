#pragma once
// Running real programs from tests: psql, redis-cli, python3 with psycopg,
// and turnout itself.

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace turnout::testing {

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs argv[0] (searched in PATH) to completion with `input` on stdin and the
// extra environment `env`; kills it after timeout_ms.
RunResult RunProgram(const std::vector<std::string>& argv, const std::string& input = "",
              const std::map<std::string, std::string>& env = {}, int timeout_ms = 60000);

// A child process with its output sent to a file; killed on destruction.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv with stdout and stderr appended to `log_path`.
  void Start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::map<std::string, std::string>& env = {});
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  void Signal(int signo) const;
  // Waits up to timeout_ms; returns the exit code (128 + signal), or -1 on timeout.
  int Wait(int timeout_ms);

 private:
  pid_t pid_ = -1;
};

}  // namespace turnout::testing
