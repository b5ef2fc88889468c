#include "control/control_plane.h"

#include "absl/strings/str_cat.h"
#include "control/admin_api.h"
#include "control/backend_inspector.h"
#include "control/journal_repair.h"
#include "control/file_store.h"
#include "control/pg_store.h"

#include <cstdio>

namespace turnout::control {

absl::StatusOr<std::unique_ptr<ControlPlane>> ControlPlane::Start(std::shared_ptr<const routing::Config> config,
                                                                 routing::RouteTablePublisher* route_table,
                                                                 routing::Journal* journal,
                                                                 routing::ShadowSamples* shadow_samples,
                                                                 routing::StreamPositions* stream_positions) {
  std::unique_ptr<ControlPlane> cp(new ControlPlane);
  cp->journal_ = journal;
  cp->shadow_samples_ = shadow_samples;
  cp->stream_positions_ = stream_positions;
  cp->config_ = config;
  cp->route_table_ = route_table;
  const auto& ss = config->state_store;
  if (ss.kind == routing::StateStoreKind::kFile) {
    auto store = FileStateStore::Open(ss.path);
    if (!store.ok()) return store.status();
    cp->store_ = *std::move(store);
  } else {
    PgStateStoreOptions options;
    options.log = [](const std::string& line) { std::fprintf(stderr, "turnout: state store: %s\n", line.c_str()); };
    auto store = PgStateStore::Open(ss.dsn, std::move(options));
    if (!store.ok()) return store.status();
    cp->store_ = *std::move(store);
  }
  cp->service_ = std::make_unique<MigrationService>(config, cp->store_.get(), route_table);
  cp->metrics_ = std::make_unique<ControlMetricsCollector>(route_table, cp->store_.get(), journal,
                                                           [svc = cp->service_.get()] { return svc->publishes(); });
  cp->service_->OnPublish([m = cp->metrics_.get()](const std::vector<Migration>& all) { m->Update(all); });
  DataMovementOptions dm;
  dm.instance_id = config->instance_id;
  dm.stream_positions = stream_positions;
  cp->data_movement_ = std::make_unique<DataMovement>(config, cp->service_.get(), cp->store_.get(), std::move(dm));
  cp->service_->OnPublish([d = cp->data_movement_.get()](const std::vector<Migration>& all) { d->OnMigrations(all); });
  ContinuousVerifyOptions cv;
  cv.instance_id = config->instance_id;
  cp->verifier_ = std::make_unique<ContinuousVerifier>(config, cp->service_.get(), cp->store_.get(), std::move(cv));
  cp->service_->OnPublish([v = cp->verifier_.get()](const std::vector<Migration>& all) { v->OnMigrations(all); });
  cp->cutovers_ = std::make_unique<Cutovers>(config, route_table, cp->service_.get(), cp->store_.get(), stream_positions);
  cp->service_->OnPublish([c = cp->cutovers_.get()](const std::vector<Migration>& all) { c->OnMigrations(all); });
  if (auto st = cp->service_->Start(); !st.ok()) return st;
  // Another sidecar changed the shared store: reload what it names (all of
  // it when the store cannot tell) and republish if routing changed.
  cp->store_->Watch([svc = cp->service_.get()](const StoreChange& change) {
    (void)(change.everything() ? svc->Reload() : svc->ReloadMigration(change.id));
  });
  cp->prober_ = std::make_unique<BackendProber>(config->backends);
  cp->prober_->Start();
  cp->stream_feeders_ = std::make_unique<StreamFeeders>(config, route_table, stream_positions);
  cp->stream_feeders_->Start();
  cp->cutovers_->Start();
  // Resumes any Running migration whose data movement is not finished.
  cp->data_movement_->Start();
  cp->verifier_->Start();
  return cp;
}

ControlPlane::~ControlPlane() { Stop(); }

absl::Status ControlPlane::StartAdmin(const prometheus::Collectable* data_plane_metrics,
                                      std::function<bool()> listening) {
  listening_ = std::move(listening);
  if (!config_->admin.enabled) return absl::OkStatus();
  auto auth = Authenticator::FromFiles(config_->admin.jwt_secret, config_->admin.tokens_file);
  if (!auth.ok()) return absl::InvalidArgumentError(absl::StrCat("admin: ", auth.status().message()));
  auth_ = std::make_unique<Authenticator>(*std::move(auth));
  AdminApiDeps deps;
  deps.migrations = service_.get();
  deps.auth = auth_.get();
  deps.metrics_text = [this, data_plane_metrics] { return MetricsText({data_plane_metrics, metrics_.get()}); };
  deps.readiness = [this] { return Readiness(); };
  deps.dry_run = [this](const Migration& m) { return DryRun(*config_, m); };
  deps.verify = [this](const Migration& m) { return Verify(*config_, m); };
  deps.journal = [this](const Migration& m) -> absl::StatusOr<boost::json::value> { return JournalToJson(*journal_, m); };
  deps.repair = [this](const Migration& m, const RepairProgressFn& progress) {
    return RepairFromJournal(*config_, m, *journal_, progress);
  };
  deps.shadow = [this](const Migration& m) -> absl::StatusOr<boost::json::value> {
    return ShadowSamplesToJson(*shadow_samples_, m);
  };
  admin_ = std::make_unique<AdminServer>(config_->admin, MakeAdminHandler(std::move(deps)));
  return admin_->Start();
}

absl::Status ControlPlane::Readiness() const {
  if (listening_ && !listening_()) return absl::UnavailableError("listeners are not up");
  if (!service_->loaded()) return absl::UnavailableError("state not loaded");
  if (!store_->Healthy()) return absl::UnavailableError("state store unreachable (routing continues with the last policy)");
  if (journal_->full()) return absl::UnavailableError("dual-write journal is full: repair or raise journal.max_entries");
  return prober_->Status();
}

void ControlPlane::Stop() {
  // Jobs stop at their next batch boundary (checkpoint kept) while the store is up.
  if (data_movement_) data_movement_->Stop();
  if (verifier_) verifier_->Stop();
  if (admin_) admin_->Stop();
  if (prober_) prober_->Stop();
  if (cutovers_) cutovers_->Stop();
  if (stream_feeders_) stream_feeders_->Stop();
  if (store_) store_->Stop();
}

}  // namespace turnout::control
