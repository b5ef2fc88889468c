#include "control/repair_job.h"

#include <boost/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "control/api_status.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using Clock = std::chrono::steady_clock;

// One record write a second while a job runs: the record is stored (and,
// with the Postgres store, sent to every sidecar) each time.
constexpr auto kSaveEvery = std::chrono::seconds(1);
// A failure line in the summary: longer ones are cut (they quote server errors).
constexpr std::size_t kFailureChars = 300;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

json::object ProgressJson(const RepairProgress& p, double elapsed) {
  json::object o{{"phase", p.phase},
                 {"route", p.route},
                 {"table", p.table},
                 {"rows", p.rows},
                 {"table_rows", p.table_rows},
                 {"tables_done", p.tables_done},
                 {"tables_total", p.tables_total},
                 {"elapsed_s", elapsed},
                 {"rate", elapsed > 0 ? static_cast<double>(p.rows) / elapsed : 0.0}};
  if (p.phase == "verifying" || p.phase == "checking") o["compared"] = p.compared;
  return o;
}

std::int64_t Int(const json::value& v, const char* key) {
  if (!v.is_object()) return 0;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<std::int64_t>() : 0;
}

std::size_t Size(const json::value& v, const char* key) {
  if (!v.is_object()) return 0;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_array() ? f->as_array().size() : 0;
}

// Prometheus label value (exposition format: \ " and newline escaped).
std::string Label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
  return out;
}

}  // namespace

json::object RepairSummary(const json::value& result) {
  std::int64_t upserted = 0, deleted = 0;
  if (auto* ts = result.is_object() ? result.as_object().if_contains("tables_repaired") : nullptr; ts && ts->is_array())
    for (const auto& t : ts->as_array()) {
      upserted += Int(t, "upserted");
      deleted += Int(t, "deleted");
    }
  json::array first;
  if (auto* fs = result.is_object() ? result.as_object().if_contains("failures") : nullptr; fs && fs->is_array())
    for (const auto& f : fs->as_array()) {
      if (first.size() == kSummaryFailures) break;
      std::string line = f.is_string() ? std::string(f.as_string()) : serialize(f);
      if (line.size() > kFailureChars) line = line.substr(0, kFailureChars) + "…";
      first.emplace_back(std::move(line));
    }
  json::object o{{"repaired_entries", Int(result, "repaired_entries")},
                 {"keys_copied", Size(result, "keys_copied")},
                 {"tables_repaired", Size(result, "tables_repaired")},
                 {"rows_upserted", upserted},
                 {"rows_deleted", deleted},
                 {"failures", Size(result, "failures")},
                 {"first_failures", std::move(first)},
                 {"postgres_differences", Size(result, "postgres_differences")},
                 {"pending", Int(result, "pending")}};
  auto* eq = result.is_object() ? result.as_object().if_contains("postgres_equal") : nullptr;
  o["postgres_equal"] = eq && eq->is_bool() ? eq->as_bool() : false;
  return o;
}

RepairJobs::RepairJobs(MigrationService* migrations, RepairFn repair)
    : migrations_(migrations), repair_(std::move(repair)), instance_id_(migrations->config().instance_id) {}

RepairJobs::~RepairJobs() {
  std::list<Thread> threads;
  {
    std::lock_guard<std::mutex> l(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads)
    if (t.thread.joinable()) t.thread.join();
}

void RepairJobs::Log(const std::string& line) const { std::fprintf(stderr, "turnout: repair: %s\n", line.c_str()); }

void RepairJobs::Save(Job& job) {
  if (auto st = migrations_->SaveRepair(job.id, job.record); !st.ok())
    Log(absl::StrCat("migration ", job.id, ": cannot save the job's record: ", st.message()));
}

absl::StatusOr<std::unique_ptr<RepairJobs::Job>> RepairJobs::Begin(const std::string& id, const std::string& actor) {
  auto m = migrations_->Snapshot(id);
  if (!m.ok()) return m.status();
  auto lock = migrations_->LockRepair(id);
  if (!lock.ok()) return lock.status();
  if (*lock == nullptr) {
    // The holder recorded itself when it took the lock (a sidecar of the
    // fleet whose record has not reached us yet is "another sidecar").
    std::string who = "on another sidecar";
    if (auto now = migrations_->Snapshot(id); now.ok() && now->repair.is_object()) {
      const auto& r = now->repair.as_object();
      auto* state = r.if_contains("state");
      auto* runner = r.if_contains("runner");
      auto* started = r.if_contains("started_at");
      if (state && state->is_string() && state->as_string() == "running" && runner && runner->is_string() && started &&
          started->is_string())
        who = absl::StrCat("on ", std::string(runner->as_string()), " since ", std::string(started->as_string()));
    }
    return WithDetails(
        absl::FailedPreconditionError(absl::StrCat("a repair of migration ", id, " is already running ", who)),
        absl::StrCat("one repair of a migration at a time; follow it in GET /api/v1/migrations/", id,
                     " (repair.progress) and POST …/repair again once it has ended"));
  }
  auto job = std::make_unique<Job>();
  job->id = id;
  job->actor = actor;
  job->started_at = NowRfc3339();
  job->start = Clock::now();
  job->lock = *std::move(lock);
  RepairProgress starting;
  starting.phase = "starting";
  job->record = json::object{{"state", "running"},
                             {"runner", instance_id_},
                             {"actor", actor},
                             {"started_at", job->started_at},
                             {"progress", ProgressJson(starting, 0)}};
  // Recorded before the caller answers: a GET right after a 202 sees the job.
  if (auto st = migrations_->SaveRepair(id, job->record); !st.ok()) return st;
  return job;
}

absl::StatusOr<json::value> RepairJobs::Run(std::unique_ptr<Job> job, const std::shared_ptr<std::mutex>& order) {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++running_;
  }
  absl::StatusOr<json::value> result = absl::UnknownError("not run");
  // The repair tells its progress on this thread; a ticker of the job's own
  // saves the latest once a second. So the repair never waits for the
  // store, and a repair waiting on a lock still shows where it waits.
  std::mutex mu;
  std::condition_variable cv;
  bool ended = false;
  RepairProgress last;
  last.phase = "starting";
  std::thread ticker([&] {
    std::unique_lock<std::mutex> l(mu);
    while (!cv.wait_for(l, kSaveEvery, [&] { return ended; })) {
      const RepairProgress p = last;
      l.unlock();
      job->record["progress"] = ProgressJson(p, Seconds(Clock::now() - job->start));
      Save(*job);
      l.lock();
    }
  });
  {
    std::lock_guard<std::mutex> l(*order);
    const RepairProgressFn progress = [&](const RepairProgress& p) {
      if (p.committed > 0 && !p.route.empty()) {
        std::lock_guard<std::mutex> ml(mu_);
        route_rows_[p.route] += p.committed;
      }
      std::lock_guard<std::mutex> pl(mu);
      last = p;
    };
    // The migration as it is once the previous long request is done.
    auto m = migrations_->Snapshot(job->id);
    // A bug in the repair (a throw) fails this job, not the process: the
    // job may run on a thread of its own.
    try {
      result = m.ok() ? repair_(*m, progress) : absl::StatusOr<json::value>(m.status());
    } catch (const std::exception& e) {
      result = absl::InternalError(absl::StrCat("the repair failed: ", e.what()));
    }
  }
  {
    std::lock_guard<std::mutex> l(mu);
    ended = true;
  }
  cv.notify_all();
  ticker.join();
  const double elapsed = Seconds(Clock::now() - job->start);
  const bool ok = result.ok();
  job->record["state"] = ok ? "finished" : "failed";
  job->record["finished_at"] = NowRfc3339();
  job->record["elapsed_s"] = elapsed;
  job->record["progress"] = ProgressJson(last, elapsed);
  if (ok) job->record["summary"] = RepairSummary(*result);
  else job->record["error"] = std::string(result.status().message());
  if (!ok) Log(absl::StrCat("migration ", job->id, ": ", result.status().message()));
  // Counted before the record says it ended: whoever sees the end sees the
  // metrics of it.
  {
    std::lock_guard<std::mutex> l(mu_);
    --running_;
    ++results_[ok ? "finished" : "failed"];
  }
  // Saved while the lock is held: the next repair's record replaces this one.
  Save(*job);
  job.reset();  // the lock
  return result;
}

void RepairJobs::Detach(std::unique_ptr<Job> job, std::shared_ptr<std::mutex> order, std::shared_ptr<void> hold) {
  std::lock_guard<std::mutex> l(mu_);
  // Threads of jobs that ended are joined here, so the list stays as long
  // as the jobs running.
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([this, job = std::move(job), order = std::move(order), hold = std::move(hold), done]() mutable {
    (void)Run(std::move(job), order);
    hold.reset();  // the admission slot, before the thread counts as done
    done->store(true);
  });
  threads_.push_back({std::move(t), std::move(done)});
}

std::string RepairJobs::MetricsText() const {
  std::lock_guard<std::mutex> l(mu_);
  std::string out = absl::StrCat(
      "# HELP turnout_repairs_running Repairs (POST …/repair) running on this sidecar.\n"
      "# TYPE turnout_repairs_running gauge\n"
      "turnout_repairs_running ", running_, "\n",
      "# HELP turnout_repairs_total Repairs ended on this sidecar, by result (finished: it ran; failed: it could not).\n"
      "# TYPE turnout_repairs_total counter\n");
  for (const char* result : {"finished", "failed"}) {
    auto it = results_.find(result);
    absl::StrAppend(&out, "turnout_repairs_total{result=\"", result, "\"} ", it == results_.end() ? 0 : it->second, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP turnout_repair_rows_total Rows and keys repaired on this sidecar, by route (a table's rows "
                  "once its transaction committed).\n"
                  "# TYPE turnout_repair_rows_total counter\n");
  for (const auto& [route, rows] : route_rows_)
    absl::StrAppend(&out, "turnout_repair_rows_total{route=\"", Label(route), "\"} ", rows, "\n");
  return out;
}

}  // namespace turnout::control
