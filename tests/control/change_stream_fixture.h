#pragma once
// A migration moved by the change stream on the harness' real servers, in a
// database of the test's own: turnout started on it, the admin calls the
// tests make, and a full comparison of a table on both sides.

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/control/own_database_fixture.h"
#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

inline constexpr char kToken[] = "change-stream-admin-token-0123456789";
inline constexpr char kCanary[] = R"({"type":"canary","read_percentage":0})";
inline constexpr char kBigBang[] = R"({"type":"big_bang"})";

class ChangeStreamTest : public OwnDatabaseTest {
 public:  // the tests' local cleanups use them too
  explicit ChangeStreamTest(std::string prefix = "cs") : OwnDatabaseTest(std::move(prefix)) {}
  void TearDown() override {
    if (process_) process_->Signal(SIGKILL);
    OwnDatabaseTest::TearDown();
  }

  // The same statements on both servers (the schema both sides start with).
  void Both(const std::string& sql) {
    Psql(old_, sql);
    Psql(new_, sql);
  }
  // Through turnout's route (a relay to old).
  std::string ViaTurnout(const std::string& sql) {
    const auto& b = TestBackends::Get();
    const std::string conn = "postgresql://" + b.pg_user + ":" + b.pg_password + "@127.0.0.1:" +
                             std::to_string(pg_port_) + "/" + db_ + "?sslmode=disable";
    auto r = RunProgram({"psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", conn, "-c", sql});
    EXPECT_EQ(r.exit_code, 0) << sql << "\n" << r.err;
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }
  // Every row and column of `table`, in key order, as text.
  std::string Rows(int port, const std::string& table, const std::string& order = "1") {
    return Psql(port, "select t::text from " + table + " t order by " + order);
  }
  void ExpectSame(const std::string& table, const std::string& order = "1") {
    const std::string o = Rows(old_, table, order), n = Rows(new_, table, order);
    EXPECT_FALSE(o.empty()) << table;
    EXPECT_TRUE(o == n) << table << ": old and new differ\nold rows: " << std::count(o.begin(), o.end(), '\n') + 1
                        << "\nnew rows: " << std::count(n.begin(), n.end(), '\n') + 1;
  }
  int Slots(int port) {
    return std::atoi(Psql(port, "select count(*) from pg_replication_slots where database = '" + db_ + "'", "postgres").c_str());
  }

  // `protocol`: the route parses Postgres and routes by the strategy (else a
  // plain relay to old).
  // `new_port` / `new_db`: a cluster of the test's own as new (0: the harness').
  // `second_db`: a second route "pg2" moving that database (same servers).
  void StartTurnout(bool protocol = false, int new_port = 0, const std::string& new_db = "",
                    const std::string& second_db = "") {
    const auto& b = TestBackends::Get();
    if (!process_) {
      process_ = std::make_unique<TurnoutProcess>();
      admin_port_ = FreePort();
      pg_port_ = FreePort();
    }
    std::ofstream(process_->dir() + "/tokens") << kToken << " admin ops\n";
    std::ostringstream y;
    y << "instance_id: streamer\nworkers: 1\nadmin:\n  listen: 127.0.0.1:" << admin_port_
      << "\n  tokens_file: tokens\nstate_store:\n  path: state.json\njournal:\n  path: journal.log\nbackends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\", user: " << b.pg_user
      << ", password: " << b.pg_password << ", database: " << db_ << backend_options_ << "}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << (new_port ? new_port : b.pg_new_port)
      << "\", user: " << b.pg_user << ", password: " << b.pg_password
      << ", database: " << (new_db.empty() ? db_ : new_db) << backend_options_ << "}\n"
      << "routes:\n  - {name: pg, protocol: postgres, mode: " << (protocol ? "protocol" : "relay")
      << ", listen: \"127.0.0.1:" << pg_port_ << "\", old: pg-old}\n";
    if (!second_db.empty()) {
      y << "  - {name: pg2, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << FreePort() << "\", old: pg-old2}\n"
        << "backends:\n";
    }
    std::string yaml = y.str();
    if (!second_db.empty()) {
      // The second pair of backends goes with the first (one backends list).
      const std::string extra = "  - {name: pg-old2, protocol: postgres, address: \"127.0.0.1:" +
                                std::to_string(b.pg_old_port) + "\", user: " + b.pg_user + ", password: " +
                                b.pg_password + ", database: " + second_db + "}\n" +
                                "  - {name: pg-new2, protocol: postgres, address: \"127.0.0.1:" +
                                std::to_string(b.pg_new_port) + "\", user: " + b.pg_user + ", password: " +
                                b.pg_password + ", database: " + second_db + "}\n";
      yaml.erase(yaml.rfind("backends:\n"));
      yaml.insert(yaml.find("routes:\n"), extra);
    }
    ASSERT_TRUE(process_->Start(yaml, {admin_port_, pg_port_})) << process_->Log();
    admin_ = std::make_unique<AdminClient>(admin_port_, kToken);
  }

  void Migrate(const std::string& id, const std::string& data, const std::string& strategy,
               const std::vector<std::string>& tables) {
    std::string list;
    for (const auto& t : tables) list += (list.empty() ? "\"" : ",\"") + t + "\"";
    auto c = admin_->Post("/api/v1/migrations", R"({"id":")" + id + R"(","strategy":)" + strategy + R"(,"data":)" + data + "}");
    ASSERT_EQ(c.status, 201) << c.body;
    auto r = admin_->Post("/api/v1/migrations/" + id + "/interlay/pg", R"({"endpoint":"pg-new"})");
    ASSERT_EQ(r.status, 200) << r.body;
    if (!tables.empty()) {  // none: the migration moves every table
      auto s = admin_->Post("/api/v1/migrations/" + id + "/api/tables", R"({"tables":[)" + list + "]}");
      ASSERT_EQ(s.status, 200) << s.body;
    }
    auto m = admin_->Post("/api/v1/migrations/" + id + "/migrate");
    ASSERT_EQ(m.status, 200) << m.body;
  }
  json::value Get(const std::string& id) {
    auto r = admin_->Get("/api/v1/migrations/" + id, {"X-Verbose: true"});
    return r.status == 200 && r.json.is_object() ? r.json.at("data") : json::value(nullptr);
  }
  static std::string State(const json::value& m) { return m.is_object() ? std::string(m.at("state").as_string()) : ""; }
  static std::string StreamPhase(const json::value& m) {
    if (!m.is_object() || !m.as_object().contains("progress")) return "";
    for (const auto& r : m.at("progress").at("routes").as_array())
      if (auto* s = r.as_object().if_contains("stream")) return std::string(s->at("phase").as_string());
    return "";
  }
  json::value WaitFor(const std::string& id, const std::function<bool(const json::value&)>& done, int timeout_ms = 60000) {
    const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
    json::value m;
    do {
      m = Get(id);
      if (done(m)) return m;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (Clock::now() < until);
    return m;
  }
  json::value WaitStreaming(const std::string& id) {
    return WaitFor(id, [](const json::value& m) { return StreamPhase(m) == "streaming"; });
  }
  // Everything to new: the stream catches up with old and the migration completes.
  json::value Complete(const std::string& id) {
    auto p = admin_->Patch("/api/v1/migrations/" + id, std::string(R"({"strategy":)") + kBigBang + "}");
    EXPECT_EQ(p.status, 200) << p.body;
    return WaitFor(id, [](const json::value& m) { return State(m) == "Completed" || State(m) == "Failed"; });
  }
  std::string Log() const { return process_ ? process_->Log() : ""; }

  // pgbench through turnout for `seconds` with `clients`, running `script`.
  RunResult Pgbench(const std::string& script, int clients, int seconds) {
    const auto& b = TestBackends::Get();
    const std::string file = process_->dir() + "/bench.sql";
    std::ofstream(file) << script;
    return RunProgram({"pgbench", "-n", "-c", std::to_string(clients), "-j", "2", "-T", std::to_string(seconds), "-f",
                       file, "-h", "127.0.0.1", "-p", std::to_string(pg_port_), "-U", b.pg_user, db_},
                      "", {{"PGPASSWORD", b.pg_password}, {"PGSSLMODE", "disable"}}, 120000);
  }

  std::unique_ptr<TurnoutProcess> process_;
  int admin_port_ = 0, pg_port_ = 0;
  std::string backend_options_;  // e.g. ", pool: {idle: 8}": both backends, at StartTurnout
  std::unique_ptr<AdminClient> admin_;
};

}  // namespace turnout::testing
