#include "routing/config.h"

#include "absl/strings/str_cat.h"

namespace turnout::routing {

const char* ProtocolName(Protocol p) {
  return p == Protocol::kPostgres ? "postgres" : "redis";
}

std::string HostPort::ToString() const {
  // IPv6 literals are bracketed so the result parses back.
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

const Backend* Config::FindBackend(std::string_view name) const {
  for (const auto& b : backends)
    if (b.name == name) return &b;
  return nullptr;
}

const Route* Config::FindRoute(std::string_view name) const {
  for (const auto& r : routes)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace turnout::routing
