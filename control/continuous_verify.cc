#include "control/continuous_verify.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "absl/strings/str_cat.h"
#include "control/backend_inspector.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t Int(const json::value& v, const char* key) {
  if (!v.is_object()) return 0;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<std::int64_t>() : 0;
}

bool HasDataMovement(const Migration& m) {
  if (m.data.is_string()) return m.data.as_string() != "none";
  if (!m.data.is_object()) return false;
  auto* t = m.data.as_object().if_contains("type");
  return t && t->is_string() && t->as_string() != "none";
}

// A route of the data movement still copying: verifying now would report
// the copy's backlog.
bool CopyInProgress(const Migration& m) {
  if (!HasDataMovement(m) || m.progress.finished()) return false;
  if (m.progress.routes.empty()) return true;  // the job has not started yet
  for (const auto& r : m.progress.routes) {
    const bool copied =
        r.phase == "done" || r.stream.phase == "streaming" || r.stream.phase == "caught_up";
    if (!copied && r.phase != "failed") return true;
  }
  return false;
}

bool Wanted(const Migration& m) {
  return m.state == MigrationState::kRunning && ContinuousVerifySpecOf(m.data).continuous;
}

}  // namespace

ContinuousVerifySpec ContinuousVerifySpecOf(const json::value& data) {
  ContinuousVerifySpec s;
  if (!data.is_object()) return s;
  auto* v = data.as_object().if_contains("verify");
  if (!v || !v->is_object()) return s;
  if (auto* c = v->as_object().if_contains("continuous"); c && c->is_bool()) s.continuous = c->as_bool();
  if (auto* i = v->as_object().if_contains("interval_s"); i && i->is_int64() && i->as_int64() > 0)
    s.interval = std::chrono::seconds(i->as_int64());
  if (auto* r = v->as_object().if_contains("rows_per_second"); r && r->is_int64() && r->as_int64() > 0)
    s.rows_per_second = r->as_int64();
  return s;
}

std::int64_t RowsCompared(const json::value& report) {
  std::int64_t rows = 0;
  if (!report.is_object()) return 0;
  auto* routes = report.as_object().if_contains("routes");
  if (!routes || !routes->is_array()) return 0;
  for (const auto& r : routes->as_array()) {
    rows += Int(r, "keys_compared");
    if (!r.is_object()) continue;
    if (auto* tables = r.as_object().if_contains("tables"); tables && tables->is_array())
      for (const auto& t : tables->as_array()) rows += Int(t, "old_rows");
  }
  return rows;
}

ContinuousVerifier::ContinuousVerifier(std::shared_ptr<const routing::Config> config, MigrationService* service,
                                       StateStore* store, ContinuousVerifyOptions options)
    : config_(std::move(config)), service_(service), store_(store), options_(std::move(options)) {}

ContinuousVerifier::~ContinuousVerifier() { Stop(); }

void ContinuousVerifier::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void ContinuousVerifier::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  held_.clear();  // releases the locks
}

void ContinuousVerifier::OnMigrations(const std::vector<Migration>& all) {
  std::lock_guard<std::mutex> l(mu_);
  latest_ = all;
  poked_ = true;
  cv_.notify_all();
}

void ContinuousVerifier::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
  else std::fprintf(stderr, "turnout: continuous verification: %s\n", line.c_str());
}

void ContinuousVerifier::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    l.unlock();
    const auto next = Pass();
    l.lock();
    // Woken by a publication (state or data changed, our own saves too) or
    // when the next run or lock attempt is due.
    cv_.wait_until(l, next, [&] { return poked_ || stopping_; });
    poked_ = false;
  }
}

Clock::time_point ContinuousVerifier::Pass() {
  std::vector<Migration> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    all = latest_;
  }
  auto next = Clock::now() + options_.lock_retry;
  std::map<std::string, bool> wanted;
  for (const auto& m : all) wanted[m.id] = Wanted(m);
  // Paused, finished, deleted or switched off: the lock goes.
  for (auto it = held_.begin(); it != held_.end();) {
    if (!wanted[it->first]) {
      Log(absl::StrCat("migration ", it->first, ": stopped"));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& m : all) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) break;
    }
    if (!wanted[m.id]) {
      next_try_.erase(m.id);
      said_.erase(m.id);
      continue;
    }
    auto it = held_.find(m.id);
    if (it == held_.end()) {
      const auto now = Clock::now();
      if (auto t = next_try_.find(m.id); t != next_try_.end() && now < t->second) {
        next = std::min(next, t->second);
        continue;
      }
      next_try_[m.id] = now + options_.lock_retry;
      auto lock = store_->TryLockExclusive("verify:" + m.id);
      const std::string say = !lock.ok()      ? absl::StrCat("cannot take the lock: ", lock.status().message())
                              : *lock == nullptr ? "runs on another sidecar"
                                               : "";
      if (!say.empty()) {
        if (said_[m.id] != say) Log(absl::StrCat("migration ", m.id, ": ", say));
        said_[m.id] = say;
        continue;
      }
      said_.erase(m.id);
      next_try_.erase(m.id);
      Log(absl::StrCat("migration ", m.id, ": runs here, every ", ContinuousVerifySpecOf(m.data).interval.count(), " s"));
      it = held_.emplace(m.id, Held{*std::move(lock), now}).first;
    }
    if (CopyInProgress(m)) continue;  // looked at again with the job's next checkpoint
    if (Clock::now() >= it->second.next_run) {
      RunOnce(m.id);
      it->second.next_run = Clock::now() + ContinuousVerifySpecOf(m.data).interval;
    }
    next = std::min(next, it->second.next_run);
  }
  return next;
}

bool ContinuousVerifier::Stopping() {
  std::lock_guard<std::mutex> l(mu_);
  return stopping_;
}

namespace {
json::object PaceJson(const VerifyProgress& p) {
  json::object o{{"route", p.route},
                 {"table", p.table},
                 {"rows", p.rows},
                 {"elapsed_s", p.elapsed_seconds},
                 {"rate", p.rate}};
  if (p.rows_per_second > 0) o["rows_per_second"] = p.rows_per_second;
  return o;
}
}  // namespace

void ContinuousVerifier::RunOnce(const std::string& id) {
  // The current record (the copy in latest_ may be a publication old).
  auto m = service_->Snapshot(id);
  if (!m.ok() || !Wanted(*m)) return;
  // The last report stays in the record while this run says where it is.
  json::value last = m->progress.continuous_verification.is_object() ? m->progress.continuous_verification
                                                                     : json::value(json::object{});
  last.as_object().erase("progress");  // of a run stopped midway
  const std::string started = NowRfc3339();
  VerifyOptions run;
  run.rows_per_second = ContinuousVerifySpecOf(m->data).rows_per_second;
  run.stopping = [this] { return Stopping(); };
  std::optional<VerifyProgress> latest;
  auto next_save = Clock::now();
  run.progress = [&](const VerifyProgress& p) -> absl::Status {
    latest = p;
    if (Clock::now() < next_save) return absl::OkStatus();
    next_save = Clock::now() + std::chrono::seconds(1);
    json::value now = last;
    json::object progress = PaceJson(p);
    progress["started_at"] = started;
    now.as_object()["progress"] = std::move(progress);
    if (auto st = service_->SaveContinuousVerification(id, now, false, 0); !st.ok())
      Log(absl::StrCat("migration ", id, ": cannot save the progress: ", st.message()));
    return absl::OkStatus();
  };
  auto report = options_.verify ? options_.verify(*config_, *m) : Verify(*config_, *m, run);
  if (!report.ok() && report.status().code() == absl::StatusCode::kCancelled && Stopping()) return;
  json::value result;
  bool counted = false;
  std::int64_t rows = 0;
  if (report.ok() && report->is_object()) {
    result = *std::move(report);
    result.as_object()["at"] = NowRfc3339();
    result.as_object()["started_at"] = started;
    result.as_object()["runner"] = options_.instance_id;
    if (latest) result.as_object()["pace"] = PaceJson(*latest);
    counted = true;
    rows = RowsCompared(result);
  } else {
    // The last good report stays, with the error next to it.
    result = last;
    const std::string error =
        report.ok() ? std::string("the report is not an object") : std::string(report.status().message());
    result.as_object()["error"] = error;
    result.as_object()["error_at"] = NowRfc3339();
    Log(absl::StrCat("migration ", id, ": ", error));
  }
  if (auto st = service_->SaveContinuousVerification(id, result, counted, rows); !st.ok())
    Log(absl::StrCat("migration ", id, ": cannot save the result: ", st.message()));
}

}  // namespace turnout::control
