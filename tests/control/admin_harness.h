#pragma once
// The admin API in-process, without sockets or backends: the real auth layer
// (static tokens and HS256 JWTs), a MigrationService over a FileStateStore in
// a private folder, and the handler MakeAdminHandler builds. Shared by the
// admin fuzz target and the in-process admin tests.

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "control/admin_api.h"
#include "control/auth.h"
#include "control/config_loader.h"
#include "control/file_store.h"
#include "control/migration_service.h"
#include "routing/policy_table.h"

namespace turnout::testing {

inline constexpr char kHarnessAdminToken[] = "fuzz-admin-token-0123456789abcdef";
inline constexpr char kHarnessReadToken[] = "fuzz-read-token-0123456789abcdef";
inline constexpr char kHarnessJwtSecret[] = "fuzz-jwt-secret-with-enough-entropy";

// Two routes with a `new` side (one per protocol) and one without.
inline constexpr char kHarnessConfig[] = R"(instance_id: harness
backends:
  - {name: pg-old, protocol: postgres, address: "127.0.0.1:1"}
  - {name: pg-new, protocol: postgres, address: "127.0.0.1:2"}
  - {name: redis-old, protocol: redis, address: "127.0.0.1:3"}
  - {name: redis-new, protocol: redis, address: "127.0.0.1:4"}
routes:
  - {name: pg, protocol: postgres, mode: relay, listen: "127.0.0.1:5", old: pg-old, new: pg-new}
  - {name: cache, protocol: redis, mode: relay, listen: "127.0.0.1:6", old: redis-old, new: redis-new}
  - {name: spare, protocol: postgres, mode: relay, listen: "127.0.0.1:7", old: pg-old}
)";

// A folder under /dev/shm when there is one (the store fsyncs every write).
inline std::string HarnessFolder(const std::string& name) {
  std::error_code ec;
  const std::filesystem::path base =
      std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
  const auto dir = base / (name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir, ec);
  return dir.string();
}

class AdminHarness {
 public:
  // `deps` supplies the backend-facing functions (dry_run, verify, repair, …);
  // its migrations and auth are filled in here.
  explicit AdminHarness(const std::string& state_path, control::AdminApiDeps deps = {}) : state_path_(state_path) {
    // Parsed once per process: the fuzz target builds a harness per input.
    static const auto config = [] {
      auto c = control::ParseConfig(kHarnessConfig);
      if (!c.ok()) std::abort();
      return std::make_shared<const routing::Config>(*std::move(c));
    }();
    static const control::Authenticator auth = [] {
      auto a = control::Authenticator::Create(
          kHarnessJwtSecret, std::string(kHarnessAdminToken) + " admin ops\n" + kHarnessReadToken + " read viewer\n");
      if (!a.ok()) std::abort();
      return *std::move(a);
    }();
    config_ = config;
    auth_ = std::make_unique<control::Authenticator>(auth);
    auto store = control::FileStateStore::Open(state_path_);
    if (!store.ok()) std::abort();
    store_ = *std::move(store);
    service_ = std::make_unique<control::MigrationService>(config_, store_.get(), &route_table_);
    if (!service_->Start().ok()) std::abort();
    deps.migrations = service_.get();
    deps.auth = auth_.get();
    if (!deps.metrics_text) deps.metrics_text = [] { return std::string("# no data plane\n"); };
    handler_ = control::MakeAdminHandler(std::move(deps));
  }

  // Answers as the server would, running a deferred reply inline.
  control::HttpReply Handle(const control::HttpRequest& r) const {
    control::HttpReply reply = handler_(r);
    if (reply.deferred) reply = reply.deferred();
    return reply;
  }
  const control::AdminHandler& handler() const { return handler_; }
  control::MigrationService& service() { return *service_; }
  const std::string& state_path() const { return state_path_; }

 private:
  std::string state_path_;
  std::shared_ptr<const routing::Config> config_;
  std::unique_ptr<control::Authenticator> auth_;
  std::unique_ptr<control::FileStateStore> store_;
  routing::RouteTablePublisher route_table_;
  std::unique_ptr<control::MigrationService> service_;
  control::AdminHandler handler_;
};

}  // namespace turnout::testing
