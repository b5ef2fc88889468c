#include "control/stream_back.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/cutover_routes.h"
#include "control/data_movement.h"
#include "control/pg_change_stream.h"

namespace turnout::control {

namespace {

using Clock = std::chrono::steady_clock;

// What one route's stream back sees of its runner: its position lives on
// old with the rows, so a checkpoint only reports the figures; it goes on
// until told to stop.
class BackContext final : public BackfillContext {
 public:
  BackContext(MigrationService* service, std::string id, const std::atomic<bool>& stop,
              std::function<void(const std::string&)> log)
      : service_(service), id_(std::move(id)), stop_(stop), log_(std::move(log)) {}

  absl::Status Checkpoint(RouteProgress& p) override {
    StreamProgress s = p.stream;
    s.error = p.error;
    s.updated_at = NowRfc3339();
    // A record that cannot be written does not stop old from receiving
    // new's writes: the figures are late, the stream goes on.
    const absl::Status st = service_->SaveStreamBack(id_, p.route, s);
    if (!st.ok() && !save_failed_) log_(absl::StrCat("cannot record the progress of route ", p.route, ": ", st.message()));
    save_failed_ = !st.ok();
    return absl::OkStatus();
  }
  bool ShouldContinue() override { return !stop_; }
  void Sleep(std::chrono::milliseconds d) override {
    for (auto until = Clock::now() + d; !stop_ && Clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  void Log(const std::string& line) override { log_(line); }

 private:
  MigrationService* service_;
  const std::string id_;
  const std::atomic<bool>& stop_;
  std::function<void(const std::string&)> log_;
  bool save_failed_ = false;
};

// The figures a route's stream back starts from: the record's when it was
// streaming (a runner killed or stopped: the counters go on), else none (a
// new stream back after a later cutover).
RouteProgress StartingProgress(const Migration& m, const std::string& route) {
  RouteProgress p;
  p.route = route;
  for (const auto& r : m.progress.routes)
    if (r.route == route && r.stream_back.phase == "streaming") p.stream = r.stream_back;
  p.stream.error.clear();
  return p;
}

}  // namespace

struct StreamBacks::Back {
  std::unique_ptr<ExclusiveLock> lock;  // "back:<id>": one stream back per fleet
  std::atomic<bool> stop{false};
  std::thread thread;
};

StreamBacks::StreamBacks(std::shared_ptr<const routing::Config> config, const routing::RouteTablePublisher* route_table,
                         MigrationService* service, StateStore* store, std::function<void(const std::string&)> log)
    : config_(std::move(config)), route_table_(route_table), service_(service), store_(store), log_(std::move(log)) {}

StreamBacks::~StreamBacks() { Stop(); }

void StreamBacks::Log(const std::string& line) const {
  if (log_) log_(line);
  else std::fprintf(stderr, "turnout: cutover: %s\n", line.c_str());  // as before it left cutover.cc
}

void StreamBacks::Stop() {
  for (auto& [id, b] : backs_) b->stop = true;  // every route's stream stops at once
  for (auto& [id, b] : backs_)
    if (b->thread.joinable()) b->thread.join();
  backs_.clear();
}

void StreamBacks::StopOne(std::map<std::string, std::unique_ptr<Back>>::iterator it) {
  it->second->stop = true;
  if (it->second->thread.joinable()) it->second->thread.join();
  backs_.erase(it);
}

void StreamBacks::Forget(const std::vector<Migration>& all) {
  for (auto it = backs_.begin(); it != backs_.end();) {
    bool present = false;
    for (const Migration& m : all) present |= m.id == it->first;
    if (present) ++it;
    else StopOne(it++);
  }
}

void StreamBacks::Step(const Migration& m, const std::vector<Migration>& all) {
  auto it = backs_.find(m.id);
  if (StreamBackWanted(m)) {
    if (it != backs_.end() || StreamRoutesOf(*route_table_, m).empty()) return;
    auto lock = store_->TryLockExclusive("back:" + m.id);
    if (!lock.ok() || !*lock) return;
    auto back = std::make_unique<Back>();
    back->lock = *std::move(lock);
    Back* raw = back.get();
    back->thread = std::thread([this, m, raw] { Run(m, *raw); });
    backs_[m.id] = std::move(back);
    return;
  }
  if (it != backs_.end()) StopOne(it);
  MarkStopped(m);
  DropStale(m, all);
}

void StreamBacks::MarkStopped(const Migration& m) {
  for (const auto& r : m.progress.routes) {
    if (r.stream_back.phase.empty() || r.stream_back.phase == "stopped") continue;
    StreamProgress s = r.stream_back;
    s.phase = "stopped";
    s.error.clear();
    s.updated_at = NowRfc3339();
    if (auto st = service_->SaveStreamBack(m.id, r.route, s); !st.ok())
      Log(absl::StrCat("migration ", m.id, ": cannot record that the stream back of route ", r.route,
                       " stopped: ", st.message()));
  }
}

void StreamBacks::DropStale(const Migration& m, const std::vector<Migration>& all) {
  // Its slots on new, once no migration wants them (every sidecar tries
  // until one call found nothing in use).
  if (!m.cutover.is_object()) return;  // a window prepares a stream back, even one abandoned
  const auto key = std::make_pair(m.id, CutoverEpoch(m));
  if (cleaned_.contains(key)) return;
  if (auto retry = clean_retry_.find(key); retry != clean_retry_.end() && Clock::now() < retry->second) return;
  std::set<std::string> keep;
  for (const Migration& other : all) {
    if (other.state != MigrationState::kRunning && other.state != MigrationState::kPaused) continue;
    for (const auto& i : other.interlays) {
      keep.insert(StreamNamesFor(other.id, i.route).slot);
      if (StreamBackWanted(other)) keep.insert(StreamBackNamesFor(other.id, i.route).slot);
    }
  }
  bool done = true;
  for (const auto& i : m.interlays) {
    const RouteBackends b = RouteBackendsOf(*config_, *route_table_, i.route);
    if (b.new_b == nullptr || b.new_b->protocol != routing::Protocol::kPostgres) continue;
    auto stale = DropStaleStreams(*b.new_b, keep);
    if (!stale.ok() || stale->in_use > 0) done = false;
    if (stale.ok() && !stale->dropped.empty())
      Log(absl::StrCat("migration ", m.id, ": stream back ended; dropped on new: ", absl::StrJoin(stale->dropped, ", ")));
  }
  if (done) {
    cleaned_.insert(key);
    clean_retry_.erase(key);
  } else {
    clean_retry_[key] = Clock::now() + std::chrono::seconds(5);
  }
}

void StreamBacks::Run(const Migration& m, Back& back) {
  Log(absl::StrCat("migration ", m.id, ": streaming new's writes back to old"));
  std::vector<std::thread> streams;
  for (const auto& r : StreamRoutesOf(*route_table_, m)) {
    const RouteBackends b = RouteBackendsOf(*config_, *route_table_, r.name);
    if (b.old_b == nullptr || b.new_b == nullptr) continue;
    streams.emplace_back([this, &back, id = m.id, progress = StartingProgress(m, r.name), b]() mutable {
      BackContext ctx(service_, id, back.stop, [this, id](const std::string& line) {
        Log(absl::StrCat("migration ", id, ": stream back: ", line));
      });
      StreamOptions options;
      options.migration_id = id;
      while (!back.stop) {
        // It is the only way new's writes reach old: never given up while wanted.
        absl::Status st = StreamPostgresBack(*b.old_b, *b.new_b, options, progress, ctx);
        if (back.stop || IsStoppedAtBatchBoundary(st)) break;
        progress.error = std::string(st.message());
        (void)ctx.Checkpoint(progress);
        Log(absl::StrCat("migration ", id, ": stream back of route ", progress.route, ": ", st.message(),
                         "; retrying in 5 s"));
        ctx.Sleep(std::chrono::seconds(5));
      }
    });
  }
  for (auto& t : streams) t.join();
}

}  // namespace turnout::control
