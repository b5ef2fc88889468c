#pragma once
// The control plane of one process, assembled: state store, migration
// service, data movement, backend prober, metrics and the admin API. proxy/main.cc starts
// it before the data plane (so a bad state store stops startup) and gives it
// the data plane's metrics and listener status through plain callbacks.

#include <prometheus/collectable.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "control/admin_server.h"
#include "control/auth.h"
#include "control/backend_prober.h"
#include "control/control_metrics.h"
#include "control/continuous_verify.h"
#include "control/cutover.h"
#include "control/data_movement.h"
#include "control/migration_service.h"
#include "control/state_store.h"
#include "control/stream_feeder.h"
#include "routing/config.h"
#include "routing/journal.h"
#include "routing/shadow_samples.h"
#include "routing/stream_positions.h"
#include "routing/policy_table.h"

namespace turnout::control {

class ControlPlane {
 public:
  // Opens the state store, loads migrations and publishes their policies.
  static absl::StatusOr<std::unique_ptr<ControlPlane>> Start(std::shared_ptr<const routing::Config> config,
                                                             routing::RouteTablePublisher* route_table,
                                                             routing::Journal* journal,
                                                             routing::ShadowSamples* shadow_samples,
                                                             routing::StreamPositions* stream_positions);
  ~ControlPlane();

  // Serves the admin API (when enabled). `data_plane_metrics` must outlive
  // this object; `listening` reports the data plane's listeners for /readyz.
  absl::Status StartAdmin(const prometheus::Collectable* data_plane_metrics, std::function<bool()> listening);
  void Stop();

  MigrationService& migrations() { return *service_; }

 private:
  ControlPlane() = default;
  absl::Status Readiness() const;

  std::shared_ptr<const routing::Config> config_;
  routing::RouteTablePublisher* route_table_ = nullptr;
  routing::Journal* journal_ = nullptr;
  routing::ShadowSamples* shadow_samples_ = nullptr;
  routing::StreamPositions* stream_positions_ = nullptr;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<MigrationService> service_;
  std::unique_ptr<ControlMetricsCollector> metrics_;
  std::unique_ptr<DataMovement> data_movement_;
  std::unique_ptr<ContinuousVerifier> verifier_;
  std::unique_ptr<BackendProber> prober_;
  std::unique_ptr<StreamFeeders> stream_feeders_;
  std::unique_ptr<Cutovers> cutovers_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<AdminServer> admin_;
  std::function<bool()> listening_;
};

}  // namespace turnout::control
