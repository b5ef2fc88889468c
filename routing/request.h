#pragma once
// What a session knows about one request when it asks the policy where to send
// it (DESIGN.md §2 "plan(route, request)"). Filled on the hot path from the
// classifier's output: every field is a value or a view, nothing is copied.
// The views must stay valid for the duration of the Policy::Decide call only.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace turnout::routing {

// The class of a statement or command. Unknown statements are kWrite
// (DESIGN.md §3 "Unknown means write").
enum class RequestClass : std::uint8_t {
  kRead,        // SELECT, GET, EVAL_RO ...
  kWrite,       // INSERT/UPDATE/DELETE, COPY FROM, SET (Redis), EVAL, PUBLISH ...
  kDdl,         // CREATE/ALTER/DROP/TRUNCATE ...
  kTxnControl,  // BEGIN/COMMIT/ROLLBACK/SAVEPOINT/PREPARE TRANSACTION, MULTI/EXEC/DISCARD
  kSession,     // SET/RESET/LISTEN/PREPARE (Postgres), SELECT/CLIENT SETNAME/HELLO (Redis)
  kAdmin,       // INFO/CONFIG/CLIENT LIST (Redis), administrative functions
};
inline constexpr int kRequestClassCount = 6;
std::string_view RequestClassName(RequestClass c) noexcept;

// Risk of a DDL statement, after schema-migration-risk-levels.md: SAFE (add a
// nullable column, add an index ...), MEDIUM (type widening, NOT NULL with a
// default ...), HIGH (DROP, type narrowing, TRUNCATE). kNone for non-DDL.
enum class DdlRisk : std::uint8_t { kNone, kSafe, kMedium, kHigh };
std::string_view DdlRiskName(DdlRisk r) noexcept;

// Who the client is. `address` is the peer host without the port, so that
// every connection of one client process hashes alike; a sidecar's clients
// are all local, so in practice user and application_name tell them apart.
struct ClientIdentity {
  std::string_view user;
  std::string_view application_name;  // Postgres application_name / Redis CLIENT SETNAME
  std::string_view address;
};

struct Request {
  RequestClass request_class = RequestClass::kWrite;
  // Tables (Postgres) or keys (Redis) the request touches, in statement order.
  // Tables are expected as the classifier normalises them: unquoted names
  // lower-cased, quotes removed, optionally schema-qualified ("sales.orders").
  std::span<const std::string_view> targets;
  ClientIdentity client;
  std::uint64_t connection_id = 0;  // unique per client connection in this process
  DdlRisk ddl_risk = DdlRisk::kNone;  // meaningful for kDdl only
  // ClientHash(client), when the session caches it (it changes only on
  // startup and CLIENT SETNAME); computed on demand when empty.
  std::optional<std::uint64_t> client_hash;
};

}  // namespace turnout::routing
