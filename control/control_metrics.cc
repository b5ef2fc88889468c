#include "control/control_metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <boost/json.hpp>

namespace turnout::control {
namespace {
prometheus::ClientMetric GaugeMetric(std::vector<prometheus::ClientMetric::Label> labels, double v) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  return m;
}
double Number(const boost::json::object& o, const char* key) {
  auto* f = o.if_contains(key);
  return f && f->is_number() ? f->to_number<double>() : 0;
}

// Differences per route and table of the last continuous verification
// report (Verify()'s form); a Redis route's keys count as table "keys". A
// table that could not be compared (error_new) counts one difference.
template <typename Out>
void AddVerifyTables(const std::string& id, const boost::json::value& report, Out& out) {
  if (!report.is_object()) return;
  auto* routes = report.as_object().if_contains("routes");
  if (!routes || !routes->is_array()) return;
  for (const auto& r : routes->as_array()) {
    if (!r.is_object()) continue;
    const auto& ro = r.as_object();
    auto* name = ro.if_contains("route");
    const std::string route = name && name->is_string() ? std::string(name->as_string()) : "";
    if (ro.contains("keys_compared")) out.push_back({id, route, "keys", Number(ro, "keys_differing")});
    auto* tables = ro.if_contains("tables");
    if (!tables || !tables->is_array()) continue;
    for (const auto& t : tables->as_array()) {
      if (!t.is_object()) continue;
      const auto& to = t.as_object();
      auto* tn = to.if_contains("table");
      auto* equal = to.if_contains("equal");
      double d = Number(to, "differences_total");
      if (d == 0 && equal && equal->is_bool() && !equal->as_bool()) d = 1;
      out.push_back({id, route, tn && tn->is_string() ? std::string(tn->as_string()) : "", d});
    }
  }
}
}  // namespace

void ControlMetricsCollector::Update(const std::vector<Migration>& migrations) {
  std::lock_guard<std::mutex> l(mu_);
  states_.clear();
  data_.clear();
  verify_runs_.clear();
  verify_tables_.clear();
  cutover_holds_.clear();
  for (const auto& m : migrations) {
    states_.emplace_back(m.id, m.state);
    if (const std::string phase = CutoverPhase(m); phase == "done" || phase == "abandoned") {
      const auto* ms = m.cutover.as_object().if_contains("hold_ms");
      if (ms != nullptr && ms->is_int64())
        cutover_holds_.push_back({m.id, phase, static_cast<double>(ms->as_int64()) / 1000});
    }
    for (const auto& r : m.progress.routes)
      data_.push_back({m.id, r.route, static_cast<double>(r.copied), r.ratio, r.rate, r.stream, r.stream_back});
    if (m.progress.continuous_verification.is_null()) continue;
    verify_runs_.push_back({m.id, static_cast<double>(m.progress.verify_runs),
                            static_cast<double>(m.progress.verify_rows)});
    AddVerifyTables(m.id, m.progress.continuous_verification, verify_tables_);
  }
}

std::vector<prometheus::MetricFamily> ControlMetricsCollector::Collect() const {
  prometheus::MetricFamily state{"turnout_migration_state",
                                 "1 for the state each migration is in (label state), 0 for the others.",
                                 prometheus::MetricType::Gauge, {}};
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [id, s] : states_)
      for (int i = 0; i < 8; ++i) {
        const auto candidate = static_cast<MigrationState>(i);
        state.metric.push_back(GaugeMetric({{"migration", id}, {"state", MigrationStateName(candidate)}},
                                           candidate == s ? 1 : 0));
      }
  }
  prometheus::MetricFamily rows{"turnout_data_movement_rows_total",
                                "Rows (Postgres) or keys (Redis) copied by the data movement of each route.",
                                prometheus::MetricType::Counter, {}};
  prometheus::MetricFamily ratio{"turnout_data_movement_progress_ratio",
                                 "Share of each route's data copied so far, 0 to 1 (1 once done).",
                                 prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily rate{"turnout_data_movement_rate",
                                "Rows or keys copied per second over the last interval.",
                                prometheus::MetricType::Gauge, {}};
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& d : data_) {
      prometheus::ClientMetric c;
      c.label = {{"migration", d.migration}, {"route", d.route}};
      c.counter.value = d.copied;
      rows.metric.push_back(std::move(c));
      ratio.metric.push_back(GaugeMetric({{"migration", d.migration}, {"route", d.route}}, d.ratio));
      rate.metric.push_back(GaugeMetric({{"migration", d.migration}, {"route", d.route}}, d.rate));
    }
  }
  // The change stream of each streamed route (control/pg_change_stream.h),
  // as its runner last recorded it (about once a second); the stream back
  // from new to old after a cutover (control/stream_back.h) while it runs,
  // as the same series with direction="back" (the forward stream's keep
  // their labels: {direction=""} selects them).
  prometheus::MetricFamily lag_bytes{"turnout_stream_lag_bytes",
                                     "WAL the source has sent past what the change stream applied on the target.",
                                     prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily lag_seconds{"turnout_stream_lag_seconds",
                                       "Age of the oldest committed change not yet applied on the target.",
                                       prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily retained{"turnout_stream_retained_wal_bytes",
                                    "WAL the migration's replication slot keeps on the source.",
                                    prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily applied_txns{"turnout_stream_applied_transactions_total",
                                        "Source transactions the change stream applied on the target.",
                                        prometheus::MetricType::Counter, {}};
  prometheus::MetricFamily applied_rows{"turnout_stream_applied_rows_total",
                                        "Row changes the change stream applied on the target.",
                                        prometheus::MetricType::Counter, {}};
  auto add_stream = [&](std::vector<prometheus::ClientMetric::Label> labels, const StreamProgress& s) {
    lag_bytes.metric.push_back(GaugeMetric(labels, static_cast<double>(s.lag_bytes)));
    lag_seconds.metric.push_back(GaugeMetric(labels, s.lag_seconds));
    retained.metric.push_back(GaugeMetric(labels, static_cast<double>(s.retained_wal_bytes)));
    prometheus::ClientMetric t, r;
    t.label = r.label = std::move(labels);
    t.counter.value = static_cast<double>(s.transactions);
    r.counter.value = static_cast<double>(s.rows);
    applied_txns.metric.push_back(std::move(t));
    applied_rows.metric.push_back(std::move(r));
  };
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& d : data_) {
      if (!d.stream.slot.empty()) add_stream({{"migration", d.migration}, {"route", d.route}}, d.stream);
      if (!d.stream_back.phase.empty() && d.stream_back.phase != "stopped")
        add_stream({{"direction", "back"}, {"migration", d.migration}, {"route", d.route}}, d.stream_back);
    }
  }
  // Continuous verification: runs and rows compared are cumulative over the
  // migration's runs (counters); differences are the last report's.
  prometheus::MetricFamily verify_runs{"turnout_verify_runs_total",
                                       "Continuous verification runs finished for each migration.",
                                       prometheus::MetricType::Counter, {}};
  prometheus::MetricFamily verify_rows{"turnout_verify_rows_total",
                                       "Rows (and Redis keys) compared on old by continuous verification, all runs.",
                                       prometheus::MetricType::Counter, {}};
  prometheus::MetricFamily verify_diffs{"turnout_verify_differences",
                                        "Rows (or keys) differing per table in the last continuous verification.",
                                        prometheus::MetricType::Gauge, {}};
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& v : verify_runs_) {
      prometheus::ClientMetric runs, rows_compared;
      runs.label = rows_compared.label = {{"migration", v.migration}};
      runs.counter.value = v.runs;
      rows_compared.counter.value = v.rows;
      verify_runs.metric.push_back(std::move(runs));
      verify_rows.metric.push_back(std::move(rows_compared));
    }
    for (const auto& v : verify_tables_)
      verify_diffs.metric.push_back(
          GaugeMetric({{"migration", v.migration}, {"route", v.route}, {"table", v.table}}, v.differences));
  }
  prometheus::MetricFamily version{"turnout_policy_version", "Version of the routing policy each route runs.",
                                   prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily table{"turnout_route_table_version", "Publications of the route table so far.",
                                 prometheus::MetricType::Gauge, {}};
  const auto t = route_table_->Load();
  table.metric.push_back(GaugeMetric({}, static_cast<double>(t->version())));
  for (const auto& [route, policy] : t->routes())
    version.metric.push_back(GaugeMetric({{"migration", policy->migration_id()}, {"route", route}},
                                         static_cast<double>(policy->version())));
  prometheus::MetricFamily store{"turnout_state_store_up", "1 while the state store is reachable.",
                                 prometheus::MetricType::Gauge, {}};
  store.metric.push_back(GaugeMetric({}, store_ != nullptr && store_->Healthy() ? 1 : 0));
  prometheus::MetricFamily pending{"turnout_dualwrite_journal_pending",
                                   "Secondary writes journaled and not yet repaired.", prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily full{"turnout_dualwrite_journal_full", "1 when the journal is full (an alarm).",
                                prometheus::MetricType::Gauge, {}};
  prometheus::MetricFamily refused{"turnout_dualwrite_journal_refused_total",
                                   "Journal entries refused because the journal was full.",
                                   prometheus::MetricType::Counter, {}};
  pending.metric.push_back(GaugeMetric({}, static_cast<double>(journal_->PendingCount())));
  full.metric.push_back(GaugeMetric({}, journal_->full() ? 1 : 0));
  prometheus::ClientMetric r;
  r.counter.value = static_cast<double>(journal_->dropped_when_full());
  refused.metric.push_back(r);
  prometheus::MetricFamily holds{"turnout_cutover_write_hold_seconds",
                                 "How long the last cutover of each migration held writes (outcome done: it "
                                 "flipped; abandoned: writes resumed on the old side).",
                                 prometheus::MetricType::Gauge, {}};
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& h : cutover_holds_)
      holds.metric.push_back(GaugeMetric({{"migration", h.migration}, {"outcome", h.outcome}}, h.seconds));
  }
  std::vector<prometheus::MetricFamily> out = {holds, state,  version, table,     store,        pending,     full,        refused,
                                                rows,   ratio,   rate,      lag_bytes,    lag_seconds, retained,
                                                applied_txns, applied_rows, verify_runs, verify_rows, verify_diffs};
  if (publishes_) {
    prometheus::MetricFamily publishes{"turnout_control_policy_publishes_total",
                                       "Route table publications by the control plane (policies recompiled).",
                                       prometheus::MetricType::Counter, {}};
    prometheus::ClientMetric p;
    p.counter.value = static_cast<double>(publishes_());
    publishes.metric.push_back(std::move(p));
    out.push_back(std::move(publishes));
  }
  return out;
}

std::string MetricsText(const std::vector<const prometheus::Collectable*>& collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const auto* c : collectables) {
    auto f = c->Collect();
    families.insert(families.end(), std::make_move_iterator(f.begin()), std::make_move_iterator(f.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace turnout::control
