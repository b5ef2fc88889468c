// MigrationService: the lifecycle an admin request drives (create, patch,
// routes and scopes, transitions, delete), loading from and storing to the
// state store, and publishing the route table. The request checks live in
// migration_request.cc, the readers of a record's routing state in
// migration_routing.cc, the saves of the background jobs in
// migration_job_saves.cc.
#include "control/migration_service.h"

#include <boost/json.hpp>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/api_status.h"
#include "control/migration_routing.h"
#include "control/strategy_json.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

std::string NewUuid() {
  // RFC 4122 version 4 from a CSPRNG-seeded engine: ids need uniqueness, not secrecy.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::uint64_t a = rng(), b = rng();
  return absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                         ((b >> 48) & 0x3fff) | 0x8000, b & 0xffffffffffffULL);
}

absl::Status Illegal(const Migration& m, absl::string_view action) {
  return WithDetails(absl::FailedPreconditionError(absl::StrCat("cannot ", action, " migration ", m.id,
                                                                " in state ", MigrationStateName(m.state))),
                     "see the lifecycle: Pending → Ready → Running ⇄ Paused → Completed | Failed; "
                     "Failed, Running or Paused → RollingBack → RolledBack");
}

json::value Summary(const Migration& m) { return MigrationToJson(m, false); }

}  // namespace

MigrationService::MigrationService(std::shared_ptr<const routing::Config> config, StateStore* store,
                                   routing::RouteTablePublisher* route_table)
    : config_(std::move(config)), store_(store), route_table_(route_table) {}

absl::Status MigrationService::Start() { return Reload(); }

absl::Status MigrationService::Reload() {
  // LoadAll runs without mu_, so a write of ours may commit after the store
  // was read and before mu_ is taken: the load would then undo it here (and
  // our own NOTIFY never comes back to repair that). Read again when a local
  // write landed meanwhile, and never move a migration to an older revision.
  for (int attempt = 0;; ++attempt) {
    std::uint64_t writes_before;
    {
      std::lock_guard<std::mutex> l(mu_);
      writes_before = local_writes_;
    }
    auto all = store_->LoadAll();
    std::lock_guard<std::mutex> l(mu_);
    if (!all.ok()) {
      reload_all_ = true;
      return all.status();
    }
    if (local_writes_ != writes_before && attempt < 5) continue;
    std::map<std::string, Migration> next;
    for (auto& m : *all) {
      auto it = migrations_.find(m.id);
      // Same migration (a deleted and re-created id starts over at revision 1).
      if (it != migrations_.end() && it->second.uuid == m.uuid && it->second.revision > m.revision)
        next[m.id] = it->second;
      else next[m.id] = std::move(m);
    }
    bool routing_changed = !loaded_ || next.size() != migrations_.size();
    for (auto a = migrations_.begin(), b = next.begin(); !routing_changed && b != next.end(); ++a, ++b)
      routing_changed = a->first != b->first || !SameRouting(a->second, b->second);
    migrations_ = std::move(next);
    loaded_ = true;
    reload_all_ = false;
    if (routing_changed) PublishLocked();
    else NotifyLocked();
    return absl::OkStatus();
  }
}

absl::Status MigrationService::ReloadMigration(const std::string& id) {
  bool everything;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Nothing to compare with yet, or an earlier change may be missing.
    everything = !loaded_ || reload_all_ || id.empty();
  }
  if (everything) return Reload();
  // The rules of Reload(), for one record.
  for (int attempt = 0;; ++attempt) {
    std::uint64_t writes_before;
    {
      std::lock_guard<std::mutex> l(mu_);
      writes_before = local_writes_;
    }
    auto stored = store_->Load(id);
    std::lock_guard<std::mutex> l(mu_);
    if (!stored.ok()) {
      reload_all_ = true;
      return stored.status();
    }
    if (local_writes_ != writes_before && attempt < 5) continue;
    auto it = migrations_.find(id);
    if (!stored->has_value()) {
      if (it == migrations_.end()) return absl::OkStatus();
      migrations_.erase(it);
      PublishLocked();
      return absl::OkStatus();
    }
    Migration& m = **stored;
    if (it == migrations_.end()) {
      migrations_.emplace(id, std::move(m));
      PublishLocked();
      return absl::OkStatus();
    }
    // Same migration (a deleted and re-created id starts over at revision 1).
    if (it->second.uuid == m.uuid && it->second.revision >= m.revision) return absl::OkStatus();
    const bool routing_changed = !SameRouting(it->second, m);
    it->second = std::move(m);
    // A checkpoint (progress only) changes no policy: the listeners that
    // read progress (metrics, data movement) still hear of it.
    if (routing_changed) PublishLocked();
    else NotifyLocked();
    return absl::OkStatus();
  }
}

bool MigrationService::loaded() const {
  std::lock_guard<std::mutex> l(mu_);
  return loaded_;
}

void MigrationService::OnPublish(std::function<void(const std::vector<Migration>&)> cb) {
  std::lock_guard<std::mutex> l(mu_);
  on_publish_.push_back(std::move(cb));
}

absl::Status MigrationService::CheckRouteFree(const std::string& route, const std::string& except_id) const {
  for (const auto& [id, m] : migrations_) {
    if (id == except_id || m.state == MigrationState::kRolledBack) continue;
    for (const auto& i : m.interlays)
      if (i.route == route)
        return WithDetails(absl::AlreadyExistsError(absl::StrCat("route ", route, " already belongs to migration ", id)),
                           "a route belongs to at most one migration at a time; roll back or delete the other first");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const routing::Policy>> MigrationService::CompileFor(const Migration& m,
                                                                                    const Interlay& interlay) const {
  const routing::Route* route = config_->FindRoute(interlay.route);
  if (route == nullptr) return absl::NotFoundError(absl::StrCat("route ", interlay.route, " is not configured"));
  auto spec = StrategyFromJson(m.strategy);
  if (!spec.ok()) return spec.status();
  routing::PolicyInputs in;
  in.route = route->name;
  in.protocol = route->protocol;
  in.migration_id = m.id;
  in.new_backend = interlay.endpoint;
  in.version = m.policy_revision != 0 ? m.policy_revision : m.revision;
  in.phase = PhaseOf(m, routing::TypeOf(*spec));
  in.strategy = *std::move(spec);
  in.sidecar = {config_->instance_id, config_->region};
  in.writes_by_stream = route->protocol == routing::Protocol::kPostgres && WritesByStream(m, route->name);
  in.hold_writes = in.writes_by_stream && CutoverHolding(m);
  // Table scopes apply to Postgres routes, key scopes to Redis routes.
  for (const auto& a : m.apis) {
    const bool applies = route->protocol == routing::Protocol::kPostgres ? !a.tables.empty() : !a.keys.empty();
    if (applies) in.scopes.push_back({a.name, a.tables, a.keys});
  }
  return routing::Policy::Compile(std::move(in));
}

absl::Status MigrationService::ValidateForRoutes(const Migration& m) const {
  bool has_pg = false, has_redis = false;
  for (const auto& i : m.interlays) {
    auto p = CompileFor(m, i);
    if (!p.ok()) return p.status();
    const routing::Route* r = config_->FindRoute(i.route);
    (r->protocol == routing::Protocol::kPostgres ? has_pg : has_redis) = true;
  }
  if (m.interlays.empty()) return absl::OkStatus();
  for (const auto& a : m.apis) {
    if (!a.tables.empty() && !has_pg)
      return absl::InvalidArgumentError(absl::StrCat("scopes[", a.name, "].tables: the migration has no postgres route"));
    if (!a.keys.empty() && !has_redis)
      return absl::InvalidArgumentError(absl::StrCat("scopes[", a.name, "].keys: the migration has no redis route"));
  }
  return absl::OkStatus();
}

void MigrationService::PublishLocked() {
  routing::RouteTable::Map table;
  // Static strategies of turnout.yaml apply to routes no migration holds.
  for (const auto& r : config_->routes) {
    if (r.strategy_json.empty()) continue;
    boost::system::error_code ec;
    auto v = json::parse(r.strategy_json, ec);
    auto spec = ec ? absl::StatusOr<routing::StrategySpec>(absl::InvalidArgumentError(ec.message()))
                   : StrategyFromJson(v);
    if (!spec.ok()) continue;  // validated at startup (ValidateStaticStrategies)
    routing::PolicyInputs in;
    in.route = r.name;
    in.protocol = r.protocol;
    in.migration_id = "config:" + r.name;
    in.new_backend = r.new_backend;
    in.phase = routing::MigrationPhase::kExecuting;
    in.strategy = *std::move(spec);
    in.sidecar = {config_->instance_id, config_->region};
    if (auto p = routing::Policy::Compile(std::move(in)); p.ok()) table[r.name] = *p;
  }
  for (const auto& [id, m] : migrations_) {
    for (const auto& i : m.interlays) {
      auto p = CompileFor(m, i);
      if (p.ok()) table[i.route] = *p;
    }
  }
  route_table_->Publish(std::move(table));
  publishes_.fetch_add(1, std::memory_order_relaxed);
  std::vector<Migration> all;
  for (const auto& [id, m] : migrations_) all.push_back(m);
  for (const auto& cb : on_publish_) cb(all);
}

void MigrationService::NotifyLocked() {
  std::vector<Migration> all;
  for (const auto& [id, m] : migrations_) all.push_back(m);
  for (const auto& cb : on_publish_) cb(all);
}

absl::StatusOr<Migration> MigrationService::Mutate(const std::string& id, const std::string& actor,
                                                   const std::string& action, const Mutation& change, bool audit) {
  // Optimistic: a concurrent writer (another sidecar) makes Put fail with
  // ABORTED; reload and apply the change again, a few times.
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::unique_lock<std::mutex> l(mu_);
    auto it = migrations_.find(id);
    if (it == migrations_.end()) return absl::NotFoundError(absl::StrCat("migration ", id, " not found"));
    Migration next = it->second;
    const json::value before = Summary(next);
    const MigrationState state_before = next.state;
    if (auto st = change(next); !st.ok()) return st;
    if (audit)
      if (auto st = ValidateForRoutes(next); !st.ok()) return st;
    const std::uint64_t expected = next.revision;
    if (next.policy_revision == 0) next.policy_revision = expected;
    next.revision = expected + 1;
    next.updated_at = NowRfc3339();
    if (audit) {
      next.policy_revision = next.revision;
      AppendAudit(next, {next.updated_at, actor, action, before, Summary(next)});
    }
    auto st = store_->Put(next, expected);
    if (st.ok()) {
      // A quiet change (a progress checkpoint) leaves policies as they are,
      // unless it moved the route's writes onto or off the change stream.
      const bool routing_changed = !SameRouting(it->second, next);
      it->second = next;
      ++local_writes_;
      if (audit || next.state != state_before || routing_changed) PublishLocked();
      else NotifyLocked();
      return next;
    }
    if (st.code() != absl::StatusCode::kAborted) return st;
    l.unlock();
    if (auto rs = Reload(); !rs.ok()) return rs;
  }
  return absl::AbortedError(absl::StrCat("migration ", id, " keeps changing concurrently; try again"));
}

absl::StatusOr<Migration> MigrationService::Create(const CreateMigrationCommand& cmd, const std::string& actor) {
  Migration m;
  m.id = cmd.id;
  m.description = cmd.description;
  m.strategy = cmd.strategy;
  m.data = cmd.data;
  m.failure_handling = cmd.failure_handling;

  std::lock_guard<std::mutex> l(mu_);
  if (migrations_.count(m.id))
    return WithDetails(absl::AlreadyExistsError(absl::StrCat("migration ", m.id, " already exists")),
                       "choose another id, or PATCH the existing migration");
  // Implicit interlays: configured routes with a `new` backend, not taken.
  for (const auto& r : config_->routes) {
    if (r.new_backend.empty() || !r.strategy_json.empty()) continue;
    if (CheckRouteFree(r.name, m.id).ok()) m.interlays.push_back({r.name, r.new_backend});
  }
  if (!m.interlays.empty()) m.state = MigrationState::kReady;
  if (auto st = ValidateForRoutes(m); !st.ok()) return st;
  m.uuid = NewUuid();
  m.created_at = m.updated_at = NowRfc3339();
  m.revision = 1;
  AppendAudit(m, {m.created_at, actor, "create", nullptr, Summary(m)});
  if (auto st = store_->Put(m, 0); !st.ok()) {
    if (st.code() == absl::StatusCode::kAborted)
      return absl::AlreadyExistsError(absl::StrCat("migration ", m.id, " already exists"));
    return st;
  }
  migrations_[m.id] = m;
  ++local_writes_;
  PublishLocked();
  return m;
}

std::vector<Migration> MigrationService::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<Migration> out;
  out.reserve(migrations_.size());
  for (const auto& [id, m] : migrations_) out.push_back(m);
  return out;
}

absl::StatusOr<Migration> MigrationService::Snapshot(const std::string& id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = migrations_.find(id);
  if (it == migrations_.end()) return absl::NotFoundError(absl::StrCat("migration ", id, " not found"));
  return it->second;
}

absl::StatusOr<Migration> MigrationService::Patch(const std::string& id, const PatchMigrationCommand& cmd,
                                                    const std::string& actor) {
  auto m = Mutate(id, actor, "patch", [&](Migration& mig) -> absl::Status {
    if (mig.state == MigrationState::kCompleted || mig.state == MigrationState::kRolledBack ||
        mig.state == MigrationState::kRollingBack)
      return Illegal(mig, "patch");
    if (cmd.strategy) {
      const json::value& s = *cmd.strategy;
      // Nothing is held while the window waits for the data: another
      // strategy replaces the one it waited to flip to.
      if (CutoverPhase(mig) == "waiting_for_data") mig.cutover = nullptr;
      if (CutoverOpen(mig))
        return WithDetails(absl::FailedPreconditionError(absl::StrCat("migration ", mig.id, ": a cutover is in progress")),
                           "wait for it to flip or be abandoned (GET the migration: \"cutover\")");
      auto before = StrategyFromJson(mig.strategy);
      auto after = StrategyFromJson(s);
      if (mig.state == MigrationState::kRunning && before.ok() && after.ok() && !WritesToNew(*before) &&
          WritesToNew(*after) && AnyRouteByStream(mig, *config_)) {
        // Write authority moves to new while the stream carries old's
        // writes there: open the write window; the cutover runner flips
        // to this strategy once new has every write (control/cutover.h).
        mig.cutover = json::object{
            {"phase", "catching_up"}, {"strategy", s}, {"epoch", CutoverEpoch(mig) + 1}, {"started_at", NowRfc3339()}};
      } else if (before.ok() && after.ok() && WritesToNew(*before) && !WritesToNew(*after) && StreamBackWanted(mig)) {
        // Authority moves back to old: the same window, the other way.
        mig.cutover = BackWindow(mig, s, /*then_rollback=*/false);
      } else {
        mig.strategy = s;
      }
    }
    if (cmd.description) mig.description = *cmd.description;
    if (cmd.data) mig.data = *cmd.data;
    if (cmd.failure_handling) mig.failure_handling = *cmd.failure_handling;
    // A running migration whose strategy now sends everything to new is done
    // (once its data movement, if any, has finished: the job completes it).
    if (mig.state == MigrationState::kRunning && !DataPending(mig)) {
      auto spec = StrategyFromJson(mig.strategy);
      if (spec.ok() && IsFullCutover(*spec)) mig.state = MigrationState::kCompleted;
    }
    return absl::OkStatus();
  });
  return m;
}

absl::StatusOr<Migration> MigrationService::AddInterlay(const std::string& id, const std::string& route,
                                                          const AddInterlayCommand& cmd, const std::string& actor) {
  const std::string& backend = cmd.endpoint;
  // The admin layer checked both names already; a name is stored, so the
  // service holds to the rule whoever calls it.
  if (auto st = CheckName("route", route); !st.ok()) return st;
  if (auto st = CheckName("endpoint", backend); !st.ok()) return st;
  const routing::Route* r = config_->FindRoute(route);
  if (r == nullptr)
    return WithDetails(absl::NotFoundError(absl::StrCat("route ", route, " is not configured")),
                       "routes (interlays) are the routes of turnout.yaml");
  const routing::Backend* b = config_->FindBackend(backend);
  if (b == nullptr) return absl::InvalidArgumentError(absl::StrCat("endpoint: no backend named \"", backend, "\""));
  if (b->protocol != r->protocol)
    return absl::InvalidArgumentError(absl::StrCat("endpoint: backend ", backend, " speaks ", routing::ProtocolName(b->protocol),
                                                   ", route ", route, " speaks ", routing::ProtocolName(r->protocol)));
  if (backend == r->old_backend)
    return absl::InvalidArgumentError(absl::StrCat("endpoint: ", backend, " is the route's old backend"));
  auto m = Mutate(id, actor, "add_interlay", [&](Migration& mig) -> absl::Status {
    if (mig.state != MigrationState::kPending && mig.state != MigrationState::kReady) return Illegal(mig, "add a route to");
    if (auto st = CheckRouteFree(route, mig.id); !st.ok()) return st;
    bool replaced = false;
    for (auto& i : mig.interlays)
      if (i.route == route) {
        i.endpoint = backend;
        replaced = true;
      }
    if (!replaced) mig.interlays.push_back({route, backend});
    mig.state = MigrationState::kReady;
    return absl::OkStatus();
  });
  return m;
}

absl::StatusOr<Migration> MigrationService::AddScope(const std::string& id, const ApiScope& s,
                                                       const std::string& actor) {
  const std::string& scope = s.name;
  if (auto st = CheckName("scope", scope); !st.ok()) return st;
  auto m = Mutate(id, actor, "add_api", [&](Migration& mig) -> absl::Status {
    if (mig.state != MigrationState::kPending && mig.state != MigrationState::kReady &&
        mig.state != MigrationState::kRunning && mig.state != MigrationState::kPaused)
      return Illegal(mig, "add a scope to");
    bool replaced = false;
    for (auto& a : mig.apis)
      if (a.name == scope) {
        a = s;
        replaced = true;
      }
    if (!replaced) mig.apis.push_back(s);
    if (mig.state == MigrationState::kPending) mig.state = MigrationState::kReady;
    return absl::OkStatus();
  });
  return m;
}

absl::StatusOr<Migration> MigrationService::Transition(const std::string& id, const std::string& action,
                                                         const std::string& actor) {
  using S = MigrationState;
  auto m = Mutate(id, actor, action, [&](Migration& mig) -> absl::Status {
    const S s = mig.state;
    if (action == "sync") {
      if (s != S::kReady && s != S::kRunning && s != S::kPaused) return Illegal(mig, "sync");
      mig.synced = true;
    } else if (action == "migrate") {
      if (s != S::kReady) return Illegal(mig, "migrate");
      if (mig.interlays.empty())
        return WithDetails(absl::FailedPreconditionError(absl::StrCat("migration ", mig.id, " has no route")),
                           "add one with POST /api/v1/migrations/{id}/interlay/{route}");
      mig.synced = true;
      mig.state = S::kRunning;
      mig.last_error.clear();
      // With nothing to copy, a strategy that sends everything to new is done
      // at once; otherwise the data movement (control/data_movement.h) starts
      // from this record and completes the migration when it is done.
      auto spec = StrategyFromJson(mig.strategy);
      mig.progress = DataProgress{};
      if (HasData(mig)) {
        mig.progress.status = "pending";
        for (const auto& i : mig.interlays) {
          RouteProgress r;
          r.route = i.route;
          mig.progress.routes.push_back(std::move(r));
        }
        // big_bang moves write authority at /migrate: while the stream
        // carries the data there, writes stay on old until it has copied
        // and caught up, then the window flips them (control/cutover.h).
        if (spec.ok() && std::holds_alternative<routing::BigBangSpec>(*spec) && AnyRouteByStream(mig, *config_))
          mig.cutover = json::object{{"phase", "waiting_for_data"},
                                     {"strategy", mig.strategy},
                                     {"epoch", CutoverEpoch(mig) + 1},
                                     {"started_at", NowRfc3339()}};
      } else if (spec.ok() && IsFullCutover(*spec)) {
        mig.state = S::kCompleted;
      }
    } else if (action == "pause") {
      if (s != S::kRunning) return Illegal(mig, "pause");
      mig.state = S::kPaused;
    } else if (action == "resume") {
      if (s != S::kPaused) return Illegal(mig, "resume");
      mig.state = S::kRunning;
      // Its data movement finished while it was paused: complete it now if
      // the strategy sends everything to new (the job's own rule).
      auto spec = StrategyFromJson(mig.strategy);
      if (HasData(mig) && !DataPending(mig) && mig.progress.status == "done" && spec.ok() && IsFullCutover(*spec)) {
        bool partial = false;
        for (const auto& r : mig.progress.routes) partial |= r.phase == "failed";
        if (!partial) mig.state = S::kCompleted;
      }
    } else if (action == "rollback") {
      if (s != S::kRunning && s != S::kPaused && s != S::kFailed) return Illegal(mig, "roll back");
      // New took writes since the flip: with the stream back running, a
      // window back to old brings them there first and then rolls back;
      // without it they exist on new only, and routing back to old would
      // leave them behind unseen.
      if (WritesMovedToNew(mig) && StreamBackWanted(mig)) {
        if (CutoverOpen(mig))
          return WithDetails(
              absl::FailedPreconditionError(absl::StrCat("migration ", mig.id, ": a cutover is in progress")),
              "wait for it to flip or be abandoned (GET the migration: \"cutover\"), then roll back");
        mig.cutover = BackWindow(mig, mig.strategy, /*then_rollback=*/true);
        return absl::OkStatus();
      }
      if (WritesMovedToNew(mig)) {
        const auto* at = mig.cutover.as_object().if_contains("ended_at");
        return WithDetails(
            absl::FailedPreconditionError(absl::StrCat(
                "migration ", mig.id, ": writes have gone to new since the cutover",
                at != nullptr && at->is_string() ? absl::StrCat(" at ", at->as_string().c_str()) : std::string(),
                "; old does not have them (no stream back to old: the cutover did not prepare one), so a "
                "rollback would lose them")),
            "bring new's changes to old first (e.g. copy the moved tables from new), then PATCH a strategy that "
            "writes to old only and roll back");
      }
      // Routing back to old is one publication; nothing else is to undo, so
      // RollingBack is passed through (and recorded) on the way to RolledBack.
      mig.state = S::kRolledBack;
    } else {
      return absl::NotFoundError(absl::StrCat("unknown action ", action));
    }
    return absl::OkStatus();
  });
  return m;
}

absl::StatusOr<Migration> MigrationService::Delete(const std::string& id, const std::string& actor) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = migrations_.find(id);
  if (it == migrations_.end()) return absl::NotFoundError(absl::StrCat("migration ", id, " not found"));
  const Migration& m = it->second;
  if (m.state == MigrationState::kRunning || m.state == MigrationState::kPaused)
    return WithDetails(absl::FailedPreconditionError(absl::StrCat("cannot delete migration ", id, " in state ",
                                                                  MigrationStateName(m.state))),
                       "roll it back first (POST /api/v1/migrations/{id}/rollback)");
  if (auto st = store_->Remove(id, m.revision); !st.ok()) return st;
  Migration gone = std::move(it->second);
  (void)actor;
  migrations_.erase(it);
  ++local_writes_;
  PublishLocked();
  return gone;
}

}  // namespace turnout::control
