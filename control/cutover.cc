#include "control/cutover.h"

#include <poll.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "control/cutover_routes.h"
#include "control/pg_backfill.h"
#include "control/pg_change_apply.h"
#include "control/pg_change_stream.h"
#include "control/pg_client.h"
#include "control/strategy_json.h"
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
// A catch-up round (a fence written and applied on the other side) this
// short means the stream is close behind: the hold may start.
constexpr auto kCaughtUpRound = std::chrono::milliseconds(50);

// The window holds writes.
bool Holding(const Migration& m, std::int64_t* epoch) {
  if (m.state != MigrationState::kRunning || CutoverPhase(m) != "holding") return false;
  *epoch = CutoverEpoch(m);
  return *epoch != 0;
}
// The data movement has copied every route and streams (or copied it
// without a stream): big_bang's /migrate window may start.
bool DataReady(const Migration& m) {
  for (const auto& r : m.progress.routes) {
    const std::string& s = r.stream.phase;
    if (s == "streaming" || s == "caught_up" || s == "unavailable" || r.phase == "done") continue;
    return false;
  }
  return !m.progress.routes.empty();
}

// The window is open: catching up before the hold, or holding (or, for
// big_bang's /migrate, waiting for the data, once it is there).
bool Open(const Migration& m, std::int64_t* epoch) {
  if (m.state != MigrationState::kRunning) return false;
  const std::string phase = CutoverPhase(m);
  const bool ready = phase == "holding" || phase == "catching_up" || (phase == "waiting_for_data" && DataReady(m));
  if (!ready) return false;
  *epoch = CutoverEpoch(m);
  return *epoch != 0;
}

std::string WritesLock(const std::string& id) { return "writes:" + id; }

// Waits until the applier of `slot` on `target` says (kAppliedChannel) it
// applied past `lsn`; false at `deadline` or `stop`. Its heartbeat (once a
// second while streaming) bounds how late a missed notification is.
absl::StatusOr<bool> WaitAppliedOn(const routing::Backend& target, const std::string& slot, std::uint64_t lsn,
                                   Clock::time_point deadline, const std::atomic<bool>& stop) {
  auto side = PgConnectSide(target, "old", "turnout-cutover");
  if (!side.ok()) return side.status();
  if (auto r = PgExecScript(*side, "listen " + std::string(kAppliedChannel), "listen"); !r.ok()) return r.status();
  auto stored = PgExec(*side,
                       "select coalesce((select lsn >= $1::pg_lsn from _turnout.stream_position where slot = $2), false)",
                       {pgo::FormatLsn(lsn), slot}, "read the stream's position");
  if (!stored.ok()) return stored.status();
  if (PgValue(*stored, 0, 0) == "t") return true;
  const std::string prefix = slot + " ";
  while (!stop && Clock::now() < deadline) {
    pollfd p{PQsocket(side->get()), POLLIN, 0};
    (void)::poll(&p, 1, 5);
    if (PQconsumeInput(side->get()) != 1) return PgFailed(*side, nullptr, "wait for the stream's position");
    while (PgNotify n = PgNextNotify(side->get())) {
      const std::string_view extra(n->extra);
      std::uint64_t at = 0;
      if (extra.substr(0, prefix.size()) == prefix && pgo::ParseLsn(std::string(extra.substr(prefix.size())), &at) &&
          at >= lsn)
        return true;
    }
  }
  return false;
}

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
      log_(std::move(log)),
      backs_(config_, route_table_, service_, store_, log_) {}

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
  backs_.Stop();
  gates_.clear();
}

void Cutovers::Loop() {
  while (!stop_) {
    const bool holding = Step();
    std::this_thread::sleep_for(holding ? kHoldingTick : kQuietTick);
  }
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
    backs_.Step(m, all);
    const auto routes = StreamRoutesOf(*route_table_, m);
    if (routes.empty()) continue;
    seen[m.id] = true;
    std::int64_t epoch = 0;
    const bool holding = Holding(m, &epoch);
    std::int64_t open_epoch = 0;
    const bool window_open = Open(m, &open_epoch);
    any_holding |= window_open;  // the hold may start any moment: look often

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
    if (window_open && it == runners_.end()) {
      epoch = open_epoch;
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
  backs_.Forget(all);
  return any_holding;
}

void Cutovers::Run(const Migration& m, std::int64_t epoch, const std::atomic<bool>& stop) {
  const auto timeout = absl::ToChronoNanoseconds(config_->limits.cutover_timeout);
  auto start = Clock::now();  // of the hold, once it starts
  bool holding = false;
  auto held_ms = [&] {
    if (!holding) return std::int64_t{0};
    return static_cast<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
  };
  // This sidecar may have seen the window late: the store says whether it
  // is still open (another runner may have flipped it already).
  auto stored = store_->Load(m.id);
  std::int64_t stored_epoch = 0;
  if (!stored.ok() || !stored->has_value() || !Open(**stored, &stored_epoch) || stored_epoch != epoch) return;
  holding = CutoverPhase(**stored) == "holding";  // a runner before this one started the hold
  auto abandon = [&](const std::string& reason) {
    Log(absl::StrCat("migration ", m.id, ": cutover abandoned after ", held_ms(), " ms of hold: ", reason));
    if (auto st = service_->EndCutover(m.id, epoch, /*flipped=*/false, held_ms(), reason); !st.ok())
      Log(absl::StrCat("migration ", m.id, ": could not record the abandoned cutover: ", st.message()));
  };
  const bool back = CutoverBack(m);

  // The routes and their backends.
  struct Fenced {
    std::string route;
    const routing::Backend* old_b = nullptr;
    const routing::Backend* new_b = nullptr;
    std::uint64_t fence = 0;
  };
  std::vector<Fenced> fenced;
  for (const auto& r : StreamRoutesOf(*route_table_, m)) {
    const RouteBackends b = RouteBackendsOf(*config_, *route_table_, r.name);
    if (b.old_b == nullptr || b.new_b == nullptr) return abandon("the backends of route " + r.name + " are not configured");
    fenced.push_back({r.name, b.old_b, b.new_b, 0});
  }
  // A fence per route's stream (back to old: in new's WAL, for the stream
  // back), then the receiving side applied past each; an error, or "" once
  // it has.
  auto catch_up = [&](Clock::time_point deadline) -> std::string {
    for (auto& f : fenced) {
      auto lsn = back ? EmitStreamFence(*f.new_b, StreamBackNamesFor(m.id, f.route).slot)
                      : EmitStreamFence(*f.old_b, StreamNamesFor(m.id, f.route).slot);
      if (!lsn.ok()) return std::string(lsn.status().message());
      f.fence = *lsn;
    }
    for (const auto& f : fenced) {
      if (back) {
        auto past = WaitAppliedOn(*f.old_b, StreamBackNamesFor(m.id, f.route).slot, f.fence, deadline, stop);
        if (!past.ok()) return std::string(past.status().message());
        if (!*past && !stop)
          return absl::StrCat("the stream back of route ", f.route, " did not catch up (fence ",
                              pgo::FormatLsn(f.fence), ") at limits.cutover_timeout");
        continue;
      }
      routing::StreamPosition& pos = positions_->For(f.route);
      while (pos.applied() < f.fence && !stop) {
        if (Clock::now() >= deadline)
          return absl::StrCat("the change stream of route ", f.route, " did not catch up (applied ",
                              pgo::FormatLsn(pos.applied()), ", fence ", pgo::FormatLsn(f.fence),
                              ") at limits.cutover_timeout");
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    }
    return "";
  };

  // 0. Catch up before holding: the hold then lasts only as long as the last
  // stretch, not as long as the stream's whole lag. Repeated until a round
  // (a fence and its arrival) is short, or no shorter than the one before
  // (the stream is as close as it gets under this load).
  if (!holding) {
    const auto deadline = Clock::now() + timeout;
    for (auto previous = Clock::duration::max();;) {
      const auto round = Clock::now();
      const std::string error = catch_up(deadline);
      if (stop) return;
      if (!error.empty()) return abandon(error);
      const auto took = Clock::now() - round;
      if (took <= kCaughtUpRound || (previous != Clock::duration::max() && took * 10 >= previous * 9)) break;
      previous = took;
    }
    if (auto st = service_->HoldCutover(m.id, epoch); !st.ok()) {
      Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, ": ", st.message()));
      return;
    }
    holding = true;
    start = Clock::now();
  }
  const auto deadline = start + timeout;
  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, back ? " back to old" : "", ": holding writes"));

  // A flip to new that leaves the migration running prepares the stream
  // back meanwhile (its slot on new must exist before the first write
  // there); a full cutover completes the migration instead.
  std::string back_error;
  std::thread prepare_back;
  bool stream_back = false;
  if (!back) {
    auto target = StrategyFromJson(m.cutover.as_object().contains("strategy") ? m.cutover.at("strategy") : boost::json::value());
    stream_back = target.ok() && !IsFullCutover(*target);
  }
  if (stream_back) {
    prepare_back = std::thread([this, &m, &back_error] {
      for (const auto& r : StreamRoutesOf(*route_table_, m)) {
        const RouteBackends b = RouteBackendsOf(*config_, *route_table_, r.name);
        if (b.old_b == nullptr || b.new_b == nullptr) continue;
        auto at = PrepareStreamBack(*b.old_b, *b.new_b, m.id, r.name);
        if (!at.ok()) {
          back_error = absl::StrCat("route ", r.name, ": ", at.status().message());
          return;
        }
        Log(absl::StrCat("migration ", m.id, ": stream back of route ", r.name, " prepared at ", pgo::FormatLsn(*at)));
      }
    });
  }
  struct JoinOnExit {
    std::thread& t;
    ~JoinOnExit() {
      if (t.joinable()) t.join();
    }
  } join_prepare{prepare_back};

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

  // 2. The receiving side applied everything the other committed.
  if (const std::string error = catch_up(deadline); !error.empty()) return abandon(error);
  if (stop) return;

  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, ": ", back ? "old" : "new", " caught up after ",
                   held_ms(), " ms"));

  // 3. The receiving side's sequences past the other's: the streamed rows
  // carry the other side's ids.
  std::vector<std::string> scope;
  for (const auto& a : m.apis) scope.insert(scope.end(), a.tables.begin(), a.tables.end());
  for (const auto& f : fenced) {
    RouteProgress notes;
    auto st = back ? AdvancePostgresSequences(*f.new_b, *f.old_b, scope, notes)
                   : AdvancePostgresSequences(*f.old_b, *f.new_b, scope, notes);
    if (!st.ok()) return abandon(absl::StrCat("route ", f.route, ": sequences: ", st.message()));
  }

  // 4. The flip (with the stream back, when it is ready).
  if (prepare_back.joinable()) prepare_back.join();
  if (stream_back && !back_error.empty()) {
    stream_back = false;
    Log(absl::StrCat("migration ", m.id, ": no stream back to old (", back_error,
                     "): a rollback after this cutover is refused"));
  }
  const std::int64_t ms = held_ms();
  const std::string note = back_error.empty() ? "" : "no stream back to old: " + back_error;
  if (auto st = service_->EndCutover(m.id, epoch, /*flipped=*/true, ms, note, stream_back); !st.ok()) {
    Log(absl::StrCat("migration ", m.id, ": cutover could not flip: ", st.message()));
    return abandon(std::string(st.message()));
  }
  Log(absl::StrCat("migration ", m.id, ": cutover ", epoch, " flipped; writes held ", ms, " ms"));
}

}  // namespace turnout::control
