// MULTI/EXEC/DISCARD: the transaction pinned to one upstream connection,
// the block carried whole to a dual-write secondary, and the SELECTs a
// transaction runs.
#include <algorithm>
#include <optional>

#include "protocol/resp/reply_writer.h"
#include "proxy/redis/redis_commands.h"
#include "proxy/redis/redis_session_impl.h"

namespace turnout::proxy::redis {

awaitable<void> RedisSession::HandleMulti(const resp::Command& cmd, const std::uint8_t* input,
                                          const resp::CommandInfo& info) {
  if (tracker_.in_multi()) {  // "MULTI calls can not be nested": the server says so
    co_await ForwardCommand(cmd, input, info, RequestClass::kTxnControl);
    co_return;
  }
  const Side side = co_await ForwardCommand(cmd, input, info, RequestClass::kTxnControl);
  tracker_.MultiStarted(side);
  block_ = Block{};
  if (last_entry_ != nullptr) BeginBlock(last_plan_);
  block_.db = tracker_.dispatch_db();
}

awaitable<void> RedisSession::HandleExecOrDiscard(const resp::Command& cmd, const std::uint8_t* input,
                                                  const resp::CommandInfo& info) {
  if (!tracker_.in_multi()) {  // "EXEC without MULTI"
    co_await ForwardCommand(cmd, input, info, RequestClass::kTxnControl);
    co_return;
  }
  const bool exec = &info == Special().exec;
  std::optional<Side> select_side;  // EXEC ran SELECTs on this side
  if (exec && tracker_.multi_dirty()) {
    // A command turnout refused was never queued upstream: abort the
    // transaction there and answer as Redis does (multi.c execCommand).
    const Side side = tracker_.pinned().value_or(Side::kOld);
    if (backends_[static_cast<int>(side)] && backends_[static_cast<int>(side)]->is_open()) {
      const std::string_view discard[] = {"DISCARD"};
      ForwardArgs(side, discard);
      PushBackendEntry(EntryKind::kSwallow, side, RequestClass::kTxnControl);
    }
    PushLocalError("EXECABORT Transaction discarded because of previous errors.");
    block_ = Block{};
  } else {
    secondary::KeyOrder::Stripes stripes;
    if (exec && block_.active && (block_.writes > 0 || !block_.copy_keys.empty())) {
      if (!ChannelFor(block_.side)->HasRoom(block_.wire.size() * 2))
        co_await WaitForRoom(block_.side, block_.sync, block_.wire.size() * 2);
      for (const auto& k : block_.keys) secondary::KeyOrder::AddStripe(k, stripes);
      if (!co_await AcquireStripes(stripes)) stripes.clear();
    }
    const Side side = co_await ForwardCommand(cmd, input, info, RequestClass::kTxnControl);
    if (exec && !block_.selects.empty() && last_entry_ != nullptr) {
      last_entry_->flags |= kFlagExecSelect;
      exec_selects_ = block_.selects;
      exec_pending_ = true;
      select_side = side;
    }
    if (exec && block_.active && last_entry_ != nullptr) {
      FinishBlock(*last_entry_, stripes);
    }
    if (!stripes.empty()) ReleaseStripes(stripes);
    block_ = Block{};
  }
  tracker_.TransactionEnded();
  if (select_side) co_await FollowExecSelect(*select_side);
}

// MULTI under a dual-write plan: the block is collected and sent to the
// secondary whole (MULTI, writes, EXEC) once the primary's EXEC committed.
void RedisSession::BeginBlock(const routing::Plan& plan) {
  block_ = Block{};
  for (const auto& sec : plan.secondaries()) {
    if (sec.role != routing::SecondaryRole::kDualWrite || sec.side == plan.primary() ||
        BackendFor(sec.side) == nullptr)
      continue;
    block_.active = true;
    block_.side = sec.side;
    block_.sync = sec.apply == routing::Apply::kSync;
    resp::AppendCommand(block_.wire, {"MULTI"});
    return;
  }
}

// A command queued on the primary inside MULTI.
void RedisSession::AddToBlock(const resp::CommandInfo& info, const resp::Command& cmd, const std::uint8_t* input) {
  if (last_entry_ == nullptr) return;  // not queued upstream
  const std::uint32_t index = block_.index++;
  if (&info == Special().select) {
    // EXEC switches the primary's connection when it runs the SELECT, so
    // the secondary runs it at the same place: the writes after it land
    // in the same database there, and its +OK is compared like a write's.
    std::int64_t db = -1;
    const bool valid = resp::ParseRedisInt64(cmd.args[1], db) && db >= 0 && db <= INT32_MAX;
    block_.selects.push_back({index, valid ? static_cast<int>(db) : -1});
    if (valid) block_.db = static_cast<int>(db);
    if (block_.active) {
      block_.wire.append(FrameOf(cmd, input));
      block_.positions.push_back(index);
    }
    return;
  }
  if (!block_.active) return;
  if (ClassOf(info) != RequestClass::kWrite || info.full_name == "PUBLISH" || info.full_name == "SPUBLISH") return;
  std::vector<std::string> keys = KeysOf(info, cmd.args);
  if (info.deterministic) {
    block_.wire.append(FrameOf(cmd, input));
    block_.positions.push_back(index);
    ++block_.writes;
  } else {
    for (auto& k : keys) {
      const std::pair<std::string, int> copy{k, block_.db};
      if (std::find(block_.copy_keys.begin(), block_.copy_keys.end(), copy) == block_.copy_keys.end())
        block_.copy_keys.push_back(copy);
    }
  }
  for (auto& k : keys)
    if (std::find(block_.keys.begin(), block_.keys.end(), k) == block_.keys.end()) block_.keys.push_back(std::move(k));
}

// EXEC went to the primary (entry `e`): queue the block for the
// secondary; the channel reads its copied keys once EXEC answered.
void RedisSession::FinishBlock(Entry& e, secondary::KeyOrder::Stripes& stripes) {
  Block b = std::move(block_);
  block_ = Block{};
  // Copies are read in one database, the one the block ends in: a
  // non-deterministic write to a database the block SELECTed away from is
  // not copied, its keys are journaled for repair instead.
  std::vector<std::string> copy_keys, elsewhere;
  for (auto& [k, db] : b.copy_keys) (db == b.db ? copy_keys : elsewhere).push_back(std::move(k));
  if (!elsewhere.empty())
    JournalNotQueued(b.side, b.wire, std::move(elsewhere),
                     "non-deterministic write in a database the transaction SELECTed away from; repair copies "
                     "its keys");
  if (b.writes == 0 && copy_keys.empty()) return;  // SELECTs alone: FollowExecSelect
  if (b.wire.size() > SecondaryChannel::kMaxBytes / 2 || copy_keys.size() > kMaxCopyKeys) {
    JournalNotQueued(b.side, b.wire, std::move(b.keys), "transaction too large to dual-write; repair copies its keys");
    return;
  }
  SecondaryChannel* ch = ChannelFor(b.side);
  // The session waited for room before EXEC went out (WaitForRoom).
  if (ch->Admit(b.sync ? secondary::Work::kSyncWrite : secondary::Work::kAsyncWrite, b.wire.size() * 2) !=
      secondary::Admission::kAdmit) {
    ch->JournalNotQueued(b.wire, std::move(b.keys), "secondary queue full");
    return;
  }
  SecondaryOp op;
  op.kind = OpKind::kBlock;
  op.cls = RequestClass::kWrite;
  op.start = batch_start_;
  op.barrier = main_dispatched_[static_cast<int>(b.side)];
  op.command = b.wire;
  op.wire = std::move(b.wire);
  op.replies_expected = 1 + static_cast<int>(b.positions.size());  // MULTI, QUEUED...; EXEC and copies later
  op.positions = std::move(b.positions);
  // Copied keys first (the channel reads those, PrepareCopy), then the rest.
  op.copy_keys = copy_keys.size();
  op.copy_db = b.db;
  op.deferred = !copy_keys.empty();
  op.keys = std::move(copy_keys);
  for (auto& k : b.keys)
    if (std::find(op.keys.begin(), op.keys.end(), k) == op.keys.end()) op.keys.push_back(std::move(k));
  op.sync = b.sync;
  if (!b.sync) op.fence_seq = fence_.OnQueued();
  op.stripes = std::move(stripes);
  stripes.clear();
  op.stripe_owner = StripeOwner();
  SecondaryOp& queued = ch->Enqueue(std::move(op));
  if (queued.deferred) NoteCopy(b.side, queued.seq);
  e.op = queued.seq;
  e.op_side = b.side;
  e.stage = OpStage::kFirst;
}

// EXEC ran a block with SELECTs on `primary`: when it committed, the
// primary's connection is in another database now. The request loop
// waits for that reply (a pipeline pauses here, for such blocks only),
// then moves the session's other connections the same way before anything
// after the block is dispatched: the other backend's connection, and every
// secondary channel (a kState SELECT: the block's channel ran the SELECTs
// inside the block; this records the database it reconnects to).
awaitable<void> RedisSession::FollowExecSelect(Side primary) {
  co_await FlushUpstream();
  WakeWriter();
  while (exec_pending_ && !closed_ && !fatal_ && !tracker_.fifo().empty()) {
    exec_wake_.expires_after(std::chrono::milliseconds(5));
    co_await exec_wake_.async_wait();
  }
  if (exec_pending_) {  // the reply never came: the session is ending
    exec_pending_ = false;
    co_return;
  }
  if (closed_ || exec_db_ == tracker_.dispatch_db()) co_return;
  tracker_.set_dispatch_db(exec_db_);
  const std::string db = std::to_string(exec_db_);
  const std::string_view select[] = {"SELECT", db};
  MirrorToOthers(primary, select, kFlagSelect, exec_db_);
  SecondaryOp op;
  resp::AppendCommand(op.command, select);
  op.state_db = exec_db_;
  MirrorStateToChannels(std::move(op));
}

// The primary's reply to an EXEC flagged kFlagExecSelect.
void RedisSession::NoteExecReply(Entry& head, std::string_view frame, bool streamed) {
  head.flags &= ~kFlagExecSelect;
  exec_db_ = tracker_.OnExecReply(frame, exec_selects_, streamed);
  exec_pending_ = false;
  exec_wake_.cancel();
}

}  // namespace turnout::proxy::redis
