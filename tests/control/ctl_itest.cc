// `turnout ctl` against a running turnout: the operator's path through a
// migration, and the errors it prints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
constexpr char kToken[] = "ctl-admin-token-0123456789";

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    std::ofstream(t_.dir() + "/tokens") << kToken << " admin ops\n";
    std::ostringstream y;
    y << "admin: {listen: \"127.0.0.1:" << admin_ << "\", tokens_file: tokens}\nstate_store: {path: state.json}\n"
      << "backends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\"}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\"}\n"
      << "  - {name: redis-old, protocol: redis, address: \"127.0.0.1:" << b.redis_old_port << "\", user: "
      << b.redis_user << ", password: " << b.redis_password << "}\n"
      << "  - {name: redis-new, protocol: redis, address: \"127.0.0.1:" << b.redis_new_port << "\", user: "
      << b.redis_user << ", password: " << b.redis_password << "}\n"
      << "routes:\n  - {name: db, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << listen_
      << "\", old: pg-old" << (PgRouteMovesToNew() ? ", new: pg-new" : "") << "}\n"
      << "  - {name: cache, protocol: redis, mode: relay, listen: \"127.0.0.1:" << redis_listen_
      << "\", old: redis-old}\n";
    ASSERT_TRUE(t_.Start(y.str(), {admin_, listen_})) << t_.Log();
  }

  // A route with `new` joins every migration created while it is free.
  virtual bool PgRouteMovesToNew() const { return true; }

  RunResult Ctl(std::vector<std::string> args, const std::string& token = kToken) {
    std::vector<std::string> argv = {TURNOUT_BINARY, "ctl", "--server", "http://127.0.0.1:" + std::to_string(admin_)};
    if (!token.empty()) argv.insert(argv.end(), {"--token", token});
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv);
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = t_.dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  TurnoutProcess t_;
  int admin_ = FreePort(), listen_ = FreePort(), redis_listen_ = FreePort();
};

// Deletes the keys under `prefix` on one server (never FLUSHALL: shared).
void RedisDeletePrefix(int port, const std::string& prefix) {
  RunProgram({"sh", "-c", "redis-cli -p " + std::to_string(port) + " --scan --pattern '" + prefix +
                              "*' | xargs -r redis-cli -p " + std::to_string(port) + " del > /dev/null"});
}

TEST_F(CtlTest, AMigrationFromCreateToRollback) {
  const std::string yaml = WriteFile("canary.yaml",
                                     "id: orders_to_new\n"
                                     "description: move orders\n"
                                     "strategy:\n  type: canary\n  read_percentage: 0.05\n"
                                     "  write_mode: {mode: dual_write, policy: old_authoritative}\n");
  auto created = Ctl({"create", "-f", yaml});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("orders_to_new  Ready"));
  EXPECT_THAT(created.out, HasSubstr("5.0%"));

  auto list = Ctl({"list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("ID"));
  EXPECT_THAT(list.out, ::testing::ContainsRegex("orders_to_new +Ready +canary +5% +db"));

  const std::string patch = WriteFile("patch.json", R"({"strategy":{"type":"canary","read_percentage":0.25}})");
  auto patched = Ctl({"patch", "orders_to_new", "-f", patch});
  EXPECT_EQ(patched.exit_code, 0) << patched.err;
  EXPECT_THAT(patched.out, HasSubstr("25.0%"));

  EXPECT_THAT(Ctl({"migrate", "orders_to_new"}).out, HasSubstr("Running"));
  auto status = Ctl({"status", "orders_to_new"});
  EXPECT_THAT(status.out, HasSubstr("route     db -> pg-new"));
  EXPECT_THAT(status.out, HasSubstr("[########"));
  EXPECT_THAT(Ctl({"pause", "orders_to_new"}).out, HasSubstr("Paused"));
  EXPECT_THAT(Ctl({"resume", "orders_to_new"}).out, HasSubstr("Running"));
  EXPECT_THAT(Ctl({"test", "orders_to_new"}).out, HasSubstr("\"routes\""));
  EXPECT_THAT(Ctl({"journal", "orders_to_new"}).out, HasSubstr("\"pending\":0"));
  auto refused = Ctl({"delete", "orders_to_new"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("error (409): cannot delete migration orders_to_new in state Running"));
  EXPECT_THAT(refused.err, HasSubstr("roll it back first"));
  EXPECT_THAT(Ctl({"rollback", "orders_to_new"}).out, HasSubstr("RolledBack"));
  EXPECT_EQ(Ctl({"delete", "orders_to_new"}).exit_code, 0);
  EXPECT_THAT(Ctl({"get", "orders_to_new"}).err, HasSubstr("error (404)"));
}

TEST_F(CtlTest, ErrorsAreClearAndExitNonZero) {
  auto no_token = Ctl({"list"}, "");
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_THAT(no_token.err, HasSubstr("error (401)"));
  auto bad_file = Ctl({"create", "-f", WriteFile("bad.yaml", "id: [unclosed\n")});
  EXPECT_EQ(bad_file.exit_code, 1);
  EXPECT_THAT(bad_file.err, HasSubstr("bad.yaml: line"));
  auto bad_field = Ctl({"create", "-f", WriteFile("field.json", R"({"id":"x","strategy":{"type":"canary","read_percentage":3}})")});
  EXPECT_EQ(bad_field.exit_code, 1);
  EXPECT_THAT(bad_field.err, HasSubstr("strategy.read_percentage"));
  EXPECT_EQ(Ctl({"frobnicate", "x"}).exit_code, 2);
  EXPECT_EQ(Ctl({"migrate"}).exit_code, 2);
  auto unreachable = RunProgram({TURNOUT_BINARY, "ctl", "--server", "http://127.0.0.1:" + std::to_string(FreePort()), "list"});
  EXPECT_EQ(unreachable.exit_code, 1);
  EXPECT_THAT(unreachable.err, HasSubstr("cannot reach"));
}

// The data-movement job of a Redis route (the Postgres route stays out).
class CtlDataTest : public CtlTest {
 protected:
  bool PgRouteMovesToNew() const override { return false; }
};

TEST_F(CtlDataTest, StatusShowsTheJobWhileItCopiesAndOnceDone) {
  const auto& b = TestBackends::Get();
  const std::string prefix = "ctl:" + std::to_string(::getpid()) + ":";
  struct Cleanup {
    std::string prefix;
    ~Cleanup() {
      for (int port : {TestBackends::Get().redis_old_port, TestBackends::Get().redis_new_port})
        RedisDeletePrefix(port, prefix);
    }
  } cleanup{prefix};
  // 1000 keys, 50 per batch, 150 ms apart: some 3 s of copying, so --watch
  // (one frame a second) sees the job running.
  std::vector<std::string> mset = {"redis-cli", "-p", std::to_string(b.redis_old_port), "mset"};
  for (int i = 0; i < 1000; ++i) mset.insert(mset.end(), {prefix + std::to_string(i), "v" + std::to_string(i)});
  ASSERT_EQ(RunProgram(mset).exit_code, 0);
  const std::string yaml = WriteFile("moving.yaml",
                                     "id: cache_moving\n"
                                     "strategy: {type: big_bang}\n"
                                     "data: {type: scan, batch_size: 50, sleep_ms: 150}\n");
  ASSERT_EQ(Ctl({"create", "-f", yaml}).exit_code, 0);
  AdminClient admin(admin_, kToken);
  ASSERT_EQ(admin.Post("/api/v1/migrations/cache_moving/interlay/cache", R"({"endpoint":"redis-new"})").status, 200);
  ASSERT_EQ(admin.Post("/api/v1/migrations/cache_moving/api/keys", R"({"keys":[")" + prefix + R"(*"]})").status, 200);
  auto before = Ctl({"status", "cache_moving"});
  EXPECT_THAT(before.out, ::testing::Not(HasSubstr("  data ")));  // no job before /migrate

  ASSERT_EQ(Ctl({"migrate", "cache_moving"}).exit_code, 0);
  // --watch redraws until the migration leaves Running: big_bang completes
  // once the data is copied and verified.
  std::vector<std::string> argv = {TURNOUT_BINARY, "ctl", "--server", "http://127.0.0.1:" + std::to_string(admin_),
                                   "--token", kToken, "status", "cache_moving", "--watch"};
  auto watch = RunProgram(argv, "", {}, 30000);
  ASSERT_FALSE(watch.timed_out) << watch.out;
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  // While copying: the job, the route's count of the estimated total and
  // the SCAN position a resumed copy starts from. (The rate shows only once
  // an interval of a second has passed, which a fast machine may not see.)
  EXPECT_THAT(watch.out, ::testing::ContainsRegex("data +running +\\[#*\\.+\\] +[0-9.]+%  runner turnout-0"));
  EXPECT_THAT(watch.out, ::testing::ContainsRegex("cache +copying +[1-9][0-9]* of ~1000 keys copied \\([0-9]+ written\\)"));
  EXPECT_THAT(watch.out, ::testing::ContainsRegex("checkpoint: pass 1, key glob #0, SCAN cursor [1-9][0-9]*\n"));
  // The last frame: done, everything copied and verified.
  auto done = Ctl({"status", "cache_moving"});
  EXPECT_THAT(done.out, HasSubstr("cache_moving  Completed"));
  EXPECT_THAT(done.out, ::testing::ContainsRegex("data +done +\\[#+\\] 100.0%  runner turnout-0, started .*, finished "));
  EXPECT_THAT(done.out, ::testing::ContainsRegex("cache +done +[0-9]+ of ~[0-9]+ keys copied \\(1000 written\\)"));
  EXPECT_THAT(done.out, HasSubstr("verified  equal"));
  EXPECT_THAT(watch.out, HasSubstr(done.out.substr(done.out.find("  data "), done.out.find("  updated") - done.out.find("  data "))));
}

}  // namespace
}  // namespace turnout::testing
