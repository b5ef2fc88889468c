#pragma once
// The configuration model of a turnout process: what turnout.yaml declares.
// Plain values, validated by control/config_loader; the data plane reads an
// immutable copy. Durations are absl::Duration so no unit is ever implied.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace turnout::routing {

enum class Protocol { kPostgres, kRedis };
const char* ProtocolName(Protocol p);

// Upstream TLS, after libpq's sslmode (prefer/allow are not offered: a proxy
// should know whether its backend speaks TLS).
enum class UpstreamTlsMode { kDisable, kRequire, kVerifyFull };

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
  std::string ToString() const;
};

// Server connections kept after their client left (Postgres only): when a
// session ends between transactions, its connection is reset with
// `reset_query` and parked; a later client with the same login (user,
// database, startup parameters) takes it instead of a fresh one. Per
// worker thread, at most `idle` parked per login; closed after
// `idle_timeout` parked or `lifetime` since it was opened. idle 0: off.
struct BackendPool {
  int idle = 0;
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration lifetime = absl::Hours(1);
  std::string reset_query = "DISCARD ALL";
};

// One real database.
struct Backend {
  std::string name;
  Protocol protocol = Protocol::kPostgres;
  HostPort address;
  std::string user;      // Postgres role or Redis ACL user (empty: default)
  std::string password;  // resolved from password / password_env; never logged
  std::string database;  // Postgres database; empty means the client's
  int redis_db = 0;
  UpstreamTlsMode tls_mode = UpstreamTlsMode::kDisable;
  std::string tls_ca_file;      // verify-full trust anchor
  std::string tls_server_name;  // SNI and name check; default: host
  BackendPool pool;
};

// How a route handles its traffic.
//  kRelay: bytes both ways to the old backend, no protocol awareness.
//  kProtocol: the protocol-aware session (auth, classification, routing).
enum class RouteMode { kRelay, kProtocol };

// Client authentication terminated at turnout (protocol mode).
enum class ClientAuth { kTrust, kMd5, kScramSha256, kPassword };

struct ClientTls {
  std::string cert_file;  // empty: TLS not offered to clients
  std::string key_file;
  bool required = false;  // refuse clients that do not ask for TLS
};

// One client-facing listener.
struct Route {
  std::string name;
  Protocol protocol = Protocol::kPostgres;
  HostPort listen;
  RouteMode mode = RouteMode::kProtocol;
  std::string old_backend;
  std::string new_backend;  // empty outside a migration
  ClientAuth auth = ClientAuth::kTrust;
  std::string users_file;  // PgBouncer-style "user" "secret" lines
  ClientTls tls;
  // A static migration strategy as JSON text (GitOps); parsed by control.
  std::string strategy_json;
  // Redis: commands missing from the Redis 7.0 command table are refused
  // with Redis' own error (false), or sent to the authoritative side as
  // writes touching no known key (true) — for modules and newer servers.
  bool redis_unknown_passthrough = false;
};

struct Limits {
  int max_connections = 1000;  // per route; past it clients are refused
  std::uint64_t max_message_bytes = 1ull << 30;  // as the Postgres server
  std::uint32_t max_startup_bytes = 10000;       // as the Postgres server
  std::uint32_t buffer_bytes = 64 * 1024;        // per direction per session
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration idle_timeout = absl::ZeroDuration();  // zero: none
  absl::Duration drain_timeout = absl::Seconds(30);
  // Postgres dual-write carried by the change stream: how long a commit
  // (sync) or a read on new after the session's commit (async) waits for
  // new to apply it before it goes on without (counted in
  // turnout_stream_waits_total{result="timeout"}).
  absl::Duration stream_wait_timeout = absl::Seconds(5);
  // A cutover's write window (control/cutover.h): how long it may take for
  // open write transactions to finish on every sidecar and for the change
  // stream to catch up; past it the cutover is abandoned, writes resume on
  // the old side.
  absl::Duration cutover_timeout = absl::Seconds(30);
  // Secondary work of one session towards one backend, both protocols
  // (docs/secondary-work.md "Limits"): ops and their request bytes queued
  // and not yet finished, and how many of them may be shadow requests.
  // Past them a sync dual-write waits, an async one is journaled
  // (`dropped`), a shadow request is counted and dropped.
  std::size_t secondary_queue_ops = 4096;
  std::size_t secondary_queue_bytes = 16u << 20;
  std::size_t shadow_queue_ops = 512;
};

struct AdminListener {
  HostPort listen{"127.0.0.1", 9090};
  bool enabled = true;
  std::string jwt_secret;         // resolved from jwt_secret_file / env
  std::string tokens_file;        // static tokens: "<token> <role>" lines
  std::uint32_t max_body_bytes = 1 << 20;
};

enum class StateStoreKind { kFile, kPostgres };
struct StateStore {
  StateStoreKind kind = StateStoreKind::kFile;
  std::string path = "turnout-state.json";  // kFile
  std::string dsn;                          // kPostgres (libpq conninfo)
};

// The dual-write journal (routing/journal.h).
struct JournalSettings {
  std::string path;  // empty: beside the state file, or beside turnout.yaml
  std::size_t max_entries = 100000;
};

struct Config {
  std::string source_path;  // where it was read from, for reloads
  std::string instance_id = "turnout-0";
  std::string region;
  int workers = 0;  // zero: one per core
  std::string log_level = "info";
  std::string log_format = "text";  // text | json
  AdminListener admin;
  StateStore state_store;
  JournalSettings journal;
  Limits limits;
  std::vector<Backend> backends;
  std::vector<Route> routes;

  const Backend* FindBackend(std::string_view name) const;
  const Route* FindRoute(std::string_view name) const;
};

}  // namespace turnout::routing
