#pragma once
// The data plane's Prometheus families (DESIGN.md §7), built at scrape time
// from the lock-free per-route counters in RouteRuntime: sessions never touch
// a Prometheus object, so the hot path takes no lock for metrics.

#include <prometheus/collectable.h>

#include <functional>
#include <vector>

#include "proxy/session.h"

namespace turnout::proxy {

class ProxyMetricsCollector final : public prometheus::Collectable {
 public:
  using RoutesFn = std::function<std::vector<const RouteRuntime*>()>;
  explicit ProxyMetricsCollector(RoutesFn routes) : routes_(std::move(routes)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  RoutesFn routes_;
};

}  // namespace turnout::proxy
