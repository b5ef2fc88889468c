#pragma once
// A turnout with one Redis route over the harness' old and new servers and
// its admin API, for tests that run a migration (dual-write, shadow) or
// none: helpers to read, compare and clean keys on both servers.

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/redis/redis_itest_support.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {

inline constexpr char kAdminToken[] = "ri-admin-token-0123456789abcdef";
inline constexpr char kSync[] = R"({"type":"canary","read_percentage":0.0,
    "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";
inline constexpr char kAsync[] = R"({"type":"canary","read_percentage":0.0,
    "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"async"}})";

inline std::string Prefix(const std::string& what) { return "ri:" + what + ":" + std::to_string(::getpid()) + ":"; }

// A connection to a harness server, logged in.
inline RespConn& LoggedIn(RespConn& c) {
  const auto& b = TestBackends::Get();
  EXPECT_EQ(c.Call({"AUTH", b.redis_user, b.redis_password}), "+OK\r\n");
  return c;
}

// Keys under `pattern` on a harness server (SCAN, so never blocking it).
inline std::vector<std::string> KeysOn(int port, const std::string& pattern) {
  const auto& b = TestBackends::Get();
  auto r = RunProgram({"redis-cli", "-p", std::to_string(port), "--user", b.redis_user, "--pass", b.redis_password,
                       "--no-auth-warning", "--scan", "--pattern", pattern});
  std::vector<std::string> keys;
  std::istringstream in(r.out);
  for (std::string k; std::getline(in, k);)
    if (!k.empty()) keys.push_back(k);
  return keys;
}

inline void DeleteOn(int port, const std::string& pattern) {
  auto keys = KeysOn(port, pattern);
  if (keys.empty()) return;
  RespConn c(port);
  LoggedIn(c);
  std::string batch;
  for (const auto& k : keys) batch += Cmd({"UNLINK", k});
  c.Send(batch);
  c.Read(keys.size(), 30000);
}

class RedisMigrationTest : public ::testing::Test {
 protected:
  // turnout with the route "redis" over old and new; `old_address` replaces
  // the harness' old server (then without login), `new_address` its new one.
  void Start(const std::string& old_address = "", const std::string& limits = "",
             const std::string& new_address = "") {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    admin_port_ = FreePort();
    std::ostringstream y;
    y << "instance_id: ri-test\nworkers: 2\nlog_level: info\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port_ << "\n  tokens_file: tokens\n"
      << "state_store:\n  path: state.json\n"
      << "journal:\n  path: journal.log\n";
    if (!limits.empty()) y << "limits:\n" << limits;
    y << "backends:\n  - name: redis-old\n    protocol: redis\n    address: "
      << (old_address.empty() ? "127.0.0.1:" + std::to_string(b.redis_old_port) : old_address) << "\n";
    if (old_address.empty()) y << "    user: " << b.redis_user << "\n    password: " << b.redis_password << "\n";
    y << "  - name: redis-new\n    protocol: redis\n    address: "
      << (new_address.empty() ? "127.0.0.1:" + std::to_string(b.redis_new_port) : new_address) << "\n"
      << "    user: " << b.redis_user << "\n    password: " << b.redis_password << "\n"
      << "routes:\n  - name: redis\n    protocol: redis\n    mode: protocol\n    listen: 127.0.0.1:" << port_
      << "\n    old: redis-old\n    new: redis-new\n";
    std::filesystem::create_directories(turnout_.dir());
    std::ofstream(turnout_.dir() + "/tokens") << kAdminToken << " admin ops\n";
    ASSERT_TRUE(turnout_.Start(y.str(), {port_, admin_port_})) << turnout_.Log();
    admin_ = AdminClient(admin_port_, kAdminToken);
  }

  // An empty strategy means passthrough (no migration).
  void Migrate(const std::string& strategy) {
    if (strategy.empty()) return;
    auto r = admin_.Post("/api/v1/migrations", R"({"id":"ri","strategy":)" + strategy + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::int64_t Pending() {
    auto r = admin_.Get("/api/v1/migrations/ri/journal");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json.is_object() ? r.json.at("data").at("pending").as_int64() : -1;
  }
  std::string JournalText() { return admin_.Get("/api/v1/migrations/ri/journal").body; }

  std::pair<bool, std::string> Compare(const std::string& pattern) {
    const auto& b = TestBackends::Get();
    auto addr = [&](int port) { return b.redis_user + ":" + b.redis_password + "@" + std::to_string(port); };
    auto r = RunProgram({"/usr/bin/python3", std::string(TURNOUT_SOURCE_DIR) + "/tests/redis/scripts/compare_keys.py",
                         addr(b.redis_old_port), addr(b.redis_new_port), pattern},
                        "", {}, 120000);
    return {r.exit_code == 0, r.out + r.err};
  }
  // Async dual-write settles a little after the client's replies.
  std::pair<bool, std::string> EventuallyEqual(const std::string& pattern) {
    auto r = Compare(pattern);
    for (int i = 0; i < 40 && !r.first; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      r = Compare(pattern);
    }
    return r;
  }
  void Cleanup(const std::string& pattern) {
    const auto& b = TestBackends::Get();
    DeleteOn(b.redis_old_port, pattern);
    DeleteOn(b.redis_new_port, pattern);
  }

  TurnoutProcess turnout_;
  int port_ = 0;
  int admin_port_ = 0;
  AdminClient admin_{0, kAdminToken};
};

}  // namespace turnout::testing
