#pragma once
// The control plane's Prometheus families: migration state and the policy
// version each route runs (DESIGN.md §7), data movement progress, plus store
// health. Data movement figures come from the migration records, so every
// sidecar of a fleet reports the job's progress, whichever one runs it.

#include <prometheus/collectable.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "control/migration.h"
#include "control/state_store.h"
#include "routing/journal.h"
#include "routing/policy_table.h"

namespace turnout::control {

class ControlMetricsCollector final : public prometheus::Collectable {
 public:
  // `publishes` (optional) counts the route table publications of the
  // migration service (turnout_control_policy_publishes_total).
  ControlMetricsCollector(const routing::RouteTablePublisher* route_table, const StateStore* store,
                          const routing::Journal* journal, std::function<std::uint64_t()> publishes = {})
      : route_table_(route_table), store_(store), journal_(journal), publishes_(std::move(publishes)) {}
  // Called by MigrationService after every publication.
  void Update(const std::vector<Migration>& migrations);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const routing::RouteTablePublisher* route_table_;
  const StateStore* store_;
  const routing::Journal* journal_;
  const std::function<std::uint64_t()> publishes_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, MigrationState>> states_;
  struct DataRoute {
    std::string migration, route;
    double copied = 0, ratio = 0, rate = 0;
    StreamProgress stream;       // slot empty: not streamed
    StreamProgress stream_back;  // new -> old after a cutover; phase empty or "stopped": none
  };
  std::vector<DataRoute> data_;
  // Continuous verification (control/continuous_verify.h), per migration.
  struct VerifyRuns {
    std::string migration;
    double runs = 0, rows = 0;
  };
  struct VerifyTable {
    std::string migration, route, table;
    double differences = 0;
  };
  std::vector<VerifyRuns> verify_runs_;
  std::vector<VerifyTable> verify_tables_;
  // The last cutover's write window of each migration (control/cutover.h).
  struct CutoverHold {
    std::string migration, outcome;  // done | abandoned
    double seconds = 0;
  };
  std::vector<CutoverHold> cutover_holds_;
};

// Prometheus text exposition (format 0.0.4) of every collectable given.
std::string MetricsText(const std::vector<const prometheus::Collectable*>& collectables);

}  // namespace turnout::control
