// The routing decision per request (DESIGN.md §2, §3) and moving the
// session's primary between backends at an idle point.

#include "protocol/pg/message_writer.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;

// The one place a request meets the routing engine: the route's policy,
// refreshed only at a request boundary so a transaction finishes under the
// policy it started with. Called by the tracker at the start of every
// request (a Query; the first message of an extended batch) and at every
// Execute.
routing::Plan PgSession::Route(routing::RequestClass cls, routing::DdlRisk risk,
                               std::span<const std::string_view> targets) {
  const bool batch_start = !tracker_.unsynced();
  if (AtBoundary()) reader_->Refresh();
  if (batch_start && tracker_.txn_status() == ppg::TransactionStatus::kIdle) carried_.ForgetLoss();
  routing::Request req;
  req.request_class = cls;
  req.targets = targets;
  req.client = routing::ClientIdentity{user_, application_name_, address_};
  req.connection_id = ctx_.connection_id;
  req.ddl_risk = risk;
  routing::Plan plan = reader_->policy().Decide(req, absl::Now());
  if (plan.refused()) return plan;
  // A read after the session's own async dual-write reads where it was written.
  plan = routing::ApplyReadYourWritesFence(plan, fence_.pending());
  // The side is chosen at the first statement of a transaction (or batch)
  // and pinned until it ends (DESIGN.md §3).
  const bool in_txn = tracker_.txn_status() != ppg::TransactionStatus::kIdle || carried_.open;
  const bool may_switch = !in_txn && batch_start && !debug_pinned_;
  // ... or after the session's own commit carried by the change stream.
  if (may_switch) plan = FenceStreamRead(plan, /*may_wait=*/true);
  // A cutover's write window holds transactions at their start; those
  // already open finish under the policy they started with.
  if (may_switch && plan.has(routing::kPlanHoldWrites) && !open_writer_) {
    cutover_hold_ = true;
    barrier_ = true;
  }
  if (stream_read_wait_ || cutover_hold_) return routing::Plan(primary_side_);  // the barrier waits; routed again
  Side want = may_switch ? plan.primary() : primary_side_;
  if (want != primary_side_ && SideDown(want)) want = primary_side_;
  plan.set_primary(want);
  plan.RemoveSecondariesOn(want);
  NoteStreamWrite(plan, cls, want);

  routing::Plan out(want);
  if (plan.has(routing::kPlanAtomic)) out.set(routing::kPlanAtomic);
  if (!batch_start) {
    NoteLaterExecute(plan, cls, targets);
    return out;
  }
  planned_ = PlanSecondary(plan, cls, targets);
  planned_seq_ = tracker_.open_seq();
  if (planned_.any)
    out.AddSecondary(routing::Secondary{Other(want), planned_.role,
                                        planned_.sync ? routing::Apply::kSync : routing::Apply::kAsync});
  // A switch, or secondary work, starts from a quiet session.
  if (want != primary_side_) {
    barrier_ = true;
    switch_to_ = want;
  } else if (planned_.any && !prepared_) {
    barrier_ = true;
  }
  return out;
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
