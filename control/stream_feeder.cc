#include "control/stream_feeder.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <utility>
#include <vector>

#include "control/pg_client.h"
#include "control/pg_change_apply.h"
#include "control/pg_change_stream.h"
#include "protocol/pg/pgoutput.h"

namespace turnout::control {

namespace pgo = protocol::pg::pgoutput;

namespace {

// How long a report of the applier vouches for the stream: three of its
// one-second heartbeats.
constexpr absl::Duration kReportVouches = absl::Seconds(3);
constexpr int kPollMillis = 200;
constexpr auto kReconnectAfter = std::chrono::seconds(1);

bool ParseNotification(std::string_view payload, std::string_view slot, std::uint64_t* lsn) {
  const auto space = payload.find(' ');
  return space != std::string_view::npos && payload.substr(0, space) == slot &&
         pgo::ParseLsn(payload.substr(space + 1), lsn);
}

}  // namespace

struct StreamFeeder::WakeFd {
  WakeFd() : fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~WakeFd() {
    if (fd >= 0) close(fd);
  }
  void Signal() const {
    const std::uint64_t one = 1;
    (void)!write(fd, &one, sizeof one);
  }
  const int fd;
};

StreamFeeder::StreamFeeder(routing::Backend old_backend, routing::Backend new_backend, std::string slot,
                           routing::StreamPosition* position)
    : old_(std::move(old_backend)),
      new_(std::move(new_backend)),
      slot_(std::move(slot)),
      position_(position),
      wake_(std::make_shared<WakeFd>()) {
  position_->SetSampleListener([wake = wake_] { wake->Signal(); });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "turnout-feeder");
    Run();
  });
}

StreamFeeder::~StreamFeeder() {
  position_->SetSampleListener(nullptr);
  stop_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
}

void StreamFeeder::Wake() { wake_->Signal(); }

void StreamFeeder::Run() {
  PgConn old_conn, new_conn;
  bool querying = false;       // a sample or a fence is in flight on old
  std::uint64_t sampling = 0;  // the ticket it answers, 0 for none
  std::uint64_t sampled = 0;   // its position, once read
  bool failed = false;         // ... or a statement of it failed
  // A sample is a read of old's insert position; a fence (StreamFenceSql),
  // written only when a waiting session nudges (routing/stream_positions.h),
  // is a position the stream brings to the applier, which then reports new
  // at that position at once. A fence answers sample requests too.
  // Both prepared once per connection to old, which keeps
  // synchronous_commit on (the fence must flush).
  static constexpr const char* kSample = "turnout_sample";
  static constexpr const char* kFence = "turnout_fence";
  auto prepare = [&](PGconn* c) {
    if (!PgExecScript(PgSide{c, "old"}, "set synchronous_commit = on", "feeder settings").ok()) return false;
    for (const auto& [name, sql] : {std::pair{kSample, StreamSampleSql()},
                                    std::pair{kFence, StreamFenceStatement(slot_, /*from_here=*/true)}}) {
      PgResult r(PQprepare(c, name, sql.c_str(), 0, nullptr));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return false;
    }
    return true;
  };
  auto next_connect = std::chrono::steady_clock::now();
  auto next_drain = next_connect;
  auto fail_sample = [&] {
    if (sampling != 0) position_->SampleTaken(sampling, 0);
    sampling = 0;
    querying = false;
  };
  while (!stop_) {
    const auto now = std::chrono::steady_clock::now();
    if ((!old_conn || !new_conn) && now >= next_connect) {
      next_connect = now + kReconnectAfter;
      if (!old_conn) {
        auto c = PgConnect(old_, "turnout-stream-feeder");
        if (c.ok() && prepare(c->get())) old_conn = *std::move(c);
      }
      if (!new_conn) {
        auto c = PgConnect(new_, "turnout-stream-feeder");
        if (c.ok()) {
          if (PgExecScript(PgSide{c->get(), "new"}, "listen " + std::string(kAppliedChannel), "listen").ok())
            new_conn = *std::move(c);
        }
      }
    }
    if (old_conn && !querying) {
      const bool fence = position_->TakeNudge();
      const std::uint64_t ticket = position_->TakeSampleRequest();
      if (fence || ticket != 0) {
        if (PQsendQueryPrepared(old_conn.get(), fence ? kFence : kSample, 0, nullptr, nullptr, nullptr, 0) == 1) {
          querying = true;
          sampling = ticket;
        } else {
          if (ticket != 0) position_->SampleTaken(ticket, 0);
          old_conn.reset();
        }
      }
    } else if (!old_conn) {
      // Nobody can learn old's position: sessions are not held for it.
      (void)position_->TakeNudge();
      if (const std::uint64_t ticket = position_->TakeSampleRequest(); ticket != 0) position_->SampleTaken(ticket, 0);
    }

    // While this process runs the stream, its positions arrive directly
    // (StreamPosition::Applied from the applier): new's notifications of
    // every group and fence would only wake this thread for nothing, so
    // they are read when the poll times out. The connection stays
    // listening: should the stream move to another sidecar, its reports
    // are heard once this process's last one stops vouching.
    const bool hurry_new = !position_->reported_here(absl::Now());
    pollfd fds[3] = {{wake_->fd, POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
    if (old_conn && querying) fds[1].fd = PQsocket(old_conn.get());
    if (new_conn && hurry_new) fds[2].fd = PQsocket(new_conn.get());
    const int n = poll(fds, 3, kPollMillis);
    if (n < 0) continue;
    if (new_conn && !hurry_new && std::chrono::steady_clock::now() >= next_drain) {
      next_drain = std::chrono::steady_clock::now() + std::chrono::milliseconds(kPollMillis);
      fds[2].revents = POLLIN;
    }
    if (fds[0].revents & POLLIN) {
      std::uint64_t drained;
      (void)!read(wake_->fd, &drained, sizeof drained);
    }
    if (fds[1].revents != 0) {
      if (PQconsumeInput(old_conn.get()) != 1) {
        fail_sample();
        old_conn.reset();
      } else {
        // Results as they come (a fence's txid, message, commit); the
        // sample is taken once the last is in (the fence is flushed then).
        bool done = false;
        while (!done && PQisBusy(old_conn.get()) == 0) {
          PGresult* raw = PQgetResult(old_conn.get());
          if (raw == nullptr) {
            done = true;
            break;
          }
          PgResult r(raw);
          std::uint64_t lsn = 0;
          if (FenceResultLsn(raw, &lsn) || SampleResultLsn(raw, &lsn)) sampled = lsn;
          if (PQresultStatus(raw) == PGRES_FATAL_ERROR) failed = true;
        }
        if (done) {
          if (sampling != 0) position_->SampleTaken(sampling, failed ? 0 : sampled);
          // A failed statement leaves the explicit transaction aborted.
          if (failed) old_conn.reset();
          sampling = sampled = 0;
          failed = querying = false;
        }
      }
    }
    if (fds[2].revents != 0) {
      if (PQconsumeInput(new_conn.get()) != 1) {
        new_conn.reset();
        continue;
      }
      while (PgNotify note = PgNextNotify(new_conn.get())) {
        std::uint64_t lsn = 0;
        if (ParseNotification(note->extra, slot_, &lsn))
          position_->Applied(lsn, absl::Now() + kReportVouches, routing::StreamPosition::Report::kHeard);
      }
    }
  }
  fail_sample();
}

StreamFeeders::StreamFeeders(std::shared_ptr<const routing::Config> config,
                             const routing::RouteTablePublisher* route_table, routing::StreamPositions* positions)
    : config_(std::move(config)), route_table_(route_table), positions_(positions) {}

StreamFeeders::~StreamFeeders() { Stop(); }

void StreamFeeders::Start(std::chrono::milliseconds period) {
  thread_ = std::thread([this, period] {
    while (!stop_) {
      Refresh();
      for (auto waited = std::chrono::milliseconds(0); waited < period && !stop_;
           waited += std::chrono::milliseconds(50))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

void StreamFeeders::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  feeders_.clear();
}

void StreamFeeders::Refresh() {
  const auto table = route_table_->Load();
  std::map<std::string, std::string> wanted;  // route -> slot
  for (const auto& [route, policy] : table->routes()) {
    if (!policy || policy->protocol() != routing::Protocol::kPostgres || !policy->inputs().writes_by_stream) continue;
    wanted[route] = StreamNamesFor(policy->migration_id(), route).slot;
  }
  for (auto it = feeders_.begin(); it != feeders_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second == it->second->slot()) {
      ++it;
      continue;
    }
    it = feeders_.erase(it);
  }
  for (const auto& [route, slot] : wanted) {
    if (feeders_.contains(route)) continue;
    const routing::Route* r = config_->FindRoute(route);
    if (r == nullptr) continue;
    const auto policy = table->FindShared(route);
    const std::string& new_name = policy->inputs().new_backend.empty() ? r->new_backend : policy->inputs().new_backend;
    const routing::Backend* old_b = config_->FindBackend(r->old_backend);
    const routing::Backend* new_b = config_->FindBackend(new_name);
    if (old_b == nullptr || new_b == nullptr) continue;
    feeders_[route] = std::make_unique<StreamFeeder>(*old_b, *new_b, slot, &positions_->For(route));
  }
}

}  // namespace turnout::control
