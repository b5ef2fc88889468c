#pragma once
// Readiness needs "backends reachable": a background thread connects to
// every configured backend (TCP, 1 s timeout) every few seconds and keeps the
// latest verdicts. Sessions never wait for it.

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "routing/config.h"

namespace turnout::control {

class BackendProber {
 public:
  explicit BackendProber(std::vector<routing::Backend> backends);
  ~BackendProber();
  void Start();
  void Stop();
  // OK when the last probe of every backend connected; otherwise names them.
  absl::Status Status() const;

 private:
  void Loop();
  void ProbeAll();

  std::vector<routing::Backend> backends_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> failures_;  // backend -> error
  bool probed_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace turnout::control
