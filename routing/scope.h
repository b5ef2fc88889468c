#pragma once
// Scopes (DESIGN.md §1): named subsets of a route's traffic, added with
// POST /api/v1/migrations/{id}/api/{scope}. A Postgres scope lists tables, a
// Redis scope lists key globs; strangler_fig features and feature_flag flags
// refer to scopes by name.
//
// Table entries match as follows (tables are compared as the classifier
// normalises them, see Request::targets):
//   "orders"        matches "orders" and any schema-qualified "<schema>.orders"
//   "sales.orders"  matches "sales.orders" only
//   "order_*"       globs work for tables too, with the same rule for schemas
// Key entries are Redis globs (routing/glob.h) matched against the whole key.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "routing/config.h"
#include "routing/glob.h"

namespace turnout::routing {

struct Scope {
  std::string name;
  std::vector<std::string> tables;  // Postgres
  std::vector<std::string> keys;    // Redis key globs

  // Field errors read "scopes[<name>].keys[1]: ...". A Postgres scope needs
  // tables and no keys, a Redis scope the reverse.
  absl::Status Validate(Protocol protocol) const;
};

// The union of several scopes' entries, compiled for matching on the hot
// path. Literal entries go to a hash set, the rest are tried in order.
class ScopeMatcher {
 public:
  ScopeMatcher() = default;

  // Adds every entry of `scope` (which must have been validated).
  absl::Status Add(const Scope& scope, Protocol protocol);

  bool empty() const noexcept { return exact_.empty() && globs_.empty(); }
  bool Matches(std::string_view target) const noexcept;

  // How a request's targets fall: none of them matched (or no targets), all
  // of them, or some.
  enum class Coverage : std::uint8_t { kNone, kAll, kSome };
  Coverage Cover(std::span<const std::string_view> targets) const noexcept;

 private:
  bool MatchesOne(std::string_view name) const noexcept;

  Protocol protocol_ = Protocol::kPostgres;
  // Postgres: unqualified entries match the relation part of the target as
  // well; qualified entries only the full target.
  absl::flat_hash_set<std::string> exact_;
  std::vector<GlobPattern> globs_;
  std::vector<bool> glob_qualified_;
  bool any_unqualified_ = false;
};

}  // namespace turnout::routing
