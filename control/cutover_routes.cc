#include "control/cutover_routes.h"

namespace turnout::control {

RouteBackends RouteBackendsOf(const routing::Config& config, const routing::RouteTablePublisher& route_table,
                              const std::string& route_name) {
  const routing::Route* route = config.FindRoute(route_name);
  if (route == nullptr) return {};
  const auto policy = route_table.Load()->FindShared(route_name);
  const std::string& new_name =
      policy && !policy->inputs().new_backend.empty() ? policy->inputs().new_backend : route->new_backend;
  return {config.FindBackend(route->old_backend), config.FindBackend(new_name)};
}

std::vector<StreamRoute> StreamRoutesOf(const routing::RouteTablePublisher& route_table, const Migration& m) {
  std::vector<StreamRoute> out;
  const auto table = route_table.Load();
  for (const auto& i : m.interlays) {
    const auto policy = table->FindShared(i.route);
    if (!policy || policy->migration_id() != m.id || !policy->inputs().writes_by_stream) continue;
    out.push_back({i.route, policy->inputs().hold_writes});
  }
  return out;
}

}  // namespace turnout::control
