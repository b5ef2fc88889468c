// Per command: acting on the tracker's verdict, the routing plan,
// forwarding to the chosen backend, the in-flight FIFO entry and the
// backend connections.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/logging.h"
#include "proxy/secondary/backend_health.h"
#include "proxy/redis/redis_commands.h"
#include "proxy/redis/redis_session_impl.h"

namespace turnout::proxy::redis {

// Acts on the tracker's verdict: the one decision per command.
awaitable<void> RedisSession::Dispatch(const resp::Command& cmd, const std::uint8_t* input) {
  const Verdict v = tracker_.Classify(cmd.args);
  switch (v.action) {
    case Verdict::Action::kReject:
      PushLocalError(v.error);
      co_return;
    case Verdict::Action::kPassthrough:
      co_await ForwardCommand(cmd, input, *v.info, v.cls);
      if (tracker_.in_multi()) AddToBlock(*v.info, cmd, input);
      co_return;
    case Verdict::Action::kLocal:
      co_await (this->*HandlerFor(v.local))(cmd, input, *v.info);
      co_return;
    case Verdict::Action::kQueue:
      co_await ForwardCommand(cmd, input, *v.info, v.cls);
      AddToBlock(*v.info, cmd, input);
      co_return;
    case Verdict::Action::kForward:
      co_await ForwardCommand(cmd, input, *v.info, v.cls);
      co_return;
  }
}

// Forwards the client's command (raw bytes, or re-encoded when it came
// inline) to the chosen backend; with `mirror`, other open backends get it
// too with their replies swallowed. Returns the side used.
awaitable<Side> RedisSession::ForwardCommand(const resp::Command& cmd, const std::uint8_t* input,
                                             const resp::CommandInfo& info, RequestClass cls, std::uint16_t flags,
                                             std::int32_t aux, bool mirror) {
  last_entry_ = nullptr;
  const routing::Plan plan = RoutePlan(info, cmd.args, cls);
  last_plan_ = plan;
  if (tracking_moved_) {
    // OnPolicyChanged: closed without a reply; this command was not sent.
    if (!stop_reading_) {
      LogInfo("redis client with CLIENT TRACKING closed: the authoritative side moved", {{"route", route_.name}});
      PushLocal(local_out_.size(), kFlagCloseAfter);
      stop_reading_ = true;
    }
    co_return plan.primary();
  }
  if (plan.refused()) {
    PushLocalError(absl::StrCat("ERR turnout: '", LowerFullName(info),
                                "' refused by the migration policy of route ", route_.name));
    co_return plan.primary();
  }
  const Side side = plan.primary();
  SecondaryChoice sc;
  if (!tracker_.in_multi() && plan.has_secondaries()) sc = ChooseSecondary(plan, info, cmd.args, cls);
  const bool dual = sc.kind == SecondaryChoice::kDualWrite || sc.kind == SecondaryChoice::kCopy;
  secondary::KeyOrder::Stripes stripes;
  // A blocking pop holds no stripe while it waits (the push that wakes it
  // must not wait for it): its copy is deferred to the channel, which
  // takes the stripes and reads the keys once it returned.
  const bool blocking = resp::IsBlockingInvocation(info, cmd.args);
  if (dual && !blocking)
    for (std::string_view k : targets_) secondary::KeyOrder::AddStripe(k, stripes);
  if (cls != RequestClass::kRead && channels_[static_cast<int>(side)] &&
      channels_[static_cast<int>(side)]->unresolved_writes() > 0)
    co_await WaitForChannelWrites(side);
  // A write of keys an earlier non-deterministic write of this session
  // touched waits until the channel read them (secondary_copy.cc). EXEC
  // runs what it queued, and a write without keys may touch any: all.
  if (!pending_copies_.empty() && ((cls == RequestClass::kWrite && !tracker_.in_multi()) || &info == Special().exec))
    co_await WaitForCopies(cls == RequestClass::kWrite && !targets_.empty());
  BackendConnection* conn = co_await EnsureBackend(side);
  if (conn == nullptr) {
    if (!stop_reading_) {
      const std::size_t before = local_out_.size();
      resp::AppendError(local_out_, "ERR turnout: backend connection lost");
      PushLocal(before, kFlagCloseAfter);
      stop_reading_ = true;
    }
    co_return side;
  }
  if (dual && !ChannelFor(sc.side)->HasRoom(cmd.frame_length))
    co_await WaitForRoom(sc.side, sc.sync, cmd.frame_length);
  if (closed_) co_return side;
  if (dual && !co_await AcquireStripes(stripes)) stripes.clear();
  if (closed_) {
    if (!stripes.empty()) ReleaseStripes(stripes);
    co_return side;
  }
  if (cmd.inline_form) {
    ForwardArgs(side, cmd.args);
  } else {
    ForwardRaw(side, input, cmd.frame_length);
  }
  std::vector<std::string> copy_keys;
  if (sc.kind == SecondaryChoice::kCopy) {
    // Non-deterministic: applied here only; once it answered, the channel
    // reads its keys on turnout's own connection and copies them over
    // (DESIGN.md §4, secondary_copy.cc).
    copy_keys = KeysOf(info, cmd.args);
    if (copy_keys.empty()) {
      if (&info == &UnknownCommandInfo())
        JournalNotQueued(sc.side, FrameOf(cmd, input), {},
                         "unknown command passed through to the authoritative side only");
      sc.kind = SecondaryChoice::kNone;
    } else if (copy_keys.size() > kMaxCopyKeys) {
      JournalNotQueued(sc.side, FrameOf(cmd, input), std::move(copy_keys),
                       "too many keys to copy inline; repair copies them");
      sc.kind = SecondaryChoice::kNone;
      copy_keys.clear();
    }
  }
  if (resp::IsBlockingInvocation(info, cmd.args)) {
    flags |= kFlagBlocking;  // counted by the tracker
  }
  Entry& e = PushBackendEntry(EntryKind::kForward, side, cls, flags, aux);
  if (flags & kFlagPubSub) e.pubsub = Special().PubSubOf(&info);
  if (sc.kind != SecondaryChoice::kNone)
    AttachSecondary(sc, e, info, cmd, input, cls, std::move(copy_keys), stripes);
  if (!stripes.empty()) ReleaseStripes(stripes);  // nothing queued to hold them
  last_entry_ = &e;
  if (mirror) MirrorToOthers(side, cmd.args, flags & ~(kFlagBlocking | kFlagPubSub), aux);
  co_return side;
}

// Local reply bytes were appended to local_out_ from `before`.
void RedisSession::PushLocal(std::size_t before, std::uint16_t flags) {
  BarrierIfIdleReading();
  Entry e;
  e.kind = EntryKind::kLocal;
  e.flags = flags | tracker_.SuppressFlag();
  e.local_len = static_cast<std::uint32_t>(local_out_.size() - before);
  e.start = batch_start_;
  tracker_.Push(e);
}

void RedisSession::PushLocalError(std::string_view message) {
  const std::size_t before = local_out_.size();
  resp::AppendError(local_out_, message);
  PushLocal(before);
  tracker_.NoteRejected();  // multi.c flagTransaction
}

// While the writer waits for pub/sub messages on a backend (FIFO empty), a
// reply that will not come from that backend could not wake it: a PING
// goes first, and its swallowed reply does.
void RedisSession::BarrierIfIdleReading() {
  if (!writer_idle_reading_ || !tracker_.fifo().empty() || barrier_pending_) return;
  const Side side = *tracker_.idle_read_side();
  const int s = static_cast<int>(side);
  const std::size_t off = synth_[s].size();
  resp::AppendCommand(synth_[s], {"PING"});
  upstream_segs_[s].push_back({nullptr, off, synth_[s].size() - off});
  Entry e;
  e.kind = EntryKind::kSwallow;
  e.side = side;
  e.cls = RequestClass::kSession;
  e.start = batch_start_;
  ++main_dispatched_[s];
  tracker_.Push(e);
  barrier_pending_ = true;
}

void RedisSession::ForwardPair(Side side, std::string_view a, std::string_view b) {
  const std::string_view args[] = {a, b};
  ForwardArgs(side, args);
}

// Forwards a command re-encoded as a RESP array.
void RedisSession::ForwardArgs(Side side, std::span<const std::string_view> args) {
  const int s = static_cast<int>(side);
  const std::size_t off = synth_[s].size();
  resp::AppendCommand(synth_[s], args);
  upstream_segs_[s].push_back({nullptr, off, synth_[s].size() - off});
}

Entry& RedisSession::PushBackendEntry(EntryKind kind, Side side, RequestClass cls, std::uint16_t flags,
                                      std::int32_t aux) {
  if (kind == EntryKind::kForward && tracker_.fifo().empty() && writer_idle_reading_ &&
      tracker_.idle_read_side() != side)
    BarrierIfIdleReading();
  Entry e;
  e.kind = kind;
  e.side = side;
  e.cls = cls;
  e.flags = flags | (kind == EntryKind::kForward ? tracker_.SuppressFlag() : 0);
  // (Un)subscribe confirmations are pushes: the server sends them even
  // with CLIENT REPLY OFF/SKIP (networking.c prepareClientToWrite lets
  // CLIENT_PUSHING through), so they are never suppressed (issue 13
  // item 10); the SKIP is still used up by the command.
  if (flags & kFlagPubSub) e.flags &= ~kFlagSuppress;
  e.aux = aux;
  e.start = batch_start_;
  ++main_dispatched_[static_cast<int>(side)];
  return tracker_.Push(e);
}

// The one place a command's plan is made. While a MULTI/WATCH block or
// subscriptions live on one upstream connection the primary is pinned;
// otherwise the route's policy decides, refreshed between pipelines only
// (nothing in flight), so in-flight commands and MULTI blocks finish under
// the policy they started with (DESIGN.md §2).
routing::Plan RedisSession::RoutePlan(const resp::CommandInfo& info, std::span<const std::string_view> args,
                                      RequestClass cls) {
  if (tracker_.pinned() && tracker_.in_multi()) return routing::Plan(*tracker_.pinned());
  if (!tracker_.pinned() && tracker_.fifo().empty() && reader_.Refresh()) OnPolicyChanged();
  if (!has_policy_) return routing::Plan(tracker_.pinned().value_or(Side::kOld));
  targets_.clear();
  if (info.first_key != 0 || !info.key_specs.empty()) {
    resp::ExtractKeys(info, args, key_indices_);
    for (auto i : key_indices_) targets_.push_back(args[i]);
  }
  routing::Request request;
  request.request_class = cls;
  request.targets = targets_;
  request.client = routing::ClientIdentity{tracker_.user(), tracker_.client_name(), address_};
  request.connection_id = ctx_.connection_id;
  routing::Plan plan =
      routing::ApplyReadYourWritesFence(reader_.policy().Decide(request, absl::Now()), fence_.pending());
  if (new_backend_name_.empty() && plan.primary() == Side::kNew) {
    // No new backend on this route: everything stays on old.
    plan = routing::Plan(Side::kOld);
  }
  if (tracker_.pinned()) {
    plan.set_primary(*tracker_.pinned());
    plan.RemoveSecondariesOn(*tracker_.pinned());
    return plan;
  }
  if (cls == RequestClass::kRead && tracker_.tracking_side() && plan.primary() != *tracker_.tracking_side()) {
    // Issue 13 item 11: a tracking client caches what it reads, and only
    // the server it enabled tracking on invalidates it. Its read goes
    // there when that side is where these keys are written (a canary read
    // share does not apply to it); otherwise it stays where the policy
    // sends it (docs/redis-data-integrity.md: keys split by scope).
    const Side t = *tracker_.tracking_side();
    routing::Request as_write = request;
    as_write.request_class = RequestClass::kWrite;
    if (reader_.policy().Decide(as_write, absl::Now()).primary() == t) {
      plan = routing::Plan(t);
      return plan;
    }
  }
  if (cls == RequestClass::kRead) {
    const Side x = plan.primary();
    const auto& ch = channels_[static_cast<int>(x)];
    const bool x_busy = ch && ch->unresolved_writes() > 0;
    // A read never overtakes this session's writes still on their way to
    // its side (sync or async), and a read for a side found down goes to
    // the other side rather than failing.
    if ((x_busy || SideDown(x)) && BackendFor(routing::Other(x)) != nullptr && !SideDown(routing::Other(x))) {
      plan.set_primary(routing::Other(x));
      plan.RemoveSecondariesOn(routing::Other(x));
      plan.set(routing::kPlanFenced);
    }
  }
  return plan;
}

// The backend name Side::kNew stands for: the policy's (its migration's
// interlay endpoint), else the route's configured `new`.
std::string RedisSession::NewBackendName() const {
  const std::string& from_policy = reader_.policy().inputs().new_backend;
  return from_policy.empty() ? route_.new_backend : from_policy;
}

// A newer policy was picked up (at a boundary: nothing in flight).
void RedisSession::OnPolicyChanged() {
  has_policy_ = reader_.table()->Find(route_.name) != nullptr;
  std::string name = NewBackendName();
  if (name != new_backend_name_) {
    new_backend_name_ = std::move(name);
    // The old "new" connection is idle (nothing in flight): drop it so the
    // next request opens the new endpoint.
    auto& conn = backends_[static_cast<int>(Side::kNew)];
    if (conn && tracker_.idle_read_side() != Side::kNew) {
      conn->Close();
      conn.reset();
    }
    if (auto& ch = channels_[static_cast<int>(Side::kNew)])
      ch->Retarget(BackendFor(Side::kNew), DispatchState());
    if (auto& ch = channels_[static_cast<int>(Side::kOld)]) ch->set_source_backend(BackendFor(Side::kNew));
  }
  for (auto& ch : channels_)
    if (ch) ch->set_migration(reader_.policy().migration_id());
  // Issue 13 item 11: the server that tracks this client's keys is no
  // longer the one its session commands (and so its writes' authority)
  // go to. Tracking state cannot move to the other server, so the client
  // is closed here, between requests, as a failover closes it: it drops
  // its cache and enables tracking again on reconnect, on the new side.
  if (has_policy_ && tracker_.tracking_side()) {
    routing::Request home;
    home.request_class = RequestClass::kSession;
    home.client = routing::ClientIdentity{tracker_.user(), tracker_.client_name(), address_};
    home.connection_id = ctx_.connection_id;
    Side side = reader_.policy().Decide(home, absl::Now()).primary();
    if (new_backend_name_.empty()) side = Side::kOld;
    if (side != *tracker_.tracking_side()) tracking_moved_ = true;
  }
}

Side RedisSession::PickSide(const resp::CommandInfo& info, std::span<const std::string_view> args, RequestClass cls) {
  return RoutePlan(info, args, cls).primary();
}

const routing::Backend* RedisSession::BackendFor(Side side) const {
  const std::string& name = side == Side::kOld ? route_.old_backend : new_backend_name_;
  if (name.empty()) return nullptr;
  return ctx_.config->FindBackend(name);
}

// True when `side` has no open connection here and its backend is in its
// back-off window after a failure (BackendHealth).
bool RedisSession::SideDown(Side side) const {
  const auto& conn = backends_[static_cast<int>(side)];
  if (conn && conn->is_open()) return false;
  const routing::Backend* b = BackendFor(side);
  return b == nullptr || ctx_.services->backend_health->IsDown(b->name, Clock::now());
}

// Opens the backend's connection on first use. On failure the client gets
// the reason and the session ends after it.
awaitable<BackendConnection*> RedisSession::EnsureBackend(Side side) {
  const int s = static_cast<int>(side);
  if (backends_[s] && backends_[s]->is_open()) co_return backends_[s].get();
  if (backends_[s]) {
    // It was open and died: the writer reports that; nothing more goes out.
    co_return nullptr;
  }
  const routing::Backend* backend = BackendFor(side);
  if (backend == nullptr) co_return nullptr;
  auto conn = std::make_unique<BackendConnection>(side, *backend, ctx_.config->limits.buffer_bytes,
                                                  ServerReplyLimits());
  std::string error;
  asio::ssl::context* tls = ctx_.services->tls ? ctx_.services->tls->ForBackend(backend->name) : nullptr;
  const UpstreamState state{tracker_.db(), tracker_.resp3(), tracker_.client_name()};
  const bool ok = co_await conn->Open(tls, ctx_.config->limits.connect_timeout, state, error);
  if (closed_) co_return nullptr;
  if (!ok) {
    LogWarn("redis backend unavailable", {{"route", route_.name}, {"backend", backend->name}, {"error", error}});
    ctx_.route.RecordUpstreamError(side);
    const std::size_t before = local_out_.size();
    resp::AppendError(local_out_, absl::StrCat("ERR ", error));
    PushLocal(before, kFlagCloseAfter);
    stop_reading_ = true;
    co_return nullptr;
  }
  backends_[s] = std::move(conn);
  co_return backends_[s].get();
}

// Sends a session-state command to every other open backend too (its reply
// is swallowed), so each upstream connection sees the same session.
void RedisSession::MirrorToOthers(Side primary, std::span<const std::string_view> args, std::uint16_t flags,
                                  std::int32_t aux) {
  for (int s = 0; s < 2; ++s) {
    if (s == static_cast<int>(primary) || !backends_[s] || !backends_[s]->is_open()) continue;
    ForwardArgs(static_cast<Side>(s), args);
    PushBackendEntry(EntryKind::kSwallow, static_cast<Side>(s), RequestClass::kSession, flags, aux);
  }
}

}  // namespace turnout::proxy::redis
