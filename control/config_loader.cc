#include "control/config_loader.h"

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/strategy_json.h"

namespace turnout::control {

boost::json::value YamlToJson(const YAML::Node& n);

namespace {

using routing::Config;

// Errors are collected as the first failure; a path string tracks where we are.
class Reader {
 public:
  explicit Reader(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  absl::Status status() const { return status_; }
  bool ok() const { return status_.ok(); }

  void Fail(const std::string& path, absl::string_view problem) {
    if (status_.ok())
      status_ = absl::InvalidArgumentError(absl::StrCat(path, ": ", problem));
  }

  // Refuses keys this section does not define: a typo must not pass silently.
  void CheckKeys(const YAML::Node& node, const std::string& path,
                 std::initializer_list<absl::string_view> allowed) {
    if (!node.IsMap()) {
      Fail(path, "expected a mapping");
      return;
    }
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>("");
      bool known = false;
      for (auto a : allowed) known |= (a == key);
      if (!known) {
        Fail(Join(path, key), absl::StrCat("unknown field (allowed: ", absl::StrJoin(allowed, ", "), ")"));
        return;
      }
    }
  }

  static std::string Join(const std::string& path, absl::string_view key) {
    return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
  }

  std::string String(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) {
      Fail(path, "expected a string");
      return {};
    }
    return n.Scalar();
  }

  template <typename Int>
  Int Integer(const YAML::Node& n, const std::string& path, long long lo, long long hi) {
    long long v = 0;
    if (!n.IsScalar() || !absl::SimpleAtoi(n.Scalar(), &v)) {
      Fail(path, absl::StrCat("expected an integer, got \"", n.IsScalar() ? n.Scalar() : "", "\""));
      return 0;
    }
    if (v < lo || v > hi) {
      Fail(path, absl::StrCat("must be between ", lo, " and ", hi, ", got ", v));
      return 0;
    }
    return static_cast<Int>(v);
  }

  // Sizes accept plain bytes or a KiB/MiB/GiB suffix.
  std::uint64_t Size(const YAML::Node& n, const std::string& path, std::uint64_t lo, std::uint64_t hi) {
    std::string text = n.IsScalar() ? n.Scalar() : "";
    std::uint64_t mult = 1;
    for (auto [suffix, m] : {std::pair<std::string_view, std::uint64_t>{"KiB", 1ull << 10},
                             {"MiB", 1ull << 20}, {"GiB", 1ull << 30}}) {
      if (text.size() > suffix.size() && std::string_view(text).ends_with(suffix)) {
        text.resize(text.size() - suffix.size());
        mult = m;
        break;
      }
    }
    std::uint64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v)) {
      Fail(path, absl::StrCat("expected a size such as 65536 or 64KiB, got \"",
                              n.IsScalar() ? n.Scalar() : "", "\""));
      return 0;
    }
    v *= mult;
    if (v < lo || v > hi) {
      Fail(path, absl::StrCat("must be between ", lo, " and ", hi, " bytes, got ", v));
      return 0;
    }
    return v;
  }

  absl::Duration Duration(const YAML::Node& n, const std::string& path) {
    absl::Duration d;
    if (!n.IsScalar() || !absl::ParseDuration(n.Scalar(), &d) || d < absl::ZeroDuration()) {
      Fail(path, absl::StrCat("expected a duration such as 500ms, 5s or 2m, got \"",
                              n.IsScalar() ? n.Scalar() : "", "\""));
      return absl::ZeroDuration();
    }
    return d;
  }

  bool Bool(const YAML::Node& n, const std::string& path) {
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) Fail(path, "expected true or false");
    return v;
  }

  template <typename Enum>
  Enum Choice(const YAML::Node& n, const std::string& path,
              std::initializer_list<std::pair<absl::string_view, Enum>> choices) {
    const std::string s = n.IsScalar() ? n.Scalar() : "";
    std::vector<absl::string_view> names;
    for (const auto& [name, value] : choices) {
      if (name == s) return value;
      names.push_back(name);
    }
    Fail(path, absl::StrCat("expected one of ", absl::StrJoin(names, ", "), ", got \"", s, "\""));
    return choices.begin()->second;
  }

  routing::HostPort Address(const YAML::Node& n, const std::string& path) {
    auto hp = ParseHostPort(n.IsScalar() ? n.Scalar() : "");
    if (!hp.ok()) {
      Fail(path, hp.status().message());
      return {};
    }
    return *hp;
  }

  // A file path, relative to the config file's folder; it must exist.
  std::string ExistingFile(const YAML::Node& n, const std::string& path) {
    std::string p = String(n, path);
    if (!ok()) return {};
    std::filesystem::path fp(p);
    if (fp.is_relative() && !base_dir_.empty()) fp = std::filesystem::path(base_dir_) / fp;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(fp, ec)) {
      Fail(path, absl::StrCat("file not found: ", fp.string()));
      return {};
    }
    return fp.string();
  }

  std::string RelativeTo(const std::string& p) const {
    std::filesystem::path fp(p);
    if (fp.is_relative() && !base_dir_.empty()) fp = std::filesystem::path(base_dir_) / fp;
    return fp.string();
  }

  // A secret given inline, by environment variable name, or in a file.
  std::string Secret(const YAML::Node& parent, const std::string& path, absl::string_view key) {
    const std::string inline_key(key), env_key = absl::StrCat(key, "_env"),
                                       file_key = absl::StrCat(key, "_file");
    int given = 0;
    std::string value;
    if (parent[inline_key]) {
      ++given;
      value = String(parent[inline_key], Join(path, inline_key));
    }
    if (parent[env_key]) {
      ++given;
      const std::string var = String(parent[env_key], Join(path, env_key));
      const char* v = var.empty() ? nullptr : std::getenv(var.c_str());
      if (ok() && v == nullptr)
        Fail(Join(path, env_key), absl::StrCat("environment variable ", var, " is not set"));
      if (v) value = v;
    }
    if (parent[file_key]) {
      ++given;
      const std::string f = ExistingFile(parent[file_key], Join(path, file_key));
      if (ok()) {
        std::ifstream in(f);
        std::stringstream ss;
        ss << in.rdbuf();
        value = std::string(absl::StripTrailingAsciiWhitespace(ss.str()));
      }
    }
    if (given > 1)
      Fail(Join(path, inline_key), absl::StrCat("give only one of ", inline_key, ", ", env_key, ", ", file_key));
    return value;
  }

 private:
  std::string base_dir_;
  absl::Status status_;
};

void ReadBackendPool(Reader& r, const YAML::Node& n, const std::string& path, routing::Backend* b) {
  r.CheckKeys(n, path, {"idle", "idle_timeout", "lifetime", "reset_query"});
  if (!r.ok()) return;
  if (b->protocol != routing::Protocol::kPostgres) {
    r.Fail(path, "server connections are pooled for postgres backends only");
    return;
  }
  routing::BackendPool& p = b->pool;
  if (n["idle"]) p.idle = r.Integer<int>(n["idle"], Reader::Join(path, "idle"), 0, 10000);
  if (n["idle_timeout"]) p.idle_timeout = r.Duration(n["idle_timeout"], Reader::Join(path, "idle_timeout"));
  if (n["lifetime"]) p.lifetime = r.Duration(n["lifetime"], Reader::Join(path, "lifetime"));
  if (n["reset_query"]) {
    p.reset_query = r.String(n["reset_query"], Reader::Join(path, "reset_query"));
    // One simple Query: its text must fit a C string.
    if (p.reset_query.empty() || p.reset_query.find('\0') != std::string::npos)
      r.Fail(Reader::Join(path, "reset_query"), "must be a non-empty statement");
  }
}

routing::Backend ReadBackend(Reader& r, const YAML::Node& n, const std::string& path) {
  routing::Backend b;
  r.CheckKeys(n, path, {"name", "protocol", "address", "user", "password", "password_env",
                        "password_file", "database", "redis_db", "tls", "pool"});
  if (!r.ok()) return b;
  if (!n["name"]) r.Fail(Reader::Join(path, "name"), "required");
  else b.name = r.String(n["name"], Reader::Join(path, "name"));
  if (!n["protocol"]) r.Fail(Reader::Join(path, "protocol"), "required");
  else
    b.protocol = r.Choice<routing::Protocol>(n["protocol"], Reader::Join(path, "protocol"),
                                             {{"postgres", routing::Protocol::kPostgres},
                                              {"redis", routing::Protocol::kRedis}});
  if (!n["address"]) r.Fail(Reader::Join(path, "address"), "required");
  else b.address = r.Address(n["address"], Reader::Join(path, "address"));
  if (n["user"]) b.user = r.String(n["user"], Reader::Join(path, "user"));
  b.password = r.Secret(n, path, "password");
  if (n["database"]) b.database = r.String(n["database"], Reader::Join(path, "database"));
  if (n["redis_db"]) b.redis_db = r.Integer<int>(n["redis_db"], Reader::Join(path, "redis_db"), 0, 15);
  if (const auto tls = n["tls"]) {
    const std::string tp = Reader::Join(path, "tls");
    r.CheckKeys(tls, tp, {"mode", "ca_file", "server_name"});
    if (!r.ok()) return b;
    if (tls["mode"])
      b.tls_mode = r.Choice<routing::UpstreamTlsMode>(
          tls["mode"], Reader::Join(tp, "mode"),
          {{"disable", routing::UpstreamTlsMode::kDisable},
           {"require", routing::UpstreamTlsMode::kRequire},
           {"verify-full", routing::UpstreamTlsMode::kVerifyFull}});
    if (tls["ca_file"]) b.tls_ca_file = r.ExistingFile(tls["ca_file"], Reader::Join(tp, "ca_file"));
    if (tls["server_name"]) b.tls_server_name = r.String(tls["server_name"], Reader::Join(tp, "server_name"));
    if (r.ok() && b.tls_mode == routing::UpstreamTlsMode::kVerifyFull && b.tls_ca_file.empty())
      r.Fail(Reader::Join(tp, "ca_file"), "required when mode is verify-full");
  }
  if (const auto pool = n["pool"]) ReadBackendPool(r, pool, Reader::Join(path, "pool"), &b);
  return b;
}

routing::Route ReadRoute(Reader& r, const YAML::Node& n, const std::string& path) {
  routing::Route rt;
  r.CheckKeys(n, path, {"name", "protocol", "listen", "mode", "old", "new", "auth", "users_file",
                        "tls", "strategy", "unknown_commands"});
  if (!r.ok()) return rt;
  if (!n["name"]) r.Fail(Reader::Join(path, "name"), "required");
  else rt.name = r.String(n["name"], Reader::Join(path, "name"));
  if (!n["protocol"]) r.Fail(Reader::Join(path, "protocol"), "required");
  else
    rt.protocol = r.Choice<routing::Protocol>(n["protocol"], Reader::Join(path, "protocol"),
                                              {{"postgres", routing::Protocol::kPostgres},
                                               {"redis", routing::Protocol::kRedis}});
  if (!n["listen"]) r.Fail(Reader::Join(path, "listen"), "required");
  else rt.listen = r.Address(n["listen"], Reader::Join(path, "listen"));
  if (n["mode"])
    rt.mode = r.Choice<routing::RouteMode>(n["mode"], Reader::Join(path, "mode"),
                                           {{"protocol", routing::RouteMode::kProtocol},
                                            {"relay", routing::RouteMode::kRelay}});
  if (!n["old"]) r.Fail(Reader::Join(path, "old"), "required (the backend serving today)");
  else rt.old_backend = r.String(n["old"], Reader::Join(path, "old"));
  if (n["new"]) rt.new_backend = r.String(n["new"], Reader::Join(path, "new"));
  if (n["auth"])
    rt.auth = r.Choice<routing::ClientAuth>(n["auth"], Reader::Join(path, "auth"),
                                            {{"trust", routing::ClientAuth::kTrust},
                                             {"md5", routing::ClientAuth::kMd5},
                                             {"scram-sha-256", routing::ClientAuth::kScramSha256},
                                             {"password", routing::ClientAuth::kPassword}});
  if (n["unknown_commands"]) {
    rt.redis_unknown_passthrough = r.Choice<bool>(n["unknown_commands"], Reader::Join(path, "unknown_commands"),
                                                  {{"refuse", false}, {"passthrough", true}});
    if (r.ok() && rt.protocol != routing::Protocol::kRedis)
      r.Fail(Reader::Join(path, "unknown_commands"), "applies to redis routes only");
  }
  if (n["users_file"]) rt.users_file = r.ExistingFile(n["users_file"], Reader::Join(path, "users_file"));
  if (r.ok() && rt.auth != routing::ClientAuth::kTrust && rt.users_file.empty())
    r.Fail(Reader::Join(path, "users_file"), "required when auth is not trust");
  if (const auto tls = n["tls"]) {
    const std::string tp = Reader::Join(path, "tls");
    r.CheckKeys(tls, tp, {"cert_file", "key_file", "required"});
    if (!r.ok()) return rt;
    if (tls["cert_file"]) rt.tls.cert_file = r.ExistingFile(tls["cert_file"], Reader::Join(tp, "cert_file"));
    if (tls["key_file"]) rt.tls.key_file = r.ExistingFile(tls["key_file"], Reader::Join(tp, "key_file"));
    if (tls["required"]) rt.tls.required = r.Bool(tls["required"], Reader::Join(tp, "required"));
    if (r.ok() && rt.tls.cert_file.empty() != rt.tls.key_file.empty())
      r.Fail(Reader::Join(tp, rt.tls.cert_file.empty() ? "cert_file" : "key_file"),
             "cert_file and key_file go together");
  }
  if (const auto s = n["strategy"]) {
    // Kept as JSON text: the same parser reads it as the admin API's bodies.
    rt.strategy_json = boost::json::serialize(YamlToJson(s));
  }
  return rt;
}

void ReadLimits(Reader& r, const YAML::Node& n, routing::Limits& l) {
  const std::string path = "limits";
  r.CheckKeys(n, path, {"max_connections", "max_message_size", "max_startup_size", "buffer_size",
                        "connect_timeout", "idle_timeout", "drain_timeout", "stream_wait_timeout",
                        "cutover_timeout", "secondary_queue_ops", "secondary_queue_size", "shadow_queue_ops"});
  if (!r.ok()) return;
  if (n["max_connections"])
    l.max_connections = r.Integer<int>(n["max_connections"], "limits.max_connections", 1, 1000000);
  if (n["max_message_size"])
    l.max_message_bytes = r.Size(n["max_message_size"], "limits.max_message_size", 1024, 1ull << 30);
  if (n["max_startup_size"])
    l.max_startup_bytes = static_cast<std::uint32_t>(
        r.Size(n["max_startup_size"], "limits.max_startup_size", 64, 1 << 20));
  if (n["buffer_size"])
    l.buffer_bytes = static_cast<std::uint32_t>(
        r.Size(n["buffer_size"], "limits.buffer_size", 4096, 16u << 20));
  if (n["connect_timeout"]) l.connect_timeout = r.Duration(n["connect_timeout"], "limits.connect_timeout");
  if (n["idle_timeout"]) l.idle_timeout = r.Duration(n["idle_timeout"], "limits.idle_timeout");
  if (n["drain_timeout"]) l.drain_timeout = r.Duration(n["drain_timeout"], "limits.drain_timeout");
  if (n["stream_wait_timeout"])
    l.stream_wait_timeout = r.Duration(n["stream_wait_timeout"], "limits.stream_wait_timeout");
  if (n["cutover_timeout"]) l.cutover_timeout = r.Duration(n["cutover_timeout"], "limits.cutover_timeout");
  if (n["secondary_queue_ops"])
    l.secondary_queue_ops = r.Integer<std::size_t>(n["secondary_queue_ops"], "limits.secondary_queue_ops", 1, 1u << 20);
  if (n["secondary_queue_size"])
    l.secondary_queue_bytes = r.Size(n["secondary_queue_size"], "limits.secondary_queue_size", 64 * 1024, 1ull << 30);
  if (n["shadow_queue_ops"])
    l.shadow_queue_ops = r.Integer<std::size_t>(n["shadow_queue_ops"], "limits.shadow_queue_ops", 0, 1u << 20);
  if (r.ok() && l.connect_timeout <= absl::ZeroDuration())
    r.Fail("limits.connect_timeout", "must be greater than zero");
}

void ReadAdmin(Reader& r, const YAML::Node& n, routing::AdminListener& a) {
  r.CheckKeys(n, "admin", {"listen", "enabled", "jwt_secret", "jwt_secret_env", "jwt_secret_file",
                           "tokens_file", "max_body_size"});
  if (!r.ok()) return;
  if (n["listen"]) a.listen = r.Address(n["listen"], "admin.listen");
  if (n["enabled"]) a.enabled = r.Bool(n["enabled"], "admin.enabled");
  a.jwt_secret = r.Secret(n, "admin", "jwt_secret");
  if (n["tokens_file"]) a.tokens_file = r.ExistingFile(n["tokens_file"], "admin.tokens_file");
  if (n["max_body_size"])
    a.max_body_bytes = static_cast<std::uint32_t>(r.Size(n["max_body_size"], "admin.max_body_size", 1024, 64u << 20));
}

void ReadStateStore(Reader& r, const YAML::Node& n, routing::StateStore& s) {
  r.CheckKeys(n, "state_store", {"kind", "path", "dsn", "dsn_env"});
  if (!r.ok()) return;
  if (n["kind"])
    s.kind = r.Choice<routing::StateStoreKind>(n["kind"], "state_store.kind",
                                               {{"file", routing::StateStoreKind::kFile},
                                                {"postgres", routing::StateStoreKind::kPostgres}});
  if (n["path"]) s.path = r.RelativeTo(r.String(n["path"], "state_store.path"));
  s.dsn = r.Secret(n, "state_store", "dsn");
  if (r.ok() && s.kind == routing::StateStoreKind::kPostgres && s.dsn.empty())
    r.Fail("state_store.dsn", "required when kind is postgres");
}

// Cross-references: names unique, routes name existing backends of their
// protocol, listeners distinct.
void CheckReferences(Reader& r, const Config& c) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.backends.size() && r.ok(); ++i) {
    if (!names.insert(c.backends[i].name).second)
      r.Fail(absl::StrCat("backends[", i, "].name"), absl::StrCat("duplicate backend name \"", c.backends[i].name, "\""));
  }
  std::set<std::string> route_names, listens;
  for (std::size_t i = 0; i < c.routes.size() && r.ok(); ++i) {
    const auto& rt = c.routes[i];
    const std::string path = absl::StrCat("routes[", i, "]");
    if (!route_names.insert(rt.name).second)
      r.Fail(path + ".name", absl::StrCat("duplicate route name \"", rt.name, "\""));
    if (r.ok() && !listens.insert(rt.listen.ToString()).second)
      r.Fail(path + ".listen", absl::StrCat("address ", rt.listen.ToString(), " is used by another route"));
    if (r.ok() && c.admin.enabled && rt.listen.ToString() == c.admin.listen.ToString())
      r.Fail(path + ".listen", "address is the admin listener's");
    for (auto [field, name] : {std::pair<const char*, const std::string*>{"old", &rt.old_backend},
                               {"new", &rt.new_backend}}) {
      if (!r.ok() || name->empty()) continue;
      const auto* b = c.FindBackend(*name);
      if (b == nullptr)
        r.Fail(absl::StrCat(path, ".", field), absl::StrCat("no backend named \"", *name, "\""));
      else if (b->protocol != rt.protocol)
        r.Fail(absl::StrCat(path, ".", field),
               absl::StrCat("backend \"", *name, "\" speaks ", routing::ProtocolName(b->protocol),
                            " but the route speaks ", routing::ProtocolName(rt.protocol)));
    }
    if (r.ok() && rt.new_backend == rt.old_backend)
      r.Fail(path + ".new", "must differ from old");
    if (r.ok() && !rt.strategy_json.empty()) {
      // The same parser as the admin API's, so errors read alike:
      // "routes[0].strategy.read_percentage: must be between 0 and 1".
      if (rt.new_backend.empty()) r.Fail(path + ".strategy", "a static strategy needs the route's `new` backend");
      auto spec = StrategyFromJson(boost::json::parse(rt.strategy_json));
      if (r.ok() && !spec.ok()) r.Fail(path, spec.status().message());
    }
  }
}

}  // namespace

// Plain YAML scalars are typed the way JSON would type them; quoted ones
// (tag "!") stay strings.
boost::json::value YamlToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      boost::json::object o;
      for (const auto& kv : n) o[kv.first.as<std::string>("")] = YamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      boost::json::array a;
      for (const auto& e : n) a.push_back(YamlToJson(e));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return boost::json::string(s);
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      std::int64_t i;
      if (absl::SimpleAtoi(s, &i)) return i;
      double d;
      if (absl::SimpleAtod(s, &d) && s.find_first_not_of("0123456789.eE+-") == std::string::npos) return d;
      return boost::json::string(s);
    }
    default:
      return nullptr;
  }
}


absl::StatusOr<boost::json::value> YamlTextToJson(const std::string& text) {
  try {
    return YamlToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  }
}

absl::StatusOr<routing::HostPort> ParseHostPort(absl::string_view text) {
  routing::HostPort hp;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    const auto close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return absl::InvalidArgumentError(absl::StrCat("expected [v6-address]:port, got \"", text, "\""));
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == absl::string_view::npos || colon == 0)
      return absl::InvalidArgumentError(absl::StrCat("expected host:port, got \"", text, "\""));
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535)
    return absl::InvalidArgumentError(absl::StrCat("port must be 1-65535, got \"", port_text, "\""));
  hp.port = static_cast<std::uint16_t>(port);
  return hp;
}

absl::StatusOr<Config> ParseConfig(absl::string_view yaml_text, absl::string_view source_path) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  }
  std::string base_dir;
  if (!source_path.empty())
    base_dir = std::filesystem::path(std::string(source_path)).parent_path().string();
  Reader r(base_dir);
  Config c;
  c.source_path = std::string(source_path);
  if (!root.IsMap()) return absl::InvalidArgumentError("the configuration must be a YAML mapping");
  r.CheckKeys(root, "", {"instance_id", "instance_id_env", "region", "workers", "log_level", "log_format", "admin",
                         "state_store", "journal", "limits", "backends", "routes"});
  if (root["instance_id"] && root["instance_id_env"]) r.Fail("instance_id", "give only one of instance_id, instance_id_env");
  if (root["instance_id"]) c.instance_id = r.String(root["instance_id"], "instance_id");
  if (root["instance_id_env"]) {
    // Kubernetes: the pod name through the downward API.
    const std::string var = r.String(root["instance_id_env"], "instance_id_env");
    const char* v = var.empty() ? nullptr : std::getenv(var.c_str());
    if (r.ok() && v == nullptr) r.Fail("instance_id_env", absl::StrCat("environment variable ", var, " is not set"));
    if (v) c.instance_id = v;
  }
  if (r.ok() && c.instance_id.empty()) r.Fail("instance_id", "must not be empty");
  if (root["region"]) c.region = r.String(root["region"], "region");
  if (root["workers"]) c.workers = r.Integer<int>(root["workers"], "workers", 0, 256);
  if (root["log_level"]) {
    c.log_level = r.String(root["log_level"], "log_level");
    static constexpr absl::string_view kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
    if (r.ok() && std::find(std::begin(kLevels), std::end(kLevels), c.log_level) == std::end(kLevels))
      r.Fail("log_level", absl::StrCat("expected one of trace, debug, info, warn, error, off, got \"", c.log_level, "\""));
  }
  if (root["log_format"])
    c.log_format = r.Choice<std::string>(root["log_format"], "log_format", {{"text", "text"}, {"json", "json"}});
  if (r.ok() && root["admin"]) ReadAdmin(r, root["admin"], c.admin);
  if (r.ok() && root["state_store"]) ReadStateStore(r, root["state_store"], c.state_store);
  c.state_store.path = r.RelativeTo(c.state_store.path);
  if (r.ok() && root["limits"]) ReadLimits(r, root["limits"], c.limits);
  if (r.ok() && root["journal"]) {
    const auto j = root["journal"];
    r.CheckKeys(j, "journal", {"path", "max_entries"});
    if (r.ok() && j["path"]) c.journal.path = r.RelativeTo(r.String(j["path"], "journal.path"));
    if (r.ok() && j["max_entries"])
      c.journal.max_entries = r.Integer<std::size_t>(j["max_entries"], "journal.max_entries", 100, 100000000);
  }
  if (r.ok() && c.journal.path.empty()) {
    // Beside the state file when there is one, else beside turnout.yaml.
    const std::filesystem::path near = c.state_store.kind == routing::StateStoreKind::kFile
                                           ? std::filesystem::path(c.state_store.path).parent_path()
                                           : std::filesystem::path(base_dir);
    c.journal.path = (near / "turnout-journal.log").string();
  }
  if (r.ok()) {
    const auto backends = root["backends"];
    if (!backends || !backends.IsSequence() || backends.size() == 0) {
      r.Fail("backends", "expected a list with at least one backend");
    } else {
      for (std::size_t i = 0; i < backends.size() && r.ok(); ++i)
        c.backends.push_back(ReadBackend(r, backends[i], absl::StrCat("backends[", i, "]")));
    }
  }
  if (r.ok()) {
    const auto routes = root["routes"];
    if (!routes || !routes.IsSequence() || routes.size() == 0) {
      r.Fail("routes", "expected a list with at least one route");
    } else {
      for (std::size_t i = 0; i < routes.size() && r.ok(); ++i)
        c.routes.push_back(ReadRoute(r, routes[i], absl::StrCat("routes[", i, "]")));
    }
  }
  if (r.ok()) CheckReferences(r, c);
  if (!r.ok()) return r.status();
  return c;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = ParseConfig(ss.str(), path);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  return c;
}

}  // namespace turnout::control
