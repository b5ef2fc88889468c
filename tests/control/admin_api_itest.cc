// The admin API over real HTTP (curl) against a running turnout: every
// endpoint, every error status, auth, lifecycle, persistence across kill -9.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "control/auth.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kReadToken[] = "read-token-0123456789abcdef";
constexpr char kJwtSecret[] = "jwt-test-secret-with-enough-entropy";

std::string Jwt(const std::string& payload) { return control::SignJwt(kJwtSecret, payload); }

long long Now() { return absl::ToUnixSeconds(absl::Now()); }

std::string State(const HttpResult& r) {
  if (!r.json.is_object() || !r.json.as_object().contains("data")) return "";
  const auto& d = r.json.at("data");
  return d.is_object() && d.as_object().contains("state") ? std::string(d.at("state").as_string()) : "";
}

std::string ErrorText(const HttpResult& r) {
  return r.json.is_object() && r.json.as_object().contains("error") ? std::string(r.json.at("error").as_string()) : r.body;
}

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartTurnout(); }

  std::string Config() const {
    const auto& b = TestBackends::Get();
    std::ostringstream y;
    y << "instance_id: api-test\nworkers: 1\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port_ << "\n  tokens_file: tokens\n  jwt_secret_env: TURNOUT_TEST_JWT\n"
      << "  max_body_size: 4KiB\n"
      << "state_store:\n  path: state.json\n"
      << "backends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\"}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\"}\n"
      << "  - {name: redis-old, protocol: redis, address: \"127.0.0.1:" << b.redis_old_port << "\"}\n"
      << "  - {name: redis-new, protocol: redis, address: \"127.0.0.1:" << b.redis_new_port << "\"}\n"
      << "routes:\n"
      << "  - {name: pg, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << pg_port_ << "\", old: pg-old, new: pg-new}\n"
      << "  - {name: cache, protocol: redis, mode: relay, listen: \"127.0.0.1:" << redis_port_ << "\", old: redis-old}\n";
    return y.str();
  }

  void StartTurnout() {
    std::ofstream(turnout_.dir() + "/tokens") << kAdminToken << " admin ops\n" << kReadToken << " read viewer\n";
    ::setenv("TURNOUT_TEST_JWT", kJwtSecret, 1);
    ASSERT_TRUE(turnout_.Start(Config(), {admin_port_, pg_port_})) << turnout_.Log();
  }

  TurnoutProcess turnout_;
  int admin_port_ = FreePort(), pg_port_ = FreePort(), redis_port_ = FreePort();
  AdminClient admin_{admin_port_, kAdminToken};
  AdminClient reader_{admin_port_, kReadToken};
  AdminClient anonymous_{admin_port_, ""};
};

constexpr char kCanary[] = R"({"id":"canary_migration","description":"walk-through",
  "strategy":{"type":"canary","read_percentage":0.05,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}}})";

TEST_F(AdminApiTest, HealthReadinessAndMetricsNeedNoToken) {
  EXPECT_EQ(anonymous_.Get("/healthz").status, 200);
  // Readiness probes backends every few seconds; the first verdict may lag.
  int ready = 0;
  for (int i = 0; i < 50 && ready != 200; ++i) {
    ready = anonymous_.Get("/readyz").status;
    if (ready != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(ready, 200);
  auto m = anonymous_.Get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.body, HasSubstr("turnout_connections{route=\"pg\"}"));
  EXPECT_THAT(m.body, HasSubstr("turnout_state_store_up 1"));
}

TEST_F(AdminApiTest, PromtoolAcceptsTheMetrics) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 201);
  auto m = anonymous_.Get("/metrics");
  auto check = RunProgram({"promtool", "check", "metrics"}, m.body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(m.body, HasSubstr("turnout_migration_state{migration=\"canary_migration\",state=\"Ready\"} 1"));
  EXPECT_THAT(m.body, HasSubstr("turnout_policy_version{migration=\"canary_migration\",route=\"pg\"} 1"));
}

TEST_F(AdminApiTest, MissingOrBadCredentialsAre401) {
  EXPECT_EQ(anonymous_.Get("/api/v1/migrations").status, 401);
  EXPECT_THAT(ErrorText(anonymous_.Get("/api/v1/migrations")), HasSubstr("missing Authorization header"));
  AdminClient wrong(admin_port_, "not-a-real-token-at-all");
  EXPECT_EQ(wrong.Get("/api/v1/migrations").status, 401);
  // A JWT signed with another secret.
  AdminClient forged(admin_port_, control::SignJwt("other-secret", R"({"role":"admin"})"));
  auto r = forged.Get("/api/v1/migrations");
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(ErrorText(r), HasSubstr("signature"));
  AdminClient expired(admin_port_, Jwt(R"({"role":"admin","exp":)" + std::to_string(Now() - 60) + "}"));
  EXPECT_THAT(ErrorText(expired.Get("/api/v1/migrations")), HasSubstr("expired"));
  EXPECT_EQ(expired.Get("/api/v1/migrations").status, 401);
  AdminClient early(admin_port_, Jwt(R"({"role":"admin","nbf":)" + std::to_string(Now() + 3600) + "}"));
  EXPECT_EQ(early.Get("/api/v1/migrations").status, 401);
  AdminClient no_role(admin_port_, Jwt(R"({"sub":"x"})"));
  EXPECT_EQ(no_role.Get("/api/v1/migrations").status, 401);
  // alg "none" is refused even with a valid-looking payload.
  AdminClient none(admin_port_, "eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ.");
  EXPECT_EQ(none.Get("/api/v1/migrations").status, 401);
}

TEST_F(AdminApiTest, JwtRolesFollowTheAccessTable) {
  AdminClient jwt_admin(admin_port_, Jwt(R"({"sub":"alice","role":"admin","exp":)" + std::to_string(Now() + 600) + "}"));
  AdminClient jwt_read(admin_port_, Jwt(R"({"sub":"bob","role":"read","exp":)" + std::to_string(Now() + 600) + "}"));
  EXPECT_EQ(jwt_admin.Post("/api/v1/migrations", kCanary).status, 201);
  EXPECT_EQ(jwt_read.Get("/api/v1/migrations").status, 200);
  EXPECT_EQ(reader_.Get("/api/v1/migrations").status, 200);
  // Read tokens may list, nothing else.
  for (auto [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/migrations/canary_migration"},
           {"POST", "/api/v1/migrations/canary_migration/pause"},
           {"DELETE", "/api/v1/migrations/canary_migration"},
           {"GET", "/api/v1/migrations/canary_migration/journal"}}) {
    EXPECT_EQ(jwt_read.Call(method, path).status, 403) << method << " " << path;
    EXPECT_EQ(reader_.Call(method, path).status, 403) << method << " " << path;
  }
  EXPECT_EQ(reader_.Post("/api/v1/migrations", R"({"id":"x"})").status, 403);
  // The audit history names who changed what.
  auto v = admin_.Get("/api/v1/migrations/canary_migration", {"X-Verbose: true"});
  EXPECT_EQ(v.json.at("data").at("history").as_array()[0].at("actor").as_string(), "alice");
}

TEST_F(AdminApiTest, CreateValidatesEveryField) {
  auto bad_json = admin_.Post("/api/v1/migrations", R"({"id": "x",)");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(ErrorText(bad_json), "invalid JSON");
  auto unknown = admin_.Post("/api/v1/migrations", R"({"id":"x","strategi":{"type":"big_bang"}})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_THAT(ErrorText(unknown), HasSubstr("strategi: unknown field"));
  auto bad_pct = admin_.Post("/api/v1/migrations", R"({"id":"x","strategy":{"type":"canary","read_percentage":2}})");
  EXPECT_EQ(bad_pct.status, 400);
  EXPECT_THAT(ErrorText(bad_pct), HasSubstr("strategy.read_percentage"));
  auto bad_type = admin_.Post("/api/v1/migrations", R"({"id":"x","strategy":{"type":"yolo"}})");
  EXPECT_THAT(ErrorText(bad_type), HasSubstr("strategy.type"));
  auto bad_nested = admin_.Post("/api/v1/migrations",
                                R"({"id":"x","strategy":{"type":"canary","write_mode":{"mode":"dual_write","policy":"both"}}})");
  EXPECT_THAT(ErrorText(bad_nested), HasSubstr("strategy.write_mode.policy"));
  auto bad_data = admin_.Post("/api/v1/migrations", R"({"id":"x","data":{"type":"snapshot","replace":"smash"}})");
  EXPECT_THAT(ErrorText(bad_data), HasSubstr("data.replace"));
  auto bad_fh = admin_.Post("/api/v1/migrations", R"({"id":"x","failure_handling":{"type":"retry_then_all","retry_count":-1}})");
  EXPECT_THAT(ErrorText(bad_fh), HasSubstr("failure_handling.retry_count"));
  auto bad_id = admin_.Post("/api/v1/migrations", R"({"id":"has space"})");
  EXPECT_THAT(ErrorText(bad_id), HasSubstr("id:"));
  EXPECT_EQ(admin_.Post("/api/v1/migrations", "[1,2]").status, 400);
  // Nothing was created by any of them.
  EXPECT_EQ(admin_.Get("/api/v1/migrations").json.at("data").as_array().size(), 0u);
  // Too large a body is 413, before any parsing.
  std::string big = R"({"id":"big","description":")" + std::string(8000, 'x') + "\"}";
  auto too_big = admin_.Post("/api/v1/migrations", big);
  EXPECT_EQ(too_big.status, 413);
  EXPECT_THAT(ErrorText(too_big), HasSubstr("too large"));
}

TEST_F(AdminApiTest, CreateGetListAndVerbose) {
  auto created = admin_.Post("/api/v1/migrations", kCanary);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json.at("status").as_string(), "success");
  const auto& d = created.json.at("data");
  EXPECT_EQ(d.at("id").as_string(), "canary_migration");
  EXPECT_EQ(d.at("uuid").as_string().size(), 36u);
  // The route with a `new` backend joined implicitly: Ready.
  EXPECT_EQ(d.at("state").as_string(), "Ready");
  EXPECT_EQ(d.at("interlays").as_array()[0].as_string(), "pg");
  EXPECT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 409);
  EXPECT_EQ(admin_.Get("/api/v1/migrations/nope").status, 404);
  auto plain = admin_.Get("/api/v1/migrations/canary_migration");
  EXPECT_FALSE(plain.json.at("data").as_object().contains("history"));
  for (const char* h : {"X-Verbose: true", "X-Eden-Verbose: true"}) {
    auto verbose = admin_.Get("/api/v1/migrations/canary_migration", {h});
    EXPECT_EQ(verbose.json.at("data").at("routes").as_array()[0].at("endpoint").as_string(), "pg-new") << h;
    EXPECT_EQ(verbose.json.at("data").at("history").as_array().size(), 1u) << h;
  }
  EXPECT_EQ(admin_.Get("/api/v1/migrations").json.at("data").as_array().size(), 1u);
}

TEST_F(AdminApiTest, PatchAppliesLiveAndABadPatchChangesNothing) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 201);
  auto ok = admin_.Patch("/api/v1/migrations/canary_migration",
                         R"({"strategy":{"type":"canary","read_percentage":0.25,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}}})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_DOUBLE_EQ(ok.json.at("data").at("strategy").at("read_percentage").as_double(), 0.25);
  EXPECT_EQ(ok.json.at("data").at("revision").as_int64(), 2);
  auto bad = admin_.Patch("/api/v1/migrations/canary_migration", R"({"strategy":{"type":"canary","read_percentage":-1}})");
  EXPECT_EQ(bad.status, 400);
  auto after = admin_.Get("/api/v1/migrations/canary_migration");
  EXPECT_DOUBLE_EQ(after.json.at("data").at("strategy").at("read_percentage").as_double(), 0.25);
  EXPECT_EQ(admin_.Patch("/api/v1/migrations/canary_migration", "{}").status, 400);
  EXPECT_EQ(admin_.Patch("/api/v1/migrations/ghost", R"({"description":"x"})").status, 404);
  // The policy version metric follows the revision.
  EXPECT_THAT(anonymous_.Get("/metrics").body,
              HasSubstr("turnout_policy_version{migration=\"canary_migration\",route=\"pg\"} 2"));
}

TEST_F(AdminApiTest, InterlaysAndScopes) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", R"({"id":"cache_move","strategy":{"type":"big_bang"}})").status, 201);
  ASSERT_EQ(admin_.Post("/api/v1/migrations", R"({"id":"second","strategy":{"type":"big_bang"}})").status, 201);
  // "pg" went to the first migration implicitly; "cache" has no `new`.
  EXPECT_EQ(State(admin_.Get("/api/v1/migrations/second")), "Pending");
  EXPECT_EQ(admin_.Post("/api/v1/migrations/second/interlay/nowhere", R"({"endpoint":"redis-new"})").status, 404);
  auto wrong_protocol = admin_.Post("/api/v1/migrations/second/interlay/cache", R"({"endpoint":"pg-new"})");
  EXPECT_EQ(wrong_protocol.status, 400);
  EXPECT_THAT(ErrorText(wrong_protocol), HasSubstr("speaks postgres"));
  EXPECT_EQ(admin_.Post("/api/v1/migrations/second/interlay/cache", R"({"endpoint":"ghost"})").status, 400);
  EXPECT_EQ(admin_.Post("/api/v1/migrations/second/interlay/cache", R"({})").status, 400);
  auto added = admin_.Post("/api/v1/migrations/second/interlay/cache", R"({"endpoint":"redis-new"})");
  ASSERT_EQ(added.status, 200) << added.body;
  EXPECT_EQ(State(added), "Ready");
  // A route belongs to one migration at a time.
  auto taken = admin_.Post("/api/v1/migrations/second/interlay/pg", R"({"endpoint":"pg-new"})");
  EXPECT_EQ(taken.status, 409);
  EXPECT_THAT(ErrorText(taken), HasSubstr("already belongs to migration cache_move"));
  auto scope = admin_.Post("/api/v1/migrations/second/api/users", R"({"keys":["user:*"]})");
  EXPECT_EQ(scope.status, 200) << scope.body;
  EXPECT_EQ(admin_.Post("/api/v1/migrations/second/api/users", R"({"keys":[]})").status, 400);
  EXPECT_EQ(admin_.Post("/api/v1/migrations/second/api/users", R"({"tables":["a"],"keys":["b"]})").status, 400);
  // A Redis route with a table scope does not compile: refused, nothing changes.
  auto mismatch = admin_.Post("/api/v1/migrations/second/api/orders", R"({"tables":["orders"]})");
  EXPECT_EQ(mismatch.status, 400) << mismatch.body;
}

TEST_F(AdminApiTest, LifecycleTransitionsAndIllegalOnes) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 201);
  const std::string base = "/api/v1/migrations/canary_migration";
  auto illegal = admin_.Post(base + "/resume");
  EXPECT_EQ(illegal.status, 409);
  EXPECT_THAT(ErrorText(illegal), HasSubstr("in state Ready"));
  EXPECT_EQ(admin_.Post(base + "/sync").status, 200);
  EXPECT_EQ(State(admin_.Post(base + "/migrate")), "Running");
  EXPECT_THAT(ErrorText(admin_.Post(base + "/migrate")), HasSubstr("in state Running"));
  EXPECT_EQ(admin_.Delete(base).status, 409);
  EXPECT_EQ(State(admin_.Post(base + "/pause")), "Paused");
  EXPECT_EQ(admin_.Post(base + "/pause").status, 409);
  EXPECT_EQ(State(admin_.Post(base + "/resume")), "Running");
  EXPECT_EQ(State(admin_.Post(base + "/rollback")), "RolledBack");
  EXPECT_EQ(admin_.Post(base + "/rollback").status, 409);
  EXPECT_EQ(admin_.Patch(base, R"({"description":"late"})").status, 409);
  EXPECT_EQ(admin_.Post(base + "/nonsense").status, 404);
  EXPECT_EQ(admin_.Call("PUT", base).status, 405);
  // Every change is in the audit history with before and after.
  auto v = admin_.Get(base, {"X-Verbose: true"});
  const auto& h = v.json.at("data").at("history").as_array();
  std::vector<std::string> actions;
  for (const auto& e : h) actions.emplace_back(e.at("action").as_string());
  EXPECT_THAT(actions, ::testing::ElementsAre("create", "sync", "migrate", "pause", "resume", "rollback"));
  EXPECT_EQ(h[2].at("before").at("state").as_string(), "Ready");
  EXPECT_EQ(h[2].at("after").at("state").as_string(), "Running");
  EXPECT_EQ(h[2].at("actor").as_string(), "ops");
  EXPECT_EQ(admin_.Delete(base).status, 200);
  EXPECT_EQ(admin_.Get(base).status, 404);
}

TEST_F(AdminApiTest, BigBangCompletesOnMigrateWithoutData) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", R"({"id":"bb","strategy":{"type":"big_bang"}})").status, 201);
  EXPECT_EQ(State(admin_.Post("/api/v1/migrations/bb/migrate")), "Completed");
}

TEST_F(AdminApiTest, CanaryWalkThroughReachesCompletedAtFullCutoverWhileRunning) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 201);
  ASSERT_EQ(State(admin_.Post("/api/v1/migrations/canary_migration/migrate")), "Running");
  for (const char* pct : {"0.25", "0.75"}) {
    auto r = admin_.Patch("/api/v1/migrations/canary_migration",
                          std::string(R"({"strategy":{"type":"canary","read_percentage":)") + pct +
                              R"(,"write_mode":{"mode":"dual_write","policy":"old_authoritative"}}})");
    EXPECT_EQ(State(r), "Running") << r.body;
  }
  auto full = admin_.Patch("/api/v1/migrations/canary_migration",
                           R"({"strategy":{"type":"canary","read_percentage":1.0,"write_mode":{"mode":"cutover","write_percentage":1.0}}})");
  EXPECT_EQ(State(full), "Completed") << full.body;
}

TEST_F(AdminApiTest, KillNineKeepsMigrationPolicyAndHistory) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 201);
  ASSERT_EQ(State(admin_.Post("/api/v1/migrations/canary_migration/migrate")), "Running");
  ASSERT_EQ(admin_.Patch("/api/v1/migrations/canary_migration",
                         R"({"strategy":{"type":"canary","read_percentage":0.25}})").status, 200);
  turnout_.Signal(SIGKILL);
  turnout_.Wait(5000);
  // Same folder, same state file: a fresh process.
  ChildProcess again;
  again.Start({TURNOUT_BINARY, "--config", turnout_.ConfigPath()}, turnout_.LogPath());
  ASSERT_TRUE(WaitForPort(admin_port_, 10000)) << turnout_.Log();
  auto v = admin_.Get("/api/v1/migrations/canary_migration", {"X-Verbose: true"});
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_EQ(State(v), "Running");
  EXPECT_DOUBLE_EQ(v.json.at("data").at("strategy").at("read_percentage").as_double(), 0.25);
  EXPECT_EQ(v.json.at("data").at("history").as_array().size(), 3u);
  // The policy is republished at startup with the same version.
  EXPECT_THAT(anonymous_.Get("/metrics").body,
              HasSubstr("turnout_policy_version{migration=\"canary_migration\",route=\"pg\"} 3"));
  again.Signal(SIGTERM);
  EXPECT_EQ(again.Wait(10000), 0);
}

// Issue 14: a scope name with raw bytes once reached the state file and
// stopped the next start. Now it is a 400, nothing is stored, and a restart
// loads the file.
TEST_F(AdminApiTest, BadNamesAreA400AndTheSidecarStillRestarts) {
  ASSERT_EQ(admin_.Post("/api/v1/migrations", kCanary).status, 201);
  const std::string before_path = turnout_.dir() + "/state.json";
  auto read_state = [&] {
    std::ifstream in(before_path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  const std::string before = read_state();
  for (const std::string& path : {std::string("/api/v1/migrations/canary_migration/api/\x8e\x84"),
                                  std::string("/api/v1/migrations/canary_migration/api/a%20b"),
                                  std::string("/api/v1/migrations/canary_migration/interlay/%C3%28")}) {
    auto r = admin_.Post(path, R"({"tables":["t"]})");
    EXPECT_EQ(r.status, 400) << path << " " << r.body;
  }
  auto bad_backend = admin_.Post("/api/v1/migrations/canary_migration/interlay/pg", R"({"endpoint":"pg\u00e9"})");
  EXPECT_EQ(bad_backend.status, 400) << bad_backend.body;
  EXPECT_THAT(ErrorText(bad_backend), HasSubstr("endpoint:"));
  EXPECT_EQ(admin_.Post("/api/v1/migrations", R"({"id":".."})").status, 400);
  EXPECT_EQ(read_state(), before);

  turnout_.Signal(SIGKILL);
  turnout_.Wait(5000);
  ChildProcess again;
  again.Start({TURNOUT_BINARY, "--config", turnout_.ConfigPath()}, turnout_.LogPath());
  ASSERT_TRUE(WaitForPort(admin_port_, 10000)) << turnout_.Log();
  EXPECT_EQ(admin_.Get("/api/v1/migrations/canary_migration").status, 200);
  again.Signal(SIGTERM);
  EXPECT_EQ(again.Wait(10000), 0);
}

TEST(AdminStateStoreTest, CorruptStateFileStopsStartupAndIsLeftUntouched) {
  TurnoutProcess t;
  const auto& b = TestBackends::Get();
  const std::string corrupt = "{\"migrations\": [ {\"id\": \"half\", ";
  std::ofstream(t.dir() + "/state.json") << corrupt;
  t.WriteConfig("admin: {enabled: false}\nstate_store: {path: state.json}\nbackends:\n"
                "  - {name: a, protocol: redis, address: \"127.0.0.1:" + std::to_string(b.redis_old_port) + "\"}\n"
                "routes:\n  - {name: r, protocol: redis, listen: \"127.0.0.1:" + std::to_string(FreePort()) + "\", old: a}\n");
  auto r = RunProgram({TURNOUT_BINARY, "--config", t.ConfigPath()}, "", {}, 10000);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is corrupt"));
  EXPECT_THAT(r.err, HasSubstr("refusing to start"));
  std::ifstream in(t.dir() + "/state.json");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), corrupt);
}

}  // namespace
}  // namespace turnout::testing
