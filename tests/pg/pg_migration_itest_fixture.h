#pragma once
// A turnout with one Postgres route over the harness clusters, the admin API
// and a database of the test's own on both sides, plus a raw wire-protocol
// client (python3, no driver) that sends exactly the messages a test names:
// pgjdbc-style extended batches, a DROP in the middle of a batch, and a
// receive timeout so a session that never answers fails the test instead of
// hanging it. Used by pg_ddl_policy_itest and pg_session_hang_itest.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "tests/pg/pg_itest_support.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {

inline constexpr char kMigrationAdminToken[] = "pg-ddl-admin-token-0123456789abcdef";

// A python3 prelude: Conn(port, user, db) speaks protocol 3.0 with trust auth;
// conn.send(*messages) writes them, conn.until_z() returns the replies up to
// ReadyForQuery as [(type, body)], and err(replies) the first error's
// "SQLSTATE message" (or ""). P/B/D/E/S/Q build messages.
inline constexpr char kRawPgClient[] = R"PY(
import os, socket, struct, sys, time
def _m(t, body): return t.encode() + struct.pack('!I', len(body) + 4) + body
def _c(s): return s.encode() + b'\0'
def P(sql, name=''): return _m('P', _c(name) + _c(sql) + struct.pack('!H', 0))
def B(name='', portal=''): return _m('B', _c(portal) + _c(name) + struct.pack('!HHH', 0, 0, 0))
def D(portal=''): return _m('D', b'P' + _c(portal))
def E(portal=''): return _m('E', _c(portal) + struct.pack('!I', 0))
def Q(sql): return _m('Q', _c(sql))
S = _m('S', b'')
def err(replies):
    for t, b in replies:
        if t == 'E':
            f = {}
            for part in b.split(b'\0'):
                if part: f[chr(part[0])] = part[1:].decode()
            return f.get('C', '') + ' ' + f.get('M', '')
    return ''
def tags(replies): return [b[:-1].decode() for t, b in replies if t == 'C']
def status(replies): return [b.decode() for t, b in replies if t == 'Z'][-1]
class Conn:
    def __init__(self, port, user, db, timeout=20):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.s.settimeout(timeout)
        self.buf = b''
        body = struct.pack('!I', 196608) + _c('user') + _c(user) + _c('database') + _c(db) + b'\0'
        self.s.sendall(struct.pack('!I', len(body) + 4) + body)
        r = self.until_z()
        if err(r): raise Exception('startup: ' + err(r))
    def read(self):
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack('!I', self.buf[1:5])[0]:
            d = self.s.recv(65536)
            if not d: raise EOFError('turnout closed the connection')
            self.buf += d
        n = struct.unpack('!I', self.buf[1:5])[0]
        t, b, self.buf = chr(self.buf[0]), self.buf[5:1 + n], self.buf[1 + n:]
        return t, b
    def send(self, *msgs): self.s.sendall(b''.join(msgs))
    def until_z(self):
        out = []
        while True:
            t, b = self.read()
            out.append((t, b))
            if t == 'Z': return out
    def run(self, *msgs):
        self.send(*msgs)
        return self.until_z()
    def close(self):
        self.s.sendall(_m('X', b''))
        self.s.close()
conn = Conn(int(os.environ['PORT']), os.environ['PGUSER'], os.environ['DB'])
)PY";

class PgMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    db_ = "mig_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    for (int port : {b.pg_old_port, b.pg_new_port})
      ASSERT_EQ(Psql(Direct(port, "postgres"), b.pg_password, "create database " + db_).exit_code, 0);
  }
  void TearDown() override {
    turnout_.reset();
    const auto& b = TestBackends::Get();
    for (int port : {b.pg_old_port, b.pg_new_port})
      Psql(Direct(port, "postgres"), b.pg_password, "drop database if exists " + db_ + " with (force)");
  }

  // `extra_env` is added to turnout's environment; `new_port` replaces the
  // harness' new cluster; `limits` (YAML lines) go under `limits:`.
  void Start(const std::map<std::string, std::string>& extra_env = {}, int new_port = 0,
             const std::string& limits = "") {
    const auto& b = TestBackends::Get();
    port_ = FreePort();
    admin_port_ = FreePort();
    turnout_ = std::make_unique<TurnoutProcess>();
    std::ostringstream y;
    y << "instance_id: pgmig-test\nworkers: 2\nlog_level: info\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port_ << "\n  tokens_file: tokens\n"
      << "state_store:\n  path: state.json\njournal:\n  path: journal.log\n";
    if (!limits.empty()) y << "limits:\n" << limits;
    y << "backends:\n";
    const int new_side = new_port != 0 ? new_port : b.pg_new_port;
    for (const auto& [name, port] : {std::pair<std::string, int>{"pg-old", b.pg_old_port}, {"pg-new", new_side}})
      y << "  - name: " << name << "\n    protocol: postgres\n    address: 127.0.0.1:" << port << "\n    user: "
        << b.pg_user << "\n    password: " << b.pg_password << "\n    database: " << db_ << "\n";
    y << "routes:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:" << port_
      << "\n    old: pg-old\n    new: pg-new\n";
    std::filesystem::create_directories(turnout_->dir());
    std::ofstream(turnout_->dir() + "/tokens") << kMigrationAdminToken << " admin ops\n";
    // The child inherits this process' environment.
    for (const auto& [k, v] : extra_env) ::setenv(k.c_str(), v.c_str(), 1);
    const bool started = turnout_->Start(y.str(), {port_, admin_port_});
    for (const auto& [k, v] : extra_env) ::unsetenv(k.c_str());
    ASSERT_TRUE(started) << turnout_->Log();
    admin_ = AdminClient(admin_port_, kMigrationAdminToken);
  }
  void CreateMigration(const std::string& id, const std::string& strategy) {
    auto r = admin_.Post("/api/v1/migrations", R"({"id":")" + id + R"(","strategy":)" + strategy + "}");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  static std::string Direct(int port, const std::string& db) { return PgUrl(port, TestBackends::Get().pg_user, db); }
  RunResult OnSide(int port, const std::string& sql) {
    return Psql(Direct(port, db_), TestBackends::Get().pg_password, sql);
  }
  RunResult Both(const std::string& sql) {
    const auto& b = TestBackends::Get();
    auto r = OnSide(b.pg_old_port, sql);
    if (r.exit_code != 0) return r;
    return OnSide(b.pg_new_port, sql);
  }
  // Runs kRawPgClient followed by `script` against turnout.
  RunResult Raw(const std::string& script, int timeout_ms = 90000) {
    return Python(std::string(kRawPgClient) + script,
                  {{"PORT", std::to_string(port_)}, {"PGUSER", TestBackends::Get().pg_user}, {"DB", db_}}, timeout_ms);
  }

  std::unique_ptr<TurnoutProcess> turnout_;
  int port_ = 0;
  int admin_port_ = 0;
  AdminClient admin_{0, kMigrationAdminToken};
  std::string db_;
  static inline int counter_ = 0;
};

}  // namespace turnout::testing
