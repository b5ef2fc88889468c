#include "routing/scope.h"

#include <span>

#include "absl/strings/str_cat.h"
#include "routing/absl_view.h"

namespace turnout::routing {
namespace {

absl::Status FieldError(std::string_view scope, std::string_view field, std::size_t i,
                        std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("scopes[", Av(scope), "].", Av(field), "[", i, "]: ", Av(msg)));
}

}  // namespace

absl::Status Scope::Validate(Protocol protocol) const {
  if (name.empty()) return absl::InvalidArgumentError("scopes[].name: must not be empty");
  const bool pg = protocol == Protocol::kPostgres;
  const std::vector<std::string>& entries = pg ? tables : keys;
  const std::vector<std::string>& wrong = pg ? keys : tables;
  const std::string_view field = pg ? "tables" : "keys";
  if (!wrong.empty())
    return absl::InvalidArgumentError(absl::StrCat("scopes[", name, "].", pg ? "keys" : "tables",
                                                   ": not allowed on a ", Av(ProtocolName(protocol)),
                                                   " route; use ", Av(field)));
  if (entries.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("scopes[", name, "].", Av(field), ": must list at least one entry"));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].empty()) return FieldError(name, field, i, "must not be empty");
    auto g = GlobPattern::Compile(entries[i]);
    if (!g.ok()) return FieldError(name, field, i, std::string(g.status().message()));
  }
  return absl::OkStatus();
}

absl::Status ScopeMatcher::Add(const Scope& scope, Protocol protocol) {
  protocol_ = protocol;
  const bool pg = protocol == Protocol::kPostgres;
  for (const std::string& entry : pg ? scope.tables : scope.keys) {
    auto g = GlobPattern::Compile(entry);
    if (!g.ok()) return g.status();
    const bool qualified = pg && entry.find('.') != std::string::npos;
    if (pg && !qualified) any_unqualified_ = true;
    if (g->is_literal()) {
      exact_.insert(g->literal());
    } else {
      globs_.push_back(*std::move(g));
      glob_qualified_.push_back(!pg || qualified);
    }
  }
  return absl::OkStatus();
}

bool ScopeMatcher::MatchesOne(std::string_view name) const noexcept {
  if (exact_.contains(Av(name))) return true;
  for (const GlobPattern& g : globs_)
    if (g.Matches(name)) return true;
  return false;
}

bool ScopeMatcher::Matches(std::string_view target) const noexcept {
  if (protocol_ == Protocol::kRedis) return MatchesOne(target);
  // Postgres: the full name matches any entry; the relation part matches the
  // unqualified entries only. Exact entries: a qualified entry equals only a
  // qualified target, so looking the relation up in the same set is safe
  // (the relation part has no '.').
  if (MatchesOne(target)) return true;
  if (!any_unqualified_) return false;
  const std::size_t dot = target.rfind('.');
  if (dot == std::string_view::npos) return false;
  const std::string_view rel = target.substr(dot + 1);
  if (exact_.contains(Av(rel))) return true;
  for (std::size_t i = 0; i < globs_.size(); ++i)
    if (!glob_qualified_[i] && globs_[i].Matches(rel)) return true;
  return false;
}

ScopeMatcher::Coverage ScopeMatcher::Cover(std::span<const std::string_view> targets) const noexcept {
  std::size_t hits = 0;
  for (std::string_view t : targets) hits += Matches(t) ? 1 : 0;
  if (hits == 0) return Coverage::kNone;
  return hits == targets.size() ? Coverage::kAll : Coverage::kSome;
}

}  // namespace turnout::routing
