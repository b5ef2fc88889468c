// Authentication at turnout (each method, right and wrong password, the
// server's own error text), login to the backends with each method, and TLS
// on both sides with the harness' test CA.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/pg/pg_itest_support.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;

class PgAuthTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(turnout_.Start()) << turnout_.Log(); }

  RunResult Login(int port, const std::string& user, const std::string& password,
                  const std::string& params = "sslmode=disable") {
    return Psql(PgUrl(port, user, "postgres", params), password, "select current_user");
  }

  PgTurnout turnout_;
};

std::string ServerWrongPasswordError() {
  // What the real server says for a wrong password, for comparison.
  const auto& b = TestBackends::Get();
  auto r = Psql(PgUrl(b.pg_old_port, b.pg_user), "not-the-password", "select 1");
  const auto at = r.err.find("FATAL:");
  return at == std::string::npos ? r.err : r.err.substr(at);
}

TEST_F(PgAuthTest, EachMethodAcceptsTheRightPasswordAndRefusesAWrongOne) {
  const auto& routes = turnout_.routes();
  struct Case {
    int port;
    const char* method;
    const char* user;
    const char* password;
    bool accepted;
  };
  const Case cases[] = {
      {routes.password, "password", kPlainUser, kPlainPassword, true},
      {routes.password, "password", kMd5User, kMd5Password, true},
      {routes.password, "password", kScramUser, kScramPassword, true},
      {routes.md5, "md5", kPlainUser, kPlainPassword, true},
      {routes.md5, "md5", kMd5User, kMd5Password, true},
      {routes.md5, "md5", kScramUser, kScramPassword, true},  // upgraded to SCRAM, as the server does
      {routes.scram, "scram", kPlainUser, kPlainPassword, true},
      {routes.scram, "scram", kScramUser, kScramPassword, true},
      {routes.scram, "scram", kMd5User, kMd5Password, false},  // an md5 secret cannot do SCRAM
  };
  for (const auto& c : cases) {
    auto ok = Login(c.port, c.user, c.password);
    if (c.accepted) {
      EXPECT_EQ(ok.exit_code, 0) << c.method << " " << c.user << ": " << ok.err;
      // turnout logs in to the backend with its own credentials.
      EXPECT_EQ(ok.out, TestBackends::Get().pg_user + "\n") << c.method << " " << c.user;
    } else {
      EXPECT_NE(ok.exit_code, 0) << c.method << " " << c.user;
    }
    auto wrong = Login(c.port, c.user, std::string(c.password) + "-wrong");
    EXPECT_NE(wrong.exit_code, 0) << c.method << " " << c.user;
    EXPECT_THAT(wrong.err, HasSubstr(std::string("FATAL:  password authentication failed for user \"") + c.user +
                                     "\""))
        << c.method;
  }
  auto unknown = Login(routes.scram, "mallory", "x");
  EXPECT_THAT(unknown.err, HasSubstr("FATAL:  password authentication failed for user \"mallory\""));
  auto unknown_md5 = Login(routes.md5, "mallory", "x");
  EXPECT_THAT(unknown_md5.err, HasSubstr("FATAL:  password authentication failed for user \"mallory\""));
}

TEST_F(PgAuthTest, WrongPasswordErrorIsTheServers) {
  const std::string server = ServerWrongPasswordError();
  ASSERT_THAT(server, HasSubstr("password authentication failed for user"));
  // Same words, same SQLSTATE: compare with the user name swapped.
  auto ours = Login(turnout_.routes().scram, TestBackends::Get().pg_user, "not-the-password");
  const auto at = ours.err.find("FATAL:");
  ASSERT_NE(at, std::string::npos) << ours.err;
  EXPECT_EQ(ours.err.substr(at), server);
}

TEST_F(PgAuthTest, TrustAcceptsAnyUser) {
  auto r = Login(turnout_.routes().trust, "anyone", "");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(PgAuthTest, UpstreamLoginWithMd5AndCleartext) {
  const auto& b = TestBackends::Get();
  auto md5 = Login(turnout_.routes().up_md5, "whoever", "");
  EXPECT_EQ(md5.exit_code, 0) << md5.err;
  EXPECT_EQ(md5.out, b.pg_md5_user + "\n");
  auto plain = Login(turnout_.routes().up_plain, "whoever", "");
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, b.pg_plain_user + "\n");
}

TEST_F(PgAuthTest, ClientTlsVerifyFullWithTheHarnessCa) {
  const auto& b = TestBackends::Get();
  const std::string tls = "sslmode=verify-full&sslrootcert=" + b.ca_file;
  auto r = Psql("postgres://u@localhost:" + std::to_string(turnout_.routes().tls) + "/postgres?" + tls, "",
                "select 'over-tls'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "over-tls\n");
  auto ip = Psql(PgUrl(turnout_.routes().tls, "u", "postgres", tls), "", "select 1");
  EXPECT_EQ(ip.exit_code, 0) << ip.err;
  // Rows larger than the buffer, streamed through TLS.
  auto big = Psql(PgUrl(turnout_.routes().tls, "u", "postgres", tls), "", "select repeat('x', 2000000)");
  EXPECT_EQ(big.out.size(), 2000001u) << big.err;
  // The route requires TLS: a plain client is turned away like pg_hba would.
  auto plain = Login(turnout_.routes().tls, "u", "");
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_THAT(plain.err, HasSubstr("no encryption"));
  // A route without a certificate answers SSLRequest with 'N'.
  auto no_tls = Psql(PgUrl(turnout_.routes().trust, b.pg_user, "postgres", "sslmode=require"), b.pg_password,
                     "select 1");
  EXPECT_NE(no_tls.exit_code, 0);
  EXPECT_THAT(no_tls.err, HasSubstr("does not support SSL"));
  auto prefer = Psql(PgUrl(turnout_.routes().trust, b.pg_user, "postgres", "sslmode=prefer"), b.pg_password,
                     "select 2");
  EXPECT_EQ(prefer.out, "2\n") << prefer.err;
}

TEST_F(PgAuthTest, UpstreamTlsRequireAndVerifyFull) {
  const char* ssl_sql = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
  const auto& b = TestBackends::Get();
  for (int port : {turnout_.routes().up_require, turnout_.routes().up_verify}) {
    auto r = Psql(PgUrl(port, "u"), "", ssl_sql);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "t\n");
    auto big = Psql(PgUrl(port, "u"), "", "select repeat('y', 2000000)");
    EXPECT_EQ(big.out.size(), 2000001u) << big.err;
  }
  auto plain = Psql(PgUrl(turnout_.routes().trust, "u"), "", ssl_sql);
  EXPECT_EQ(plain.out, "f\n") << plain.err;
  // verify-full checks the name: a certificate without it is refused.
  auto bad = Psql(PgUrl(turnout_.routes().up_badname, "u"), "", "select 1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("TLS handshake failed"));
  (void)b;
}

}  // namespace
}  // namespace turnout::testing
