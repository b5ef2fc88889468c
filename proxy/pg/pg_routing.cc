// The routing decision per request (DESIGN.md §2, §3) and moving the
// session's primary between backends at an idle point.

#include "protocol/pg/message_writer.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/secondary/backend_health.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;

routing::Request PgSession::MakeRequest(routing::RequestClass cls, routing::DdlRisk risk,
                                        std::span<const std::string_view> targets) const {
  routing::Request req;
  req.request_class = cls;
  req.targets = targets;
  req.client = routing::ClientIdentity{user_, application_name_, address_};
  req.connection_id = ctx_.connection_id;
  req.ddl_risk = risk;
  return req;
}

// The one place a request meets the routing engine: the route's policy,
// refreshed only at a request boundary so a transaction finishes under the
// policy it started with. Asked at the start of every request (a Query;
// the first message of an extended batch); an Execute later in a batch
// asks RouteLaterExecute.
PgSession::RequestPlan PgSession::PlanRequest(const RequestStart& start, bool stream_waited) {
  using Wait = RequestPlan::Wait;
  if (AtBoundary()) reader_->Refresh();
  if (tracker_.txn_status() == ppg::TransactionStatus::kIdle) carried_.ForgetLoss();
  RequestPlan p;
  p.plan = reader_->policy().Decide(MakeRequest(start.cls, start.risk, start.tables), absl::Now());
  if (p.plan.refused()) return p;
  // A read after the session's own async dual-write reads where it was written.
  p.plan = routing::ApplyReadYourWritesFence(p.plan, fence_.pending());
  // The side is chosen at the first statement of a transaction (or batch)
  // and pinned until it ends (DESIGN.md §3).
  const bool in_txn = tracker_.txn_status() != ppg::TransactionStatus::kIdle || carried_.open;
  const bool may_switch = !in_txn && !debug_pinned_;
  // ... or after the session's own commit carried by the change stream.
  bool stream_wait = false;
  if (may_switch) p.plan = FenceStreamRead(p.plan, /*may_wait=*/!stream_waited, &stream_wait);
  // A cutover's write window holds transactions at their start; those
  // already open finish under the policy they started with.
  if (may_switch && p.plan.has(routing::kPlanHoldWrites) && !open_writer_) {
    p.wait = Wait::kCutoverHold;
    return p;
  }
  if (stream_wait) {
    p.wait = Wait::kStreamRead;
    return p;
  }
  Side want = may_switch ? p.plan.primary() : primary_side_;
  if (want != primary_side_ && SideDown(want)) want = primary_side_;
  p.plan.set_primary(want);
  p.plan.RemoveSecondariesOn(want);
  p.work = PlanSecondary(p.plan, start);
  // A switch, or secondary work, starts from a quiet session.
  if (want != primary_side_ || p.work.any) p.wait = Wait::kQuiet;
  return p;
}

// Everything before the request goes out and is answered; then what the
// plan waits for: a switch of the primary, the secondary made ready. The
// plan goes through as it was made, unless what it was made from moved:
// made while requests were in flight, it read the transaction status and
// the carried transaction as they were before those were answered; a
// cutover's hold ends with a new policy, a wait for the stream with new
// having the commit or not, a failed switch with the session where it
// was, and a new policy may arrive while the secondary is made ready. Then
// it is made again, at the quiet point.
awaitable<bool> PgSession::AwaitPlan(const RequestStart& start, RequestPlan* p) {
  using Wait = RequestPlan::Wait;
  bool stream_waited = false;
  for (;;) {
    const bool was_quiet = BackendIdle() && !stream_hold_;
    if (!co_await FlushClientParsed()) co_return false;
    co_await WaitBackendIdle();
    if (p->wait == Wait::kCutoverHold) {
      co_await HoldForCutover();
    } else if (p->wait == Wait::kStreamRead) {
      const auto began = Clock::now();
      const auto result = co_await WaitStreamApplied(stream_ticket_, /*xid=*/0, /*nudge=*/true);
      ctx_.route.RecordStreamWait(
          RouteRuntime::StreamWaitKind::kRead, result,
          static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - began).count()));
      stream_waited = true;
    } else if (was_quiet) {
      const Side side = p->plan.primary();
      bool switched = side == primary_side_;
      // Another session may have claimed the retry of a backend whose
      // back-off window just ended (proxy/secondary/backend_health.h):
      // then this one stays, and PlanRequest sees the side down.
      secondary::BackendHealth& health = *ctx_.services->backend_health;
      if (!switched && health.MayTry(BackendName(side), Clock::now())) {
        // The side that becomes the primary has no secondary work left.
        co_await WaitSecondaryIdle();
        std::string notice, error;
        switched = co_await SwitchPrimary(side, &notice, &error);
        if (switched) {
          health.ReportSuccess(BackendName(side));
        } else if (!error.empty()) {  // (empty: the client went, not the backend)
          health.ReportFailure(BackendName(side), Clock::now());
          LogWarn("pg backend unavailable; staying on the other side",
                  {{"route", route().name}, {"backend", BackendName(side)}, {"error", error}});
        }
      }
      if (switched) {
        if (p->work.any) {
          if (p->work.role == routing::SecondaryRole::kDualWrite) co_await WaitForOppositeWriters();
          // Async: a transaction ends on the primary only once its
          // statements hold their locks on the secondary too. Otherwise
          // another session, free to lock those rows on the primary after
          // this COMMIT, could take them first on the secondary: the two
          // would then lock in different orders there and deadlock or
          // apply in another order.
          if (p->work.async_txn_end) co_await WaitSecondaryIdle();
          if (p->work.role == routing::SecondaryRole::kDualWrite) co_await WaitForRoom(p->work.sync);
          co_await PrepareSecondary();
        }
        // A policy published while it waited decides instead (the request
        // is still at a boundary, where a new policy is picked up).
        if (!AtBoundary() || !reader_->Refresh()) co_return true;
      }
    }
    *p = PlanRequest(start, stream_waited);
    if (p->plan.refused() || p->wait == Wait::kNone) co_return true;
  }
}

void PgSession::CommitPlan(const RequestStart& start, RequestPlan& p) {
  NoteStreamWrite(p.plan, start.cls, p.plan.primary());
  PlannedWork& w = p.work;
  if (w.copy_journaled)
    JournalUncaptured("turnout: COPY FROM is not dual-written; its tables are journaled for repair", start.tables);
  if (w.any) {
    w.request_seq = tracker_.open_seq();
    w.tables.assign(start.tables.begin(), start.tables.end());
  }
}

// An Execute later in an extended batch goes where its batch went; the
// policy still refuses it, and says whether it writes where the batch's
// plan did not foresee (NoteLaterExecute).
bool PgSession::RouteLaterExecute(const RequestStart& start) {
  routing::Plan plan = reader_->policy().Decide(MakeRequest(start.cls, start.risk, start.tables), absl::Now());
  if (plan.refused()) return true;
  plan = routing::ApplyReadYourWritesFence(plan, fence_.pending());
  plan.set_primary(primary_side_);
  plan.RemoveSecondariesOn(primary_side_);
  NoteStreamWrite(plan, start.cls, primary_side_);
  NoteLaterExecute(plan, start.cls, start.tables);
  return false;
}

void PgSession::Answered(const RequestTracker::Record& r, std::chrono::microseconds latency) {
  ctx_.route.RecordRequest(r.side, r.cls, static_cast<std::uint64_t>(latency.count()));
}

void PgSession::InFlight(bool busy) {
  cancel_slots_->SetBusy(static_cast<int>(primary_side_), busy);
  if (!busy) idle_.Notify();
}

const std::string& PgSession::BackendName(Side side) const {
  if (side == Side::kNew) {
    const std::string& n = reader_->policy().inputs().new_backend;
    if (!n.empty()) return n;
    return route().new_backend;
  }
  return route().old_backend;
}

// Makes `side` the backend requests go to, opening it (and replaying the
// session state on it) when needed. Only at an idle point outside a
// transaction, so nothing in flight changes its destination.
awaitable<bool> PgSession::SwitchPrimary(Side side, std::string* notice, std::string* error) {
  const int i = static_cast<int>(side);
  BackendConnection* before = primary();
  // Opened and replayed, or caught up since it was last primary.
  if (!co_await EnsureSynced(side, notice, error)) co_return false;
  if (before != nullptr && before != backends_[i].get()) before->MarkSynced(tracker_.state().snapshot());
  // The client keeps seeing one server: report parameters that differ.
  std::string params;
  for (const auto& [name, value] : backends_[i]->parameters())
    if (before == nullptr || before->Parameter(name) != value) ppg::AppendParameterStatus(&params, name, value);
  if (!params.empty() && !co_await WriteToClient(params)) co_return false;
  primary_side_ = side;
  tracker_.set_side(side);
  co_return true;
}

// ================================================================== catching up

// Brings `side` to the session's state without making it the primary:
// opened (and replayed) when needed, else caught up from its last sync.
awaitable<bool> PgSession::EnsureSynced(Side side, std::string* notice, std::string* error) {
  const int i = static_cast<int>(side);
  if (!backends_[i]) {
    OpenFailure failure;
    if (!co_await OpenBackend(side, &failure)) {
      ctx_.route.RecordUpstreamError(side);
      if (!failure.error_frame.empty()) {
        ppg::ErrorResponse e;
        auto r = ppg::FrameDecoder(ppg::Direction::kBackend).Decode(failure.error_frame);
        if (r.ok() && !ppg::Decode(r.value.payload, &e)) *error = std::string(e.message());
      }
      if (error->empty()) *error = failure.message;
      co_return false;
    }
    std::string replay_error;
    if (!co_await backends_[i]->Replay(tracker_.state(), &replay_error))
      *notice = "turnout: replaying session state on the new connection: " + replay_error;
    if (!backends_[i]->ready()) {
      *error = "turnout: lost the new backend connection while replaying session state";
      co_return false;
    }
    backend_ready_.Notify();
    LogDebug("pg backend opened lazily", {{"route", route().name}, {"backend", backends_[i]->backend().name}});
    co_return true;
  }
  if (side == primary_side_) co_return true;
  BackendConnection& b = *backends_[i];
  std::string out;
  const int replies = tracker_.state().AppendReplay(&out, &b.synced());
  b.MarkSynced(tracker_.state().snapshot());
  if (replies > 0) {
    b.swallow_replies += replies;
    b.swallow_errors.clear();
    auto [ec, n] = co_await b.stream().Write(asio::buffer(out));
    if (ec) {
      *error = "turnout: lost the backend connection while replaying session state";
      co_return false;
    }
    while (b.swallow_replies > 0 && b.ready() && backends_[i]) co_await idle_.Wait();
    if (!b.swallow_errors.empty()) *notice = "turnout: replaying session state: " + b.swallow_errors;
  }
  co_return true;
}

}  // namespace turnout::proxy::pg::detail
