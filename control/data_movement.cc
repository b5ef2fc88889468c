#include "control/data_movement.h"

#include <pthread.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/backend_inspector.h"
#include "control/pg_backfill.h"
#include "control/pg_change_stream.h"
#include "control/pg_set_aside_indexes.h"
#include "control/strategy_json.h"
#include "control/redis_backfill.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

std::string StringField(const json::value& v, const char* key) {
  if (!v.is_object()) return "";
  auto* f = v.as_object().if_contains(key);
  return f && f->is_string() ? std::string(f->as_string()) : "";
}

std::int64_t IntField(const json::value& v, const char* key, std::int64_t fallback) {
  if (!v.is_object()) return fallback;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<std::int64_t>() : fallback;
}

bool HasData(const Migration& m) { return DataSpecOf(m.data).mode != DataSpec::Mode::kNone; }

struct FailureHandling {
  enum class Kind { kRollbackAll, kRetryThenAll, kAllowPartial };
  Kind kind = Kind::kRollbackAll;
  int retry_count = 3;
};

FailureHandling FailureHandlingOf(const json::value& v) {
  FailureHandling f;
  const std::string type = v.is_string() ? std::string(v.as_string()) : StringField(v, "type");
  if (type == "retry_then_all") f.kind = FailureHandling::Kind::kRetryThenAll;
  if (type == "allow_partial") f.kind = FailureHandling::Kind::kAllowPartial;
  f.retry_count = static_cast<int>(IntField(v, "retry_count", f.retry_count));
  return f;
}

// The routes' progress in the migration's route order: one entry per route,
// kept from the record where it exists.
void AlignRoutes(const Migration& m, DataProgress& p) {
  std::vector<RouteProgress> routes;
  for (const auto& i : m.interlays) {
    auto it = std::find_if(p.routes.begin(), p.routes.end(), [&](const RouteProgress& r) { return r.route == i.route; });
    if (it != p.routes.end()) {
      routes.push_back(*it);
    } else {
      RouteProgress r;
      r.route = i.route;
      routes.push_back(std::move(r));
    }
  }
  p.routes = std::move(routes);
}

// What a route's data movement needs: its configured route, its old
// backend, the migration's endpoint for it, and the scope's tables (Postgres)
// or key globs (Redis). Null where not configured.
struct RouteInputs {
  const routing::Route* route = nullptr;
  const routing::Backend* old_backend = nullptr;
  const routing::Backend* new_backend = nullptr;
  std::vector<std::string> scope;
};

RouteInputs InputsOf(const routing::Config& config, const Migration& m, const std::string& name) {
  RouteInputs in;
  in.route = config.FindRoute(name);
  if (in.route != nullptr) in.old_backend = config.FindBackend(in.route->old_backend);
  for (const auto& il : m.interlays)
    if (il.route == name) in.new_backend = config.FindBackend(il.endpoint);
  if (in.route != nullptr)
    for (const auto& a : m.apis) {
      const auto& items = in.route->protocol == routing::Protocol::kPostgres ? a.tables : a.keys;
      in.scope.insert(in.scope.end(), items.begin(), items.end());
    }
  return in;
}

bool Streams(const Migration& m) {
  for (const auto& r : m.progress.routes)
    if (!r.stream.slot.empty()) return true;
  return false;
}

// Whether a route's change stream ends now: everything goes to new, or a
// snapshot without dual-write (the copy, caught up). While the strategy
// dual-writes, the stream is its writes.
bool StreamEnds(const DataSpec& spec, MigrationService* service, const std::string& id) {
  auto m = service->Snapshot(id);
  if (!m.ok()) return false;
  // A cutover window not flipped yet: old still takes writes.
  if (CutoverPending(*m)) return false;
  auto strategy = StrategyFromJson(m->strategy);
  if (!strategy.ok()) return false;
  return IsFullCutover(*strategy) || (spec.mode == DataSpec::Mode::kSnapshot && !DualWrites(*strategy));
}

// A Postgres route: by change stream where old can (or must) stream, else
// by the copier. A route that started streaming keeps streaming.
// `until_caught_up`: the stream returns once new has caught up after the
// copy (RunJob then streams every such route at once until StreamEnds).
absl::Status MovePostgres(const routing::Backend& old_b, const routing::Backend& new_b,
                          const std::vector<std::string>& scope, const DataSpec& spec, const std::string& id,
                          MigrationService* service, RouteProgress& progress, BackfillContext& ctx,
                          bool until_caught_up, StreamListeners listeners) {
  bool stream = !progress.stream.slot.empty();
  if (!stream && spec.method != DataSpec::Method::kCopy && progress.stream.phase != "unavailable") {
    auto missing = StreamPrerequisitesMissing(old_b);
    if (!missing.ok()) return missing.status();
    const std::string why = absl::StrJoin(*missing, "; ");
    if (missing->empty()) stream = true;
    else if (spec.method == DataSpec::Method::kStream)
      return absl::FailedPreconditionError(absl::StrCat("old cannot stream changes: ", why));
    else {
      // Writes go back to statement dual-write (migration_service.cc: WritesByStream).
      progress.stream.phase = "unavailable";
      AddNote(progress, absl::StrCat("no change stream (", why, "): copied by ",
                                     spec.mode == DataSpec::Mode::kScan ? "keyset scan" : "snapshot",
                                     ", writes dual-written as statements"));
    }
  }
  if (!stream) return CopyPostgres(old_b, new_b, scope, spec, progress, ctx);
  StreamOptions options;
  options.migration_id = id;
  options.finish_requested = [&spec, service, id, until_caught_up] {
    return until_caught_up || StreamEnds(spec, service, id);
  };
  options.on_applied = std::move(listeners.on_applied);
  options.on_commits = std::move(listeners.on_commits);
  return StreamPostgres(old_b, new_b, scope, spec, options, progress, ctx);
}

}  // namespace

DataSpec DataSpecOf(const json::value& data) {
  DataSpec s;
  const std::string type = data.is_string() ? std::string(data.as_string()) : StringField(data, "type");
  if (type == "scan") s.mode = DataSpec::Mode::kScan;
  if (type == "snapshot") s.mode = DataSpec::Mode::kSnapshot;
  const std::string rule = StringField(data, "replace");
  if (rule == "replace") s.rule = ConflictRule::kReplace;
  if (rule == "merge") s.rule = ConflictRule::kMerge;
  s.batch_size = static_cast<int>(IntField(data, "batch_size", s.batch_size));
  s.sleep = std::chrono::milliseconds(IntField(data, "sleep_ms", s.sleep.count()));
  s.workers = static_cast<int>(IntField(data, "workers", s.workers));
  s.passes = static_cast<int>(IntField(data, "passes", s.passes));
  s.binary = StringField(data, "format") != "text";
  const std::string method = StringField(data, "method");
  if (method == "stream") s.method = DataSpec::Method::kStream;
  if (method == "copy") s.method = DataSpec::Method::kCopy;
  return s;
}

absl::Status StoppedAtBatchBoundary() { return absl::CancelledError("data movement stopped at a batch boundary"); }

bool IsStoppedAtBatchBoundary(const absl::Status& st) {
  return st.code() == absl::StatusCode::kCancelled && st.message() == "data movement stopped at a batch boundary";
}

struct DataMovement::Job {
  std::string id;
  std::unique_ptr<ExclusiveLock> lock;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> finished{false};
  // Ended for a reason outside the copy (the store): start again only after
  // a pause, not on the next wake-up.
  std::atomic<bool> retry_later{false};
};

namespace {

// The job's side of a backfill: checkpoints go to the migration record
// through the service; the copy goes on while the migration is Running.
class JobContext final : public BackfillContext {
 public:
  // `shared`: held while the record is written, when several routes run at
  // once (each context writes its own route's entry).
  JobContext(MigrationService* service, const std::string& id, DataProgress* progress, std::size_t route,
             const std::atomic<bool>* stop, std::function<void(const std::string&)> log, std::mutex* shared = nullptr)
      : service_(service), id_(id), progress_(progress), route_(route), stop_(stop), log_(std::move(log)),
        shared_(shared) {
    window_start_ = std::chrono::steady_clock::now();
    window_copied_ = progress_->routes[route_].copied;
  }

  absl::Status Checkpoint(RouteProgress& p) override {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - window_start_).count();
    // The rate over the last interval of at least one second.
    if (elapsed >= 1.0) {
      p.rate = static_cast<double>(p.copied - window_copied_) / elapsed;
      window_start_ = now;
      window_copied_ = p.copied;
    }
    p.ratio = p.total > 0 ? std::min(0.99, static_cast<double>(p.copied) / static_cast<double>(p.total)) : 0.0;
    p.updated_at = NowRfc3339();
    std::unique_lock<std::mutex> l;
    if (shared_ != nullptr) l = std::unique_lock<std::mutex>(*shared_);
    progress_->routes[route_] = p;
    auto st = service_->SaveProgress(id_, *progress_);
    if (!st.ok()) {
      store_failed_ = true;
      return absl::UnavailableError(absl::StrCat("cannot store the checkpoint: ", st.message()));
    }
    return absl::OkStatus();
  }

  bool ShouldContinue() override {
    if (stop_->load()) return false;
    auto m = service_->Snapshot(id_);
    return m.ok() && m->state == MigrationState::kRunning;
  }

  void Sleep(std::chrono::milliseconds d) override {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      if (stop_->load()) return;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
  }

  void Log(const std::string& line) override { log_(line); }
  bool store_failed() const { return store_failed_; }

 private:
  MigrationService* service_;
  const std::string id_;
  DataProgress* progress_;
  const std::size_t route_;
  const std::atomic<bool>* stop_;
  std::function<void(const std::string&)> log_;
  std::mutex* const shared_;
  std::chrono::steady_clock::time_point window_start_;
  std::int64_t window_copied_ = 0;
  bool store_failed_ = false;
};

}  // namespace

DataMovement::DataMovement(std::shared_ptr<const routing::Config> config, MigrationService* service, StateStore* store,
                           DataMovementOptions options)
    : config_(std::move(config)), service_(service), store_(store), options_(std::move(options)) {}

DataMovement::~DataMovement() { Stop(); }

void DataMovement::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
  else std::fprintf(stderr, "turnout: data movement: %s\n", line.c_str());
}

StreamListeners DataMovement::StreamListenersFor(const std::string& route) const {
  if (options_.stream_positions == nullptr) return {};
  routing::StreamPosition* pos = &options_.stream_positions->For(route);
  return {
      // As long as a StreamFeeder believes the applier's notifications.
      .on_applied = [pos](std::uint64_t lsn) { pos->Applied(lsn, absl::Now() + absl::Seconds(3)); },
      .on_commits = [pos](std::span<const routing::StreamPosition::DecodedCommit> c) { pos->Committed(c); },
  };
}

void DataMovement::Start() {
  std::lock_guard<std::mutex> l(mu_);
  if (reconciler_.joinable() || stopping_) return;
  poked_ = true;
  reconciler_ = std::thread([this] { ReconcileLoop(); });
}

void DataMovement::Stop() {
  std::map<std::string, std::unique_ptr<Job>> jobs;
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) job->stop = true;
    cv_.notify_all();
  }
  if (reconciler_.joinable()) reconciler_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    jobs.swap(jobs_);
  }
  // Joined without mu_: a job's last checkpoint calls OnMigrations.
  for (auto& [id, job] : jobs)
    if (job->thread.joinable()) job->thread.join();
}

void DataMovement::OnMigrations(const std::vector<Migration>& all) {
  std::lock_guard<std::mutex> l(mu_);
  latest_ = all;
  poked_ = true;
  cv_.notify_all();
}

void DataMovement::ReconcileLoop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    cv_.wait_for(l, options_.lock_retry, [&] { return poked_ || stopping_; });
    if (stopping_) break;
    poked_ = false;
    l.unlock();
    Reconcile();
    l.lock();
  }
}

void DataMovement::Reconcile() {
  std::vector<Migration> all;
  std::vector<std::unique_ptr<Job>> done;
  {
    std::lock_guard<std::mutex> l(mu_);
    all = latest_;
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second->finished) {
        done.push_back(std::move(it->second));
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& job : done) job->thread.join();  // releases the lock (ExclusiveLock) with the Job
  done.clear();
  CleanUpStreams(all);

  for (const auto& m : all) {
    if (m.state != MigrationState::kRunning || !HasData(m) || m.progress.finished()) continue;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_ || jobs_.count(m.id)) continue;
      auto next = next_try_.find(m.id);
      if (next != next_try_.end() && std::chrono::steady_clock::now() < next->second) continue;
      next_try_[m.id] = std::chrono::steady_clock::now() + options_.lock_retry;
    }
    auto lock = store_->TryLockExclusive("data:" + m.id);
    if (!lock.ok()) {
      // Retried every lock_retry; said once per distinct error.
      const std::string said = absl::StrCat("lock error: ", lock.status().message());
      std::lock_guard<std::mutex> l(mu_);
      if (elsewhere_[m.id] != said) {
        Log(absl::StrCat("migration ", m.id, ": cannot take the data movement lock: ", lock.status().message()));
        elsewhere_[m.id] = said;
      }
      continue;
    }
    if (*lock == nullptr) {
      // Another sidecar holds the lock: its progress arrives through the store.
      const std::string runner = m.progress.runner.empty() ? "not recorded yet" : m.progress.runner;
      std::lock_guard<std::mutex> l(mu_);
      if (elsewhere_[m.id] != runner) {
        Log(absl::StrCat("migration ", m.id, ": data movement runs on another sidecar (runner: ", runner,
                         "); not running it here"));
        elsewhere_[m.id] = runner;
      }
      continue;
    }
    auto job = std::make_unique<Job>();
    job->id = m.id;
    job->lock = *std::move(lock);
    Job* raw = job.get();
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) continue;  // the lock is released with `job`
    elsewhere_.erase(m.id);
    next_try_.erase(m.id);
    raw->thread = std::thread([this, raw] {
      // A job that streams spends its life here: named for top -H and the
      // benches' CPU split (bench/lib/cpu_split.sh).
      pthread_setname_np(pthread_self(), "turnout-move");
      RunJob(raw);
      // Wake the reconciler: the job may need a restart (store trouble).
      std::lock_guard<std::mutex> l2(mu_);
      if (raw->retry_later) next_try_[raw->id] = std::chrono::steady_clock::now() + options_.lock_retry;
      raw->finished = true;
      poked_ = true;
      cv_.notify_all();
    });
    jobs_[m.id] = std::move(job);
  }
}

void DataMovement::CleanUpStreams(const std::vector<Migration>& all) {
  std::set<std::string> keep;
  std::set<std::string> live_targets;
  for (const auto& m : all) {
    const bool live = (m.state == MigrationState::kRunning || m.state == MigrationState::kPaused) && HasData(m) &&
                      !m.progress.finished();
    for (const auto& i : m.interlays) {
      const routing::Route* route = config_->FindRoute(i.route);
      if (route == nullptr || route->protocol != routing::Protocol::kPostgres) continue;
      if (Streams(m)) {
        stream_sources_.insert(route->old_backend);
        stream_targets_.insert(i.endpoint);
      }
      if (live) {
        keep.insert(StreamNamesFor(m.id, i.route).slot);
        live_targets.insert(i.endpoint);
      }
    }
  }
  if (keep == stream_keep_ && !stream_cleanup_due_) return;
  stream_keep_ = keep;
  stream_cleanup_due_ = false;
  for (const auto& name : stream_sources_) {
    const routing::Backend* b = config_->FindBackend(name);
    if (b == nullptr) continue;
    auto stale = DropStaleStreams(*b, keep);
    if (!stale.ok()) {
      stream_cleanup_due_ = true;
      Log(absl::StrCat("cannot drop stale change streams on ", name, ": ", stale.status().message()));
      continue;
    }
    for (const auto& d : stale->dropped) Log(absl::StrCat("dropped ", d, " on ", name));
    if (stale->in_use > 0) stream_cleanup_due_ = true;  // its runner is stopping: next round
  }
  // Indexes a copy set aside and could not build again (kill -9 mid-copy),
  // on a server no live migration copies into any more: its next copy, which
  // would have built them, never comes (control/pg_set_aside_indexes.h).
  for (const auto& name : stream_targets_) {
    const routing::Backend* b = config_->FindBackend(name);
    if (b == nullptr || live_targets.count(name)) continue;
    auto built = RebuildSetAsideIndexes(*b);
    if (!built.ok()) {
      stream_cleanup_due_ = true;
      Log(absl::StrCat("cannot build the indexes set aside on ", name, ": ", built.status().message()));
      continue;
    }
    for (const auto& t : *built) Log(absl::StrCat("built the indexes a cut-short copy set aside on ", name, ": ", t));
  }
}

void DataMovement::RunJob(Job* job) {
  const std::string& id = job->id;
  // The lock is ours; the record may have moved on since our copy (another
  // sidecar finished the job and released the lock): read it again.
  if (auto st = service_->Reload(); !st.ok()) {
    Log(absl::StrCat("migration ", id, ": cannot reload the state store: ", st.message()));
    job->retry_later = true;
    return;
  }
  auto snap = service_->Snapshot(id);
  if (!snap.ok()) return;
  Migration m = *std::move(snap);
  if (m.state != MigrationState::kRunning || !HasData(m) || m.progress.finished()) return;

  const DataSpec spec = DataSpecOf(m.data);
  const FailureHandling handling = FailureHandlingOf(m.failure_handling);
  DataProgress p = m.progress;
  AlignRoutes(m, p);
  const bool resumed = p.status != "pending" && !p.status.empty();
  p.status = "running";
  p.runner = config_->instance_id;
  if (p.started_at.empty()) p.started_at = NowRfc3339();
  if (auto st = service_->SaveProgress(id, p, resumed ? "data_movement_resumed" : "data_movement_started"); !st.ok()) {
    Log(absl::StrCat("migration ", id, ": cannot record the start: ", st.message()));
    job->retry_later = true;
    return;
  }
  Log(absl::StrCat("migration ", id, ": data movement ", resumed ? "resumed" : "started", " on ", p.runner));

  auto fail = [&](const std::string& error) {
    p.status = "failed";
    p.finished_at = NowRfc3339();
    Log(absl::StrCat("migration ", id, ": ", error, "; migration fails (failure_handling)"));
    if (auto st = service_->FailDataMovement(id, p, error); !st.ok())
      Log(absl::StrCat("migration ", id, ": cannot record the failure: ", st.message()));
  };
  // What the job leaves behind when told to stop: paused, rolled back, or
  // (shutdown) still running, for the next process to resume.
  auto stopped = [&] {
    auto now = service_->Snapshot(id);
    if (!now.ok()) return;
    if (now->state == MigrationState::kPaused) p.status = "paused";
    else if (now->state != MigrationState::kRunning) p.status = "stopped";
    for (auto& r : p.routes) r.rate = 0;
    if (auto st = service_->SaveProgress(id, p); !st.ok())
      Log(absl::StrCat("migration ", id, ": cannot record the stop: ", st.message()));
    Log(absl::StrCat("migration ", id, ": data movement ", p.status == "running" ? "interrupted" : p.status,
                     " at a batch boundary; checkpoint kept"));
  };

  for (std::size_t i = 0; i < p.routes.size(); ++i) {
    RouteProgress& r = p.routes[i];
    if (r.phase == "done" || r.phase == "streaming") continue;
    if (r.phase == "failed") {
      if (handling.kind == FailureHandling::Kind::kAllowPartial) continue;
      return fail(absl::StrCat("data movement of route ", r.route, " failed: ", r.error));
    }
    const RouteInputs in = InputsOf(*config_, m, r.route);
    const routing::Route* route = in.route;
    const routing::Backend* old_b = in.old_backend;
    const routing::Backend* new_b = in.new_backend;
    const std::vector<std::string>& scope = in.scope;
    for (;;) {
      r.phase = "copying";
      r.error.clear();
      JobContext ctx(service_, id, &p, i, &job->stop, [this](const std::string& line) { Log(line); });
      const auto started = std::chrono::steady_clock::now();
      const std::int64_t copied_before = r.copied;
      absl::Status st;
      if (!route || !old_b || !new_b) {
        st = absl::FailedPreconditionError(absl::StrCat("route ", r.route, " or its backends are not configured"));
      } else {
        RouteProgress work = r;
        st = route->protocol == routing::Protocol::kPostgres
                 ? MovePostgres(*old_b, *new_b, scope, spec, id, service_, work, ctx, /*until_caught_up=*/true,
                                StreamListenersFor(r.route))
                 : CopyRedis(*old_b, *new_b, scope, spec, work, ctx);
        r = work;
      }
      if (st.ok() && !r.stream.slot.empty()) {
        // Copied and caught up once; its stream goes on with the others'
        // below, and ends there (a fresh catch-up, even when the strategy
        // already lets it end: writes went on since the first one).
        r.phase = "streaming";
        r.updated_at = NowRfc3339();
        if (auto s2 = service_->SaveProgress(id, p); !s2.ok()) {
          job->retry_later = true;
          return;
        }
        break;
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (st.ok()) {
        r.phase = "done";
        r.ratio = 1;
        r.rate = 0;
        if (r.total < r.copied) r.total = r.copied;
        r.updated_at = NowRfc3339();
        const std::int64_t n = r.copied - copied_before;
        Log(absl::StrFormat("migration %s: route %s copied: %d %s in %.2f s (%.0f/s), %d written on new", id, r.route, n,
                            route->protocol == routing::Protocol::kPostgres ? "rows" : "keys", secs,
                            secs > 0 ? static_cast<double>(n) / secs : 0.0, r.written));
        if (auto s2 = service_->SaveProgress(id, p); !s2.ok()) {
          Log(absl::StrCat("migration ", id, ": cannot record route ", r.route, " done: ", s2.message()));
          job->retry_later = true;
          return;
        }
        break;
      }
      if (IsStoppedAtBatchBoundary(st)) return stopped();
      if (ctx.store_failed()) {
        // Not the copy's fault: stop here and let the reconciler start over
        // from the last stored checkpoint once the store answers again.
        Log(absl::StrCat("migration ", id, ": ", st.message(), "; will resume from the last checkpoint"));
        job->retry_later = true;
        return;
      }
      r.error = std::string(st.message());
      r.rate = 0;
      r.updated_at = NowRfc3339();
      Log(absl::StrCat("migration ", id, ": route ", r.route, " failed: ", r.error));
      if (handling.kind == FailureHandling::Kind::kRetryThenAll && r.attempts < handling.retry_count) {
        ++r.attempts;
        (void)service_->SaveProgress(id, p, "data_movement_retry");
        JobContext waiter(service_, id, &p, i, &job->stop, [](const std::string&) {});
        waiter.Sleep(options_.retry_backoff * r.attempts);
        if (!waiter.ShouldContinue()) return stopped();
        Log(absl::StrCat("migration ", id, ": route ", r.route, ": retry ", r.attempts, " of ", handling.retry_count,
                         " from the checkpoint"));
        continue;
      }
      r.phase = "failed";
      if (handling.kind == FailureHandling::Kind::kAllowPartial) {
        (void)service_->SaveProgress(id, p, "data_movement_route_failed");
        break;
      }
      return fail(absl::StrCat("data movement of route ", r.route, " failed: ", r.error));
    }
  }

  // Every route copied; those whose stream goes on run at once until the
  // strategy lets them end (a stream per route: one route's never waits for
  // another's).
  std::vector<std::size_t> streaming;
  for (std::size_t i = 0; i < p.routes.size(); ++i)
    if (p.routes[i].phase == "streaming") streaming.push_back(i);
  if (!streaming.empty()) {
    std::mutex shared;
    std::vector<absl::Status> results(streaming.size());
    std::vector<char> store_failed(streaming.size(), 0);
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < streaming.size(); ++k) {
      threads.emplace_back([&, k] {
        const std::size_t i = streaming[k];
        RouteProgress work;
        {
          std::lock_guard<std::mutex> l(shared);
          work = p.routes[i];
        }
        const RouteInputs in = InputsOf(*config_, m, work.route);
        JobContext ctx(service_, id, &p, i, &job->stop, [this](const std::string& line) { Log(line); }, &shared);
        results[k] = !in.old_backend || !in.new_backend
                         ? absl::FailedPreconditionError("route or its backends are not configured")
                         : MovePostgres(*in.old_backend, *in.new_backend, in.scope, spec, id, service_, work, ctx,
                                        /*until_caught_up=*/false, StreamListenersFor(work.route));
        store_failed[k] = ctx.store_failed();
        std::lock_guard<std::mutex> l(shared);
        p.routes[i] = work;
      });
    }
    for (auto& t : threads) t.join();
    bool stopped_any = false;
    for (std::size_t k = 0; k < streaming.size(); ++k) {
      RouteProgress& r = p.routes[streaming[k]];
      const absl::Status& st = results[k];
      if (st.ok()) {
        r.phase = "done";
        r.ratio = 1;
        r.updated_at = NowRfc3339();
        continue;
      }
      if (IsStoppedAtBatchBoundary(st)) {
        stopped_any = true;
        continue;
      }
      if (store_failed[k]) {
        job->retry_later = true;
        continue;
      }
      r.error = std::string(st.message());
      r.phase = "failed";
      if (handling.kind != FailureHandling::Kind::kAllowPartial)
        return fail(absl::StrCat("data movement of route ", r.route, " failed: ", r.error));
    }
    // A stopped stream stays "streaming": the next job goes on from new's
    // stored position.
    if (stopped_any || job->retry_later) {
      for (std::size_t k = 0; k < streaming.size(); ++k)
        if (p.routes[streaming[k]].phase != "done" && p.routes[streaming[k]].phase != "failed")
          p.routes[streaming[k]].phase = "streaming";
      if (stopped_any) return stopped();
      (void)service_->SaveProgress(id, p);
      return;
    }
  }

  // Every route copied (or failed under allow_partial): verify, then finish.
  p.status = "verifying";
  (void)service_->SaveProgress(id, p);
  if (auto fresh = service_->Snapshot(id); fresh.ok()) m = *std::move(fresh);
  // After a cutover flipped, new takes the writes and old no longer gets
  // them: comparing the two now would only show those writes. The window
  // made new equal to old at the flip (control/cutover.h).
  const bool flipped = CutoverPhase(m) == "done";
  absl::StatusOr<json::value> report =
      flipped ? absl::StatusOr<json::value>(json::object{
                    {"skipped", "writes moved to new at the cutover; new held everything old committed then (the "
                                "window waited for it), and old has not received new's writes since"}})
              : Verify(*config_, m);
  if (report.ok()) {
    p.verification = *std::move(report);
  } else {
    p.verification = json::object{{"error", std::string(report.status().message())}};
  }
  const auto* equal_field = report.ok() ? p.verification.as_object().if_contains("equal") : nullptr;
  const bool equal = equal_field != nullptr && equal_field->is_bool() && equal_field->as_bool();
  bool partial = false;
  for (const auto& r : p.routes) partial |= r.phase == "failed";
  p.status = "done";
  p.finished_at = NowRfc3339();
  auto state = service_->FinishDataMovement(id, p, /*complete=*/!partial);
  if (!state.ok()) {
    Log(absl::StrCat("migration ", id, ": cannot record the end of data movement: ", state.status().message()));
    job->retry_later = true;
    return;
  }
  Log(absl::StrCat("migration ", id, ": data movement done", partial ? " (some routes failed)" : "",
                   "; verification ",
                   flipped ? "skipped (writes moved to new at the cutover)"
                   : report.ok() ? (equal ? "found both sides equal" : "found differences")
                                 : "failed",
                   "; migration is ", MigrationStateName(*state)));
}

}  // namespace turnout::control
