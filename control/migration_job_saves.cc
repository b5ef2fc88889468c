// MigrationService: the saves of its background jobs. The data movement
// (control/data_movement.h), continuous verification, the stream back, the
// repair job and the cutover runner (control/cutover.h) each record their
// part of the migration through Mutate, most of them quietly (no audit
// entry, no new policy version), and never a field another job owns.
#include <boost/json.hpp>

#include "absl/strings/str_cat.h"
#include "control/migration_routing.h"
#include "control/migration_service.h"
#include "control/strategy_json.h"

namespace turnout::control {
namespace json = boost::json;

namespace {
// The data movement job saves the whole DataProgress it holds; the
// continuous verification fields and the stream back's figures are not its
// own and stay as recorded.
void SetJobProgress(Migration& mig, const DataProgress& progress) {
  DataProgress next = progress;
  next.continuous_verification = std::move(mig.progress.continuous_verification);
  next.verify_runs = mig.progress.verify_runs;
  next.verify_rows = mig.progress.verify_rows;
  for (auto& r : next.routes) {
    r.stream_back = {};
    for (auto& recorded : mig.progress.routes)
      if (recorded.route == r.route) r.stream_back = std::move(recorded.stream_back);
  }
  mig.progress = std::move(next);
}
}  // namespace

absl::Status MigrationService::SaveStreamBack(const std::string& id, const std::string& route,
                                              const StreamProgress& stream_back) {
  auto m = Mutate(id, "system", "", [&](Migration& mig) -> absl::Status {
    for (auto& r : mig.progress.routes) {
      if (r.route != route) continue;
      r.stream_back = stream_back;
      // A runner's last report can land after the stream back ended (a
      // rollback flipped, the migration completed): it ended all the same.
      if (!StreamBackWanted(mig)) r.stream_back.phase = "stopped";
      if (r.stream_back.phase == "stopped") {
        r.stream_back.lag_bytes = r.stream_back.retained_wal_bytes = 0;
        r.stream_back.lag_seconds = 0;
      }
      return absl::OkStatus();
    }
    return absl::NotFoundError(absl::StrCat("migration ", id, " has no progress of route ", route));
  }, /*audit=*/false);
  return m.status();
}

absl::Status MigrationService::SaveContinuousVerification(const std::string& id, const json::value& result,
                                                          bool counted, std::int64_t rows) {
  auto m = Mutate(id, "system", "", [&](Migration& mig) -> absl::Status {
    mig.progress.continuous_verification = result;
    if (counted) {
      ++mig.progress.verify_runs;
      mig.progress.verify_rows += rows;
    }
    return absl::OkStatus();
  }, /*audit=*/false);
  return m.status();
}

absl::StatusOr<std::unique_ptr<ExclusiveLock>> MigrationService::LockRepair(const std::string& id) {
  return store_->TryLockExclusive("repair:" + id);
}

absl::Status MigrationService::SaveRepair(const std::string& id, const json::value& repair) {
  auto m = Mutate(id, "system", "", [&](Migration& mig) -> absl::Status {
    mig.repair = repair;
    return absl::OkStatus();
  }, /*audit=*/false);
  return m.status();
}

absl::Status MigrationService::SaveProgress(const std::string& id, const DataProgress& progress,
                                            const std::string& audit_action) {
  auto m = Mutate(id, "system", audit_action, [&](Migration& mig) -> absl::Status {
    SetJobProgress(mig, progress);
    return absl::OkStatus();
  }, /*audit=*/!audit_action.empty());
  return m.status();
}

absl::StatusOr<MigrationState> MigrationService::FinishDataMovement(const std::string& id, const DataProgress& progress,
                                                                    bool complete) {
  auto m = Mutate(id, "system", "data_movement_done", [&](Migration& mig) -> absl::Status {
    SetJobProgress(mig, progress);
    // The rule of /migrate with data "none": a strategy that already sends
    // everything to new is done once the data is there.
    if (complete && mig.state == MigrationState::kRunning) {
      auto spec = StrategyFromJson(mig.strategy);
      if (spec.ok() && IsFullCutover(*spec)) mig.state = MigrationState::kCompleted;
    }
    return absl::OkStatus();
  });
  if (!m.ok()) return m.status();
  return m->state;
}

absl::Status MigrationService::FailDataMovement(const std::string& id, const DataProgress& progress,
                                                const std::string& error) {
  auto m = Mutate(id, "system", "data_movement_failed", [&](Migration& mig) -> absl::Status {
    SetJobProgress(mig, progress);
    // Failed routes everything to old (PhaseOf); an operator rolls back or
    // investigates. Paused or rolled back meanwhile: only the record changes.
    if (mig.state == MigrationState::kRunning) {
      mig.state = MigrationState::kFailed;
      mig.last_error = error;
    }
    return absl::OkStatus();
  });
  return m.status();
}

absl::Status MigrationService::EndCutover(const std::string& id, std::int64_t epoch, bool flipped,
                                         std::int64_t hold_ms, const std::string& reason, bool stream_back) {
  auto m = Mutate(id, "system", flipped ? "cutover" : "cutover_abandoned", [&](Migration& mig) -> absl::Status {
    if (!CutoverOpen(mig)) return absl::FailedPreconditionError("no cutover in progress");
    if (CutoverEpoch(mig) != epoch) return absl::FailedPreconditionError("another cutover is in progress");
    json::object c = mig.cutover.as_object();
    c["phase"] = flipped ? "done" : "abandoned";
    c["hold_ms"] = hold_ms;
    c["ended_at"] = NowRfc3339();
    if (!reason.empty()) c["reason"] = reason;
    if (stream_back) c["stream_back"] = true;
    if (flipped) mig.strategy = c["strategy"];
    const bool then_rollback = flipped && c.contains("then") && c["then"] == "rollback";
    mig.cutover = std::move(c);
    if (then_rollback) {
      // Old holds every write new took: routing back to old loses none.
      mig.state = MigrationState::kRolledBack;
      return absl::OkStatus();
    }
    if (flipped && mig.state == MigrationState::kRunning && !DataPending(mig)) {
      auto spec = StrategyFromJson(mig.strategy);
      if (spec.ok() && IsFullCutover(*spec)) mig.state = MigrationState::kCompleted;
    }
    return absl::OkStatus();
  });
  return m.ok() ? absl::OkStatus() : m.status();
}

absl::Status MigrationService::HoldCutover(const std::string& id, std::int64_t epoch) {
  auto m = Mutate(id, "system", "cutover_hold", [&](Migration& mig) -> absl::Status {
    if ((CutoverPhase(mig) != "catching_up" && CutoverPhase(mig) != "waiting_for_data") || CutoverEpoch(mig) != epoch)
      return absl::FailedPreconditionError("the cutover is no longer catching up");
    json::object c = mig.cutover.as_object();
    c["phase"] = "holding";
    c["hold_started_at"] = NowRfc3339();
    mig.cutover = std::move(c);
    return absl::OkStatus();
  });
  return m.ok() ? absl::OkStatus() : m.status();
}

}  // namespace turnout::control
