#include "control/cutover.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "control/pg_backfill.h"
#include "control/pg_change_stream.h"
#include "protocol/pg/pgoutput.h"

namespace turnout::control {

namespace {

using Clock = std::chrono::steady_clock;
namespace pgo = protocol::pg::pgoutput;

// How often the loop looks while a window is open, and otherwise.
constexpr auto kHoldingTick = std::chrono::milliseconds(1);
constexpr auto kQuietTick = std::chrono::milliseconds(100);
// A gate lets go only once the hold has been published here this long:
// a session that refreshed its policy just before it finishes its routing
// decision (and is counted as an open writer) in microseconds.
constexpr auto kHoldSettles = std::chrono::milliseconds(20);

bool Holding(const Migration& m, std::int64_t* epoch) {
  if (m.state != MigrationState::kRunning || CutoverPhase(m) != "holding") return false;
  *epoch = CutoverEpoch(m);
  return *epoch != 0;
}

std::string WritesLock(const std::string& id) { return "writes:" + id; }

}  // namespace

// This sidecar may write to old for the migration while it holds the lock.
struct Cutovers::Gate {
  std::unique_ptr<ExclusiveLock> lock;
  Clock::time_point hold_seen{};  // when the hold was first seen published here; {} when not
};

struct Cutovers::Runner {
  std::unique_ptr<ExclusiveLock> lock;  // "cutover:<id>": one runner per fleet
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread thread;
};

Cutovers::Cutovers(std::shared_ptr<const routing::Config> config, const routing::RouteTablePublisher* route_table,
                   MigrationService* service, StateStore* store, routing::StreamPositions* positions,
                   std::function<void(const std::string&)> log)
    : config_(std::move(config)),
      route_table_(route_table),
      service_(service),
      store_(store),
      positions_(positions),
      log_(std::move(log)) {}

Cutovers::~Cutovers() { Stop(); }

void Cutovers::Log(const std::string& line) const {
  if (log_) log_(line);
  else std::fprintf(stderr, "turnout: cutover: %s\n", line.c_str());
}

void Cutovers::OnMigrations(const std::vector<Migration>& all) {
  auto copy = std::make_shared<const std::vector<Migration>>(all);
  std::lock_guard l(mu_);
  migrations_ = std::move(copy);
}

void Cutovers::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Cutovers::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (auto& [id, r] : runners_) {
    r->stop = true;
    if (r->thread.joinable()) r->thread.join();
  }
  runners_.clear();
  gates_.clear();
}

void Cutovers::Loop() {
  while (!stop_) {
    const bool holding = Step();
    std::this_thread::sleep_for(holding ? kHoldingTick : kQuietTick);
  }
}

std::vector<Cutovers::StreamRoute> Cutovers::StreamRoutes(const Migration& m) const {
  std::vector<StreamRoute> out;
  const auto table = route_table_->Load();
  for (const auto& i : m.interlays) {
    const auto policy = table->FindShared(i.route);
    if (!policy || policy->migration_id() != m.id || !policy->inputs().writes_by_stream) continue;
    StreamRoute r;
    r.name = i.route;
    r.held = policy->inputs().hold_writes;
    out.push_back(std::move(r));
  }
  return out;
}

bool Cutovers::Step() {
  std::shared_ptr<const std::vector<Migration>> published;
  {
    std::lock_guard l(mu_);
    published = migrations_;
  }
  const std::vector<Migration>& all = *published;
  bool any_holding = false;
  std::map<std::string, bool> seen;
  for (const Migration& m : all) {
    const auto routes = StreamRoutes(m);
    if (routes.empty()) continue;
    seen[m.id] = true;
    std::int64_t epoch = 0;
    const bool holding = Holding(m, &epoch);
    any_holding |= holding;

    // The gate: held while this sidecar may write to old.
    auto& gate = gates_[m.id];
    if (!gate) gate = std::make_unique<Gate>();
    bool held_here = holding;
    int open = 0;
    for (const auto& r : routes) {
      held_here &= r.held;
      open += positions_->For(r.name).open_writers();
    }
    if (!held_here) {
      gate->hold_seen = {};
      if (!gate->lock) {
        auto lock = store_->TryLockShared(WritesLock(m.id));
        if (lock.ok() && *lock) gate->lock = *std::move(lock);
      }
    } else {
      if (gate->hold_seen == Clock::time_point{}) gate->hold_seen = Clock::now();
      if (gate->lock && open == 0 && Clock::now() - gate->hold_seen >= kHoldSettles) {
        gate->lock.reset();
        Log(absl::StrCat("migration ", m.id, ": writes drained here ",
                         std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - gate->hold_seen).count(),
                         " ms after the hold was published"));
      }
    }

    // The runner: one per fleet, by lock.
    auto it = runners_.find(m.id);
    if (it != runners_.end() && it->second->done) {
      if (it->second->thread.joinable()) it->second->thread.join();
      runners_.erase(it);
      it = runners_.end();
    }
    if (holding && it == runners_.end()) {
      auto lock = store_->TryLockExclusive("cutover:" + m.id);
      if (lock.ok() && *lock) {
        auto runner = std::make_unique<Runner>();
        runner->lock = *std::move(lock);
        Runner* raw = runner.get();
        runner->thread = std::thread([this, m, epoch, raw] {
          Run(m, epoch, raw->stop);
          raw->done = true;
        });
        runners_[m.id] = std::move(runner);
      }
    }
  }
  for (auto it = gates_.begin(); it != gates_.end();) it = seen.contains(it->first) ? std::next(it) : gates_.erase(it);
  return any_holding;
}

void Cutovers::Run(const Migration& m, std::int64_t epoch, const std::atomic<bool>& stop) {
  const auto start = Clock::now();
  const auto deadline = start + absl::ToChronoNanoseconds(config_->limits.cutover_timeout);
  auto held_ms = [&] {
    return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
  };
  // This sidecar may have seen the window late: the store says whether it
  // is still open (another runner may have flipped it already).
  auto stored = store_->Load(m.id);
  std::int64_t stored_epoch = 0;
  if (!stored.ok() || !stored->has_value() || !Holding(**stored, &stored_epoch) || stored_epoch != epoch) return;
  auto abandon = [&](const std::string& reason) {
    Log(absl::StrCat("migration ", m.id, ": cutover abandoned after ", held_ms(), " ms: ", reason));
    if (auto st = service_->EndCutover(m.id, epoch, /*flipped=*/false, held_ms(), reason); !st.ok())
      Log(absl::StrCat("migration ", m.id, ": could not record the abandoned cutover: ", st.message()));
  };
  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, ": holding writes"));

  // 1. Every sidecar drained its open write transactions.
  std::unique_ptr<ExclusiveLock> writes;
  while (!writes) {
    if (stop) return;
    auto lock = store_->TryLockExclusive(WritesLock(m.id));
    if (lock.ok() && *lock) {
      writes = *std::move(lock);
      break;
    }
    if (Clock::now() >= deadline)
      return abandon("write transactions still open on some sidecar at limits.cutover_timeout");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, ": every sidecar drained after ", held_ms(), " ms"));

  // 2. New applied everything old committed: a fence per route's stream.
  struct Fenced {
    std::string route;
    const routing::Backend* old_b = nullptr;
    const routing::Backend* new_b = nullptr;
    std::uint64_t fence = 0;
  };
  std::vector<Fenced> fenced;
  const auto table = route_table_->Load();
  for (const auto& r : StreamRoutes(m)) {
    const routing::Route* route = config_->FindRoute(r.name);
    const auto policy = table->FindShared(r.name);
    if (route == nullptr || !policy) return abandon("route " + r.name + " is not configured here");
    const std::string& new_name = policy->inputs().new_backend.empty() ? route->new_backend : policy->inputs().new_backend;
    Fenced f{r.name, config_->FindBackend(route->old_backend), config_->FindBackend(new_name), 0};
    if (f.old_b == nullptr || f.new_b == nullptr) return abandon("the backends of route " + r.name + " are not configured");
    auto lsn = EmitStreamFence(*f.old_b, StreamNamesFor(m.id, r.name).slot);
    if (!lsn.ok()) return abandon(std::string(lsn.status().message()));
    f.fence = *lsn;
    fenced.push_back(f);
  }
  for (const auto& f : fenced) {
    routing::StreamPosition& pos = positions_->For(f.route);
    while (pos.applied() < f.fence) {
      if (stop) return;
      if (Clock::now() >= deadline)
        return abandon(absl::StrCat("the change stream of route ", f.route, " did not catch up (applied ",
                                    pgo::FormatLsn(pos.applied()), ", fence ", pgo::FormatLsn(f.fence),
                                    ") at limits.cutover_timeout"));
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  }

  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, ": new caught up after ", held_ms(), " ms"));

  // 3. New's sequences past old's: the stream's rows carry old's ids.
  std::vector<std::string> scope;
  for (const auto& a : m.apis) scope.insert(scope.end(), a.tables.begin(), a.tables.end());
  for (const auto& f : fenced) {
    RouteProgress notes;
    if (auto st = AdvancePostgresSequences(*f.old_b, *f.new_b, scope, notes); !st.ok())
      return abandon(absl::StrCat("route ", f.route, ": sequences: ", st.message()));
  }

  // 4. The flip.
  const std::int64_t ms = held_ms();
  if (auto st = service_->EndCutover(m.id, epoch, /*flipped=*/true, ms, ""); !st.ok()) {
    Log(absl::StrCat("migration ", m.id, ": cutover could not flip: ", st.message()));
    return abandon(std::string(st.message()));
  }
  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, " flipped; writes held ", ms, " ms"));
}

}  // namespace turnout::control
