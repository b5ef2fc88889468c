// `turnout ctl` against a running turnout: the operator's path through a
// migration, and the errors it prints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

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
      << "routes:\n  - {name: db, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << listen_
      << "\", old: pg-old, new: pg-new}\n";
    ASSERT_TRUE(t_.Start(y.str(), {admin_, listen_})) << t_.Log();
  }

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
  int admin_ = FreePort(), listen_ = FreePort();
};

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

}  // namespace
}  // namespace turnout::testing
