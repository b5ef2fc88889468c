// A fleet of sidecars sharing the Postgres state store: a change made on one
// is applied by the other within one second (LISTEN/NOTIFY), and both route
// by the same policy version. A change reloads only the migration it names,
// and a data movement checkpoint republishes no route table anywhere.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/admin_client.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"
#include "tests/support/turnout_process.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
constexpr char kToken[] = "fleet-admin-token-0123456789";

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& b = TestBackends::Get();
    db_ = "fleet_" + std::to_string(::getpid());
    auto r = RunProgram({"psql", "-X", "-q", b.PgConnString(b.pg_old_port), "-c", "create database " + db_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override {
    const auto& b = TestBackends::Get();
    RunProgram({"psql", "-X", "-q", b.PgConnString(b.pg_old_port), "-c", "drop database if exists " + db_ + " with (force)"});
  }

  // `data_movement`: the backends carry the credentials a copy needs.
  std::string Config(const std::string& instance, int admin_port, int pg_port, bool data_movement = false) const {
    const auto& b = TestBackends::Get();
    const std::string login = data_movement ? ", user: " + b.pg_user + ", password: " + b.pg_password + ", database: app" : "";
    std::ostringstream y;
    y << "instance_id: " << instance << "\nworkers: 1\n"
      << "admin:\n  listen: 127.0.0.1:" << admin_port << "\n  tokens_file: tokens\n"
      << "state_store:\n  kind: postgres\n  dsn: \"" << b.PgConnString(b.pg_old_port, db_) << "\"\n"
      << "backends:\n"
      << "  - {name: pg-old, protocol: postgres, address: \"127.0.0.1:" << b.pg_old_port << "\"" << login << "}\n"
      << "  - {name: pg-new, protocol: postgres, address: \"127.0.0.1:" << b.pg_new_port << "\"" << login << "}\n"
      << "routes:\n"
      << "  - {name: pg, protocol: postgres, mode: relay, listen: \"127.0.0.1:" << pg_port << "\", old: pg-old, new: pg-new}\n";
    return y.str();
  }

  bool StartSidecar(TurnoutProcess& t, const std::string& instance, int admin_port, bool data_movement = false) {
    std::ofstream(t.dir() + "/tokens") << kToken << " admin fleet-ops\n";
    const int pg_port = FreePort();
    return t.Start(Config(instance, admin_port, pg_port, data_movement), {admin_port, pg_port});
  }

  std::string db_;
};

double ReadPercentage(const AdminClient& c, const std::string& id) {
  auto r = c.Get("/api/v1/migrations/" + id);
  if (r.status != 200) return -1;
  return r.json.at("data").at("strategy").at("read_percentage").to_number<double>();
}

TEST_F(FleetTest, APatchOnOneSidecarReachesTheOtherWithinOneSecond) {
  TurnoutProcess a, b;
  const int admin_a = FreePort(), admin_b = FreePort();
  ASSERT_TRUE(StartSidecar(a, "sidecar-a", admin_a)) << a.Log();
  ASSERT_TRUE(StartSidecar(b, "sidecar-b", admin_b)) << b.Log();
  AdminClient ca(admin_a, kToken), cb(admin_b, kToken);

  auto created = ca.Post("/api/v1/migrations",
                         R"({"id":"fleet_canary","strategy":{"type":"canary","read_percentage":0.05}})");
  ASSERT_EQ(created.status, 201) << created.body;

  auto wait_for = [&](double want) {
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
      if (ReadPercentage(cb, "fleet_canary") == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::chrono::steady_clock::now() - start;
  };
  EXPECT_LT(wait_for(0.05), std::chrono::seconds(1));

  ASSERT_EQ(ca.Patch("/api/v1/migrations/fleet_canary", R"({"strategy":{"type":"canary","read_percentage":0.25}})").status, 200);
  EXPECT_LT(wait_for(0.25), std::chrono::seconds(1));
  EXPECT_EQ(ReadPercentage(cb, "fleet_canary"), 0.25);

  // Both sidecars publish the same policy version for the route.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int port : {admin_a, admin_b}) {
    AdminClient anon(port, "");
    EXPECT_THAT(anon.Get("/metrics").body,
                HasSubstr("turnout_policy_version{migration=\"fleet_canary\",route=\"pg\"} 2")) << port;
  }
  // A write through B is rejected when it races A on the same revision: the
  // loser reloads and applies on top, so both changes land.
  std::thread t1([&] { ca.Patch("/api/v1/migrations/fleet_canary", R"({"description":"from a"})"); });
  std::thread t2([&] { cb.Patch("/api/v1/migrations/fleet_canary", R"({"failure_handling":"allow_partial"})"); });
  t1.join();
  t2.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto* c : {&ca, &cb}) {
    auto v = c->Get("/api/v1/migrations/fleet_canary");
    EXPECT_EQ(v.json.at("data").at("description").as_string(), "from a");
    EXPECT_EQ(v.json.at("data").at("failure_handling").as_string(), "allow_partial");
    EXPECT_EQ(v.json.at("data").at("revision").as_int64(), 4);
  }
}

// The value of the metric line starting with `series` ("name{labels}"), or -1.
double Metric(int admin_port, const std::string& series) { return AdminClient(admin_port, "").Metric(series); }

double Publishes(int admin_port) { return Metric(admin_port, "turnout_control_policy_publishes_total"); }

TEST_F(FleetTest, ADeleteOnOneSidecarReachesTheOtherWithinOneSecond) {
  TurnoutProcess a, b;
  const int admin_a = FreePort(), admin_b = FreePort();
  ASSERT_TRUE(StartSidecar(a, "sidecar-a", admin_a)) << a.Log();
  ASSERT_TRUE(StartSidecar(b, "sidecar-b", admin_b)) << b.Log();
  AdminClient ca(admin_a, kToken), cb(admin_b, kToken);
  ASSERT_EQ(ca.Post("/api/v1/migrations", R"({"id":"fleet_gone","strategy":{"type":"canary","read_percentage":0.1}})")
                .status,
            201);
  const auto seen = [&](int want) {
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
      if (cb.Get("/api/v1/migrations/fleet_gone").status == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::chrono::steady_clock::now() - start;
  };
  EXPECT_LT(seen(200), std::chrono::seconds(1));
  const std::string policy = "turnout_policy_version{migration=\"fleet_gone\",route=\"pg\"}";
  for (int i = 0; i < 50 && Metric(admin_b, policy) != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(Metric(admin_b, policy), 1);
  const double before = Publishes(admin_b);
  EXPECT_GT(before, 0);

  ASSERT_EQ(ca.Delete("/api/v1/migrations/fleet_gone").status, 200);
  EXPECT_LT(seen(404), std::chrono::seconds(1));
  EXPECT_EQ(cb.Get("/api/v1/migrations/fleet_gone").status, 404);
  // The route went back to its configured policy on B too.
  for (int i = 0; i < 50 && Metric(admin_b, policy) != -1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(Metric(admin_b, policy), -1);
  EXPECT_GT(Publishes(admin_b), before);

  // The id may be reused: B takes the new record (revision 1 again), not the old one.
  ASSERT_EQ(ca.Post("/api/v1/migrations", R"({"id":"fleet_gone","strategy":{"type":"canary","read_percentage":0.3}})")
                .status,
            201);
  EXPECT_LT(seen(200), std::chrono::seconds(1));
  EXPECT_EQ(ReadPercentage(cb, "fleet_gone"), 0.3);
}

TEST_F(FleetTest, CheckpointsOfADataMovementRepublishNoRouteTable) {
  const auto& backends = TestBackends::Get();
  const std::string table = "fleet_checkpoints_" + std::to_string(::getpid());
  auto psql = [&](int port, const std::string& sql) {
    auto r = RunProgram({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", backends.PgConnString(port, "app"), "-c", sql});
    EXPECT_EQ(r.exit_code, 0) << sql << "\n" << r.err;
  };
  for (int port : {backends.pg_old_port, backends.pg_new_port})
    psql(port, "drop table if exists " + table + "; create table " + table + " (id bigint primary key, v text)");
  psql(backends.pg_old_port, "insert into " + table + " select g, 'v' || g from generate_series(1, 600) g");
  {
    TurnoutProcess a, b;
    const int admin_a = FreePort(), admin_b = FreePort();
    ASSERT_TRUE(StartSidecar(a, "sidecar-a", admin_a, /*data_movement=*/true)) << a.Log();
    ASSERT_TRUE(StartSidecar(b, "sidecar-b", admin_b, /*data_movement=*/true)) << b.Log();
    AdminClient ca(admin_a, kToken), cb(admin_b, kToken);
    // 60 batches of 10 rows, each followed by a checkpoint: about 2 s of
    // copying by the keyset copier ("method": "copy").
    ASSERT_EQ(ca.Post("/api/v1/migrations", R"({"id":"fleet_copy","strategy":{"type":"big_bang"},)"
                                            R"("data":{"method":"copy","type":"scan","batch_size":10,"sleep_ms":30}})")
                  .status,
              201);
    ASSERT_EQ(ca.Post("/api/v1/migrations/fleet_copy/api/tables", R"({"tables":[")" + table + R"("]})").status, 200);
    ASSERT_EQ(ca.Post("/api/v1/migrations/fleet_copy/migrate").status, 200);

    auto copied = [&](const AdminClient& c) -> std::int64_t {
      auto r = c.Get("/api/v1/migrations/fleet_copy", {"X-Verbose: true"});
      if (r.status != 200) return -1;
      const auto* progress = r.json.at("data").as_object().if_contains("progress");
      if (progress == nullptr || !progress->is_object()) return -1;
      for (const auto& route : progress->at("routes").as_array())
        if (route.at("route").as_string() == "pg" && route.as_object().contains("copied"))
          return route.at("copied").to_number<std::int64_t>();
      return -1;
    };
    // The job has started (its audited start is behind us) and copies.
    std::int64_t first = -1;
    for (int i = 0; i < 500 && first <= 0; ++i) {
      first = copied(cb);
      if (first <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GT(first, 0);
    const double publishes_a = Publishes(admin_a), publishes_b = Publishes(admin_b);
    const std::string rows = "turnout_data_movement_rows_total{migration=\"fleet_copy\",route=\"pg\"}";
    const double rows_before = Metric(admin_b, rows);
    // Checkpoints arrive on B one after another ...
    std::set<std::int64_t> seen = {first};
    for (int i = 0; i < 500 && seen.size() < 8; ++i) {
      seen.insert(copied(cb));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const double publishes_a_after = Publishes(admin_a), publishes_b_after = Publishes(admin_b);
    const double rows_after = Metric(admin_b, rows);
    const std::int64_t last = copied(cb);
    ASSERT_GE(seen.size(), 8u);
    ASSERT_LT(last, 600) << "the job finished during the measurement: make it longer";
    // ... and reach the listeners that read them (metrics, data movement),
    // without a recompiled route table on either sidecar.
    EXPECT_GT(rows_after, rows_before);
    EXPECT_EQ(publishes_b_after, publishes_b);
    EXPECT_EQ(publishes_a_after, publishes_a);
    std::printf("%zu checkpoints seen on B; publications A %.0f, B %.0f\n", seen.size(), publishes_a_after,
                publishes_b_after);

    // Completing it changes routing: both republish.
    for (int i = 0; i < 600; ++i) {
      auto r = cb.Get("/api/v1/migrations/fleet_copy");
      if (r.status == 200 && r.json.at("data").at("state").as_string() == "Completed") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(cb.Get("/api/v1/migrations/fleet_copy").json.at("data").at("state").as_string(), "Completed");
    EXPECT_GT(Publishes(admin_b), publishes_b_after);
  }
  for (int port : {backends.pg_old_port, backends.pg_new_port}) psql(port, "drop table if exists " + table);
}

TEST_F(FleetTest, LosingTheStoreKeepsRoutingAndReportsNotReady) {
  TurnoutProcess t;
  const int admin = FreePort(), pg_port = FreePort();
  std::ofstream(t.dir() + "/tokens") << kToken << " admin x\n";
  ASSERT_TRUE(t.Start(Config("cut-off", admin, pg_port), {admin, pg_port})) << t.Log();
  AdminClient anon(admin, "");
  auto ready = [&] { return anon.Get("/readyz"); };
  for (int i = 0; i < 60 && ready().status != 200; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(ready().status, 200);
  const auto& b = TestBackends::Get();
  // Keep the store's database from accepting connections, then cut them.
  auto cut = RunProgram({"psql", "-X", "-q", b.PgConnString(b.pg_old_port), "-c",
                         "alter database " + db_ + " allow_connections false; select pg_terminate_backend(pid) "
                         "from pg_stat_activity where datname = '" + db_ + "'"});
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  int status = 0;
  for (int i = 0; i < 100 && status != 503; ++i) {
    status = ready().status;
    if (status != 503) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status, 503);
  EXPECT_THAT(ready().body, HasSubstr("state store unreachable"));
  // The data plane keeps routing with the policy it has.
  const std::string url = "postgres://" + b.pg_user + ":" + b.pg_password + "@127.0.0.1:" + std::to_string(pg_port) +
                          "/postgres?sslmode=disable";
  auto q = RunProgram({"psql", "-X", "-tA", url, "-c", "select 7"});
  EXPECT_EQ(q.out, "7\n") << q.err;
  RunProgram({"psql", "-X", "-q", b.PgConnString(b.pg_old_port), "-c", "alter database " + db_ + " allow_connections true"});
  for (int i = 0; i < 100 && ready().status != 200; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(ready().status, 200);
}

TEST_F(FleetTest, UnreachableStoreAtStartupStopsWithAClearMessage) {
  TurnoutProcess t;
  std::ofstream(t.dir() + "/tokens") << kToken << " admin x\n";
  std::string yaml = Config("lonely", FreePort(), FreePort());
  const auto& b = TestBackends::Get();
  const std::string from = "port=" + std::to_string(b.pg_old_port) + " dbname=";
  yaml.replace(yaml.find(from), from.size(), "port=" + std::to_string(FreePort()) + " dbname=");
  t.WriteConfig(yaml);
  auto r = RunProgram({TURNOUT_BINARY, "--config", t.ConfigPath()}, "", {}, 20000);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("startup failed"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr(b.pg_password)));
}

}  // namespace
}  // namespace turnout::testing
