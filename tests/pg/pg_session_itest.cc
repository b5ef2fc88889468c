// The session's own behaviour: state replayed on a backend opened later,
// drain, and bad input over raw sockets while another client keeps working.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <string>
#include <thread>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/messages.h"
#include "tests/pg/pg_itest_support.h"

namespace turnout::testing {
namespace {

namespace ppg = protocol::pg;
using ::testing::HasSubstr;

// A raw protocol client: just enough to log in and then misbehave.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Everything until EOF or timeout.
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Reads until a ReadyForQuery arrives; returns all bytes read.
  std::string ReadUntilReady() {
    std::string out;
    char buf[4096];
    ppg::FrameDecoder d(ppg::Direction::kBackend);
    for (;;) {
      std::string_view rest = out;
      bool ready = false;
      while (true) {
        auto r = d.Decode(rest);
        if (!r.ok()) break;
        if (r.value.type == 'Z') ready = true;
        rest.remove_prefix(r.value.total_size);
      }
      if (ready) return out;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  bool Login(const std::string& user) {
    std::string startup;
    const std::pair<std::string_view, std::string_view> params[] = {{"user", user}, {"database", "postgres"}};
    ppg::AppendStartupMessage(&startup, params);
    if (!Send(startup)) return false;
    return ReadUntilReady().find('Z') != std::string::npos;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string Regular(char type, std::string_view payload) {
  std::string out(1, type);
  const std::uint32_t len = static_cast<std::uint32_t>(payload.size() + 4);
  for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((len >> s) & 0xff);
  out += payload;
  return out;
}

class PgSessionTest : public ::testing::Test {
 protected:
  void Start(const std::string& limits = "") { ASSERT_TRUE(turnout_.Start(limits)) << turnout_.Log(); }
  std::string Url() { return PgUrl(turnout_.routes().trust, TestBackends::Get().pg_user); }
  RunResult Sql(const std::string& sql) { return Psql(Url(), TestBackends::Get().pg_password, sql); }
  std::map<std::string, std::string> PyEnv() {
    const auto& b = TestBackends::Get();
    return {{"TURNOUT_PORT", std::to_string(turnout_.routes().trust)},
            {"PG_OLD_PORT", std::to_string(b.pg_old_port)},
            {"PG_NEW_PORT", std::to_string(b.pg_new_port)},
            {"PGUSER", b.pg_user},
            {"PGPASSWORD", b.pg_password}};
  }
  PgTurnout turnout_;
};

TEST_F(PgSessionTest, StateIsReplayedOnABackendOpenedLater) {
  Start();
  // psycopg 3 with prepare_threshold=0 names its statements (_pg3_N) with
  // Parse; after the switch the same names must exist on the new backend.
  auto r = Python(R"PY(
import os, select, time, psycopg
port = os.environ["TURNOUT_PORT"]
c = psycopg.connect(host="127.0.0.1", port=port, dbname="postgres", prepare_threshold=0, autocommit=True)
def port_of():
    return c.execute("select inet_server_port()").fetchone()[0]
assert port_of() == int(os.environ["PG_OLD_PORT"])
c.execute("create schema if not exists replay_s")
c.execute("set search_path to replay_s, public")
c.execute("set application_name = 'replay-test'")
c.execute("begin")
c.execute("set local work_mem = '7MB'")
c.execute("commit")
c.execute("begin")
c.execute("set statement_timeout = '123s'")
c.execute("rollback")                     # rolled back: not replayed
c.execute("prepare sqlq(int) as select $1 * 10")
c.execute("listen replay_chan")
assert c.execute("select %s::int + 1", (1,)).fetchone()[0] == 2   # named protocol statement
def use(side):
    # A simple Query (the hook is not a statement the server would parse).
    res = c.pgconn.exec_(b"TURNOUT DEBUG USE " + side)
    if res.status != psycopg.pq.ExecStatus.COMMAND_OK:
        raise psycopg.OperationalError(res.error_message.decode())
use(b"NEW")
assert port_of() == int(os.environ["PG_NEW_PORT"]), port_of()
assert c.execute("show search_path").fetchone()[0] == "replay_s, public"
assert c.execute("show application_name").fetchone()[0] == "replay-test"
assert c.execute("show statement_timeout").fetchone()[0] == "0"
assert c.execute("show work_mem").fetchone()[0] == "4MB"
assert c.execute("execute sqlq(4)").fetchone()[0] == 40
assert c.execute("select %s::int + 1", (41,)).fetchone()[0] == 42  # reuses _pg3_ name
names = [r[0] for r in c.execute("select name from pg_prepared_statements order by name")]
assert "sqlq" in names and any(n.startswith("_pg3_") for n in names), names
# LISTEN was replayed: a NOTIFY on the new cluster arrives, and the old
# connection (still open) keeps delivering its own.
for p in (os.environ["PG_NEW_PORT"], os.environ["PG_OLD_PORT"]):
    with psycopg.connect(host="127.0.0.1", port=p, dbname="postgres", autocommit=True) as t:
        t.execute("notify replay_chan, 'from-%s'" % p)
got = set()
deadline = time.time() + 5
while len(got) < 2 and time.time() < deadline:
    select.select([c.fileno()], [], [], 0.5)
    c.pgconn.consume_input()
    while True:
        n = c.pgconn.notifies()
        if n is None:
            break
        got.add(n.extra.decode())
assert got == {"from-" + os.environ["PG_NEW_PORT"], "from-" + os.environ["PG_OLD_PORT"]}, got
use(b"OLD")
assert port_of() == int(os.environ["PG_OLD_PORT"])
c.execute("begin")
try:
    use(b"NEW")
    raise SystemExit("switch inside a transaction must fail")
except psycopg.Error as e:
    assert "inside a transaction" in str(e), e
c.execute("rollback")
print("OK")
)PY",
                  PyEnv());
  EXPECT_EQ(r.exit_code, 0) << r.err << turnout_.Log();
  EXPECT_EQ(r.out, "OK\n");
}

TEST_F(PgSessionTest, ExtendedProtocolCopyKeepsRequestAccounting) {
  Start();
  // libpq sends COPY through PQsendQueryParams as Parse/Bind/Describe/
  // Execute/Sync, and another Sync after CopyDone; the server ignores the
  // first (copy-in mode). If turnout counted it, the session would never look
  // idle again: the backend switch below waits for idle and would hang.
  auto r = Python(R"PY(
import os, signal, psycopg
from psycopg import pq
signal.alarm(15)
c = psycopg.connect(host="127.0.0.1", port=os.environ["TURNOUT_PORT"], dbname="postgres", autocommit=True)
c.execute("create temp table ecopy(i int)")
pg = c.pgconn
for round in range(3):
    pg.send_query_params(b"copy ecopy from stdin", None)
    res = pg.get_result()
    assert res.status == pq.ExecStatus.COPY_IN, res.status
    pg.put_copy_data(b"".join(b"%d\n" % i for i in range(1000)))
    pg.put_copy_end()
    res = pg.get_result()
    assert res.status == pq.ExecStatus.COMMAND_OK, res.error_message
    assert pg.get_result() is None
# A COPY that fails while copying, and one that fails before it starts.
pg.send_query_params(b"copy ecopy from stdin", None)
assert pg.get_result().status == pq.ExecStatus.COPY_IN
pg.put_copy_data(b"not-a-number\n")
pg.put_copy_end()
assert pg.get_result().status == pq.ExecStatus.FATAL_ERROR
assert pg.get_result() is None
pg.send_query_params(b"copy no_such_table from stdin", None)
assert pg.get_result().status == pq.ExecStatus.FATAL_ERROR
assert pg.get_result() is None
assert c.execute("select count(*) from ecopy").fetchone()[0] == 3000
res = pg.exec_(b"TURNOUT DEBUG USE OLD")      # waits for idle: must not hang
assert res.status == pq.ExecStatus.COMMAND_OK, res.error_message
print("OK")
)PY",
                  PyEnv(), 30000);
  EXPECT_EQ(r.exit_code, 0) << r.err << turnout_.Log();
  EXPECT_EQ(r.out, "OK\n");
}

TEST_F(PgSessionTest, DrainClosesIdleSessionsAndLetsRunningOnesFinish) {
  Start("  drain_timeout: 20s\n");
  // An idle session (raw, so we can read what turnout sends it unasked).
  RawClient idle(turnout_.routes().trust);
  ASSERT_TRUE(idle.Login(TestBackends::Get().pg_user));
  // psycopg2: one session in a transaction, one running a query.
  auto script = std::async(std::launch::async, [&] {
    auto env = PyEnv();
    env["SIGNAL_FILE"] = turnout_.process().dir() + "/signal";
    return Python(R"PY(
import os, threading, time, psycopg2
port = os.environ["TURNOUT_PORT"]
def conn():
    c = psycopg2.connect(host="127.0.0.1", port=port, dbname="postgres")
    c.autocommit = True
    return c
txn, busy = conn(), conn()
txn.autocommit = False
txn.cursor().execute("select 1")         # transaction open
result = {}
def run():
    cur = busy.cursor()
    cur.execute("select 'finished' from pg_sleep(2)")
    result["busy"] = cur.fetchone()[0]
t = threading.Thread(target=run); t.start()
time.sleep(0.5)
open(os.environ["SIGNAL_FILE"], "w").close()
time.sleep(1.0)
cur = txn.cursor(); cur.execute("select 'txn-ok'"); result["txn"] = cur.fetchone()[0]
txn.commit()
t.join()
print(result["txn"]); print(result["busy"])
)PY",
                  env);
  });
  const std::string signal_file = turnout_.process().dir() + "/signal";
  for (int i = 0; i < 200 && ::access(signal_file.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  turnout_.process().Signal(SIGTERM);
  // The idle session is closed at once, with the server's shutdown message.
  const std::string bye = idle.ReadAll();
  EXPECT_THAT(bye, HasSubstr("57P01"));
  EXPECT_THAT(bye, HasSubstr("terminating connection due to administrator command"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  auto r = script.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "txn-ok\nfinished\n") << r.err;
  EXPECT_EQ(turnout_.process().Wait(10000), 0) << turnout_.Log();
  // Well before the 20 s drain deadline: every session ended at its boundary.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  EXPECT_THAT(turnout_.Log(), ::testing::Not(HasSubstr("drain deadline passed")));
}

TEST_F(PgSessionTest, IdleTimeoutClosesQuietSessionsWithTheServersMessage) {
  Start("  idle_timeout: 300ms\n");
  RawClient c(turnout_.routes().trust);
  ASSERT_TRUE(c.Login(TestBackends::Get().pg_user));
  const auto start = std::chrono::steady_clock::now();
  const std::string bye = c.ReadAll();
  EXPECT_THAT(bye, HasSubstr("57P05"));
  EXPECT_THAT(bye, HasSubstr("idle-session timeout"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

// Quiet for longer than kReleaseIdlePagesAfter (proxy/idle_pages.h), a
// session's receive buffers lose their free pages; what comes next, small
// and larger than the buffers both ways, is relayed as before.
TEST_F(PgSessionTest, ASessionQuietPastThePageReleaseGoesOnAsBefore) {
  Start();
  auto r = Python(R"PY(
import os, time, psycopg2
c = psycopg2.connect(host='127.0.0.1', port=int(os.environ['TURNOUT_PORT']), dbname='postgres', sslmode='disable')
c.autocommit = True
cur = c.cursor()
def round_trip(n):
    big = ''.join(chr(97 + (i * 7) % 26) for i in range(n))
    cur.execute('select %s::text, md5(%s::text)', (big, big))
    text, digest = cur.fetchone()
    import hashlib
    assert text == big and digest == hashlib.md5(big.encode()).hexdigest(), n
for n in (10, 300000):
    round_trip(n)
time.sleep(6)
for n in (300000, 10, 150000):
    round_trip(n)
print('ok')
)PY",
                  PyEnv());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << turnout_.Log();
  EXPECT_EQ(r.out, "ok\n");
}

TEST_F(PgSessionTest, StartupRequestsAreAnsweredLikeTheServer) {
  Start();
  const int port = turnout_.routes().trust;
  const std::string user = TestBackends::Get().pg_user;
  {  // GSSENCRequest: 'N', then a plain startup on the same connection.
    RawClient c(port);
    std::string req;
    ppg::AppendGssEncRequest(&req);
    ASSERT_TRUE(c.Send(req));
    char answer = 0;
    ASSERT_EQ(::recv(c.fd(), &answer, 1, 0), 1);
    EXPECT_EQ(answer, 'N');
    EXPECT_TRUE(c.Login(user));
  }
  {  // SSLRequest on a route without a certificate: 'N'.
    RawClient c(port);
    std::string req;
    ppg::AppendSslRequest(&req);
    ASSERT_TRUE(c.Send(req));
    char answer = 0;
    ASSERT_EQ(::recv(c.fd(), &answer, 1, 0), 1);
    EXPECT_EQ(answer, 'N');
    EXPECT_TRUE(c.Login(user));
  }
  {  // Protocol 3.2 with an extension: NegotiateProtocolVersion, then login.
    RawClient c(port);
    std::string startup;
    const std::pair<std::string_view, std::string_view> params[] = {
        {"user", user}, {"database", "postgres"}, {"_pq_.future_thing", "on"}};
    ppg::AppendStartupMessage(&startup, params, (3u << 16) | 2u);
    ASSERT_TRUE(c.Send(startup));
    const std::string reply = c.ReadUntilReady();
    ASSERT_FALSE(reply.empty());
    EXPECT_EQ(reply[0], 'v');
    EXPECT_THAT(reply, HasSubstr("_pq_.future_thing"));
    EXPECT_NE(reply.find('Z'), std::string::npos);
  }
  {  // A CancelRequest with a key nobody holds: closed without an answer.
    RawClient c(port);
    std::string req;
    ppg::AppendCancelRequest(&req, 12345, 67890);
    ASSERT_TRUE(c.Send(req));
    EXPECT_EQ(c.ReadAll(), "");
  }
  {  // Our BackendKeyData, not the backend's: the pid is not a server pid.
    RawClient c(port);
    std::string startup;
    const std::pair<std::string_view, std::string_view> params[] = {{"user", user}, {"database", "postgres"}};
    ppg::AppendStartupMessage(&startup, params);
    ASSERT_TRUE(c.Send(startup));
    const std::string reply = c.ReadUntilReady();
    ppg::FrameDecoder d(ppg::Direction::kBackend);
    std::string_view rest = reply;
    std::int32_t pid = -1;
    while (!rest.empty()) {
      auto r = d.Decode(rest);
      ASSERT_TRUE(r.ok());
      ppg::BackendKeyData k;
      if (r.value.type == 'K' && !ppg::Decode(r.value, &k)) pid = k.process_id;
      rest.remove_prefix(r.value.total_size);
    }
    ASSERT_GT(pid, 0);
    std::string q;
    ppg::AppendQuery(&q, "select pg_backend_pid()");
    ASSERT_TRUE(c.Send(q));
    EXPECT_THAT(c.ReadUntilReady(), ::testing::Not(HasSubstr(std::to_string(pid) + std::string(1, '\0'))));
  }
}

TEST_F(PgSessionTest, BadInputGetsAnErrorOrDisconnectAndOthersAreUnaffected) {
  Start("  max_message_size: 1MiB\n  buffer_size: 16KiB\n");
  const int port = turnout_.routes().trust;
  const std::string user = TestBackends::Get().pg_user;
  // A second client keeps working throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> good{0}, bad{0};
  std::thread other([&] {
    while (!stop) {
      auto r = Sql("select 'alive'");
      (r.out == "alive\n" ? good : bad)++;
    }
  });
  struct Join {  // also when an ASSERT returns early
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop, other};

  {  // Startup packet length below the minimum.
    RawClient c(port);
    c.Send(std::string("\x00\x00\x00\x03", 4));
    EXPECT_THAT(c.ReadAll(), HasSubstr("invalid length of startup packet"));
  }
  {  // Startup packet over max_startup_size.
    RawClient c(port);
    c.Send(std::string("\x00\x01\x00\x00\x00\x03\x00\x00", 8));
    EXPECT_THAT(c.ReadAll(), HasSubstr("invalid length of startup packet"));
  }
  {  // Protocol 2.
    RawClient c(port);
    c.Send(std::string("\x00\x00\x00\x08\x00\x02\x00\x00", 8));
    EXPECT_THAT(c.ReadAll(), HasSubstr("unsupported frontend protocol 2.0"));
  }
  {  // Unknown message type after login.
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    c.Send(Regular('z', "abc"));
    const std::string reply = c.ReadAll();
    EXPECT_THAT(reply, HasSubstr("08P01"));
    EXPECT_THAT(reply, HasSubstr("invalid frontend message type 122"));
  }
  {  // A length below 4.
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    c.Send(std::string("Q\x00\x00\x00\x02", 5));
    EXPECT_THAT(c.ReadAll(), HasSubstr("08P01"));
  }
  {  // Oversized: over max_message_size, refused from its header.
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    c.Send(std::string("Q\x00\x20\x00\x00", 5));
    const std::string reply = c.ReadAll();
    EXPECT_THAT(reply, HasSubstr("54000"));
    EXPECT_THAT(reply, HasSubstr("limits.max_message_size")) << reply;
  }
  {  // Malformed Parse (no NUL terminators).
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    c.Send(Regular('P', "stmt-without-terminator"));
    EXPECT_THAT(c.ReadAll(), HasSubstr("08P01"));
  }
  {  // A password message outside authentication.
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    c.Send(Regular('p', std::string("secret\0", 7)));
    EXPECT_THAT(c.ReadAll(), HasSubstr("08P01"));
  }
  {  // Truncated message, then the client vanishes.
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    c.Send(std::string("Q\x00\x00\x10\x00select", 11));
  }
  {  // A message larger than the buffer but under the limit is streamed.
    RawClient c(port);
    ASSERT_TRUE(c.Login(user));
    std::string sql = "select length('" + std::string(100000, 'q') + "')";
    c.Send(Regular('Q', sql + std::string(1, '\0')));
    EXPECT_THAT(c.ReadUntilReady(), HasSubstr("100000"));
  }
  // Random garbage after a login, and as a startup packet.
  std::mt19937 rng(12345);
  for (int i = 0; i < 60; ++i) {
    RawClient c(port);
    if (i % 2 == 0) {
      ASSERT_TRUE(c.Login(user));
    }
    std::string junk(1 + rng() % 200, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    if (i % 3 == 0 && junk.size() > 5) junk[0] = "QPBEDSXHdcf"[rng() % 11];
    c.Send(junk);
    if (i % 4 == 0) c.ReadAll();
  }
  stop = true;
  other.join();
  EXPECT_TRUE(turnout_.process().running()) << turnout_.Log();
  EXPECT_GT(good.load(), 0);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(turnout_.process().running());
  EXPECT_EQ(Sql("select 'still-serving'").out, "still-serving\n") << turnout_.Log();
}

}  // namespace
}  // namespace turnout::testing
