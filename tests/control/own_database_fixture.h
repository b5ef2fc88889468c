#pragma once
// A test that works in a database of its own on both harness clusters:
// replication slots, publications and DDL triggers are per database, and
// the clusters are shared by tests running in parallel. The database (and
// any slot in it) is dropped afterwards.

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "routing/config.h"
#include "tests/support/backends.h"
#include "tests/support/process.h"

namespace turnout::testing {

class OwnDatabaseTest : public ::testing::Test {
 public:
  // `prefix` starts the database's name ("cs" → "cs_<pid>_<n>").
  explicit OwnDatabaseTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    const auto& b = TestBackends::Get();
    old_ = b.pg_old_port;
    new_ = b.pg_new_port;
    db_ = prefix_ + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    for (int port : {old_, new_}) {
      Psql(port, "drop database if exists " + db_ + " with (force)", "postgres");
      Psql(port, "create database " + db_, "postgres");
    }
  }
  void TearDown() override {
    for (int port : {old_, new_}) {
      Psql(port, "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = '" + db_ + "'",
           "postgres");
      Psql(port, "drop database if exists " + db_ + " with (force)", "postgres");
    }
  }

  // One statement through psql on `port`, in `db` (default: the test's own);
  // its output without the trailing newline.
  std::string Psql(int port, const std::string& sql, const std::string& db = "") {
    const auto& b = TestBackends::Get();
    auto r = RunProgram({"psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", b.PgConnString(port, db.empty() ? db_ : db),
                         "-c", sql});
    EXPECT_EQ(r.exit_code, 0) << sql << "\n" << r.err;
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }

  // The cluster on `port` as a configured backend ("pg-old" or "pg-new")
  // logged in to the test's database.
  routing::Backend BackendOf(int port) const {
    const auto& b = TestBackends::Get();
    routing::Backend out;
    out.name = port == old_ ? "pg-old" : "pg-new";
    out.address = {"127.0.0.1", static_cast<std::uint16_t>(port)};
    out.user = b.pg_user;
    out.password = b.pg_password;
    out.database = db_;
    return out;
  }

  int old_ = 0, new_ = 0;
  std::string db_;

 private:
  static inline int counter_ = 0;
  const std::string prefix_;
};

}  // namespace turnout::testing
