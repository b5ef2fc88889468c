#pragma once
// The data plane's Prometheus families (DESIGN.md §7), built at scrape time
// from the lock-free per-route counters in RouteRuntime: sessions never touch
// a Prometheus object, so the hot path takes no lock for metrics.

#include <prometheus/collectable.h>

#include <functional>
#include <vector>

#include "proxy/session.h"

namespace turnout::proxy {

class IntentRing;

class ProxyMetricsCollector final : public prometheus::Collectable {
 public:
  using RoutesFn = std::function<std::vector<const RouteRuntime*>()>;
  // `intents` (optional, outliving the collector): the intent record's counters.
  explicit ProxyMetricsCollector(RoutesFn routes, const IntentRing* intents = nullptr)
      : routes_(std::move(routes)), intents_(intents) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  RoutesFn routes_;
  const IntentRing* intents_;
};

}  // namespace turnout::proxy
