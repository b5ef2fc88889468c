#pragma once
// The routes a cutover acts on, as this sidecar's published policies name
// them: the held window (control/cutover.h) and the stream back
// (control/stream_back.h) both fence, stream and drop slots on the Postgres
// routes of a migration whose writes the change stream carries.

#include <string>
#include <vector>

#include "control/migration.h"
#include "routing/config.h"
#include "routing/policy_table.h"

namespace turnout::control {

// A route's backends: old from turnout.yaml, new as the published policy
// says (an interlay's endpoint may differ from the route's `new`).
struct RouteBackends {
  const routing::Backend* old_b = nullptr;
  const routing::Backend* new_b = nullptr;
};
RouteBackends RouteBackendsOf(const routing::Config& config, const routing::RouteTablePublisher& route_table,
                              const std::string& route);

// The routes of `m` whose writes the stream carries, and whether the
// policy published here holds their writes already.
struct StreamRoute {
  std::string name;
  bool held = false;
};
std::vector<StreamRoute> StreamRoutesOf(const routing::RouteTablePublisher& route_table, const Migration& m);

}  // namespace turnout::control
