// PgStateStore against the harness' old Postgres cluster. Every test works
// in its own schema, NOTIFY channel and application_name (suffixed with the
// pid), so ctest may run the cases as parallel processes.

#include "control/pg_store.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/backends.h"

namespace turnout::control {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string Dsn() {
  const auto& b = turnout::testing::TestBackends::Get();
  return b.PgConnString(b.pg_old_port, "app");
}

// A direct connection for what the store must not do itself: inspecting
// tables, killing its backends, dropping the test schema.
class Direct {
 public:
  Direct() : c_(PQconnectdb(Dsn().c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) ADD_FAILURE() << "direct connection: " << PQerrorMessage(c_);
    PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
  }
  ~Direct() { PQfinish(c_); }
  // Runs `sql` with text parameters; returns the rows' first columns.
  std::vector<std::vector<std::string>> Query(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                               nullptr, 0);
    std::vector<std::vector<std::string>> rows;
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    for (int i = 0; st == PGRES_TUPLES_OK && i < PQntuples(r); ++i) {
      rows.emplace_back();
      for (int j = 0; j < PQnfields(r); ++j) rows.back().push_back(PQgetisnull(r, i, j) ? "<null>" : PQgetvalue(r, i, j));
    }
    PQclear(r);
    return rows;
  }

 private:
  PGconn* c_;
};

Migration Sample(const std::string& id, std::uint64_t revision) {
  Migration m;
  m.id = id;
  m.uuid = "00000000-0000-4000-8000-000000000001";
  m.description = "orders to the new cluster";
  m.strategy = boost::json::object{{"type", "canary"}, {"read_percentage", 0.05}};
  m.interlays.push_back({"orders", "postgres://new:5432/app"});
  m.apis.push_back({"orders", {"orders", "order_items"}, {}});
  m.created_at = m.updated_at = "2024-01-15T10:30:00Z";
  m.revision = revision;
  m.history.push_back({"2024-01-15T10:30:00Z", "alice", "create", nullptr, boost::json::object{{"state", "Pending"}}});
  return m;
}

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::string lower;
    for (char ch : test) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    suffix_ = lower.substr(0, 30) + "_" + std::to_string(::getpid());
    schema_ = "it_" + suffix_;
    Direct().Query("DROP SCHEMA IF EXISTS \"" + schema_ + "\" CASCADE");
  }
  void TearDown() override { Direct().Query("DROP SCHEMA IF EXISTS \"" + schema_ + "\" CASCADE"); }

  PgStateStore::Options Opts(const std::string& who = "a") const {
    PgStateStore::Options o;
    o.schema = schema_;
    o.channel = "ch_" + suffix_;
    o.application_name = "it-" + who + "-" + suffix_;
    return o;
  }
  std::unique_ptr<PgStateStore> OpenStore(const std::string& who = "a") {
    auto s = PgStateStore::Open(Dsn(), Opts(who));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  // Terminates every backend of store `who`; returns how many.
  int KillBackends(const std::string& who) {
    auto rows = Direct().Query(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE application_name = $1",
        {"it-" + who + "-" + suffix_});
    return rows.empty() ? 0 : std::stoi(rows[0][0]);
  }

  std::string suffix_, schema_;
};

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

TEST_F(PgStoreTest, CreateReadUpdateWithRevisionsAndConflicts) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Healthy());
  auto empty = store->LoadAll();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store->Put(Sample("orders", 1), 0).ok());
  auto again = store->Put(Sample("orders", 1), 0);
  EXPECT_EQ(again.code(), absl::StatusCode::kAborted) << again;

  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  const Migration& got = (*all)[0];
  EXPECT_EQ(got.id, "orders");
  EXPECT_EQ(got.revision, 1u);
  EXPECT_EQ(got.description, "orders to the new cluster");
  EXPECT_EQ(got.strategy.at("read_percentage").as_double(), 0.05);
  ASSERT_EQ(got.interlays.size(), 1u);
  EXPECT_EQ(got.interlays[0].endpoint, "postgres://new:5432/app");
  ASSERT_EQ(got.apis.size(), 1u);
  EXPECT_EQ(got.apis[0].tables.size(), 2u);
  ASSERT_EQ(got.history.size(), 1u);
  EXPECT_EQ(got.history[0].actor, "alice");

  Migration next = got;
  next.revision = 2;
  next.strategy.as_object()["read_percentage"] = 0.25;
  ASSERT_TRUE(store->Put(next, 1).ok());
  // A writer still holding revision 1 loses.
  auto stale = store->Put(next, 1);
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted) << stale;
  EXPECT_THAT(std::string(stale.message()), HasSubstr("revision 2"));
  // Updating something that does not exist is a conflict too.
  auto ghost = store->Put(Sample("ghost", 3), 2);
  EXPECT_EQ(ghost.code(), absl::StatusCode::kAborted) << ghost;

  all = store->LoadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].revision, 2u);
  EXPECT_EQ((*all)[0].strategy.at("read_percentage").as_double(), 0.25);

  EXPECT_EQ(store->Remove("orders", 1).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store->Remove("orders", 2).ok());
  EXPECT_EQ(store->Remove("orders", 2).code(), absl::StatusCode::kNotFound);
  all = store->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());

  // A second store on the same tables sees the same rows.
  ASSERT_TRUE(store->Put(Sample("carts", 1), 0).ok());
  auto other = OpenStore("b");
  ASSERT_NE(other, nullptr);
  auto seen = other->LoadAll();
  ASSERT_TRUE(seen.ok());
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ((*seen)[0].id, "carts");
  EXPECT_EQ(other->Put(Sample("carts", 1), 0).code(), absl::StatusCode::kAborted);
}

TEST_F(PgStoreTest, ConcurrentWritersOneWinsPerRevision) {
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Put(Sample("orders", 1), 0).ok());
  int wins = 0, aborted = 0;
  for (std::uint64_t rev = 1; rev <= 20; ++rev) {
    absl::Status sa, sb;
    std::thread ta([&] { sa = a->Put(Sample("orders", rev + 1), rev); });
    std::thread tb([&] { sb = b->Put(Sample("orders", rev + 1), rev); });
    ta.join();
    tb.join();
    for (const auto& s : {sa, sb}) {
      if (s.ok()) ++wins;
      else if (s.code() == absl::StatusCode::kAborted) ++aborted;
      else ADD_FAILURE() << s;
    }
  }
  EXPECT_EQ(wins, 20);
  EXPECT_EQ(aborted, 20);
}

TEST_F(PgStoreTest, TablesCreatedOnceWhenStoresStartTogether) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      auto s = PgStateStore::Open(Dsn(), Opts("s" + std::to_string(i)));
      if (s.ok()) ++ok;
      else ADD_FAILURE() << s.status();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  auto tables = Direct().Query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", {schema_});
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0][0], "turnout_audit");
  EXPECT_EQ(tables[1][0], "turnout_migrations");
}

TEST_F(PgStoreTest, AuditRowsAppendedForNewHistoryEntries) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Migration m = Sample("orders", 1);
  ASSERT_TRUE(store->Put(m, 0).ok());

  m.revision = 2;
  m.history.push_back({"2024-01-15T10:31:00Z", "bob", "patch", boost::json::object{{"read_percentage", 0.05}},
                       boost::json::object{{"read_percentage", 0.25}}});
  ASSERT_TRUE(store->Put(m, 1).ok());
  // No new entry, no new row.
  m.revision = 3;
  m.description = "renamed";
  ASSERT_TRUE(store->Put(m, 2).ok());
  // A caller that trims its history: only the entry after the stored last one is new.
  m.revision = 4;
  m.history.erase(m.history.begin());
  m.history.push_back({"not a time", "carol", "migrate", nullptr, nullptr});
  ASSERT_TRUE(store->Put(m, 3).ok());
  ASSERT_TRUE(store->Remove("orders", 4).ok());

  const std::string audit = "\"" + schema_ + "\".turnout_audit";
  auto rows = Direct().Query("SELECT migration_id, actor, action, before::text, after->>'read_percentage', "
                             "at IS NOT NULL FROM " + audit + " ORDER BY id");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"orders", "alice", "create", "<null>", "<null>", "t"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"orders", "bob", "patch", "{\"read_percentage\": 0.05}", "0.25", "t"}));
  EXPECT_EQ(rows[2][1], "carol");
  EXPECT_EQ(rows[2][2], "migrate");
  EXPECT_EQ(rows[3][1], "system");
  EXPECT_EQ(rows[3][2], "remove");
  EXPECT_THAT(rows[3][3], HasSubstr("renamed"));
  auto at = Direct().Query("SELECT at = '2024-01-15T10:31:00Z'::timestamptz FROM " + audit + " WHERE actor = 'bob'");
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0][0], "t");
}

TEST(ChangePayloadTest, RoundTripsAndAnythingElseMeansEverything) {
  using pg_detail::ChangePayload;
  using pg_detail::ParseChangePayload;
  EXPECT_EQ(ChangePayload("orders.v2", 17, false), "orders.v2 17");
  EXPECT_EQ(ChangePayload("orders", 0, true), "orders deleted");
  const StoreChange put = ParseChangePayload("orders.v2 17");
  EXPECT_EQ(put.id, "orders.v2");
  EXPECT_EQ(put.revision, 17u);
  EXPECT_FALSE(put.deleted);
  const StoreChange gone = ParseChangePayload("orders deleted");
  EXPECT_EQ(gone.id, "orders");
  EXPECT_TRUE(gone.deleted);
  // An older sidecar's bare id, and garbage: reload everything.
  for (const char* p : {"", "orders", " 3", "orders ", "orders x", "orders 0", "a b 3", "orders -1"})
    EXPECT_TRUE(ParseChangePayload(p).everything()) << '"' << p << '"';
}

TEST_F(PgStoreTest, WatchNamesTheChangedMigrationAndLoadReadsOnlyIt) {
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  ASSERT_TRUE(a && b);
  std::mutex mu;
  std::vector<StoreChange> heard;
  b->Watch([&](const StoreChange& change) {
    std::lock_guard<std::mutex> l(mu);
    heard.push_back(change);
  });
  auto count = [&] {
    std::lock_guard<std::mutex> l(mu);
    return heard.size();
  };
  ASSERT_TRUE(a->Put(Sample("orders", 1), 0).ok());
  ASSERT_TRUE(a->Put(Sample("carts", 1), 0).ok());
  ASSERT_TRUE(a->Put(Sample("orders", 2), 1).ok());
  ASSERT_TRUE(a->Remove("carts", 1).ok());
  // Notices that arrive together are merged per migration (the last wins).
  ASSERT_TRUE(WaitFor([&] { return count() >= 1; }, 1000ms));
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard<std::mutex> l(mu);
    ASSERT_FALSE(heard.empty());
    std::map<std::string, StoreChange> last;
    for (const auto& c : heard) {
      EXPECT_FALSE(c.everything());
      last[c.id] = c;
    }
    ASSERT_EQ(last.size(), 2u);
    EXPECT_EQ(last["orders"].revision, 2u);
    EXPECT_FALSE(last["orders"].deleted);
    EXPECT_TRUE(last["carts"].deleted);
    heard.clear();
  }
  auto orders = b->Load("orders");
  ASSERT_TRUE(orders.ok()) << orders.status();
  ASSERT_TRUE(orders->has_value());
  EXPECT_EQ((*orders)->revision, 2u);
  EXPECT_EQ((*orders)->description, "orders to the new cluster");
  auto carts = b->Load("carts");
  ASSERT_TRUE(carts.ok()) << carts.status();
  EXPECT_FALSE(carts->has_value());

  // A payload naming no migration (an older sidecar's bare id) means everything.
  Direct().Query("SELECT pg_notify($1, 'orders')", {Opts().channel});
  ASSERT_TRUE(WaitFor([&] { return count() >= 1; }, 1000ms));
  std::lock_guard<std::mutex> l(mu);
  EXPECT_TRUE(heard.front().everything());
}

TEST_F(PgStoreTest, WatchHearsOtherStoreWithinOneSecond) {
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  ASSERT_TRUE(a && b);
  std::atomic<int> a_calls{0}, b_calls{0};
  a->Watch([&](const StoreChange&) { ++a_calls; });
  b->Watch([&](const StoreChange&) { ++b_calls; });

  for (std::uint64_t rev = 1; rev <= 3; ++rev) {
    const int before = b_calls.load();
    const auto start = Clock::now();
    ASSERT_TRUE(a->Put(Sample("orders", rev), rev - 1).ok());
    ASSERT_TRUE(WaitFor([&] { return b_calls.load() > before; }, 2000ms));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    std::printf("change %d heard after %lld ms\n", static_cast<int>(rev), static_cast<long long>(took.count()));
    EXPECT_LT(took, 1000ms) << "change " << rev << " reached the other store after " << took.count() << " ms";
  }
  const int before = b_calls.load();
  ASSERT_TRUE(a->Remove("orders", 3).ok());
  EXPECT_TRUE(WaitFor([&] { return b_calls.load() > before; }, 1000ms));

  // The other direction works, and a store is not told of its own changes.
  ASSERT_TRUE(b->Put(Sample("carts", 1), 0).ok());
  EXPECT_TRUE(WaitFor([&] { return a_calls.load() == 1; }, 1000ms));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(a_calls.load(), 1);
  EXPECT_EQ(b_calls.load(), 4);

  // Stop() is prompt (the watcher polls at most 250 ms at a time).
  const auto stop_start = Clock::now();
  b->Stop();
  EXPECT_LT(Clock::now() - stop_start, 600ms);
  ASSERT_TRUE(a->Put(Sample("carts", 2), 1).ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(b_calls.load(), 4);
  a->Stop();
}

TEST_F(PgStoreTest, ExclusiveLockRefusedToOtherAndReleased) {
  auto a = OpenStore("a");
  auto b = OpenStore("b");
  ASSERT_TRUE(a && b);
  const std::string name = "backfill-" + suffix_;

  auto held = a->TryLockExclusive(name);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_NE(*held, nullptr);
  auto refused = b->TryLockExclusive(name);
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(*refused, nullptr);
  // Another name is independent.
  auto other = b->TryLockExclusive(name + "-other");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, nullptr);

  held->reset();  // released on destruction
  auto taken = b->TryLockExclusive(name);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_NE(*taken, nullptr);
  auto refused_a = a->TryLockExclusive(name);
  ASSERT_TRUE(refused_a.ok());
  EXPECT_EQ(*refused_a, nullptr);

  // The server drops the lock with the holder's connection.
  EXPECT_GE(KillBackends("b"), 1);
  auto after_kill = a->TryLockExclusive(name);
  ASSERT_TRUE(after_kill.ok()) << after_kill.status();
  EXPECT_NE(*after_kill, nullptr);
  taken->reset();  // destroying a lock whose connection died is harmless
}

TEST_F(PgStoreTest, OpenFailsNamingTheProblemButNotThePassword) {
  const auto& b = turnout::testing::TestBackends::Get();
  const std::string wrong = "wrong-pw-7f3a9c";
  auto bad_password = PgStateStore::Open("host=127.0.0.1 port=" + std::to_string(b.pg_old_port) +
                                             " dbname=app user=" + b.pg_user + " password=" + wrong,
                                         Opts());
  ASSERT_FALSE(bad_password.ok());
  EXPECT_EQ(bad_password.status().code(), absl::StatusCode::kUnavailable);
  const std::string m1(bad_password.status().message());
  EXPECT_THAT(m1, HasSubstr("password authentication failed"));
  EXPECT_THAT(m1, HasSubstr("port=" + std::to_string(b.pg_old_port)));
  EXPECT_THAT(m1, Not(HasSubstr(wrong)));
  std::printf("%s\n", m1.c_str());

  const int port = turnout::testing::FreePort();
  auto unreachable = PgStateStore::Open("postgresql://" + b.pg_user + ":" + wrong + "@127.0.0.1:" +
                                            std::to_string(port) + "/app",
                                        Opts());
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  const std::string m2(unreachable.status().message());
  EXPECT_THAT(m2, HasSubstr("Connection refused"));
  EXPECT_THAT(m2, HasSubstr(std::to_string(port)));
  EXPECT_THAT(m2, Not(HasSubstr(wrong)));
  std::printf("%s\n", m2.c_str());

  // A dsn libpq cannot parse is not echoed (it may hold the password).
  auto garbled = PgStateStore::Open("host=127.0.0.1 password " + wrong, Opts());
  ASSERT_FALSE(garbled.ok());
  EXPECT_EQ(garbled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(garbled.status().message()), Not(HasSubstr(wrong)));
}

TEST_F(PgStoreTest, HealthyFollowsTheServerConnection) {
  auto opts = Opts("a");
  // A long first backoff leaves time to observe the unhealthy state.
  opts.reconnect_min = 1500ms;
  std::vector<std::string> logs;
  std::mutex logs_mu;
  opts.log = [&](const std::string& line) {
    std::lock_guard<std::mutex> l(logs_mu);
    logs.push_back(line);
  };
  auto store = PgStateStore::Open(Dsn(), opts);
  ASSERT_TRUE(store.ok()) << store.status();
  auto& s = **store;
  std::atomic<int> calls{0};
  std::atomic<bool> everything{true};
  s.Watch([&](const StoreChange& change) {
    everything = everything && change.everything();
    ++calls;
  });
  ASSERT_TRUE(s.Healthy());

  EXPECT_GE(KillBackends("a"), 2);  // the command and the watcher connections
  EXPECT_TRUE(WaitFor([&] { return !s.Healthy(); }, 1000ms)) << "watcher did not notice the lost connection";
  EXPECT_TRUE(WaitFor([&] { return s.Healthy(); }, 5000ms)) << "watcher did not reconnect";
  // A change may have been missed while disconnected: one call, for everything.
  EXPECT_TRUE(WaitFor([&] { return calls.load() == 1; }, 1000ms));
  EXPECT_TRUE(everything.load());

  // The command connection was killed too; the next operation reconnects.
  auto all = s.LoadAll();
  EXPECT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(s.Healthy());

  // Without a watcher, an operation that finds its connection dead reports it.
  s.Stop();
  EXPECT_GE(KillBackends("a"), 1);
  ASSERT_TRUE(s.Put(Sample("orders", 1), 0).ok());  // reconnects before BEGIN
  EXPECT_TRUE(s.Healthy());

  std::lock_guard<std::mutex> l(logs_mu);
  ASSERT_FALSE(logs.empty());
  for (const auto& line : logs) EXPECT_THAT(line, Not(HasSubstr(turnout::testing::TestBackends::Get().pg_password)));
}

}  // namespace
}  // namespace turnout::control
