#include "proxy/metrics_collector.h"

#include <prometheus/metric_family.h>

#include <string>

#include "proxy/intent_ring.h"

namespace turnout::proxy {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric Counter(std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = v;
  return m;
}

ClientMetric Gauge(std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  return m;
}

double Load(const std::atomic<std::uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); }

// A histogram over RouteRuntime::kLatencyBoundsUs (microseconds, the last +Inf).
ClientMetric Histogram(std::vector<ClientMetric::Label> labels,
                       const std::array<std::atomic<std::uint64_t>, RouteRuntime::kLatencyBoundsUs.size()>& buckets,
                       const std::atomic<std::uint64_t>& sum_us) {
  ClientMetric h;
  h.label = std::move(labels);
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < RouteRuntime::kLatencyBoundsUs.size(); ++b) {
    cumulative += buckets[b].load(std::memory_order_relaxed);
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = RouteRuntime::kLatencyBoundsUs[b] == UINT64_MAX
                             ? std::numeric_limits<double>::infinity()
                             : static_cast<double>(RouteRuntime::kLatencyBoundsUs[b]) / 1e6;
    h.histogram.bucket.push_back(bucket);
  }
  h.histogram.sample_count = cumulative;
  h.histogram.sample_sum = Load(sum_us) / 1e6;
  return h;
}

}  // namespace

std::vector<MetricFamily> ProxyMetricsCollector::Collect() const {
  auto active = Family("turnout_connections", "Client connections open, by route.", MetricType::Gauge);
  auto accepted = Family("turnout_connections_total", "Client connections accepted, by route.", MetricType::Counter);
  auto refused = Family("turnout_connections_refused_total", "Client connections refused at the limit, by route.",
                        MetricType::Counter);
  auto bytes = Family("turnout_bytes_total", "Bytes relayed, by route and direction (in: from clients).",
                      MetricType::Counter);
  auto requests = Family("turnout_requests_total", "Requests answered, by route, backend side and class.",
                         MetricType::Counter);
  auto errors = Family("turnout_upstream_errors_total", "Upstream connection or protocol errors, by route and side.",
                       MetricType::Counter);
  auto logins = Family("turnout_pg_server_connections_total",
                       "Postgres server connections sessions got, by route, side and how: opened (connected and "
                       "logged in) or reused (taken from the pool, backends[].pool).",
                       MetricType::Counter);
  auto latency = Family("turnout_request_duration_seconds", "Request latency at the proxy, by route and side.",
                        MetricType::Histogram);
  auto dual = Family("turnout_dualwrite_total",
                     "Dual-writes by outcome, each counted once: applied on both sides; failed (refused by the "
                     "secondary, or lost after it was sent), diverged (both applied, outcomes differ) or dropped "
                     "(never reached the secondary), each journaled for repair.",
                     MetricType::Counter);
  auto shadow = Family("turnout_shadow_comparisons_total", "Shadow comparisons, by route and result.",
                       MetricType::Counter);
  auto mismatches = Family("turnout_shadow_mismatches_total", "Shadow mismatches, by route and kind.",
                           MetricType::Counter);
  auto shadow_dropped = Family("turnout_shadow_dropped_total",
                               "Shadow requests dropped because the shadow queue was full.", MetricType::Counter);
  auto stream_waits = Family("turnout_stream_waits_total",
                             "Postgres dual-write by change stream: commits held until new applied them (kind "
                             "commit) and reads on new that waited for the session's commit (kind read), by outcome.",
                             MetricType::Counter);
  auto commit_hold = Family("turnout_stream_commit_hold_seconds",
                            "How long a commit was held until new applied it (sync dual-write by change stream).",
                            MetricType::Histogram);
  auto commit_targets = Family("turnout_stream_commit_targets_total",
                               "Sync dual-write by change stream: what each commit waited for (by: xid, its own "
                               "commit in the stream; xid_then_fence; fence, a sample of old with a fence; none, "
                               "the transaction had no xid or rolled back).",
                               MetricType::Counter);
  for (const RouteRuntime* rt : routes_()) {
    const std::string& route = rt->route.name;
    for (int t = 0; t < static_cast<int>(RouteRuntime::CommitTarget::kCount); ++t)
      commit_targets.metric.push_back(
          Counter({{"by", RouteRuntime::CommitTargetName(static_cast<RouteRuntime::CommitTarget>(t))}, {"route", route}},
                  Load(rt->commit_targets[t])));
    for (int k = 0; k < static_cast<int>(RouteRuntime::StreamWaitKind::kCount); ++k)
      for (int r = 0; r < static_cast<int>(RouteRuntime::StreamWaitResult::kCount); ++r)
        stream_waits.metric.push_back(
            Counter({{"kind", RouteRuntime::StreamWaitKindName(static_cast<RouteRuntime::StreamWaitKind>(k))},
                     {"result", RouteRuntime::StreamWaitResultName(static_cast<RouteRuntime::StreamWaitResult>(r))},
                     {"route", route}},
                    Load(rt->stream_waits[k][r])));
    commit_hold.metric.push_back(Histogram({{"route", route}}, rt->commit_hold_buckets, rt->commit_hold_sum_us));
    for (int r = 0; r < static_cast<int>(RouteRuntime::DualWriteResult::kCount); ++r)
      dual.metric.push_back(Counter(
          {{"result", RouteRuntime::DualWriteResultName(static_cast<RouteRuntime::DualWriteResult>(r))}, {"route", route}},
          Load(rt->dual_writes[r])));
    shadow.metric.push_back(Counter({{"result", "match"}, {"route", route}}, Load(rt->shadow_matched)));
    shadow.metric.push_back(
        Counter({{"result", "mismatch"}, {"route", route}}, Load(rt->shadow_compared) - Load(rt->shadow_matched)));
    for (int k = 0; k < static_cast<int>(RouteRuntime::ShadowMismatch::kCount); ++k)
      mismatches.metric.push_back(Counter(
          {{"kind", RouteRuntime::ShadowMismatchName(static_cast<RouteRuntime::ShadowMismatch>(k))}, {"route", route}},
          Load(rt->shadow_mismatches[k])));
    shadow_dropped.metric.push_back(Counter({{"route", route}}, Load(rt->shadow_dropped)));
    active.metric.push_back(Gauge({{"route", route}}, rt->active.load(std::memory_order_relaxed)));
    accepted.metric.push_back(Counter({{"route", route}}, Load(rt->accepted)));
    refused.metric.push_back(Counter({{"route", route}}, Load(rt->refused)));
    bytes.metric.push_back(Counter({{"direction", "in"}, {"route", route}}, Load(rt->bytes_from_clients)));
    bytes.metric.push_back(Counter({{"direction", "out"}, {"route", route}}, Load(rt->bytes_to_clients)));
    for (int side = 0; side < RouteRuntime::kSides; ++side) {
      const auto& s = rt->sides[side];
      const std::string backend(routing::SideName(static_cast<routing::Side>(side)));
      for (int c = 0; c < RouteRuntime::kClasses; ++c) {
        const double n = Load(s.requests[c]);
        if (n == 0) continue;  // keep the exposition small: classes appear once used
        requests.metric.push_back(Counter(
            {{"backend", backend}, {"class", std::string(routing::RequestClassName(static_cast<routing::RequestClass>(c)))},
             {"route", route}},
            n));
      }
      errors.metric.push_back(Counter({{"backend", backend}, {"route", route}}, Load(s.upstream_errors)));
      if (rt->route.protocol == routing::Protocol::kPostgres) {
        logins.metric.push_back(
            Counter({{"backend", backend}, {"result", "opened"}, {"route", route}}, Load(s.server_logins_opened)));
        logins.metric.push_back(
            Counter({{"backend", backend}, {"result", "reused"}, {"route", route}}, Load(s.server_logins_reused)));
      }
      latency.metric.push_back(Histogram({{"backend", backend}, {"route", route}}, s.latency_buckets, s.latency_sum_us));
    }
  }
  std::vector<MetricFamily> out{active, accepted, refused, bytes, requests, errors, logins, latency, dual, shadow,
                                mismatches, shadow_dropped, stream_waits, commit_hold, commit_targets};
  if (pg_parked_ != nullptr) {
    auto parked = Family("turnout_pg_server_connections_parked",
                         "Postgres server connections parked for the next client (backends[].pool).",
                         MetricType::Gauge);
    parked.metric.push_back(Gauge({}, static_cast<double>(pg_parked_->load(std::memory_order_relaxed))));
    out.push_back(std::move(parked));
  }
  if (intents_ != nullptr) {
    auto recovered = Family("turnout_intents_recovered_total",
                            "Dual-writes in flight when the previous process stopped (intent record), journaled "
                            "for repair at this start.",
                            MetricType::Counter);
    recovered.metric.push_back(Counter({}, static_cast<double>(intents_->recovered())));
    auto overflow = Family("turnout_intents_overflow_total",
                           "Dual-writes journaled before the primary was asked because no intent slot could hold "
                           "them (ring full, or names larger than a slot).",
                           MetricType::Counter);
    overflow.metric.push_back(Counter({}, static_cast<double>(intents_->overflows())));
    out.push_back(std::move(recovered));
    out.push_back(std::move(overflow));
  }
  return out;
}

}  // namespace turnout::proxy
