#include "control/pg_store.h"

#include <poll.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"

namespace turnout::control {
namespace json = boost::json;

// Migration ids hold no space (MigrationService's ValidId), so the last
// space splits the id from the revision.
std::string pg_detail::ChangePayload(const std::string& id, std::uint64_t revision, bool deleted) {
  return absl::StrCat(id, " ", deleted ? std::string("deleted") : std::to_string(revision));
}

StoreChange pg_detail::ParseChangePayload(const std::string& payload) {
  const auto space = payload.rfind(' ');
  if (space == std::string::npos || space == 0 || space + 1 == payload.size()) return {};
  StoreChange change;
  change.id = payload.substr(0, space);
  if (change.id.find(' ') != std::string::npos) return {};
  const std::string tail = payload.substr(space + 1);
  if (tail == "deleted") {
    change.deleted = true;
    return change;
  }
  if (!absl::SimpleAtoi(tail, &change.revision) || change.revision == 0) return {};
  return change;
}

namespace {

using std::chrono::milliseconds;

// The watcher's poll() timeout: bounds how long Stop() waits.
constexpr milliseconds kPollInterval{250};

// One parameterised statement (a null parameter is NULL), results in text
// form. A statement error is INTERNAL (ABORTED when a retry fixes it:
// PgRetryable); a lost connection is UNAVAILABLE. Messages are libpq's: the
// caller redacts them.
absl::StatusOr<PgResult> Exec(PGconn* c, const char* sql, const std::vector<const char*>& params = {}) {
  PgResult r = PgRun(c, sql, params);
  if (PgOk(r.get())) return r;
  if (PgConnectionLost(c))
    return absl::UnavailableError(absl::StrCat("connection lost: ", PgOneLine(PQerrorMessage(c))));
  const std::string message = PgOneLine(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(c));
  if (PgRetryable(r.get())) return absl::AbortedError(message);
  const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
  return absl::InternalError(state != nullptr ? absl::StrCat(message, " (SQLSTATE ", state, ")") : message);
}

// An audit `at`: the entry's RFC 3339 time, or NULL (the server uses now())
// when it does not parse, so a malformed entry never fails the Put.
std::optional<std::string> AuditTime(const std::string& at) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, at, &t, &err)) return std::nullopt;
  return at;
}

const char* OrNull(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

std::optional<std::string> JsonOrNull(const json::value& v) {
  if (v.is_null()) return std::nullopt;
  return json::serialize(v);
}

// Row `i` of `SELECT id, revision, body::text`.
absl::StatusOr<Migration> RowToMigration(const PGresult* r, int i) {
  const char* id = PQgetvalue(r, i, 0);
  boost::system::error_code ec;
  json::value v = json::parse(PQgetvalue(r, i, 2), ec);
  if (ec) return absl::DataLossError(absl::StrCat("migration ", id, ": stored body is not JSON: ", ec.message()));
  auto m = MigrationFromStored(v);
  if (!m.ok()) return absl::DataLossError(absl::StrCat("migration ", id, ": ", m.status().message()));
  // The column is what Put compares against.
  m->revision = std::strtoull(PQgetvalue(r, i, 1), nullptr, 10);
  return m;
}

// Held by TryLockExclusive's caller: a session-level advisory lock on its
// own connection. Closing the connection releases it too; the explicit
// unlock just makes the release immediate and visible in the server log.
class PgLock final : public ExclusiveLock {
 public:
  PgLock(PgConn conn, std::string key, bool shared)
      : conn_(std::move(conn)), key_(std::move(key)), shared_(shared) {}
  ~PgLock() override {
    if (!PgConnectionLost(conn_.get()))
      (void)Exec(conn_.get(),
                 shared_ ? "SELECT pg_advisory_unlock_shared(hashtext($1))" : "SELECT pg_advisory_unlock(hashtext($1))",
                 {key_.c_str()});
  }

 private:
  PgConn conn_;
  std::string key_;
  bool shared_;
};

}  // namespace

PgStateStore::PgStateStore(std::string dsn, Options options)
    : dsn_(std::move(dsn)), options_(std::move(options)), connect_timeout_(options_.connect_timeout) {}

PgStateStore::~PgStateStore() { Stop(); }

absl::StatusOr<std::unique_ptr<PgStateStore>> PgStateStore::Open(const std::string& dsn, Options options) {
  if (options.schema.empty() || options.channel.empty())
    return absl::InvalidArgumentError("postgres state store: schema and channel must not be empty");
  // NAMEDATALEN - 1: longer channel names are refused by pg_notify.
  if (options.channel.size() > 63)
    return absl::InvalidArgumentError("postgres state store: channel name longer than 63 bytes");
  std::unique_ptr<PgStateStore> store(new PgStateStore(dsn, std::move(options)));

  char* err = nullptr;
  PQconninfoOption* info = PQconninfoParse(dsn.c_str(), &err);
  if (info == nullptr) {
    // libpq quotes the offending fragment, which may be the password.
    if (err != nullptr) PQfreemem(err);
    return absl::InvalidArgumentError(
        "postgres state store: the dsn is not a valid libpq connection string (not shown: it may hold a password)");
  }
  std::string host, hostaddr, port, dbname, user;
  for (PQconninfoOption* o = info; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const std::string key = o->keyword;
    if (key == "host") host = o->val;
    else if (key == "hostaddr") hostaddr = o->val;
    else if (key == "port") port = o->val;
    else if (key == "dbname") dbname = o->val;
    else if (key == "user") user = o->val;
    else if (key == "password") store->password_ = o->val;
    else if (key == "connect_timeout") {
      const int seconds = std::atoi(o->val);
      if (seconds > 0) store->connect_timeout_ = std::chrono::seconds(std::max(seconds, 2));
    }
  }
  PQconninfoFree(info);
  store->target_ = absl::StrCat("host=", host.empty() ? (hostaddr.empty() ? "(default)" : hostaddr) : host,
                                " port=", port.empty() ? "(default)" : port,
                                " dbname=", dbname.empty() ? "(default)" : dbname,
                                " user=", user.empty() ? "(default)" : user);

  std::lock_guard<std::mutex> l(store->mu_);
  if (auto st = store->EnsureCommandConnLocked(); !st.ok()) return st;
  const std::string schema = PgIdentifier(store->conn_.get(), store->options_.schema);
  if (schema.empty()) return absl::InvalidArgumentError("postgres state store: invalid schema name");
  store->migrations_table_ = schema + ".turnout_migrations";
  store->audit_table_ = schema + ".turnout_audit";
  PGconn* c = store->conn_.get();
  absl::Status st = store->CreateTables(c);
  if (!st.ok()) {
    if (!PgConnectionLost(c)) (void)Exec(c, "ROLLBACK");
    return absl::Status(st.code(), store->Describe("creating tables", std::string(st.message())));
  }
  store->healthy_ = true;
  return store;
}

absl::Status PgStateStore::CreateTables(PGconn* c) {
  // Most starts find the tables in place: check without taking the lock, and
  // without CREATE … IF NOT EXISTS, which needs CREATE privileges even when
  // the object exists.
  auto exists = Exec(c, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                     {migrations_table_.c_str(), audit_table_.c_str()});
  if (!exists.ok()) return exists.status();
  if (std::strcmp(PQgetvalue(exists->get(), 0, 0), "t") == 0) return absl::OkStatus();

  // Two sidecars creating the same table at once can fail on the catalog's
  // unique indexes; the transaction-level lock serialises them.
  const std::string lock_key = "turnout:schema:" + options_.schema;
  const std::string schema = PgIdentifier(c, options_.schema);
  if (auto r = Exec(c, "BEGIN"); !r.ok()) return r.status();
  if (auto r = Exec(c, "SELECT pg_advisory_xact_lock(hashtext($1))", {lock_key.c_str()}); !r.ok()) return r.status();
  auto has_schema = Exec(c, "SELECT 1 FROM pg_namespace WHERE nspname = $1", {options_.schema.c_str()});
  if (!has_schema.ok()) return has_schema.status();
  std::vector<std::string> ddl;
  if (PQntuples(has_schema->get()) == 0) ddl.push_back("CREATE SCHEMA IF NOT EXISTS " + schema);
  ddl.push_back("CREATE TABLE IF NOT EXISTS " + migrations_table_ +
                " (id text PRIMARY KEY, revision bigint NOT NULL, body jsonb NOT NULL,"
                " updated_at timestamptz NOT NULL DEFAULT now())");
  ddl.push_back("CREATE TABLE IF NOT EXISTS " + audit_table_ +
                " (id bigserial PRIMARY KEY, migration_id text NOT NULL,"
                " at timestamptz NOT NULL DEFAULT now(), actor text, action text, before jsonb, after jsonb)");
  ddl.push_back("CREATE INDEX IF NOT EXISTS turnout_audit_migration_idx ON " + audit_table_ + " (migration_id, id)");
  ddl.push_back("COMMIT");
  for (const auto& sql : ddl) {
    auto r = Exec(c, sql.c_str());
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<PgConn> PgStateStore::Connect(const std::atomic<bool>* stopping) const {
  auto c = PgConnectDsn(dsn_, options_.application_name, connect_timeout_, stopping);
  if (c.ok()) return c;
  if (c.status().code() == absl::StatusCode::kCancelled) return absl::CancelledError("postgres state store: stopping");
  return absl::Status(c.status().code(), Describe("cannot connect", std::string(c.status().message())));
}

absl::Status PgStateStore::EnsureCommandConnLocked() {
  if (conn_ && PgStillConnected(conn_.get()) && PQtransactionStatus(conn_.get()) == PQTRANS_IDLE)
    return absl::OkStatus();
  conn_.reset();
  command_pid_ = 0;
  auto c = Connect(nullptr);
  if (!c.ok()) {
    healthy_ = false;
    return c.status();
  }
  conn_ = *std::move(c);
  command_pid_ = PQbackendPID(conn_.get());
  return absl::OkStatus();
}

absl::Status PgStateStore::RunTransaction(const char* what, const std::function<absl::Status(PGconn*)>& body) {
  std::lock_guard<std::mutex> l(mu_);
  // A connection that dies before BEGIN completes has done nothing: one
  // reconnect and retry is safe. Later failures are reported, not retried.
  for (int attempt = 0;; ++attempt) {
    if (auto st = EnsureCommandConnLocked(); !st.ok()) return st;
    auto begin = Exec(conn_.get(), "BEGIN");
    if (begin.ok()) break;
    if (!PgConnectionLost(conn_.get())) {
      conn_.reset();  // a connection that refuses BEGIN is in no state to reuse
      return absl::InternalError(Describe(what, std::string(begin.status().message())));
    }
    conn_.reset();
    command_pid_ = 0;
    if (attempt > 0) {
      healthy_ = false;
      return absl::UnavailableError(Describe(what, std::string(begin.status().message())));
    }
  }
  PGconn* c = conn_.get();
  absl::Status st = body(c);
  if (st.ok()) {
    auto commit = Exec(c, "COMMIT");
    if (!commit.ok())
      st = PgConnectionLost(c)
               ? absl::UnavailableError(absl::StrCat(commit.status().message(),
                                                     " (during COMMIT: the change may or may not be applied)"))
               : commit.status();
  } else if (!PgConnectionLost(c)) {
    (void)Exec(c, "ROLLBACK");
  }
  if (PgConnectionLost(c)) {
    conn_.reset();
    command_pid_ = 0;
    healthy_ = false;
    if (st.ok()) st = absl::UnavailableError("connection lost");
  } else {
    healthy_ = true;
  }
  if (st.code() == absl::StatusCode::kUnavailable || st.code() == absl::StatusCode::kInternal)
    return absl::Status(st.code(), Describe(what, std::string(st.message())));
  return st;
}

absl::StatusOr<std::vector<Migration>> PgStateStore::LoadAll() {
  std::vector<Migration> out;
  auto st = RunTransaction("load", [&](PGconn* c) -> absl::Status {
    out.clear();
    auto r = Exec(c, ("SELECT id, revision, body::text FROM " + migrations_table_ + " ORDER BY id").c_str());
    if (!r.ok()) return r.status();
    for (int i = 0; i < PQntuples(r->get()); ++i) {
      auto m = RowToMigration(r->get(), i);
      if (!m.ok()) return m.status();
      out.push_back(*std::move(m));
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::optional<Migration>> PgStateStore::Load(const std::string& id) {
  std::optional<Migration> out;
  auto st = RunTransaction("load", [&](PGconn* c) -> absl::Status {
    out.reset();
    auto r = Exec(c, ("SELECT id, revision, body::text FROM " + migrations_table_ + " WHERE id = $1").c_str(),
                  {id.c_str()});
    if (!r.ok()) return r.status();
    if (PQntuples(r->get()) == 0) return absl::OkStatus();
    auto m = RowToMigration(r->get(), 0);
    if (!m.ok()) return m.status();
    out = *std::move(m);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::Status PgStateStore::AppendAudit(PGconn* c, const Migration& m, std::size_t first) {
  const std::string sql = "INSERT INTO " + audit_table_ +
                          " (migration_id, at, actor, action, before, after)"
                          " VALUES ($1, coalesce($2::timestamptz, now()), $3, $4, $5::jsonb, $6::jsonb)";
  for (std::size_t i = first; i < m.history.size(); ++i) {
    const AuditEntry& e = m.history[i];
    const auto at = AuditTime(e.at);
    const auto before = JsonOrNull(e.before);
    const auto after = JsonOrNull(e.after);
    auto r = Exec(c, sql.c_str(),
                  {m.id.c_str(), OrNull(at), e.actor.c_str(), e.action.c_str(), OrNull(before), OrNull(after)});
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::Status PgStateStore::Put(const Migration& m, std::uint64_t expected_revision) {
  const json::object stored = MigrationToStored(m);
  const std::string body = json::serialize(stored);
  const std::string history = json::serialize(stored.at("history"));
  const std::string revision = std::to_string(m.revision);
  const std::string expected = std::to_string(expected_revision);
  return RunTransaction("put", [&](PGconn* c) -> absl::Status {
    std::size_t first_new = 0;  // first history entry not yet in the audit table
    if (expected_revision == 0) {
      auto r = Exec(c,
                    ("INSERT INTO " + migrations_table_ +
                     " (id, revision, body, updated_at) VALUES ($1, $2::bigint, $3::jsonb, now())"
                     " ON CONFLICT (id) DO NOTHING")
                        .c_str(),
                    {m.id.c_str(), revision.c_str(), body.c_str()});
      if (!r.ok()) return r.status();
      if (std::strcmp(PQcmdTuples(r->get()), "1") != 0)
        return absl::AbortedError(absl::StrCat("migration ", m.id, " already exists"));
    } else {
      // Lock the row at the expected revision and find where the stored
      // history ends inside the new one: entries after the stored last one
      // are new. Matching by value (at or before its old position) copes
      // with a caller that trims old entries.
      auto old = Exec(c,
                      ("SELECT (SELECT max(h.ord) FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS h(e, ord)"
                       "         WHERE h.e = t.body->'history'->-1 AND h.ord <= l.len), l.len"
                       " FROM " + migrations_table_ + " t CROSS JOIN LATERAL"
                       "  (SELECT CASE jsonb_typeof(t.body->'history') WHEN 'array'"
                       "     THEN jsonb_array_length(t.body->'history') ELSE 0 END AS len) l"
                       " WHERE t.id = $1 AND t.revision = $2::bigint FOR UPDATE OF t")
                          .c_str(),
                      {m.id.c_str(), expected.c_str(), history.c_str()});
      if (!old.ok()) return old.status();
      if (PQntuples(old->get()) == 0) {
        auto cur = Exec(c, ("SELECT revision FROM " + migrations_table_ + " WHERE id = $1").c_str(), {m.id.c_str()});
        if (!cur.ok()) return cur.status();
        if (PQntuples(cur->get()) == 0)
          return absl::AbortedError(absl::StrCat("migration ", m.id, " changed concurrently (it no longer exists)"));
        return absl::AbortedError(absl::StrCat("migration ", m.id, " changed concurrently (revision ",
                                               PQgetvalue(cur->get(), 0, 0), ")"));
      }
      if (!PQgetisnull(old->get(), 0, 0)) {
        first_new = std::strtoull(PQgetvalue(old->get(), 0, 0), nullptr, 10);  // 1-based ordinal
      } else {
        // The stored last entry is gone from the new history (rewritten):
        // count instead.
        const std::size_t old_len = std::strtoull(PQgetvalue(old->get(), 0, 1), nullptr, 10);
        first_new = std::min(old_len, m.history.size());
      }
      auto r = Exec(c,
                    ("UPDATE " + migrations_table_ +
                     " SET revision = $3::bigint, body = $4::jsonb, updated_at = now()"
                     " WHERE id = $1 AND revision = $2::bigint")
                        .c_str(),
                    {m.id.c_str(), expected.c_str(), revision.c_str(), body.c_str()});
      if (!r.ok()) return r.status();
      if (std::strcmp(PQcmdTuples(r->get()), "1") != 0)
        return absl::AbortedError(absl::StrCat("migration ", m.id, " changed concurrently"));
    }
    if (auto st = AppendAudit(c, m, first_new); !st.ok()) return st;
    const std::string payload = pg_detail::ChangePayload(m.id, m.revision, false);
    auto n = Exec(c, "SELECT pg_notify($1, $2)", {options_.channel.c_str(), payload.c_str()});
    return n.ok() ? absl::OkStatus() : n.status();
  });
}

absl::Status PgStateStore::Remove(const std::string& id, std::uint64_t expected_revision) {
  const std::string expected = std::to_string(expected_revision);
  return RunTransaction("remove", [&](PGconn* c) -> absl::Status {
    auto r = Exec(c,
                  ("DELETE FROM " + migrations_table_ + " WHERE id = $1 AND revision = $2::bigint RETURNING body::text")
                      .c_str(),
                  {id.c_str(), expected.c_str()});
    if (!r.ok()) return r.status();
    if (PQntuples(r->get()) == 0) {
      auto cur = Exec(c, ("SELECT revision FROM " + migrations_table_ + " WHERE id = $1").c_str(), {id.c_str()});
      if (!cur.ok()) return cur.status();
      if (PQntuples(cur->get()) == 0) return absl::NotFoundError(absl::StrCat("migration ", id, " not found"));
      return absl::AbortedError(absl::StrCat("migration ", id, " changed concurrently (revision ",
                                             PQgetvalue(cur->get(), 0, 0), ")"));
    }
    // The record and its history go; the audit table keeps them, and this
    // row says when. The interface carries no actor.
    auto a = Exec(c,
                  ("INSERT INTO " + audit_table_ +
                   " (migration_id, at, actor, action, before, after) VALUES ($1, now(), 'system', 'remove', $2::jsonb, NULL)")
                      .c_str(),
                  {id.c_str(), PQgetvalue(r->get(), 0, 0)});
    if (!a.ok()) return a.status();
    const std::string payload = pg_detail::ChangePayload(id, 0, true);
    auto n = Exec(c, "SELECT pg_notify($1, $2)", {options_.channel.c_str(), payload.c_str()});
    return n.ok() ? absl::OkStatus() : n.status();
  });
}

absl::StatusOr<std::unique_ptr<ExclusiveLock>> PgStateStore::TryLockExclusive(const std::string& name) {
  return TryLock(name, /*shared=*/false);
}

absl::StatusOr<std::unique_ptr<ExclusiveLock>> PgStateStore::TryLockShared(const std::string& name) {
  return TryLock(name, /*shared=*/true);
}

absl::StatusOr<std::unique_ptr<ExclusiveLock>> PgStateStore::TryLock(const std::string& name, bool shared) {
  auto conn = Connect(nullptr);
  if (!conn.ok()) {
    healthy_ = false;
    return conn.status();
  }
  const std::string key = "turnout:" + name;
  auto r = Exec(conn->get(),
                shared ? "SELECT pg_try_advisory_lock_shared(hashtext($1))" : "SELECT pg_try_advisory_lock(hashtext($1))",
                {key.c_str()});
  if (!r.ok()) {
    if (PgConnectionLost(conn->get())) healthy_ = false;
    return absl::Status(r.status().code() == absl::StatusCode::kUnavailable ? absl::StatusCode::kUnavailable
                                                                              : absl::StatusCode::kInternal,
                        Describe(absl::StrCat("lock ", name), std::string(r.status().message())));
  }
  healthy_ = true;
  if (std::strcmp(PQgetvalue(r->get(), 0, 0), "t") != 0) return std::unique_ptr<ExclusiveLock>();
  return std::unique_ptr<ExclusiveLock>(new PgLock(*std::move(conn), key, shared));
}

absl::Status PgStateStore::Listen(PGconn* c) const {
  // LISTEN takes an identifier, not a parameter: quote it.
  const std::string channel = PgIdentifier(c, options_.channel);
  if (channel.empty()) return absl::InvalidArgumentError("invalid channel name");
  auto r = Exec(c, ("LISTEN " + channel).c_str());
  return r.ok() ? absl::OkStatus() : r.status();
}

void PgStateStore::Watch(std::function<void(const StoreChange&)> on_change) {
  std::lock_guard<std::mutex> l(watch_mu_);
  StopLocked();
  stopping_ = false;
  // Listening before Watch returns means a change committed after it is
  // never missed; if the server is down the thread keeps trying and calls
  // `on_change` once it is back.
  PgConn conn;
  auto c = Connect(&stopping_);
  absl::Status st = c.ok() ? Listen(c->get()) : c.status();
  if (st.ok()) {
    conn = *std::move(c);
  } else {
    healthy_ = false;
    Log(absl::StrCat("watch: ", Describe("listen", std::string(st.message())), "; retrying"));
  }
  watcher_ = std::thread(&PgStateStore::WatchLoop, this, std::move(conn), std::move(on_change));
}

void PgStateStore::WatchLoop(PgConn conn, std::function<void(const StoreChange&)> on_change) {
  milliseconds backoff = options_.reconnect_min;
  while (!stopping_) {
    if (!conn) {
      auto c = Connect(&stopping_);
      absl::Status st = c.ok() ? Listen(c->get()) : c.status();
      if (stopping_) break;
      if (!st.ok()) {
        healthy_ = false;
        Log(absl::StrCat("watch: ", Describe("reconnect", std::string(st.message())), "; retrying in ",
                         backoff.count(), " ms"));
        SleepUnlessStopped(backoff);
        backoff = std::min(backoff * 2, options_.reconnect_max);
        continue;
      }
      conn = *std::move(c);
      backoff = options_.reconnect_min;
      healthy_ = true;
      Log("watch: reconnected to " + target_);
      // Notifications sent while no connection listened are gone.
      on_change(StoreChange{});
    }
    pollfd p{PQsocket(conn.get()), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(kPollInterval.count()));
    if (stopping_) break;
    if (n == 0 || (n < 0 && errno == EINTR)) continue;
    const bool lost = n < 0 || PQconsumeInput(conn.get()) == 0 || PgConnectionLost(conn.get());
    // One call per migration named in this batch (its last notice), or a
    // single "everything" call when any notice names none.
    std::vector<StoreChange> changes;
    bool everything = false;
    while (PgNotify note = PgNextNotify(conn.get())) {
      // Our own changes: the caller already knows.
      if (note->be_pid != command_pid_.load()) {
        StoreChange change = pg_detail::ParseChangePayload(note->extra != nullptr ? note->extra : "");
        everything |= change.everything();
        std::erase_if(changes, [&](const StoreChange& c) { return c.id == change.id; });
        changes.push_back(std::move(change));
      }
    }
    if (everything) on_change(StoreChange{});
    else
      for (const auto& change : changes) on_change(change);
    if (lost) {
      healthy_ = false;
      Log(absl::StrCat("watch: ", Describe("listen", PgOneLine(PQerrorMessage(conn.get()))), "; reconnecting"));
      conn.reset();
      SleepUnlessStopped(backoff);
    }
  }
}

void PgStateStore::Stop() {
  std::lock_guard<std::mutex> l(watch_mu_);
  StopLocked();
}

void PgStateStore::StopLocked() {
  if (!watcher_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  // From inside `on_change` a join would wait for itself.
  if (watcher_.get_id() == std::this_thread::get_id()) watcher_.detach();
  else watcher_.join();
}

void PgStateStore::SleepUnlessStopped(milliseconds d) {
  std::unique_lock<std::mutex> l(stop_mu_);
  stop_cv_.wait_for(l, d, [this] { return stopping_.load(); });
}

void PgStateStore::Log(const std::string& message) const {
  if (options_.log) options_.log(Redact(message));
}

std::string PgStateStore::Describe(const std::string& what, const std::string& message) const {
  return Redact(absl::StrCat("postgres state store (", target_, "): ", what, ": ", message));
}

std::string PgStateStore::Redact(std::string message) const {
  if (!dsn_.empty()) message = absl::StrReplaceAll(message, {{dsn_, "(dsn)"}});
  if (!password_.empty()) message = absl::StrReplaceAll(message, {{password_, "****"}});
  return message;
}

}  // namespace turnout::control
