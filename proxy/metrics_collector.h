#pragma once
// The data plane's Prometheus families (DESIGN.md §7), built at scrape time
// from the lock-free per-route counters in RouteRuntime: sessions never touch
// a Prometheus object, so the hot path takes no lock for metrics.

#include <prometheus/collectable.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "proxy/session.h"

namespace turnout::proxy {

class IntentRing;

class ProxyMetricsCollector final : public prometheus::Collectable {
 public:
  using RoutesFn = std::function<std::vector<const RouteRuntime*>()>;
  // `intents` (optional, outliving the collector): the intent record's
  // counters; `pg_parked` (optional, likewise): the parked server connections.
  explicit ProxyMetricsCollector(RoutesFn routes, const IntentRing* intents = nullptr,
                                 const std::atomic<std::int64_t>* pg_parked = nullptr)
      : routes_(std::move(routes)), intents_(intents), pg_parked_(pg_parked) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  RoutesFn routes_;
  const IntentRing* intents_;
  const std::atomic<std::int64_t>* pg_parked_;
};

}  // namespace turnout::proxy
