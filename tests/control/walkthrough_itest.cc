// The API guide's canary walk-through, verbatim with curl, against a running
// turnout, with a real client (redis-cli) counting which side answers at each
// step; and the same routing after kill -9 and a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <sstream>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

constexpr char kToken[] = "walkthrough-admin-token-0123456789";

class WalkThroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    prefix_ = "walk:" + std::to_string(::getpid()) + ":";
    // The same keys on both sides with values that say which side holds them.
    std::string old_cmds, new_cmds;
    for (int i = 0; i < kKeys; ++i) {
      old_cmds += "SET " + prefix_ + std::to_string(i) + " old\r\n";
      new_cmds += "SET " + prefix_ + std::to_string(i) + " new\r\n";
    }
    RunProgram({"redis-cli", "-p", std::to_string(b.redis_old_port), "--pipe"}, old_cmds);
    RunProgram({"redis-cli", "-p", std::to_string(b.redis_new_port), "--pipe"}, new_cmds);
    std::ofstream(t_.dir() + "/tokens") << kToken << " admin ops\n";
    ASSERT_TRUE(t_.Start(Config(), {admin_, listen_})) << t_.Log();
  }

  std::string Config() const {
    const auto& b = TestBackends::Get();
    std::ostringstream y;
    y << "instance_id: walk\nadmin: {listen: \"127.0.0.1:" << admin_ << "\", tokens_file: tokens}\n"
      << "state_store: {path: state.json}\n"
      << "backends:\n"
      << "  - {name: redis-old, protocol: redis, address: \"127.0.0.1:" << b.redis_old_port << "\"}\n"
      << "  - {name: redis-new, protocol: redis, address: \"127.0.0.1:" << b.redis_new_port << "\"}\n"
      << "routes:\n  - {name: cache, protocol: redis, listen: \"127.0.0.1:" << listen_
      << "\", old: redis-old, new: redis-new}\n";
    return y.str();
  }

  // Reads every key on its own connection (stickiness is by connection):
  // the share of answers that came from new.
  double ShareFromNew() {
    std::string script;
    int from_new = 0;
    for (int i = 0; i < kKeys; ++i) {
      auto r = RunProgram({"redis-cli", "-p", std::to_string(listen_), "GET", prefix_ + std::to_string(i)});
      if (r.out == "new\n") ++from_new;
      else EXPECT_EQ(r.out, "old\n") << r.err;
    }
    return static_cast<double>(from_new) / kKeys;
  }

  HttpResult Curl(const std::string& method, const std::string& path, const std::string& body) {
    // As the guide writes it: curl with -H and -d.
    std::vector<std::string> argv = {"curl", "-s", "-w", "\n%{http_code}", "http://127.0.0.1:" + std::to_string(admin_) + path,
                                     "-H", "Content-Type: application/json", "-H", std::string("Authorization: Bearer ") + kToken};
    if (method != "POST") argv.insert(argv.end(), {"-X", method});
    argv.insert(argv.end(), {"-d", body});
    auto r = RunProgram(argv);
    HttpResult out;
    out.status = std::atoi(r.out.c_str() + r.out.rfind('\n') + 1);
    out.body = r.out;
    return out;
  }

  static constexpr int kKeys = 200;
  std::string prefix_;
  TurnoutProcess t_;
  int admin_ = FreePort(), listen_ = FreePort();
};

const char* kStage1 = R"({
    "id": "canary_migration",
    "strategy": {
      "type": "canary",
      "read_percentage": 0.05,
      "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}
    }
  })";
std::string Stage(double pct) {
  return std::string(R"({"strategy": {"type": "canary", "read_percentage": )") + std::to_string(pct) +
         R"(, "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}}})";
}
const char* kFull = R"({"strategy": {"type": "canary", "read_percentage": 1.0, "write_mode": {"mode": "cutover", "write_percentage": 1.0}}})";

TEST_F(WalkThroughTest, EveryStageMovesLiveTraffic) {
  EXPECT_EQ(ShareFromNew(), 0.0);  // no migration: everything to old
  ASSERT_EQ(Curl("POST", "/api/v1/migrations", kStage1).status, 201);
  // Each connection hashes to a side; over 200 connections the share sits
  // near the setting (binomial spread: ±3 standard deviations).
  EXPECT_NEAR(ShareFromNew(), 0.05, 0.05);
  ASSERT_EQ(Curl("PATCH", "/api/v1/migrations/canary_migration", Stage(0.25)).status, 200);
  EXPECT_NEAR(ShareFromNew(), 0.25, 0.10);
  ASSERT_EQ(Curl("PATCH", "/api/v1/migrations/canary_migration", Stage(0.75)).status, 200);
  EXPECT_NEAR(ShareFromNew(), 0.75, 0.10);
  ASSERT_EQ(Curl("PATCH", "/api/v1/migrations/canary_migration", kFull).status, 200);
  EXPECT_EQ(ShareFromNew(), 1.0);
}

TEST_F(WalkThroughTest, KillNineThenRestartRoutesAsBefore) {
  AdminClient admin(admin_, kToken);
  ASSERT_EQ(Curl("POST", "/api/v1/migrations", kStage1).status, 201);
  ASSERT_EQ(admin.Post("/api/v1/migrations/canary_migration/migrate").status, 200);
  ASSERT_EQ(Curl("PATCH", "/api/v1/migrations/canary_migration", Stage(0.5)).status, 200);
  const double before = ShareFromNew();
  EXPECT_NEAR(before, 0.5, 0.12);
  t_.Signal(SIGKILL);
  t_.Wait(5000);
  ChildProcess again;
  again.Start({TURNOUT_BINARY, "--config", t_.ConfigPath()}, t_.LogPath());
  ASSERT_TRUE(WaitForPort(listen_, 10000)) << t_.Log();
  ASSERT_TRUE(WaitForPort(admin_, 10000));
  auto v = admin.Get("/api/v1/migrations/canary_migration", {"X-Verbose: true"});
  EXPECT_EQ(v.json.at("data").at("state").as_string(), "Running");
  EXPECT_EQ(v.json.at("data").at("history").as_array().size(), 3u);
  // Stickiness hashes are stable across processes, so the split is back
  // (connection ids restart too, so the share, not each key, is compared).
  EXPECT_NEAR(ShareFromNew(), 0.5, 0.12);
  again.Signal(SIGTERM);
  EXPECT_EQ(again.Wait(10000), 0);
}

}  // namespace
}  // namespace turnout::testing
