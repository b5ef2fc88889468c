// Carried transactions across the two backends (DESIGN.md §2): the
// secondary's copy of the client's transaction (CarriedTransaction,
// pg_transactions.h), the two-phase commit of `atomic: true`, and the gate
// that keeps dual-writers of opposite authority apart (see
// RouteRuntime::dual_writers).

#include "proxy/pg/pg_transactions.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "protocol/pg/message_writer.h"
#include "proxy/logging.h"
#include "proxy/pg/pg_session_impl.h"
#include "proxy/pg/request_text.h"

namespace turnout::proxy::pg::detail {

namespace ppg = protocol::pg;
using routing::SecondaryRole;

// How long a session waits for dual-writers of the opposite authority.
constexpr auto kOppositeWritersWait = std::chrono::seconds(10);

// ================================================================== the carried transaction

int CarriedTransaction::Begin(std::string* out, std::span<const std::string> local_settings, bool sync_apply,
                              bool atomic_commit) {
  // SET LOCAL lasts until the transaction ends: those issued before its
  // first write are part of what the secondary must run it under.
  ppg::AppendQuery(out, "BEGIN");
  for (const auto& local : local_settings) ppg::AppendQuery(out, local);
  open = true;
  sync = sync_apply;
  atomic = atomic_commit;
  return 1 + static_cast<int>(local_settings.size());
}

void CarriedTransaction::Lose() noexcept {
  if (!open) return;
  open = false;
  lost = true;
}

void CarriedTransaction::AddTables(std::span<const std::string_view> written) {
  for (std::string_view t : written)
    if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.emplace_back(t);
}

void CarriedTransaction::AddTables(std::span<const std::string> written) {
  for (const std::string& t : written)
    if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.push_back(t);
}

// ================================================================== two-phase commit

// Two-phase commit of a carried transaction (`atomic: true`): the secondary
// prepares first, so a COMMIT the primary accepts can no longer fail there;
// if the secondary cannot prepare, the primary rolls back instead and the
// client's COMMIT answers ROLLBACK, as the server's own COMMIT of a failed
// transaction does. A prepared transaction left by a turnout that died
// between the phases shows in pg_prepared_xacts with a gid "turnout_…".
awaitable<bool> PgSession::AtomicCommit(SecondaryOp& op) {
  carried_.holding = false;
  const std::string commit = std::move(op.main);  // the client's frames, held back
  BackendConnection* b = backend(op.side);
  op.gid = absl::StrCat("turnout_", route().name, "_", ctx_.connection_id, "_", ++carried_.atomic_count, "_",
                        absl::ToUnixMicros(absl::Now()));
  bool prepared = false;
  // Phase one goes out through the op, so its reply is matched as usual
  // (proxy/secondary/sender.h): in its turn, after every op before it (in
  // a sync transaction they were answered before this request was read).
  while (b != nullptr && b->ready() && !op.secondary_done && sec_sender_.Next() != &op)
    co_await sec_progress_.Wait();
  if (b != nullptr && b->ready() && !op.secondary_done) {
    op.main = QueryFrame(absl::StrCat("PREPARE TRANSACTION '", op.gid, "'"));
    sec_sender_.Sent(op);
    op.sent_at = Clock::now();
    std::array<asio::const_buffer, 2> parts = {asio::buffer(op.prefix), asio::buffer(op.main)};
    auto [ec, n] = co_await b->stream().Write(std::span<const asio::const_buffer>(parts.data(), parts.size()));
    if (ec) b->Close();
    while (!op.secondary_done) co_await sec_progress_.Wait();
    prepared = op.failure.empty() && !op.secondary.has_error() && op.secondary.tags() == "PREPARE TRANSACTION";
  }
  const std::string prepare_outcome = op.failure.empty() ? op.secondary.Outcome() : op.failure;
  op.prefix.clear();
  op.prefix_replies = 0;
  op.replies_seen = 0;
  op.sent = false;
  op.secondary.Reset();
  op.prefix_errors.clear();
  carried_.open = false;  // the secondary's session is out of the transaction either way
  if (prepared) {
    sec_sender_.Resend(op);
    op.main = QueryFrame(absl::StrCat("COMMIT PREPARED '", op.gid, "'"));  // or ROLLBACK: PrimaryOpDone
    auto [ec, n] = co_await primary()->stream().Write(asio::buffer(commit));
    co_return !ec;
  }
  // Neither side commits.
  LogWarn("pg atomic commit: the secondary could not prepare; rolled back on both sides",
          {{"route", route().name}, {"backend", BackendName(op.side)}, {"error", prepare_outcome}});
  op.failure.clear();
  op.skipped = true;
  op.send_main = false;
  sec_sender_.MarkDone(op);
  ctx_.route.RecordDualWrite(RouteRuntime::DualWriteResult::kFailed);
  std::string out;
  ppg::AppendNoticeResponse(&out, ppg::ErrorSpec{.severity = "WARNING",
                                                 .sqlstate = "40000",
                                                 .message = "turnout: the new side could not prepare the "
                                                            "transaction (atomic dual-write); rolled back"});
  if (!co_await WriteToClient(out)) co_return false;
  const std::string rollback = QueryFrame("ROLLBACK");
  auto [ec, n] = co_await primary()->stream().Write(asio::buffer(rollback));
  co_return !ec;
}

// ================================================================== opposite authority

void PgSession::UpdateWriterHold() {
  bool busy = carried_.open;
  for (const auto& op : sec_ops_)
    if (op.role == SecondaryRole::kDualWrite && !op.finished) busy = true;
  if (busy && !carried_.writer_hold) {
    carried_.writer_hold = primary_side_;
    ctx_.route.dual_writers[static_cast<int>(primary_side_)].fetch_add(1, std::memory_order_acq_rel);
  } else if (!busy && carried_.writer_hold) {
    ctx_.route.dual_writers[static_cast<int>(*carried_.writer_hold)].fetch_sub(1, std::memory_order_acq_rel);
    carried_.writer_hold.reset();
  }
}

awaitable<void> PgSession::WaitForOppositeWriters() {
  if (carried_.writer_hold) co_return;  // already writing this way round
  auto& opposite = ctx_.route.dual_writers[static_cast<int>(Other(primary_side_))];
  if (opposite.load(std::memory_order_acquire) == 0) co_return;
  const auto deadline = Clock::now() + kOppositeWritersWait;
  Timer timer(ex_);
  while (opposite.load(std::memory_order_acquire) > 0 && Clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(2));
    co_await timer.async_wait();
  }
}

}  // namespace turnout::proxy::pg::detail
