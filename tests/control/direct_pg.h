#pragma once
// A plain libpq connection to one harness cluster's database, for tests that
// set up and read tables behind turnout's back. Failures are test failures.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <string>

#include "tests/support/backends.h"

namespace turnout::testing {

class DirectPg {
 public:
  explicit DirectPg(int port, const std::string& dbname = "app")
      : c_(PQconnectdb(TestBackends::Get().PgConnString(port, dbname).c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) ADD_FAILURE() << "direct connection: " << PQerrorMessage(c_);
    PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
  }
  ~DirectPg() { PQfinish(c_); }
  DirectPg(const DirectPg&) = delete;
  DirectPg& operator=(const DirectPg&) = delete;

  // Runs `sql`; every row, columns joined by '|' (NULL as "∅"), rows by '\n'.
  std::string Rows(const std::string& sql) {
    std::string out;
    Run(sql, [&](PGresult* r) {
      for (int i = 0; i < PQntuples(r); ++i) {
        if (i > 0) out += '\n';
        for (int c = 0; c < PQnfields(r); ++c) {
          if (c > 0) out += '|';
          out += PQgetisnull(r, i, c) ? "∅" : PQgetvalue(r, i, c);
        }
      }
    });
    return out;
  }
  // Runs `sql`; the first column of the first row ("" when none or NULL).
  std::string Value(const std::string& sql) {
    std::string out;
    Run(sql, [&](PGresult* r) {
      if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) out = PQgetvalue(r, 0, 0);
    });
    return out;
  }

 private:
  template <typename Read>
  void Run(const std::string& sql, Read read) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    else if (st == PGRES_TUPLES_OK) read(r);
    PQclear(r);
  }

  PGconn* c_;
};

}  // namespace turnout::testing
