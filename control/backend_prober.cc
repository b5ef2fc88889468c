#include "control/backend_prober.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace turnout::control {
namespace {

// A non-blocking connect with a timeout; empty string on success.
std::string TryConnect(const routing::HostPort& hp, int timeout_ms) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &res); rc != 0)
    return gai_strerror(rc);
  std::string error = "no address";
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, timeout_ms);
      if (rc == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        if (rc == 0) errno = ETIMEDOUT;
        rc = -1;
      }
    }
    error = rc == 0 ? "" : std::strerror(errno);
    ::close(fd);
    if (error.empty()) break;
  }
  ::freeaddrinfo(res);
  return error;
}

}  // namespace

BackendProber::BackendProber(std::vector<routing::Backend> backends) : backends_(std::move(backends)) {}

BackendProber::~BackendProber() { Stop(); }

void BackendProber::Start() { thread_ = std::thread([this] { Loop(); }); }

void BackendProber::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BackendProber::ProbeAll() {
  std::map<std::string, std::string> failures;
  for (const auto& b : backends_)
    if (auto e = TryConnect(b.address, 1000); !e.empty()) failures[b.name] = e;
  std::lock_guard<std::mutex> l(mu_);
  failures_ = std::move(failures);
  probed_ = true;
}

void BackendProber::Loop() {
  for (;;) {
    ProbeAll();
    std::unique_lock<std::mutex> l(mu_);
    if (cv_.wait_for(l, std::chrono::seconds(3), [this] { return stop_; })) return;
  }
}

absl::Status BackendProber::Status() const {
  std::lock_guard<std::mutex> l(mu_);
  if (!probed_) return absl::UnavailableError("backends not probed yet");
  if (failures_.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "backends unreachable: ",
      absl::StrJoin(failures_, ", ", [](std::string* out, const auto& kv) { absl::StrAppend(out, kv.first, " (", kv.second, ")"); })));
}

}  // namespace turnout::control
