// The session's side of secondary work (dual-write, copy, shadow, MULTI
// blocks): choosing it per command, queueing it on the side's channel
// (secondary_channel.h runs it), per-key order and back-pressure, and
// feeding it the primary's replies.
#include <algorithm>

#include "protocol/resp/reply_writer.h"
#include "proxy/logging.h"
#include "proxy/redis/redis_session_impl.h"
#include "proxy/secondary/outcome.h"

namespace turnout::proxy::redis {

// The channel for secondary work on `side`, created on first use.
SecondaryChannel* RedisSession::ChannelFor(Side side) {
  auto& ch = channels_[static_cast<int>(side)];
  if (!ch) {
    SecondaryChannel::Env env;
    env.route = &ctx_.route;
    env.services = ctx_.services;
    env.config = ctx_.config;
    env.session_id = ctx_.connection_id;
    env.fence = &fence_;
    env.main_answered = &main_answered_;
    env.on_progress = [this] {
      wake_.cancel();
      if (waiting_room_) room_.cancel();
    };
    ch = std::make_unique<SecondaryChannel>(executor_, side, std::move(env));
    ch->set_backend(BackendFor(side), DispatchState());
    ch->set_source_backend(BackendFor(routing::Other(side)));
    ch->set_migration(reader_.policy().migration_id());
    channel_created_.cancel();
  }
  return ch.get();
}

// Session state for every open channel, in order with its other work.
void RedisSession::MirrorStateToChannels(SecondaryOp op) {
  for (auto& ch : channels_) {
    if (!ch) continue;
    SecondaryOp copy = op;
    copy.kind = OpKind::kState;
    copy.cls = RequestClass::kSession;
    copy.ready = true;
    copy.start = batch_start_;
    ch->Enqueue(std::move(copy));
  }
}

// Which secondary work the plan asks for, given what the command is.
SecondaryChoice RedisSession::ChooseSecondary(const routing::Plan& plan, const resp::CommandInfo& info,
                                              std::span<const std::string_view> args, RequestClass cls) const {
  SecondaryChoice c;
  for (const auto& sec : plan.secondaries()) {
    if (sec.side == plan.primary() || BackendFor(sec.side) == nullptr) continue;
    if (sec.role == routing::SecondaryRole::kDualWrite) {
      // Data writes only; MULTI blocks are carried whole (Block*), and a
      // published message is delivered once, by the authoritative side.
      if (cls != RequestClass::kWrite || info.full_name == "PUBLISH" || info.full_name == "SPUBLISH") continue;
      c.kind = info.deterministic ? SecondaryChoice::kDualWrite : SecondaryChoice::kCopy;
      c.side = sec.side;
      // A blocking pop's copy is read from old only when the channel gets
      // to it (it holds no stripe while it blocks): under async the client
      // could meanwhile, from another connection, write the same keys,
      // have that applied on new first, and the sides would differ (seen
      // as BLPOP then LMOVE). Its reply waits for the copy instead.
      c.sync = sec.apply == routing::Apply::kSync || resp::IsBlockingInvocation(info, args);
      return c;
    }
    // Shadow: reads whose reply is the same on two equal servers, never a
    // blocking one; writes only under the scratch prefix.
    if (resp::IsBlockingInvocation(info, args)) continue;
    if (cls == RequestClass::kRead) {
      if (!info.deterministic || info.has(resp::cmd_flag::kNondeterministicOutput)) continue;
      c.kind = SecondaryChoice::kShadow;
    } else if (cls == RequestClass::kWrite && info.deterministic && !reader_.policy().scratch_key_prefix().empty() &&
               info.full_name != "PUBLISH" && info.full_name != "SPUBLISH") {
      c.kind = SecondaryChoice::kShadowWrite;
    } else {
      continue;
    }
    c.side = sec.side;
    return c;
  }
  return c;
}

// The command as one RESP frame (the client's bytes, or re-encoded when
// it came inline): the one copy secondary work keeps.
std::string RedisSession::FrameOf(const resp::Command& cmd, const std::uint8_t* input) {
  if (cmd.inline_form) {
    std::string out;
    resp::AppendCommand(out, cmd.args);
    return out;
  }
  return std::string(reinterpret_cast<const char*>(input) + cmd.command_offset,
                     cmd.frame_length - cmd.command_offset);
}

// Journals a dual-write that could not even be queued (queue full, or a
// command too large to keep a copy of) and counts it.
void RedisSession::JournalNotQueued(Side side, std::string_view command_frame, std::vector<std::string> keys,
                                    std::string reason) {
  SecondaryChannel* ch = ChannelFor(side);
  ch->JournalNotQueued(command_frame, std::move(keys), std::move(reason));
}

// After the primary got the command: queue its secondary work and link it
// to the reply FIFO entry `e`. A non-deterministic write's keys are read by
// the channel once the primary answered it (a copy), and this session's
// later writes of them wait until they were (WaitForCopies).
void RedisSession::AttachSecondary(const SecondaryChoice& c, Entry& e, const resp::CommandInfo& info,
                                   const resp::Command& cmd, const std::uint8_t* input, RequestClass cls,
                                   std::vector<std::string> copy_keys, secondary::KeyOrder::Stripes& stripes) {
  SecondaryChannel* ch = ChannelFor(c.side);
  const bool shadow = c.kind == SecondaryChoice::kShadow || c.kind == SecondaryChoice::kShadowWrite;
  SecondaryOp op;
  op.cls = cls;
  op.start = batch_start_;
  op.barrier = main_dispatched_[static_cast<int>(c.side)];
  op.command = FrameOf(cmd, input);
  switch (c.kind) {
    case SecondaryChoice::kDualWrite:
      op.kind = OpKind::kDualWrite;
      op.ready = false;  // sent once the primary applied it (PrimaryReply)
      break;
    case SecondaryChoice::kCopy:
      op.kind = OpKind::kCopy;
      op.keys = std::move(copy_keys);
      op.deferred = true;
      op.nil_is_noop = resp::IsBlockingInvocation(info, cmd.args);
      op.stripe_owner = StripeOwner();
      break;
    case SecondaryChoice::kShadow:
      op.kind = OpKind::kShadow;
      op.ready = true;
      op.compare =
          info.has(resp::cmd_flag::kNondeterministicOutputOrder) ? CompareMode::kUnordered : CompareMode::kFull;
      break;
    case SecondaryChoice::kShadowWrite: {
      auto rewritten = RewriteKeysUnderPrefix(info, cmd.args, reader_.policy().scratch_key_prefix());
      if (!rewritten) return;  // not every key can be rewritten: not shadowed at all
      op.kind = OpKind::kShadow;
      op.wire = std::move(*rewritten);
      op.ready = true;
      op.compare = CompareMode::kOutcomeOnly;
      break;
    }
    case SecondaryChoice::kNone: return;
  }
  const secondary::Work work = shadow   ? secondary::Work::kShadow
                               : c.sync ? secondary::Work::kSyncWrite
                                        : secondary::Work::kAsyncWrite;
  switch (ch->Admit(work, op.command.size() + op.wire.size())) {
    case secondary::Admission::kAdmit: break;
    case secondary::Admission::kShed:
      secondary::OutcomeStep(ctx_.route, *ctx_.services).ShadowDropped();
      return;
    case secondary::Admission::kWait:  // the session waited for room before it sent the write (WaitForRoom)
    case secondary::Admission::kDrop:
      ch->JournalNotQueued(op.command, std::move(op.keys), "secondary queue full");
      return;
  }
  op.sync = !shadow && c.sync;
  if (!shadow && !c.sync) op.fence_seq = fence_.OnQueued();
  if (!shadow) {
    op.stripes = std::move(stripes);
    stripes.clear();
    op.stripe_owner = StripeOwner();
  }
  // A dual-write's keys name it in the intent record: this command's
  // keys, as RoutePlan extracted them (copies carry theirs in op.keys).
  SecondaryOp& queued = ch->Enqueue(std::move(op), targets_);
  if (queued.deferred) NoteCopy(c.side, queued.seq);
  e.op = queued.seq;
  e.op_side = c.side;
  e.stage = OpStage::kFirst;
}

awaitable<bool> RedisSession::AcquireStripes(const secondary::KeyOrder::Stripes& stripes) {
  if (stripes.empty()) co_return true;
  secondary::KeyOrder& order = *ctx_.services->key_order;
  if (order.TryAcquire(stripes, StripeOwner())) co_return true;
  co_await FlushUpstream();
  WakeWriter();
  if (!key_waiter_) key_waiter_ = std::make_shared<secondary::KeyWaiter>(executor_);
  const bool ok = co_await order.Acquire(stripes, StripeOwner(), false, *key_waiter_,
                                         Clock::now() + kKeyOrderWait, &closed_);
  if (!ok && !closed_)
    LogWarn("redis dual-write key order wait timed out; writing unordered", {{"route", route_.name}});
  co_return ok;
}

awaitable<void> RedisSession::WaitForRoom(Side side, bool sync, std::size_t bytes) {
  SecondaryChannel* ch = ChannelFor(side);
  if (ch->HasRoom(bytes)) co_return;
  co_await FlushUpstream();
  WakeWriter();
  const auto deadline = Clock::now() + (sync ? std::chrono::seconds(kSyncRoomWait) : secondary::kAsyncRoomWait);
  while (!closed_ && !ch->HasRoom(bytes) && Clock::now() < deadline) {
    ch->WantRoom(bytes);
    room_.expires_at(deadline);
    waiting_room_ = true;
    co_await room_.async_wait(kUseTuple);
    waiting_room_ = false;
  }
  if (sync && !closed_ && !ch->HasRoom(bytes))
    LogWarn("redis sync dual-write: the secondary made no room for 60 s; journaling", {{"route", route_.name}});
}

void RedisSession::ReleaseStripes(secondary::KeyOrder::Stripes& stripes) {
  ctx_.services->key_order->Release(stripes, StripeOwner());
  stripes.clear();
}

// Before a write to `side` while this session still has secondary writes
// on their way there (the policy flipped the authoritative side): wait
// until they are applied, so the new primary sees them first. Bounded.
awaitable<void> RedisSession::WaitForChannelWrites(Side side) {
  auto& ch = channels_[static_cast<int>(side)];
  if (!ch || ch->unresolved_writes() == 0) co_return;
  co_await FlushUpstream();
  WakeWriter();
  Timer t(executor_);
  for (int i = 0; i < 2500 && ch->unresolved_writes() > 0 && !closed_; ++i) {
    t.expires_after(std::chrono::milliseconds(2));
    co_await t.async_wait();
  }
}

// Whether `copy` still has keys to read: any (only_targets false) or one of
// the current command's (targets_).
bool RedisSession::CopyPending(const std::pair<Side, std::uint64_t>& copy, bool only_targets) {
  auto& ch = channels_[static_cast<int>(copy.first)];
  const SecondaryOp* op = ch ? ch->Find(copy.second) : nullptr;
  if (op == nullptr || op->captured || op->skipped || op->secondary_done) return false;
  if (!only_targets) return true;
  const std::size_t n = op->kind == OpKind::kBlock ? op->copy_keys : op->keys.size();
  for (std::size_t i = 0; i < n; ++i)
    for (std::string_view t : targets_)
      if (t == op->keys[i]) return true;
  return false;
}

// Before a write of keys that a copy still has to read: its DUMP must see
// the state the non-deterministic write left, not this write's too. Woken
// by the channel (on_progress); bounded like the key order wait.
awaitable<void> RedisSession::WaitForCopies(bool only_targets) {
  std::erase_if(pending_copies_, [&](const auto& c) { return !CopyPending(c, false); });
  auto pending = [&] {
    for (const auto& c : pending_copies_)
      if (CopyPending(c, only_targets)) return true;
    return false;
  };
  if (!pending()) co_return;
  co_await FlushUpstream();
  WakeWriter();
  const auto deadline = Clock::now() + kKeyOrderWait;
  while (!closed_ && pending() && Clock::now() < deadline) {
    room_.expires_at(deadline);
    waiting_room_ = true;
    co_await room_.async_wait(kUseTuple);
    waiting_room_ = false;
  }
  if (!closed_ && pending())
    LogWarn("redis copy of a non-deterministic write not read in time; writing unordered", {{"route", route_.name}});
}

SecondaryOp* RedisSession::OpOf(const Entry& e) {
  if (e.op == 0) return nullptr;
  auto& ch = channels_[static_cast<int>(e.op_side)];
  return ch ? ch->Find(e.op) : nullptr;
}

// (Part of) a reply to an op-linked entry, while it streams through.
void RedisSession::FeedOp(Entry& head, std::string_view bytes, bool first, bool held) {
  SecondaryOp* op = OpOf(head);
  if (op == nullptr) return;
  if (head.stage == OpStage::kFirst) {
    if (first) op->primary.Clear();
    op->primary.Append(bytes, held ? SecondaryChannel::kCopyCap : SecondaryChannel::kCompareCap);
  }
}

// A complete reply for an entry with secondary work: the command's own
// reply, forwarded, or held for a sync dual-write. `streamed`: earlier
// parts were already fed.
void RedisSession::HandleOpReply(Entry& head, std::string_view frame, const std::uint8_t* data, Clock::time_point now,
                                 bool streamed) {
  SecondaryOp* op = OpOf(head);
  SecondaryChannel* ch = op ? channels_[static_cast<int>(head.op_side)].get() : nullptr;
  // Sync: the reply waits for the secondary, unless it already applied or
  // the reply streamed through.
  const bool hold = op != nullptr && op->sync && !streamed && !op->secondary_done;
  if (hold) {
    head.flags |= kFlagHeld;
  } else if (head.kind == EntryKind::kForward && !(head.flags & kFlagSuppress)) {
    client_segs_.push_back({data, 0, frame.size()});
  }
  FeedOp(head, frame, !streamed, hold);
  const auto us = static_cast<std::uint64_t>(
      std::max<std::int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - head.start).count(), 0));
  ctx_.route.RecordRequest(head.side, head.cls, us);
  tracker_.Unblocked(head);
  if (op != nullptr) {
    op->primary_us = us;
    ch->PrimaryReply(*op);
    if (op->kind == OpKind::kCopy || op->kind == OpKind::kBlock) ch->CopyReady(*op);
  }
  if (head.flags & kFlagHeld) {
    head.stage = OpStage::kHeld;
    return;
  }
  FinishOpEntry(head);
}

// A held reply whose secondary applied: now to the client.
void RedisSession::EmitHeld(Entry& head) {
  SecondaryOp* op = OpOf(head);
  if (op != nullptr && head.kind == EntryKind::kForward && !(head.flags & kFlagSuppress)) {
    const std::size_t off = write_scratch_.size();
    write_scratch_.append(op->primary.bytes());
    client_segs_.push_back({nullptr, off, op->primary.bytes().size()});
  }
  FinishOpEntry(head);
}

void RedisSession::FinishOpEntry(Entry& head) {
  if (SecondaryOp* op = OpOf(head)) channels_[static_cast<int>(head.op_side)]->Release(*op);
  const Side side = head.side;
  tracker_.Pop();
  NoteAnswered(side);
}

// A primary request on `side` was answered (channel barriers).
void RedisSession::NoteAnswered(Side side) {
  ++main_answered_[static_cast<int>(side)];
  if (auto& ch = channels_[static_cast<int>(side)]) ch->MainAnswered();
}

}  // namespace turnout::proxy::redis
