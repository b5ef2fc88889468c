#pragma once
// Feeds routing::StreamPositions (routing/stream_positions.h) for the
// Postgres routes whose dual-write the change stream carries, in every
// sidecar, whichever of them runs the stream:
//
//   old ── a sample (pg_current_wal_insert_lsn) or a fence, prepared:
//          one answers every commit sampled before it was sent
//   new ── LISTEN turnout_applied              the applier's "<slot> <lsn>":
//          its heartbeat, and this sidecar's fences when another runs the
//          stream (read lazily while this process runs it)
//
// One thread per such route; StreamFeeders starts and stops them as the
// published policies change (Refresh). Nothing here is on a session's path:
// sessions only read the position and are woken by it.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "routing/config.h"
#include "routing/policy_table.h"
#include "routing/stream_positions.h"

namespace turnout::control {

class StreamFeeder {
 public:
  StreamFeeder(routing::Backend old_backend, routing::Backend new_backend, std::string slot,
               routing::StreamPosition* position);
  ~StreamFeeder();
  StreamFeeder(const StreamFeeder&) = delete;
  StreamFeeder& operator=(const StreamFeeder&) = delete;

  const std::string& slot() const { return slot_; }

 private:
  void Run();
  void Wake();

  const routing::Backend old_, new_;
  const std::string slot_;
  routing::StreamPosition* const position_;
  std::atomic<bool> stop_{false};
  // eventfd: a sample was requested, or stop. Shared with the position's
  // listener, which a session may still be calling while this feeder ends.
  struct WakeFd;
  std::shared_ptr<WakeFd> wake_;
  std::thread thread_;
};

class StreamFeeders {
 public:
  StreamFeeders(std::shared_ptr<const routing::Config> config, const routing::RouteTablePublisher* route_table,
                routing::StreamPositions* positions);
  ~StreamFeeders();
  StreamFeeders(const StreamFeeders&) = delete;
  StreamFeeders& operator=(const StreamFeeders&) = delete;

  // Checks the published policies every `period` (they change on this
  // sidecar's requests and on other sidecars' through the store).
  void Start(std::chrono::milliseconds period = std::chrono::milliseconds(250));
  void Stop();
  // One check now: a feeder for each route under stream dual-write.
  void Refresh();

 private:
  std::shared_ptr<const routing::Config> config_;
  const routing::RouteTablePublisher* route_table_;
  routing::StreamPositions* positions_;
  std::map<std::string, std::unique_ptr<StreamFeeder>> feeders_;  // by route
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace turnout::control
