// turnout.yaml parsing: a valid file gives the model; each bad field gives a
// message that names the field and the problem.
#include "control/config_loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <string>

namespace turnout::control {
namespace {

using ::testing::HasSubstr;

constexpr char kValid[] = R"(
instance_id: sidecar-7
region: eu-west-1
workers: 2
log_level: debug
admin:
  listen: 127.0.0.1:9191
state_store:
  kind: file
  path: /tmp/state.json
limits:
  max_connections: 50
  max_message_size: 64MiB
  connect_timeout: 2s
  idle_timeout: 10m
  drain_timeout: 15s
  secondary_queue_ops: 100
  secondary_queue_size: 1MiB
  shadow_queue_ops: 0
backends:
  - name: pg-old
    protocol: postgres
    address: 10.0.0.1:5432
    user: app
    password: s3cret
    database: app
    pool: {idle: 16, idle_timeout: 30s, lifetime: 10m, reset_query: "RESET ALL"}
  - name: pg-new
    protocol: postgres
    address: "[::1]:5433"
    tls:
      mode: require
  - name: cache-old
    protocol: redis
    address: 127.0.0.1:6379
  - name: cache-new
    protocol: redis
    address: 127.0.0.1:6479
routes:
  - name: orders
    protocol: postgres
    listen: 127.0.0.1:6432
    old: pg-old
    new: pg-new
  - name: cache
    protocol: redis
    mode: relay
    listen: 127.0.0.1:6380
    old: cache-old
    new: cache-new
    strategy:
      type: canary
      read_percentage: 0.05
)";

TEST(ConfigLoaderTest, ParsesEveryFieldOfAValidFile) {
  auto c = ParseConfig(kValid);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->instance_id, "sidecar-7");
  EXPECT_EQ(c->region, "eu-west-1");
  EXPECT_EQ(c->workers, 2);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->admin.listen.port, 9191);
  EXPECT_EQ(c->state_store.path, "/tmp/state.json");
  EXPECT_EQ(c->limits.max_connections, 50);
  EXPECT_EQ(c->limits.max_message_bytes, 64u << 20);
  EXPECT_EQ(c->limits.connect_timeout, absl::Seconds(2));
  EXPECT_EQ(c->limits.idle_timeout, absl::Minutes(10));
  EXPECT_EQ(c->limits.drain_timeout, absl::Seconds(15));
  EXPECT_EQ(c->limits.secondary_queue_ops, 100u);
  EXPECT_EQ(c->limits.secondary_queue_bytes, 1u << 20);
  EXPECT_EQ(c->limits.shadow_queue_ops, 0u);
  ASSERT_EQ(c->backends.size(), 4u);
  EXPECT_EQ(c->backends[0].password, "s3cret");
  EXPECT_EQ(c->backends[1].address.host, "::1");
  EXPECT_EQ(c->backends[1].address.port, 5433);
  EXPECT_EQ(c->backends[1].tls_mode, routing::UpstreamTlsMode::kRequire);
  EXPECT_EQ(c->backends[0].pool.idle, 16);
  EXPECT_EQ(c->backends[0].pool.idle_timeout, absl::Seconds(30));
  EXPECT_EQ(c->backends[0].pool.lifetime, absl::Minutes(10));
  EXPECT_EQ(c->backends[0].pool.reset_query, "RESET ALL");
  EXPECT_EQ(c->backends[1].pool.idle, 0);  // off unless asked for
  EXPECT_EQ(c->backends[1].pool.reset_query, "DISCARD ALL");
  EXPECT_EQ(c->backends[2].protocol, routing::Protocol::kRedis);
  ASSERT_EQ(c->routes.size(), 2u);
  EXPECT_EQ(c->routes[0].mode, routing::RouteMode::kProtocol);
  EXPECT_EQ(c->routes[0].new_backend, "pg-new");
  EXPECT_EQ(c->routes[1].mode, routing::RouteMode::kRelay);
  const auto strategy = boost::json::parse(c->routes[1].strategy_json);
  EXPECT_EQ(strategy.at("type").as_string(), "canary");
  EXPECT_DOUBLE_EQ(strategy.at("read_percentage").as_double(), 0.05);
}

TEST(ConfigLoaderTest, DefaultsApplyWhenSectionsAreAbsent) {
  auto c = ParseConfig(R"(
backends: [{name: a, protocol: redis, address: "127.0.0.1:1"}]
routes: [{name: r, protocol: redis, listen: "127.0.0.1:2", old: a}]
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.max_connections, 1000);
  EXPECT_EQ(c->limits.max_message_bytes, 1ull << 30);
  EXPECT_EQ(c->limits.secondary_queue_ops, 4096u);
  EXPECT_EQ(c->limits.secondary_queue_bytes, 16u << 20);
  EXPECT_EQ(c->limits.shadow_queue_ops, 512u);
  EXPECT_EQ(c->admin.listen.ToString(), "127.0.0.1:9090");
  EXPECT_EQ(c->state_store.kind, routing::StateStoreKind::kFile);
}

TEST(ConfigLoaderTest, PasswordFromEnvironmentVariable) {
  ::setenv("TURNOUT_TEST_SECRET_PW", "from-env", 1);
  auto c = ParseConfig(R"(
backends: [{name: a, protocol: postgres, address: "127.0.0.1:1", password_env: TURNOUT_TEST_SECRET_PW}]
routes: [{name: r, protocol: postgres, listen: "127.0.0.1:2", old: a}]
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->backends[0].password, "from-env");
}

struct BadCase {
  const char* name;
  const char* yaml;
  const char* expected;  // substring of the error: the field path and the problem
};

constexpr char kBackends[] =
    "backends: [{name: a, protocol: postgres, address: \"127.0.0.1:1\"}, "
    "{name: c, protocol: redis, address: \"127.0.0.1:3\"}]\n";
constexpr char kRoutes[] = "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a}]\n";

std::string With(const std::string& extra, bool backends = true, bool routes = true) {
  return extra + (backends ? kBackends : "") + (routes ? kRoutes : "");
}

class ConfigLoaderBadFieldTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigLoaderBadFieldTest, NamesTheFieldAndTheProblem) {
  const BadCase& c = GetParam();
  auto r = ParseConfig(c.yaml);
  ASSERT_FALSE(r.ok()) << "accepted: " << c.yaml;
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.expected)) << c.yaml;
}

const std::string kCases[][3] = {
    {"unknown_top_level", With("colour: blue\n"), "colour: unknown field"},
    {"bad_workers", With("workers: many\n"), "workers: expected an integer, got \"many\""},
    {"workers_range", With("workers: 1000\n"), "workers: must be between 0 and 256, got 1000"},
    {"bad_log_level", With("log_level: loud\n"), "log_level: expected one of trace"},
    {"bad_log_format", With("log_format: xml\n"), "log_format: expected one of text, json, got \"xml\""},
    {"bad_admin_listen", With("admin: {listen: nowhere}\n"), "admin.listen: expected host:port, got \"nowhere\""},
    {"admin_port_range", With("admin: {listen: \"127.0.0.1:70000\"}\n"), "admin.listen: port must be 1-65535"},
    {"admin_unknown", With("admin: {port: 1}\n"), "admin.port: unknown field"},
    {"bad_store_kind", With("state_store: {kind: etcd}\n"), "state_store.kind: expected one of file, postgres, got \"etcd\""},
    {"store_pg_needs_dsn", With("state_store: {kind: postgres}\n"), "state_store.dsn: required when kind is postgres"},
    {"bad_max_connections", With("limits: {max_connections: 0}\n"), "limits.max_connections: must be between 1 and 1000000, got 0"},
    {"bad_message_size", With("limits: {max_message_size: huge}\n"), "limits.max_message_size: expected a size"},
    {"message_size_range", With("limits: {max_message_size: 2GiB}\n"), "limits.max_message_size: must be between"},
    {"bad_timeout", With("limits: {connect_timeout: soon}\n"), "limits.connect_timeout: expected a duration"},
    {"zero_connect_timeout", With("limits: {connect_timeout: 0s}\n"), "limits.connect_timeout: must be greater than zero"},
    {"limits_unknown", With("limits: {max_conns: 3}\n"), "limits.max_conns: unknown field"},
    {"zero_secondary_queue", With("limits: {secondary_queue_ops: 0}\n"),
     "limits.secondary_queue_ops: must be between 1 and 1048576, got 0"},
    {"no_backends", With("", false), "backends: expected a list with at least one backend"},
    {"no_routes", With("", true, false), "routes: expected a list with at least one route"},
    {"backend_no_name", "backends: [{protocol: redis, address: \"127.0.0.1:1\"}]\n", "backends[0].name: required"},
    {"backend_bad_protocol", "backends: [{name: a, protocol: mysql, address: \"127.0.0.1:1\"}]\n",
     "backends[0].protocol: expected one of postgres, redis, got \"mysql\""},
    {"backend_bad_address", "backends: [{name: a, protocol: redis, address: \"127.0.0.1\"}]\n",
     "backends[0].address: expected host:port"},
    {"backend_no_address", "backends: [{name: a, protocol: redis}]\n", "backends[0].address: required"},
    {"pool_on_redis", "backends: [{name: a, protocol: redis, address: \"h:1\", pool: {idle: 4}}]\n",
     "backends[0].pool: server connections are pooled for postgres backends only"},
    {"pool_unknown_key", "backends: [{name: a, protocol: postgres, address: \"h:1\", pool: {size: 4}}]\n",
     "backends[0].pool.size: unknown field"},
    {"pool_idle_range", "backends: [{name: a, protocol: postgres, address: \"h:1\", pool: {idle: -1}}]\n",
     "backends[0].pool.idle: must be between 0 and 10000, got -1"},
    {"pool_bad_timeout", "backends: [{name: a, protocol: postgres, address: \"h:1\", pool: {idle_timeout: soon}}]\n",
     "backends[0].pool.idle_timeout"},
    {"pool_empty_reset", "backends: [{name: a, protocol: postgres, address: \"h:1\", pool: {reset_query: \"\"}}]\n",
     "backends[0].pool.reset_query: must be a non-empty statement"},
    {"backend_bad_tls_mode", "backends: [{name: a, protocol: redis, address: \"h:1\", tls: {mode: maybe}}]\n",
     "backends[0].tls.mode: expected one of disable, require, verify-full, got \"maybe\""},
    {"backend_verify_needs_ca", "backends: [{name: a, protocol: redis, address: \"h:1\", tls: {mode: verify-full}}]\n",
     "backends[0].tls.ca_file: required when mode is verify-full"},
    {"backend_missing_ca", "backends: [{name: a, protocol: redis, address: \"h:1\", tls: {mode: verify-full, ca_file: /nonexistent/ca.crt}}]\n",
     "backends[0].tls.ca_file: file not found: /nonexistent/ca.crt"},
    {"backend_env_unset", "backends: [{name: a, protocol: redis, address: \"h:1\", password_env: TURNOUT_NO_SUCH_VAR}]\n",
     "backends[0].password_env: environment variable TURNOUT_NO_SUCH_VAR is not set"},
    {"backend_two_secrets", "backends: [{name: a, protocol: redis, address: \"h:1\", password: x, password_env: HOME}]\n",
     "backends[0].password: give only one of password, password_env, password_file"},
    {"backend_redis_db", "backends: [{name: a, protocol: redis, address: \"h:1\", redis_db: 16}]\n",
     "backends[0].redis_db: must be between 0 and 15, got 16"},
    {"duplicate_backend", "backends: [{name: a, protocol: redis, address: \"h:1\"}, {name: a, protocol: redis, address: \"h:2\"}]\n" + std::string(kRoutes),
     "backends[1].name: duplicate backend name \"a\""},
    {"route_no_old", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\"}]\n",
     "routes[0].old: required"},
    {"route_unknown_backend", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: zz}]\n",
     "routes[0].old: no backend named \"zz\""},
    {"route_protocol_mismatch", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: c}]\n",
     "routes[0].old: backend \"c\" speaks redis but the route speaks postgres"},
    {"route_new_same_as_old", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, new: a}]\n",
     "routes[0].new: must differ from old"},
    {"route_bad_mode", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, mode: magic}]\n",
     "routes[0].mode: expected one of protocol, relay, got \"magic\""},
    {"route_bad_auth", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, auth: ldap}]\n",
     "routes[0].auth: expected one of trust, md5, scram-sha-256, password, got \"ldap\""},
    {"route_auth_needs_users", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, auth: md5}]\n",
     "routes[0].users_file: required when auth is not trust"},
    {"route_tls_pair", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, tls: {cert_file: /etc/hostname}}]\n",
     "routes[0].tls.key_file: cert_file and key_file go together"},
    {"duplicate_listen", std::string(kBackends) +
         "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a}, {name: s, protocol: postgres, listen: \"127.0.0.1:2\", old: a}]\n",
     "routes[1].listen: address 127.0.0.1:2 is used by another route"},
    {"duplicate_route", std::string(kBackends) +
         "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a}, {name: r, protocol: postgres, listen: \"127.0.0.1:3\", old: a}]\n",
     "routes[1].name: duplicate route name \"r\""},
    {"route_on_admin_port", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:9090\", old: a}]\n",
     "routes[0].listen: address is the admin listener's"},
    {"route_unknown_field", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, olde: b}]\n",
     "routes[0].olde: unknown field"},
    {"static_strategy_field",
         "backends: [{name: a, protocol: postgres, address: \"h:1\"}, {name: b, protocol: postgres, address: \"h:2\"}]\n"
         "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, new: b, strategy: {type: canary, read_percentage: 7}}]\n",
     "routes[0]: strategy.read_percentage: must be between 0 and 1"},
    {"static_strategy_needs_new",
         "backends: [{name: a, protocol: postgres, address: \"h:1\"}]\n"
         "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, strategy: {type: big_bang}}]\n",
     "routes[0].strategy: a static strategy needs the route's `new` backend"},
    {"unknown_commands_value", std::string(kBackends) + "routes: [{name: r, protocol: redis, listen: \"127.0.0.1:2\", old: c, unknown_commands: maybe}]\n",
     "routes[0].unknown_commands: expected one of refuse, passthrough, got \"maybe\""},
    {"unknown_commands_pg", std::string(kBackends) + "routes: [{name: r, protocol: postgres, listen: \"127.0.0.1:2\", old: a, unknown_commands: passthrough}]\n",
     "routes[0].unknown_commands: applies to redis routes only"},
    {"not_yaml", "backends: [unclosed\n", "line "},
    {"not_a_mapping", "- just\n- a list\n", "the configuration must be a YAML mapping"},
};

std::vector<BadCase> BadCases() {
  std::vector<BadCase> out;
  for (const auto& c : kCases) out.push_back({c[0].c_str(), c[1].c_str(), c[2].c_str()});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fields, ConfigLoaderBadFieldTest, ::testing::ValuesIn(BadCases()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(ConfigLoaderTest, SecretsNeverAppearInErrors) {
  auto r = ParseConfig(R"(
backends: [{name: a, protocol: postgres, address: "127.0.0.1:1", password: hunter2, redis_db: 99}]
routes: [{name: r, protocol: postgres, listen: "127.0.0.1:2", old: a}]
)");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(HasSubstr("hunter2")));
}

TEST(ConfigLoaderTest, InstanceIdFromEnvironment) {
  ::setenv("TURNOUT_TEST_POD_NAME", "orders-api-7c9f-x2", 1);
  auto c = ParseConfig(R"(
instance_id_env: TURNOUT_TEST_POD_NAME
backends: [{name: a, protocol: redis, address: "127.0.0.1:1"}]
routes: [{name: r, protocol: redis, listen: "127.0.0.1:2", old: a}]
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->instance_id, "orders-api-7c9f-x2");
  auto missing = ParseConfig(R"(
instance_id_env: TURNOUT_TEST_NOT_SET_ANYWHERE
backends: [{name: a, protocol: redis, address: "127.0.0.1:1"}]
routes: [{name: r, protocol: redis, listen: "127.0.0.1:2", old: a}]
)");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("instance_id_env: environment variable TURNOUT_TEST_NOT_SET_ANYWHERE is not set"));
}

TEST(ConfigLoaderTest, ParseHostPort) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:5432")->port, 5432);
  EXPECT_EQ(ParseHostPort("db.internal:6379")->host, "db.internal");
  EXPECT_EQ(ParseHostPort("[::1]:1")->host, "::1");
  EXPECT_FALSE(ParseHostPort(":5432").ok());
  EXPECT_FALSE(ParseHostPort("host:").ok());
  EXPECT_FALSE(ParseHostPort("[::1]5432").ok());
  EXPECT_FALSE(ParseHostPort("host:0").ok());
}

}  // namespace
}  // namespace turnout::control
