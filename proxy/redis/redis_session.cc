#include "proxy/redis/redis_session.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "protocol/io_buffer.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"
#include "proxy/disconnect.h"
#include "proxy/logging.h"
#include "proxy/redis/backend_connection.h"
#include "proxy/redis/client_auth.h"
#include "proxy/redis/inflight_queue.h"
#include "proxy/redis/key_order.h"
#include "proxy/redis/large_request.h"
#include "proxy/redis/pubsub_frame.h"
#include "proxy/redis/backend_health.h"
#include "proxy/redis/secondary_channel.h"
#include "proxy/redis/secondary_work.h"
#include "proxy/stream.h"
#include "routing/policy_table.h"
#include "routing/read_your_writes.h"

namespace turnout::proxy::redis {
namespace {

using namespace asio::experimental::awaitable_operators;
namespace resp = protocol::resp;
using Clock = std::chrono::steady_clock;
using routing::RequestClass;
using routing::Side;

// The pipelining window: commands in flight per session. 1024 keeps
// redis-benchmark -P 16 -c 50 and redis-cli --pipe at full speed while a
// client that never reads can pin at most this many replies upstream.
constexpr std::size_t kMaxInflight = 1024;
// Local replies (errors, AUTH/GETNAME answers) waiting for their turn.
constexpr std::size_t kMaxLocalBytes = 256 * 1024;
// Segments gathered into one client write.
constexpr std::size_t kMaxWriteSegments = 256;

// Commands the session handles itself or tracks, resolved once.
struct Specials {
  const resp::CommandInfo* auth = resp::FindCommand("AUTH");
  const resp::CommandInfo* hello = resp::FindCommand("HELLO");
  const resp::CommandInfo* quit = resp::FindCommand("QUIT");
  const resp::CommandInfo* reset = resp::FindCommand("RESET");
  const resp::CommandInfo* select = resp::FindCommand("SELECT");
  const resp::CommandInfo* ping = resp::FindCommand("PING");
  const resp::CommandInfo* multi = resp::FindCommand("MULTI");
  const resp::CommandInfo* exec = resp::FindCommand("EXEC");
  const resp::CommandInfo* discard = resp::FindCommand("DISCARD");
  const resp::CommandInfo* watch = resp::FindCommand("WATCH");
  const resp::CommandInfo* unwatch = resp::FindCommand("UNWATCH");
  const resp::CommandInfo* subscribe = resp::FindCommand("SUBSCRIBE");
  const resp::CommandInfo* unsubscribe = resp::FindCommand("UNSUBSCRIBE");
  const resp::CommandInfo* psubscribe = resp::FindCommand("PSUBSCRIBE");
  const resp::CommandInfo* punsubscribe = resp::FindCommand("PUNSUBSCRIBE");
  const resp::CommandInfo* ssubscribe = resp::FindCommand("SSUBSCRIBE");
  const resp::CommandInfo* sunsubscribe = resp::FindCommand("SUNSUBSCRIBE");
  const resp::CommandInfo* monitor = resp::FindCommand("MONITOR");
  const resp::CommandInfo* sync = resp::FindCommand("SYNC");
  const resp::CommandInfo* psync = resp::FindCommand("PSYNC");
  const resp::CommandInfo* replconf = resp::FindCommand("REPLCONF");
  const resp::CommandInfo* replicaof = resp::FindCommand("REPLICAOF");
  const resp::CommandInfo* slaveof = resp::FindCommand("SLAVEOF");
  const resp::CommandInfo* client = resp::FindCommand("CLIENT");
  const resp::CommandInfo* client_setname = Sub(client, "SETNAME");
  const resp::CommandInfo* client_getname = Sub(client, "GETNAME");
  const resp::CommandInfo* client_reply = Sub(client, "REPLY");
  const resp::CommandInfo* client_tracking = Sub(client, "TRACKING");
  const resp::CommandInfo* client_kill = Sub(client, "KILL");

  static const resp::CommandInfo* Sub(const resp::CommandInfo* parent, std::string_view name) {
    return parent ? resp::FindSubcommand(*parent, name) : nullptr;
  }
  PubSubKind PubSubOf(const resp::CommandInfo* i) const {
    if (i == subscribe) return PubSubKind::kSubscribe;
    if (i == unsubscribe) return PubSubKind::kUnsubscribe;
    if (i == psubscribe) return PubSubKind::kPSubscribe;
    if (i == punsubscribe) return PubSubKind::kPUnsubscribe;
    if (i == ssubscribe) return PubSubKind::kSSubscribe;
    if (i == sunsubscribe) return PubSubKind::kSUnsubscribe;
    return PubSubKind::kNotPubSub;
  }
};

const Specials& Special() {
  static const Specials s;
  return s;
}

// What a command missing from the table is taken for under
// `unknown_commands: passthrough`: a write with no known keys whose effect
// is not known (so it is never dual-written or shadowed).
const resp::CommandInfo& UnknownCommandInfo() {
  static const resp::CommandInfo info = [] {
    resp::CommandInfo i;
    i.name = "UNKNOWN";
    i.full_name = "UNKNOWN";
    i.arity = -1;
    i.command_class = resp::CommandClass::kWrite;
    i.is_write = true;
    i.deterministic = false;
    return i;
  }();
  return info;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

RequestClass ClassOf(const resp::CommandInfo& info) {
  switch (info.command_class) {
    case resp::CommandClass::kRead: return RequestClass::kRead;
    case resp::CommandClass::kWrite: return RequestClass::kWrite;
    case resp::CommandClass::kAdmin: return RequestClass::kAdmin;
    // Subscribers attach to the authoritative side (DESIGN.md §4): the
    // session class is the write rule's primary without secondaries.
    case resp::CommandClass::kPubSub: return RequestClass::kSession;
    case resp::CommandClass::kTransaction: return RequestClass::kTxnControl;
    case resp::CommandClass::kConnection: return RequestClass::kSession;
    case resp::CommandClass::kBlocking:
    case resp::CommandClass::kScripting: return info.is_write ? RequestClass::kWrite : RequestClass::kRead;
  }
  return RequestClass::kWrite;
}

// server.c processCommand: "unknown command '%.128s', with args beginning with: %s".
void AppendUnknownCommand(std::string& out, std::span<const std::string_view> args) {
  std::string msg = "ERR unknown command '";
  msg.append(args[0].substr(0, 128));
  msg.append("', with args beginning with: ");
  std::size_t len = 0;
  for (std::size_t i = 1; i < args.size() && len < 128; ++i) {
    const std::string_view a = args[i].substr(0, 128 - len);
    msg.push_back('\'');
    msg.append(a);
    msg.append("' ");
    len += a.size() + 3;
  }
  resp::AppendError(out, msg);
}

// server.c processCommand: "unknown subcommand '%.128s'. Try %s HELP."
void AppendUnknownSubcommand(std::string& out, std::span<const std::string_view> args) {
  std::string msg = "ERR unknown subcommand '";
  msg.append(args[1].substr(0, 128));
  msg.append("'. Try ");
  for (char c : args[0]) msg.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c);
  msg.append(" HELP.");
  resp::AppendError(out, msg);
}

std::string LowerFullName(const resp::CommandInfo& info) {
  std::string s(info.full_name);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return s;
}

// networking.c clientSetName: names are printable ASCII without spaces.
bool ValidClientName(std::string_view name) {
  for (char c : name)
    if (c < '!' || c > '~') return false;
  return true;
}

constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
constexpr std::string_view kWrongPass = "WRONGPASS invalid username-password pair or user is disabled.";
constexpr std::string_view kBadName = "ERR Client names cannot contain spaces, newlines or special characters.";

enum class EntryKind : std::uint8_t {
  kForward,  // the backend's reply goes to the client
  kSwallow,  // the backend's reply is turnout's business (state replay)
  kLocal,    // turnout answers: bytes in local_out_
};

enum EntryFlag : std::uint16_t {
  kFlagCloseAfter = 1u << 0,  // close the client once this reply is written
  kFlagSelect = 1u << 1,      // SELECT aux: record the db when it succeeds
  kFlagHello = 1u << 2,       // HELLO aux (2/3, 0 = unchanged): replies switch version
  kFlagReset = 1u << 3,       // RESET: subscriptions and protocol back to default
  kFlagPubSub = 1u << 4,      // (un)subscribe: aux confirmations expected, -1 = "all"
  kFlagLoginCheck = 1u << 5,  // swallowed re-login: an error ends the session
  kFlagSuppress = 1u << 6,    // CLIENT REPLY OFF/SKIP: nothing goes to the client
  kFlagBlocking = 1u << 7,    // may block upstream (BLPOP, XREAD BLOCK, WAIT ...)
  kFlagLinger = 1u << 8,      // protocol error: drain the client briefly before closing
  kFlagHeld = 1u << 9,        // sync dual-write: the reply waits in the op until the secondary applied
  kFlagExecSelect = 1u << 10, // EXEC of a block with SELECTs: its reply says the db (exec_selects_)
  kFlagClientKill = 1u << 11, // CLIENT KILL that may kill this very upstream connection (ProbeKilled)
};

// Stages of a FIFO entry linked to secondary work (Entry::op != 0).
enum class OpStage : std::uint8_t {
  kFirst,     // waiting for the primary's reply to the command
  kCaptures,  // then for DUMP/PTTL replies of the keys to copy
  kHeld,      // then (sync) for the secondary to apply it
};

struct Entry {
  EntryKind kind = EntryKind::kForward;
  Side side = Side::kOld;
  RequestClass cls = RequestClass::kWrite;
  PubSubKind pubsub = PubSubKind::kNotPubSub;
  std::uint16_t flags = 0;
  std::int32_t aux = 0;
  std::uint32_t local_len = 0;
  Clock::time_point start;
  // Secondary work linked to this reply (dual-write, copy, block, shadow).
  std::uint64_t op = 0;
  Side op_side = Side::kNew;
  OpStage stage = OpStage::kFirst;
  std::uint16_t captures_left = 0;
};

// The secondary work one request gets (from its plan's secondaries and the
// command table).
struct SecondaryChoice {
  enum Kind : std::uint8_t { kNone, kDualWrite, kCopy, kShadow, kShadowWrite } kind = kNone;
  Side side = Side::kNew;
  bool sync = false;
};

// A piece of an upstream write: bytes of the client's receive buffer (by
// pointer: the buffer is not moved until the write completes) or of the
// side's synthesized commands (by offset: that string may still grow).
struct UpstreamSegment {
  const std::uint8_t* data = nullptr;  // null: synth_ offset
  std::size_t offset = 0;
  std::size_t size = 0;
};

// A piece of a client write: a backend receive buffer range or scratch.
struct ClientSegment {
  const std::uint8_t* data = nullptr;  // null: write_scratch_ offset
  std::size_t offset = 0;
  std::size_t size = 0;
};

class RedisSession final : public Session {
 public:
  RedisSession(Socket client, SessionContext ctx)
      : raw_(std::move(client)),
        executor_(raw_->get_executor()),
        ctx_(std::move(ctx)),
        registration_(ctx_.sessions, this, ctx_.route, ctx_.process_active),
        route_(ctx_.route.route),
        client_in_(ctx_.config->limits.buffer_bytes),
        parser_(MakeRequestLimits(*ctx_.config)),
        walker_(MakeRequestLimits(*ctx_.config).max_bulk_length,
                MakeRequestLimits(*ctx_.config).max_multibulk_length),
        fifo_(kMaxInflight),
        wake_(executor_),
        space_(executor_),
        room_(executor_),
        reader_(*ctx_.services->route_table, route_.name, route_.protocol),
        channel_created_(executor_),
        drain_timer_(executor_),
        exec_wake_(executor_) {
    wake_.expires_at(Clock::time_point::max());
    space_.expires_at(Clock::time_point::max());
    channel_created_.expires_at(Clock::time_point::max());
    authenticated_ = route_.auth == routing::ClientAuth::kTrust;
    parser_.set_authenticated(authenticated_);
    if (auto it = ctx_.services->users.find(route_.name); it != ctx_.services->users.end())
      users_ = it->second.get();
    if (const auto* b = ctx_.config->FindBackend(route_.old_backend)) db_ = b->redis_db;
    boost::system::error_code ep_ec;
    const auto ep = raw_->remote_endpoint(ep_ec);
    if (!ep_ec) address_ = ep.address().to_string();
    reader_.Refresh();
    has_policy_ = reader_.table()->Find(route_.name) != nullptr;
    new_backend_name_ = NewBackendName();
    dispatch_db_ = db_;
    upstream_bufs_.reserve(64);
    client_bufs_.reserve(kMaxWriteSegments + 1);
    client_segs_.reserve(kMaxWriteSegments + 1);
    for (auto& s : upstream_segs_) s.reserve(64);
    targets_.reserve(16);
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    if (raw_) raw_->close(ignored);
    if (client_) client_->Close();
    for (auto& b : backends_)
      if (b) b->Close();
    // Secondary work already queued is still applied (or journaled): the
    // channels stop gracefully, bounded by kChannelDrain (Run).
    for (auto& c : channels_)
      if (c) c->Stop();
    wake_.cancel();
    space_.cancel();
    room_.cancel();
    channel_created_.cancel();
    drain_timer_.cancel();
    if (key_waiter_) key_waiter_->Notify();
  }

  void RequestDrain() override {
    draining_ = true;
    if (AtBoundary()) {
      Close();
    } else {
      wake_.cancel();
    }
  }

  awaitable<void> Run() {
    if (!co_await StartClientTls()) {
      Close();
      co_return;
    }
    channels_running_ = 2;
    co_await (MainLoops() && (ChannelLoop(0) && ChannelLoop(1)));
    Close();
    for (auto& c : channels_)
      if (c) c->AbandonAll("session ended before the secondary applied it");
    LogDebug("redis session closed", {{"route", route_.name}, {"connection", ctx_.connection_id}});
  }

 private:
  // A finished session keeps applying its queued secondary work while the
  // channels make progress; after this long without any, the rest is
  // journaled.
  static constexpr auto kChannelDrain = std::chrono::seconds(2);

  // The client-facing loops, then the graceful stop of the secondary channels.
  awaitable<void> MainLoops() {
    co_await ((RequestLoop() && WriterLoop()) || IdleWatch(ctx_.config->limits.idle_timeout));
    main_done_ = true;
    for (auto& c : channels_)
      if (c) c->Stop();
    channel_created_.cancel();
    drain_timer_.expires_after(kChannelDrain);
    std::uint64_t progress = ChannelProgress();
    while (channels_running_ > 0) {
      auto [ec] = co_await drain_timer_.async_wait(kUseTuple);
      if (ec) continue;  // a channel finished
      if (ChannelProgress() == progress) break;  // stuck: what is left is journaled
      progress = ChannelProgress();
      drain_timer_.expires_after(kChannelDrain);
    }
    for (auto& c : channels_)
      if (c) c->Abort();
  }

  std::uint64_t ChannelProgress() const {
    std::uint64_t n = 0;
    for (const auto& c : channels_)
      if (c) n += c->resolved();
    return n;
  }

  // Runs channel `s` once the request loop created it.
  awaitable<void> ChannelLoop(int s) {
    for (;;) {
      if (channels_[s]) {
        co_await channels_[s]->Run();
        break;
      }
      if (main_done_ || closed_) break;
      co_await channel_created_.async_wait(kUseTuple);
    }
    --channels_running_;
    drain_timer_.cancel();
  }

  static resp::RequestLimits MakeRequestLimits(const routing::Config& cfg) {
    resp::RequestLimits l;
    const auto max_message = static_cast<std::int64_t>(std::min<std::uint64_t>(cfg.limits.max_message_bytes, INT64_MAX));
    l.max_bulk_length = std::min(l.max_bulk_length, max_message);
    // networking.c: any count up to INT_MAX (memory grows with the
    // arguments that actually arrive, never with the announced count).
    l.max_multibulk_length = INT32_MAX;
    return l;
  }

  // ---------------------------------------------------------------- client TLS

  // TLS from the first byte when the route has a certificate. Unless TLS is
  // required, a plain client is still served: a TLS ClientHello starts with
  // 0x16 (RFC 8446 §5.1, a handshake record), which no RESP frame does. The
  // peek happens while the session is registered, so drain can close it.
  awaitable<bool> StartClientTls() {
    asio::ssl::context* tls = ctx_.services->tls ? ctx_.services->tls->ForRoute(route_.name) : nullptr;
    bool use_tls = tls != nullptr;
    if (use_tls && !route_.tls.required) {
      std::uint8_t first = 0;
      auto [ec, n] = co_await raw_->async_receive(asio::buffer(&first, 1), tcp::socket::message_peek);
      if (ec || n == 0 || closed_) co_return false;
      use_tls = first == 0x16;
    }
    client_.emplace(std::move(*raw_));
    raw_.reset();
    if (!use_tls) co_return true;
    Timer timer(executor_, std::chrono::microseconds(absl::ToInt64Microseconds(ctx_.config->limits.connect_timeout)));
    auto r = co_await (client_->StartTlsServer(*tls) || timer.async_wait());
    if (r.index() == 1 || std::get<0>(r)) {
      LogDebug("client TLS handshake failed", {{"route", route_.name}});
      co_return false;
    }
    co_return true;
  }

  // ------------------------------------------------------------- request loop

  awaitable<void> RequestLoop() {
    while (!closed_ && !stop_reading_) {
      if (draining_ && !in_multi_) break;
      if (fifo_.full() || local_out_.size() > kMaxLocalBytes) {
        co_await WaitForSpace();
        continue;
      }
      auto tail = client_in_.WritableTail();
      if (tail.empty()) {
        // A command larger than the buffer: stream it through, then go on
        // with whatever followed it in the buffer.
        co_await StreamLargeRequest();
        co_await ProcessInput();
        continue;
      }
      auto [ec, n] = co_await client_->ReadSome(asio::buffer(tail.data(), tail.size()));
      if (ec) {
        if (!closed_ && !IsExpectedDisconnect(ec))
          LogWarn("redis client read failed", {{"route", route_.name}, {"error", ec.message()}});
        // Redis frees a client on EOF. Replies already in flight are still
        // written (a client that half-closed gets them); with a command
        // blocked upstream, or the writer waiting for pub/sub messages, the
        // session ends at once; with nothing in flight the writer ends as
        // soon as it sees input_done_ (queued secondary work still drains).
        if (ec != std::error_code(boost::system::error_code(asio::error::eof)) || blocking_inflight_ > 0 ||
            writer_idle_reading_)
          Close();
        break;
      }
      client_in_.CommitReceived(n);
      ctx_.route.bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
      last_activity_ = Clock::now();
      co_await ProcessInput();
      // A command started and not finished (a client trickling bytes, or one
      // that stopped mid-command): PartialCommandTimeout closes it.
      if (client_in_.Unparsed().empty()) {
        partial_since_.reset();
      } else if (!partial_since_) {
        partial_since_ = last_activity_;
      }
    }
    input_done_ = true;
    wake_.cancel();
  }

  awaitable<void> WaitForSpace() {
    waiting_space_ = true;
    co_await space_.async_wait(kUseTuple);
    waiting_space_ = false;
  }

  // Frames and dispatches every complete command in the buffer, then sends
  // what was gathered for each backend and drops the framed bytes.
  awaitable<void> ProcessInput() {
    batch_start_ = Clock::now();
    while (!closed_ && !stop_reading_) {
      if (fifo_.full() || local_out_.size() > kMaxLocalBytes || kill_barrier_) {
        co_await FlushUpstream();
        WakeWriter();
        co_await WaitForSpace();
        continue;
      }
      const auto input = client_in_.Unparsed();
      const auto status = parser_.Parse(input);
      if (status == resp::ParseStatus::kNeedMore) break;
      if (status == resp::ParseStatus::kError) {
        // networking.c: the error reply, then close after it is written.
        std::string& out = local_out_;
        const std::size_t before = out.size();
        parser_.AppendErrorReply(out);
        PushLocal(before, kFlagCloseAfter | kFlagLinger);
        LogDebug("redis protocol error", {{"route", route_.name}, {"error", parser_.error_code().message()}});
        stop_reading_ = true;
        break;
      }
      const resp::Command& cmd = parser_.command();
      co_await Dispatch(cmd, input.data());
      client_in_.CommitParsed(cmd.frame_length);
    }
    co_await FlushUpstream();
    WakeWriter();
  }

  // Sends the gathered segments to each backend, then consumes the framed
  // client bytes they pointed into.
  awaitable<void> FlushUpstream() {
    for (int s = 0; s < 2; ++s) {
      auto& segs = upstream_segs_[s];
      if (segs.empty()) continue;
      upstream_bufs_.clear();
      for (const auto& seg : segs) {
        const void* p = seg.data ? static_cast<const void*>(seg.data)
                                 : static_cast<const void*>(synth_[s].data() + seg.offset);
        upstream_bufs_.emplace_back(p, seg.size);
      }
      segs.clear();
      BackendConnection* conn = backends_[s].get();
      if (conn == nullptr || !conn->is_open()) {
        synth_[s].clear();
        continue;
      }
      auto [ec, n] = co_await conn->stream().Write(upstream_bufs_);
      synth_[s].clear();
      if (ec) {
        if (!closed_) {
          LogWarn("redis backend write failed", {{"route", route_.name},
                                                 {"backend", conn->backend().name},
                                                 {"error", ec.message()}});
          ctx_.route.RecordUpstreamError(conn->side());
          conn->Close();  // the writer reports it to the client
        }
      }
    }
    client_in_.Consume(client_in_.Parsed().size());
  }

  void WakeWriter() { wake_.cancel(); }

  // ------------------------------------------------------------ FIFO helpers

  // Local reply bytes were appended to local_out_ from `before`.
  void PushLocal(std::size_t before, std::uint16_t flags = 0) {
    BarrierIfIdleReading();
    Entry e;
    e.kind = EntryKind::kLocal;
    e.flags = flags | SuppressFlag();
    e.local_len = static_cast<std::uint32_t>(local_out_.size() - before);
    e.start = batch_start_;
    fifo_.push_back(e);
  }

  void PushLocalError(std::string_view message) {
    const std::size_t before = local_out_.size();
    resp::AppendError(local_out_, message);
    PushLocal(before);
    if (in_multi_) multi_dirty_ = true;  // multi.c flagTransaction
  }

  std::uint16_t SuppressFlag() {
    if (reply_off_) return kFlagSuppress;
    if (reply_skip_) {
      reply_skip_ = false;
      return kFlagSuppress;
    }
    return 0;
  }

  // While the writer waits for pub/sub messages on a backend (FIFO empty), a
  // reply that will not come from that backend could not wake it: a PING
  // goes first, and its swallowed reply does.
  void BarrierIfIdleReading() {
    if (!writer_idle_reading_ || !fifo_.empty() || barrier_pending_) return;
    const Side side = *idle_read_side_;
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
    fifo_.push_back(e);
    barrier_pending_ = true;
  }

  // Forwards the command at [data, data+size) of the client buffer to `side`.
  void ForwardRaw(Side side, const std::uint8_t* data, std::size_t size) {
    auto& segs = upstream_segs_[static_cast<int>(side)];
    if (!segs.empty() && segs.back().data != nullptr && segs.back().data + segs.back().size == data) {
      segs.back().size += size;
    } else {
      segs.push_back({data, 0, size});
    }
  }

  void ForwardPair(Side side, std::string_view a, std::string_view b) {
    const std::string_view args[] = {a, b};
    ForwardArgs(side, args);
  }

  // Forwards a command re-encoded as a RESP array.
  void ForwardArgs(Side side, std::span<const std::string_view> args) {
    const int s = static_cast<int>(side);
    const std::size_t off = synth_[s].size();
    resp::AppendCommand(synth_[s], args);
    upstream_segs_[s].push_back({nullptr, off, synth_[s].size() - off});
  }

  Entry& PushBackendEntry(EntryKind kind, Side side, RequestClass cls, std::uint16_t flags = 0,
                          std::int32_t aux = 0) {
    if (kind == EntryKind::kForward && fifo_.empty() && writer_idle_reading_ && idle_read_side_ != side)
      BarrierIfIdleReading();
    Entry e;
    e.kind = kind;
    e.side = side;
    e.cls = cls;
    e.flags = flags | (kind == EntryKind::kForward ? SuppressFlag() : 0);
    // (Un)subscribe confirmations are pushes: the server sends them even
    // with CLIENT REPLY OFF/SKIP (networking.c prepareClientToWrite lets
    // CLIENT_PUSHING through), so they are never suppressed (issue 13
    // item 10); the SKIP is still used up by the command.
    if (flags & kFlagPubSub) e.flags &= ~kFlagSuppress;
    e.aux = aux;
    e.start = batch_start_;
    ++main_dispatched_[static_cast<int>(side)];
    return fifo_.push_back(e);
  }

  // ----------------------------------------------------------------- routing

  // The one place a command's plan is made. While a MULTI/WATCH block or
  // subscriptions live on one upstream connection the primary is pinned;
  // otherwise the route's policy decides, refreshed between pipelines only
  // (nothing in flight), so in-flight commands and MULTI blocks finish under
  // the policy they started with (DESIGN.md §2).
  routing::Plan RoutePlan(const resp::CommandInfo& info, std::span<const std::string_view> args,
                          RequestClass cls) {
    if (pinned_ && in_multi_) return routing::Plan(*pinned_);
    if (!pinned_ && fifo_.empty() && reader_.Refresh()) OnPolicyChanged();
    if (!has_policy_) return routing::Plan(pinned_.value_or(Side::kOld));
    targets_.clear();
    if (info.first_key != 0 || !info.key_specs.empty()) {
      resp::ExtractKeys(info, args, key_indices_);
      for (auto i : key_indices_) targets_.push_back(args[i]);
    }
    routing::Request request;
    request.request_class = cls;
    request.targets = targets_;
    request.client = routing::ClientIdentity{user_, client_name_, address_};
    request.connection_id = ctx_.connection_id;
    routing::Plan plan =
        routing::ApplyReadYourWritesFence(reader_.policy().Decide(request, absl::Now()), fence_.pending());
    if (new_backend_name_.empty() && plan.primary() == Side::kNew) {
      // No new backend on this route: everything stays on old.
      plan = routing::Plan(Side::kOld);
    }
    if (pinned_) {
      plan.set_primary(*pinned_);
      plan.RemoveSecondariesOn(*pinned_);
      return plan;
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
  std::string NewBackendName() const {
    const std::string& from_policy = reader_.policy().inputs().new_backend;
    return from_policy.empty() ? route_.new_backend : from_policy;
  }

  // A newer policy was picked up (at a boundary: nothing in flight).
  void OnPolicyChanged() {
    has_policy_ = reader_.table()->Find(route_.name) != nullptr;
    std::string name = NewBackendName();
    if (name != new_backend_name_) {
      new_backend_name_ = std::move(name);
      // The old "new" connection is idle (nothing in flight): drop it so the
      // next request opens the new endpoint.
      auto& conn = backends_[static_cast<int>(Side::kNew)];
      if (conn && idle_read_side_ != Side::kNew) {
        conn->Close();
        conn.reset();
      }
      if (auto& ch = channels_[static_cast<int>(Side::kNew)])
        ch->Retarget(BackendFor(Side::kNew), DispatchState());
      if (auto& ch = channels_[static_cast<int>(Side::kOld)]) ch->set_source_backend(BackendFor(Side::kNew));
    }
    for (auto& ch : channels_)
      if (ch) ch->set_migration(reader_.policy().migration_id());
  }

  Side PickSide(const resp::CommandInfo& info, std::span<const std::string_view> args, RequestClass cls) {
    return RoutePlan(info, args, cls).primary();
  }

  const routing::Backend* BackendFor(Side side) const {
    const std::string& name = side == Side::kOld ? route_.old_backend : new_backend_name_;
    if (name.empty()) return nullptr;
    return ctx_.config->FindBackend(name);
  }

  // True when `side` has no open connection here and its backend is in its
  // back-off window after a failure (BackendHealth).
  bool SideDown(Side side) const {
    const auto& conn = backends_[static_cast<int>(side)];
    if (conn && conn->is_open()) return false;
    const routing::Backend* b = BackendFor(side);
    return b == nullptr || BackendHealth::Global().IsDown(b->name, Clock::now());
  }

  OwnedUpstreamState DispatchState() const { return OwnedUpstreamState{dispatch_db_, resp3_, client_name_}; }

  // The channel for secondary work on `side`, created on first use.
  SecondaryChannel* ChannelFor(Side side) {
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
  void MirrorStateToChannels(SecondaryOp op) {
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
  SecondaryChoice ChooseSecondary(const routing::Plan& plan, const resp::CommandInfo& info,
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
  static std::string FrameOf(const resp::Command& cmd, const std::uint8_t* input) {
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
  void JournalNotQueued(Side side, std::string_view command_frame, std::vector<std::string> keys,
                        std::string reason) {
    SecondaryChannel* ch = ChannelFor(side);
    ch->JournalNotQueued(command_frame, std::move(keys), std::move(reason));
  }

  // After the primary got the command: queue its secondary work and link it
  // to the reply FIFO entry `e`. For a non-deterministic write the DUMP/PTTL
  // of its keys were already appended behind it (captures).
  void AttachSecondary(const SecondaryChoice& c, Entry& e, const resp::CommandInfo& info, const resp::Command& cmd,
                       const std::uint8_t* input, RequestClass cls, std::vector<std::string> copy_keys,
                       KeyOrder::Stripes& stripes) {
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
        op.deferred = resp::IsBlockingInvocation(info, cmd.args);
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
    if (!ch->HasRoom(shadow, op.command.size() + op.wire.size())) {
      if (shadow) {
        ctx_.route.shadow_dropped.fetch_add(1, std::memory_order_relaxed);
      } else {
        ch->JournalNotQueued(op.command, std::move(op.keys), "secondary queue full");
        // A copy's captures are still read (and ignored) by the entry.
      }
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
    e.op = queued.seq;
    e.op_side = c.side;
    e.stage = OpStage::kFirst;
  }

  // Opens the backend's connection on first use. On failure the client gets
  // the reason and the session ends after it.
  awaitable<BackendConnection*> EnsureBackend(Side side) {
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
    const UpstreamState state{db_, resp3_, client_name_};
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
  void MirrorToOthers(Side primary, std::span<const std::string_view> args, std::uint16_t flags,
                      std::int32_t aux = 0) {
    for (int s = 0; s < 2; ++s) {
      if (s == static_cast<int>(primary) || !backends_[s] || !backends_[s]->is_open()) continue;
      ForwardArgs(static_cast<Side>(s), args);
      PushBackendEntry(EntryKind::kSwallow, static_cast<Side>(s), RequestClass::kSession, flags, aux);
    }
  }

  // ---------------------------------------------------------------- dispatch

  bool SubscribedView() const {
    return pubsub_pending_ > 0 || sub_channels_ + sub_patterns_ + sub_shard_ > 0;
  }

  awaitable<void> Dispatch(const resp::Command& cmd, const std::uint8_t* input) {
    const auto args = cmd.args;
    const Specials& sp = Special();
    const resp::CommandInfo* info = resp::LookupCommand(args);
    if (info == nullptr) {
      // routes[].unknown_commands: passthrough (modules, newer servers): to
      // the authoritative side as a write touching no known key, never
      // mirrored (its effect cannot be known, so not copied either).
      if (route_.redis_unknown_passthrough && authenticated_ && (resp3_ || !SubscribedView())) {
        co_await ForwardCommand(cmd, input, UnknownCommandInfo(), RequestClass::kWrite);
        if (in_multi_) AddToBlock(UnknownCommandInfo(), cmd, input);
        co_return;
      }
      // Unknown command, or unknown subcommand of a known container.
      const std::size_t before = local_out_.size();
      const resp::CommandInfo* parent = resp::FindCommand(args[0]);
      if (parent != nullptr && args.size() >= 2) {
        AppendUnknownSubcommand(local_out_, args);
      } else {
        AppendUnknownCommand(local_out_, args);
      }
      PushLocal(before);
      if (in_multi_) multi_dirty_ = true;
      co_return;
    }
    if (!resp::ArityOk(*info, args.size())) {
      PushLocalError(absl::StrCat("ERR wrong number of arguments for '", LowerFullName(*info), "' command"));
      co_return;
    }
    if (!authenticated_ && !info->has(resp::cmd_flag::kNoAuth)) {
      PushLocalError(kNoAuth);
      co_return;
    }
    const PubSubKind pubsub = sp.PubSubOf(info);
    // server.c processCommand: RESP2 subscribers may only (un)subscribe, PING, QUIT, RESET.
    if (!resp3_ && SubscribedView() && pubsub == PubSubKind::kNotPubSub && info != sp.ping &&
        info != sp.quit && info != sp.reset) {
      PushLocalError(absl::StrCat("ERR Can't execute '", LowerFullName(*info),
                                  "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                                  "allowed in this context"));
      co_return;
    }
    if (info == sp.quit) {
      // Redis answers +OK and closes after the reply, even inside MULTI.
      const std::size_t before = local_out_.size();
      resp::AppendSimpleString(local_out_, "OK");
      PushLocal(before, kFlagCloseAfter);
      stop_reading_ = true;
      co_return;
    }
    if (monitoring_) {
      // The upstream connection is a monitor now: its output is the command
      // feed, so nothing else can be paired with a reply there.
      PushLocalError("ERR turnout: a MONITOR connection accepts only QUIT");
      co_return;
    }
    if (info == sp.reset) {
      co_await DispatchReset(args);
      co_return;
    }
    if (info == sp.monitor && !in_multi_) {
      // Issue 13 item 9: the authoritative side's feed, relayed line by line
      // (IsOutOfBand) until the client leaves. MONITOR on a monitor is
      // ignored without a reply, as the server does (monitorCommand).
      const Side side = co_await ForwardCommand(cmd, input, *info, RequestClass::kSession);
      if (closed_ || stop_reading_ || last_entry_ == nullptr) co_return;
      monitoring_ = true;
      pinned_ = side;
      idle_read_side_ = side;
      co_return;
    }
    if (info == sp.sync || info == sp.psync || info == sp.replconf || info == sp.replicaof || info == sp.slaveof) {
      // Replication is refused (docs/redis-data-integrity.md): a
      // replica of the proxy would see one side only, and its stream is not
      // RESP replies turnout can pair; REPLICAOF would turn the authoritative
      // side into a replica (flushing it) behind the migration's back.
      PushLocalError("ERR turnout: replication is not supported through the proxy; connect to the server directly");
      co_return;
    }
    const bool queued = in_multi_ && info != sp.exec && info != sp.discard && info != sp.multi && info != sp.watch;
    if (queued) {
      // Inside MULTI the server queues commands; state-changing ones that
      // turnout terminates cannot be queued upstream, so they are refused
      // and the transaction aborts at EXEC, as for any rejected command.
      if (info == sp.auth || info == sp.hello || info == sp.client_reply || info == sp.client_tracking ||
          pubsub != PubSubKind::kNotPubSub) {
        PushLocalError(absl::StrCat("ERR turnout: ", LowerFullName(*info),
                                    " inside MULTI is not supported"));
        co_return;
      }
      co_await ForwardCommand(cmd, input, *info, ClassOf(*info));
      AddToBlock(*info, cmd, input);
      co_return;
    }
    if (info == sp.auth) {
      DispatchAuth(args);
      co_return;
    }
    if (info == sp.hello) {
      co_await DispatchHello(args);
      co_return;
    }
    if (info == sp.client_getname) {
      const std::size_t before = local_out_.size();
      if (client_name_.empty()) {
        resp::AppendNull(local_out_, resp3_);
      } else {
        resp::AppendBulkString(local_out_, client_name_);
      }
      PushLocal(before);
      co_return;
    }
    if (info == sp.client_setname) {
      if (!ValidClientName(args[2])) {
        PushLocalError(kBadName);
        co_return;
      }
      client_name_.assign(args[2].data(), args[2].size());
      // Forwarded too, so the server's CLIENT LIST shows the application.
      co_await ForwardCommand(cmd, input, *info, RequestClass::kSession, 0, 0, true);
      SecondaryOp op;
      resp::AppendCommand(op.command, args);
      op.state_name = client_name_;
      MirrorStateToChannels(std::move(op));
      co_return;
    }
    if (info == sp.client_reply) {
      DispatchClientReply(args);
      co_return;
    }
    if (info == sp.client_kill && MayKillItself(args)) {
      // Issue 13 item 14: the server answers and then closes the killed
      // connection; when that is this client's upstream, the client is
      // closed after the reply as the server closes it. Nothing after it is
      // dispatched until the writer knows (ProbeKilled).
      co_await ForwardCommand(cmd, input, *info, RequestClass::kSession, kFlagClientKill);
      if (last_entry_ != nullptr) kill_barrier_ = true;
      co_return;
    }
    if (info == sp.client_tracking) {
      const bool on = EqualsIgnoreCase(args[2], "ON");
      const Side side = co_await ForwardCommand(cmd, input, *info, RequestClass::kSession);
      tracking_ = on;
      // RESP3 invalidations arrive as pushes on this very connection.
      if (on && resp3_) idle_read_side_ = side;
      co_return;
    }
    if (info == sp.select) {
      std::int64_t db = 0;
      const bool numeric = resp::ParseRedisInt64(args[1], db) && db >= 0 && db <= INT32_MAX;
      co_await ForwardCommand(cmd, input, *info, RequestClass::kSession, numeric ? kFlagSelect : 0,
                              static_cast<std::int32_t>(db), numeric);
      if (numeric && last_entry_ != nullptr) {
        dispatch_db_ = static_cast<int>(db);
        SecondaryOp op;
        resp::AppendCommand(op.command, args);
        op.state_db = dispatch_db_;
        MirrorStateToChannels(std::move(op));
      }
      co_return;
    }
    if (info == sp.multi) {
      if (in_multi_) {  // "MULTI calls can not be nested": the server says so
        co_await ForwardCommand(cmd, input, *info, RequestClass::kTxnControl);
        co_return;
      }
      const Side side = co_await ForwardCommand(cmd, input, *info, RequestClass::kTxnControl);
      in_multi_ = true;
      multi_dirty_ = false;
      pinned_ = side;
      block_ = Block{};
      if (last_entry_ != nullptr) BeginBlock(last_plan_);
      block_.db = dispatch_db_;
      co_return;
    }
    if (info == sp.exec || info == sp.discard) {
      if (!in_multi_) {  // "EXEC without MULTI"
        co_await ForwardCommand(cmd, input, *info, RequestClass::kTxnControl);
        co_return;
      }
      std::optional<Side> select_side;  // EXEC ran SELECTs on this side
      if (info == sp.exec && multi_dirty_) {
        // A command turnout refused was never queued upstream: abort the
        // transaction there and answer as Redis does (multi.c execCommand).
        const Side side = pinned_.value_or(Side::kOld);
        if (backends_[static_cast<int>(side)] && backends_[static_cast<int>(side)]->is_open()) {
          const std::string_view discard[] = {"DISCARD"};
          ForwardArgs(side, discard);
          PushBackendEntry(EntryKind::kSwallow, side, RequestClass::kTxnControl);
        }
        PushLocalError("EXECABORT Transaction discarded because of previous errors.");
        block_ = Block{};
      } else {
        KeyOrder::Stripes stripes;
        if (info == sp.exec && block_.active && (block_.writes > 0 || !block_.copy_keys.empty())) {
          if (!ChannelFor(block_.side)->HasRoom(false, block_.wire.size() * 2))
            co_await WaitForRoom(block_.side, block_.sync, block_.wire.size() * 2);
          for (const auto& k : block_.keys) KeyOrder::AddStripe(k, stripes);
          if (!co_await AcquireStripes(stripes)) stripes.clear();
        }
        const Side side = co_await ForwardCommand(cmd, input, *info, RequestClass::kTxnControl);
        if (info == sp.exec && !block_.selects.empty() && last_entry_ != nullptr) {
          last_entry_->flags |= kFlagExecSelect;
          exec_selects_ = block_.selects;
          exec_pending_ = true;
          select_side = side;
        }
        if (info == sp.exec && block_.active && last_entry_ != nullptr) {
          FinishBlock(*last_entry_, side, stripes);
        }
        if (!stripes.empty()) ReleaseStripes(stripes);
        block_ = Block{};
      }
      in_multi_ = false;
      multi_dirty_ = false;
      watching_ = false;
      MaybeUnpin();
      if (select_side) co_await FollowExecSelect(*select_side);
      co_return;
    }
    if (info == sp.watch) {
      const Side side = co_await ForwardCommand(cmd, input, *info, RequestClass::kTxnControl);
      if (!in_multi_) {
        watching_ = true;
        pinned_ = side;
      }
      co_return;
    }
    if (info == sp.unwatch) {
      co_await ForwardCommand(cmd, input, *info, RequestClass::kTxnControl);
      watching_ = false;
      MaybeUnpin();
      co_return;
    }
    if (pubsub != PubSubKind::kNotPubSub) {
      const bool all = args.size() == 1;
      const Side side = co_await ForwardCommand(cmd, input, *info, RequestClass::kSession, kFlagPubSub,
                                                all ? -1 : static_cast<std::int32_t>(args.size() - 1));
      if (closed_ || stop_reading_) co_return;
      ++pubsub_pending_;
      pinned_ = side;
      idle_read_side_ = side;
      co_return;
    }
    co_await ForwardCommand(cmd, input, *info, ClassOf(*info));
  }

  void MaybeUnpin() {
    if (!in_multi_ && !watching_ && !SubscribedView()) pinned_.reset();
  }

  // Forwards the client's command (raw bytes, or re-encoded when it came
  // inline) to the chosen backend; with `mirror`, other open backends get it
  // too with their replies swallowed. Returns the side used.
  awaitable<Side> ForwardCommand(const resp::Command& cmd, const std::uint8_t* input,
                                 const resp::CommandInfo& info, RequestClass cls, std::uint16_t flags = 0,
                                 std::int32_t aux = 0, bool mirror = false) {
    last_entry_ = nullptr;
    const routing::Plan plan = RoutePlan(info, cmd.args, cls);
    last_plan_ = plan;
    if (plan.refused()) {
      PushLocalError(absl::StrCat("ERR turnout: '", LowerFullName(info),
                                  "' refused by the migration policy of route ", route_.name));
      co_return plan.primary();
    }
    const Side side = plan.primary();
    SecondaryChoice sc;
    if (!in_multi_ && plan.has_secondaries()) sc = ChooseSecondary(plan, info, cmd.args, cls);
    const bool dual = sc.kind == SecondaryChoice::kDualWrite || sc.kind == SecondaryChoice::kCopy;
    KeyOrder::Stripes stripes;
    // A blocking pop holds no stripe while it waits (the push that wakes it
    // must not wait for it): its copy is deferred to the channel, which
    // takes the stripes and reads the keys once it returned.
    const bool blocking = resp::IsBlockingInvocation(info, cmd.args);
    if (dual && !blocking)
      for (std::string_view k : targets_) KeyOrder::AddStripe(k, stripes);
    if (cls != RequestClass::kRead && channels_[static_cast<int>(side)] &&
        channels_[static_cast<int>(side)]->unresolved_writes() > 0)
      co_await WaitForChannelWrites(side);
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
    if (dual && !ChannelFor(sc.side)->HasRoom(false, cmd.frame_length))
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
      // Non-deterministic: applied here only; its keys are read right
      // behind it on the same connection and copied over (DESIGN.md §4).
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
      } else if (!blocking) {
        for (const auto& k : copy_keys) {
          ForwardPair(side, "DUMP", k);
          ForwardPair(side, "PTTL", k);
        }
      }
    }
    if (resp::IsBlockingInvocation(info, cmd.args)) {
      flags |= kFlagBlocking;
      ++blocking_inflight_;
    }
    Entry& e = PushBackendEntry(EntryKind::kForward, side, cls, flags, aux);
    if (flags & kFlagPubSub) e.pubsub = Special().PubSubOf(&info);
    e.captures_left = blocking ? 0 : static_cast<std::uint16_t>(copy_keys.size() * 2);
    if (sc.kind != SecondaryChoice::kNone)
      AttachSecondary(sc, e, info, cmd, input, cls, std::move(copy_keys), stripes);
    if (!stripes.empty()) ReleaseStripes(stripes);  // nothing queued to hold them
    last_entry_ = &e;
    if (mirror) MirrorToOthers(side, cmd.args, flags & ~(kFlagBlocking | kFlagPubSub), aux);
    co_return side;
  }

  // Per-key order across sessions (KeyOrder): waits for the stripes of a
  // dual-written write, woken by the release that frees them. Never waits
  // while holding: this session's own in-flight writes are flushed so they
  // can finish and release theirs. The bound only guards against a holder
  // that never finishes (its secondary gives up after kReplyTimeout, which
  // releases it); past it the write goes unordered, with a warning.
  static constexpr auto kKeyOrderWait = std::chrono::seconds(30);
  awaitable<bool> AcquireStripes(const KeyOrder::Stripes& stripes) {
    if (stripes.empty()) co_return true;
    KeyOrder& order = KeyOrder::Global();
    if (order.TryAcquire(stripes, StripeOwner())) co_return true;
    co_await FlushUpstream();
    WakeWriter();
    if (!key_waiter_) key_waiter_ = std::make_shared<KeyWaiter>(executor_);
    const bool ok = co_await order.Acquire(stripes, StripeOwner(), false, *key_waiter_,
                                           Clock::now() + kKeyOrderWait, &closed_);
    if (!ok && !closed_)
      LogWarn("redis dual-write key order wait timed out; writing unordered", {{"route", route_.name}});
    co_return ok;
  }
  // Back-pressure on dual-write (DESIGN.md §2, issue 13 item 6): while the
  // secondary queue has no room for `bytes` more, the client's command waits
  // (no further command is read either). Sync dual-write waits until there
  // is room: the channel always makes progress (a reply, its kReplyTimeout,
  // or a lost connection that journals what it carried), so the bound is
  // only a watchdog. Async waits at most kAsyncRoomWait, then the write is
  // journaled (AttachSecondary). Holds no stripe while it waits.
  static constexpr auto kAsyncRoomWait = std::chrono::seconds(1);
  static constexpr auto kSyncRoomWait = std::chrono::seconds(60);
  awaitable<void> WaitForRoom(Side side, bool sync, std::size_t bytes) {
    SecondaryChannel* ch = ChannelFor(side);
    if (ch->HasRoom(false, bytes)) co_return;
    co_await FlushUpstream();
    WakeWriter();
    const auto deadline = Clock::now() + (sync ? std::chrono::seconds(kSyncRoomWait) : kAsyncRoomWait);
    while (!closed_ && !ch->HasRoom(false, bytes) && Clock::now() < deadline) {
      ch->WantRoom(bytes);
      room_.expires_at(deadline);
      waiting_room_ = true;
      co_await room_.async_wait(kUseTuple);
      waiting_room_ = false;
    }
    if (sync && !closed_ && !ch->HasRoom(false, bytes))
      LogWarn("redis sync dual-write: the secondary made no room for 60 s; journaling", {{"route", route_.name}});
  }

  void ReleaseStripes(KeyOrder::Stripes& stripes) {
    KeyOrder::Global().Release(stripes, StripeOwner());
    stripes.clear();
  }
  std::uint64_t StripeOwner() const { return ctx_.connection_id + 1; }

  // Before a write to `side` while this session still has secondary writes
  // on their way there (the policy flipped the authoritative side): wait
  // until they are applied, so the new primary sees them first. Bounded.
  awaitable<void> WaitForChannelWrites(Side side) {
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

  // ------------------------------------------------ MULTI blocks (dual-write)

  // MULTI under a dual-write plan: the block is collected and sent to the
  // secondary whole (MULTI, writes, EXEC) once the primary's EXEC committed.
  void BeginBlock(const routing::Plan& plan) {
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
  void AddToBlock(const resp::CommandInfo& info, const resp::Command& cmd, const std::uint8_t* input) {
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

  // EXEC went to the primary (entry `e`): read the copied keys right
  // behind it and queue the block for the secondary.
  void FinishBlock(Entry& e, Side primary, KeyOrder::Stripes& stripes) {
    Block b = std::move(block_);
    block_ = Block{};
    // Copies are read right behind EXEC, in the database the block ends in:
    // a non-deterministic write to a database the block SELECTed away from
    // cannot be read there, so its keys are journaled for repair instead.
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
    if (!ch->HasRoom(false, b.wire.size() * 2)) {
      ch->JournalNotQueued(b.wire, std::move(b.keys), "secondary queue full");
      return;
    }
    for (const auto& k : copy_keys) {
      ForwardPair(primary, "DUMP", k);
      ForwardPair(primary, "PTTL", k);
    }
    e.captures_left = static_cast<std::uint16_t>(copy_keys.size() * 2);
    SecondaryOp op;
    op.kind = OpKind::kBlock;
    op.cls = RequestClass::kWrite;
    op.start = batch_start_;
    op.barrier = main_dispatched_[static_cast<int>(b.side)];
    op.command = b.wire;
    op.wire = std::move(b.wire);
    op.replies_expected = 1 + static_cast<int>(b.positions.size());  // MULTI, QUEUED...; EXEC and copies later
    op.positions = std::move(b.positions);
    // Copied keys first (CapturesDone pairs them with the captures), then the rest.
    op.keys = std::move(copy_keys);
    for (auto& k : b.keys)
      if (std::find(op.keys.begin(), op.keys.end(), k) == op.keys.end()) op.keys.push_back(std::move(k));
    op.sync = b.sync;
    if (!b.sync) op.fence_seq = fence_.OnQueued();
    op.stripes = std::move(stripes);
    stripes.clear();
    op.stripe_owner = StripeOwner();
    SecondaryOp& queued = ch->Enqueue(std::move(op));
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
  awaitable<void> FollowExecSelect(Side primary) {
    co_await FlushUpstream();
    WakeWriter();
    while (exec_pending_ && !closed_ && !fatal_ && !fifo_.empty()) {
      exec_wake_.expires_after(std::chrono::milliseconds(5));
      co_await exec_wake_.async_wait();
    }
    if (exec_pending_) {  // the reply never came: the session is ending
      exec_pending_ = false;
      co_return;
    }
    if (closed_ || exec_db_ == dispatch_db_) co_return;
    dispatch_db_ = exec_db_;
    const std::string db = std::to_string(dispatch_db_);
    const std::string_view select[] = {"SELECT", db};
    MirrorToOthers(primary, select, kFlagSelect, dispatch_db_);
    SecondaryOp op;
    resp::AppendCommand(op.command, select);
    op.state_db = dispatch_db_;
    MirrorStateToChannels(std::move(op));
  }

  // The primary's reply to an EXEC flagged kFlagExecSelect.
  void NoteExecReply(Entry& head, std::string_view frame, bool streamed) {
    head.flags &= ~kFlagExecSelect;
    db_ = DbAfterExec(frame, exec_selects_, db_, streamed);
    exec_db_ = db_;
    exec_pending_ = false;
    exec_wake_.cancel();
  }

  void DispatchAuth(std::span<const std::string_view> args) {
    if (args.size() > 3) {
      PushLocalError("ERR syntax error");
      return;
    }
    const bool has_user = args.size() == 3;
    const std::string_view user = has_user ? args[1] : std::string_view("default");
    const std::string_view password = args.back();
    if (users_ == nullptr && route_.auth == routing::ClientAuth::kTrust) {
      // Trust: like a Redis whose default user is "nopass" (acl.c): any
      // AUTH <user> <pass> works, AUTH <pass> alone is a likely mistake.
      if (!has_user) {
        PushLocalError(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure "
            "your configuration is correct?");
        return;
      }
      SetAuthenticated(user);
    } else if (!CheckPassword(user, password)) {
      LogInfo("redis client authentication failed", {{"route", route_.name}, {"user", user}});
      PushLocalError(kWrongPass);
      return;
    } else {
      SetAuthenticated(user);
    }
    const std::size_t before = local_out_.size();
    resp::AppendSimpleString(local_out_, "OK");
    PushLocal(before);
  }

  bool CheckPassword(std::string_view user, std::string_view password) const {
    if (users_ == nullptr) return false;
    const std::string* secret = users_->Secret(std::string(user));
    return secret != nullptr && PasswordMatches(*secret, user, password);
  }

  void SetAuthenticated(std::string_view user) {
    authenticated_ = true;
    parser_.set_authenticated(true);
    user_.assign(user.data(), user.size());
  }

  // networking.c helloCommand, with AUTH checked against turnout's users;
  // the upstream connection gets HELLO <ver> [SETNAME name] without AUTH.
  awaitable<void> DispatchHello(std::span<const std::string_view> args) {
    std::int64_t ver = 0;
    std::size_t next = 1;
    if (args.size() >= 2) {
      if (!resp::ParseRedisInt64(args[1], ver)) {
        PushLocalError("ERR Protocol version is not an integer or out of range");
        co_return;
      }
      ++next;
      if (ver < 2 || ver > 3) {
        PushLocalError("NOPROTO unsupported protocol version");
        co_return;
      }
    }
    std::string_view auth_user, auth_pass, name;
    bool has_auth = false, has_name = false;
    for (std::size_t j = next; j < args.size(); ++j) {
      const std::size_t more = args.size() - 1 - j;
      if (EqualsIgnoreCase(args[j], "AUTH") && more >= 2) {
        auth_user = args[j + 1];
        auth_pass = args[j + 2];
        has_auth = true;
        j += 2;
      } else if (EqualsIgnoreCase(args[j], "SETNAME") && more >= 1) {
        name = args[j + 1];
        has_name = true;
        j += 1;
      } else {
        PushLocalError(absl::StrCat("ERR Syntax error in HELLO option '", std::string(args[j]), "'"));
        co_return;
      }
    }
    if (has_auth) {
      const bool trust_any = users_ == nullptr && route_.auth == routing::ClientAuth::kTrust;
      if (!trust_any && !CheckPassword(auth_user, auth_pass)) {
        LogInfo("redis client authentication failed", {{"route", route_.name}, {"user", auth_user}});
        PushLocalError(kWrongPass);
        co_return;
      }
      SetAuthenticated(auth_user);
    }
    if (!authenticated_) {
      PushLocalError(
          "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
          "<user> <pass> option can be used to authenticate the client and select the RESP protocol "
          "version at the same time");
      co_return;
    }
    if (has_name && !ValidClientName(name)) {
      PushLocalError(kBadName);
      co_return;
    }
    const Side side = PickSide(*Special().hello, args, RequestClass::kSession);
    BackendConnection* conn = co_await EnsureBackend(side);
    if (conn == nullptr) co_return;
    if (has_name) client_name_.assign(name.data(), name.size());
    if (ver != 0) resp3_ = ver == 3;
    std::array<std::string_view, 4> up{};
    std::size_t n = 0;
    up[n++] = "HELLO";
    if (ver != 0) up[n++] = ver == 3 ? std::string_view("3") : std::string_view("2");
    if (has_name) {
      up[n++] = "SETNAME";
      up[n++] = name;
    }
    const std::span<const std::string_view> up_args(up.data(), n);
    ForwardArgs(side, up_args);
    PushBackendEntry(EntryKind::kForward, side, RequestClass::kSession, kFlagHello, static_cast<std::int32_t>(ver));
    MirrorToOthers(side, up_args, kFlagHello, static_cast<std::int32_t>(ver));
    if (ver != 0 || has_name) {
      SecondaryOp op;
      resp::AppendCommand(op.command, up_args);
      if (ver != 0) op.state_protocol = static_cast<int>(ver);
      if (has_name) op.state_name = client_name_;
      MirrorStateToChannels(std::move(op));
    }
  }

  // CLIENT KILL addr:port (the old form never skips the caller) or a filter
  // with SKIPME no (networking.c clientKillCommand).
  static bool MayKillItself(std::span<const std::string_view> args) {
    if (args.size() == 3) return true;
    for (std::size_t i = 2; i + 1 < args.size(); i += 2)
      if (EqualsIgnoreCase(args[i], "SKIPME") && EqualsIgnoreCase(args[i + 1], "no")) return true;
    return false;
  }

  void DispatchClientReply(std::span<const std::string_view> args) {
    // networking.c clientCommand "reply": OFF and SKIP are not answered.
    const std::string_view mode = args[2];
    if (EqualsIgnoreCase(mode, "ON")) {
      reply_off_ = false;
      reply_skip_ = false;
      const std::size_t before = local_out_.size();
      resp::AppendSimpleString(local_out_, "OK");
      PushLocal(before);
    } else if (EqualsIgnoreCase(mode, "OFF")) {
      reply_off_ = true;
    } else if (EqualsIgnoreCase(mode, "SKIP")) {
      if (!reply_off_) reply_skip_ = true;
    } else {
      PushLocalError("ERR syntax error");
    }
  }

  // RESET goes to every open backend (then re-login there, since RESET
  // logs the connection out to the default user); the session's own state
  // returns to that of a new connection.
  awaitable<void> DispatchReset(std::span<const std::string_view> args) {
    (void)args;
    bool any = false;
    const std::string_view reset[] = {"RESET"};
    for (int s = 0; s < 2; ++s) {
      BackendConnection* conn = backends_[s].get();
      if (conn == nullptr || !conn->is_open()) continue;
      const Side side = static_cast<Side>(s);
      ForwardArgs(side, reset);
      reply_off_ = false;
      reply_skip_ = false;
      PushBackendEntry(any ? EntryKind::kSwallow : EntryKind::kForward, side, RequestClass::kSession,
                       kFlagReset);
      std::string& synth = synth_[s];
      const std::size_t off = synth.size();
      const int logins = conn->AppendLogin(synth, conn->backend().redis_db);
      if (logins > 0) upstream_segs_[s].push_back({nullptr, off, synth.size() - off});
      for (int i = 0; i < logins; ++i)
        PushBackendEntry(EntryKind::kSwallow, side, RequestClass::kSession, kFlagLoginCheck);
      any = true;
    }
    reply_off_ = false;
    reply_skip_ = false;
    if (!any) {
      const std::size_t before = local_out_.size();
      resp::AppendSimpleString(local_out_, "RESET");
      PushLocal(before);
    }
    authenticated_ = route_.auth == routing::ClientAuth::kTrust;
    parser_.set_authenticated(authenticated_);
    user_.clear();
    client_name_.clear();
    resp3_ = false;
    in_multi_ = multi_dirty_ = watching_ = false;
    block_ = Block{};
    tracking_ = false;
    if (const auto* b = BackendFor(Side::kOld)) db_ = b->redis_db;
    dispatch_db_ = db_;
    {
      // The channels' connections are reset too (and log in again).
      SecondaryOp op;
      resp::AppendCommand(op.wire, {"RESET"});
      op.state_reset = true;
      MirrorStateToChannels(std::move(op));
    }
    if (pubsub_pending_ == 0 && !any) {
      sub_channels_ = sub_patterns_ = sub_shard_ = 0;
      idle_read_side_.reset();
    }
    MaybeUnpin();
    co_return;
  }

  // A command too large for the receive buffer: classify it from its first
  // arguments, then forward (or drop) it buffer by buffer.
  awaitable<void> StreamLargeRequest() {
    co_await FlushUpstream();
    walker_.Reset();
    std::size_t used = 0;
    auto status = walker_.Walk(client_in_.Unparsed(), used);
    // More than half the buffer without the end of a header line: one
    // protocol error, as Redis gives (issue 13 item 13), not "unknown
    // command" first.
    if (status == LargeRequestWalker::Status::kNeedMore && walker_.head_args().empty() && walker_.in_header() &&
        client_in_.Unparsed().size() - used > client_in_.capacity() / 2)
      status = walker_.HeaderTooLong();
    const auto head = walker_.head_args();
    const Specials& sp = Special();
    const resp::CommandInfo* info = head.empty() ? nullptr : resp::LookupCommand(head);
    std::optional<Side> side;
    if (status == LargeRequestWalker::Status::kError) {
      // fall through to the protocol error below
    } else if (info == nullptr) {
      if (head.empty()) {
        PushLocalError("ERR unknown command");
      } else {
        const std::size_t before = local_out_.size();
        if (head.size() >= 2 && resp::FindCommand(head[0]) != nullptr) {
          AppendUnknownSubcommand(local_out_, head);
        } else {
          AppendUnknownCommand(local_out_, head);
        }
        PushLocal(before);
        if (in_multi_) multi_dirty_ = true;
      }
    } else if (!authenticated_ && !info->has(resp::cmd_flag::kNoAuth)) {
      PushLocalError(kNoAuth);
    } else if (info == sp.auth || info == sp.hello || info == sp.quit || info == sp.reset || info == sp.monitor ||
               info == sp.client_setname || info == sp.client_reply || sp.PubSubOf(info) != PubSubKind::kNotPubSub ||
               info == sp.select || info == sp.multi || info == sp.exec || info == sp.discard || info == sp.watch ||
               (!resp3_ && SubscribedView())) {
      PushLocalError(absl::StrCat("ERR turnout: '", LowerFullName(*info), "' command too large"));
    } else {
      const RequestClass cls = ClassOf(*info);
      const routing::Plan plan = RoutePlan(*info, head, cls);
      const Side s = plan.primary();
      const SecondaryChoice sc = in_multi_ ? SecondaryChoice{} : ChooseSecondary(plan, *info, head, cls);
      const bool dual = sc.kind == SecondaryChoice::kDualWrite || sc.kind == SecondaryChoice::kCopy;
      std::string journal_frame;
      std::vector<std::string> journal_keys;
      if (dual || (in_multi_ && block_.active && cls == RequestClass::kWrite)) {
        // A write the other side must see too (issue 13 item 7: an UNLINK of
        // 5,000 keys): read whole into one copy, then dispatched like any
        // command from that copy (key order, dual-write, MULTI block). Only
        // past kMaxCopiedRequest is it streamed to the primary alone and
        // journaled for repair. The head's views die with the buffer: what
        // the journal needs is kept first.
        resp::AppendCommand(journal_frame, head);
        journal_keys = KeysOf(*info, head);
        const Buffered b = co_await BufferLargeRequest(status, used);
        if (b == Buffered::kWhole) {
          co_await DispatchBuffered();
          co_return;
        }
        if (b == Buffered::kFailed) {
          large_frame_.clear();
          parser_.Reset();
          co_return;
        }
        status = LargeRequestWalker::Status::kNeedMore;  // kTooLarge: stream the rest
        used = 0;
      }
      BackendConnection* conn = co_await EnsureBackend(s);
      if (conn != nullptr) {
        side = s;
        if (dual) {
          // Not copied (it may be gigabytes): journaled with its keys, which
          // the repair copies from the authoritative side.
          if (journal_frame.empty()) {
            resp::AppendCommand(journal_frame, head);
            journal_keys = KeysOf(*info, head);
          }
          JournalNotQueued(sc.side, journal_frame, std::move(journal_keys),
                           "command larger than the receive buffer is not dual-written; repair copies its keys");
        } else if (sc.kind != SecondaryChoice::kNone) {
          ctx_.route.shadow_dropped.fetch_add(1, std::memory_order_relaxed);
        }
        std::uint16_t flags = 0;
        if (info->command_class == resp::CommandClass::kBlocking) {
          flags |= kFlagBlocking;
          ++blocking_inflight_;
        }
        PushBackendEntry(EntryKind::kForward, s, cls, flags);
        if (!large_frame_.empty()) {
          // What BufferLargeRequest already took in, ahead of the rest.
          auto [ec, n] = co_await conn->stream().Write(asio::buffer(large_frame_));
          if (ec) {
            conn->Close();
            side.reset();
          }
        }
      } else if (!stop_reading_) {
        PushLocalError("ERR turnout: backend connection lost");
      }
      ReleaseLargeFrame();
    }
    WakeWriter();
    for (;;) {
      if (status == LargeRequestWalker::Status::kError) {
        const std::size_t before = local_out_.size();
        resp::AppendProtocolErrorReply(local_out_, walker_.error(), walker_.offending_byte());
        if (side) {
          // Part of the command went upstream: that connection is unusable.
          backends_[static_cast<int>(*side)]->Close();
        }
        PushLocal(before, kFlagCloseAfter | kFlagLinger);
        stop_reading_ = true;
        WakeWriter();
        break;
      }
      const auto bytes = client_in_.Unparsed().subspan(0, used);
      if (side && !bytes.empty()) {
        BackendConnection* conn = backends_[static_cast<int>(*side)].get();
        auto [ec, n] = co_await conn->stream().Write(asio::buffer(bytes.data(), bytes.size()));
        if (ec) {
          conn->Close();
          side.reset();
        }
      }
      client_in_.CommitParsed(used);
      client_in_.Consume(client_in_.Parsed().size());
      if (status == LargeRequestWalker::Status::kDone || closed_) break;
      auto tail = client_in_.WritableTail();
      if (tail.empty()) {  // a header line longer than the buffer
        status = walker_.HeaderTooLong();
        continue;
      }
      auto [ec, n] = co_await client_->ReadSome(asio::buffer(tail.data(), tail.size()));
      if (ec) {
        Close();
        break;
      }
      client_in_.CommitReceived(n);
      ctx_.route.bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
      last_activity_ = Clock::now();
      if (n >= kLargeProgressBytes) partial_since_ = last_activity_;  // moving, not trickling
      status = walker_.Walk(client_in_.Unparsed(), used);
    }
    // The request parser saw the start of this command; it starts afresh.
    parser_.Reset();
  }

  // A large dual-written command is copied whole up to this size.
  static constexpr std::size_t kMaxCopiedRequest = SecondaryChannel::kMaxBytes / 2;
  enum class Buffered : std::uint8_t { kWhole, kTooLarge, kFailed };

  // Reads the rest of the command the walker is in into large_frame_;
  // nothing goes upstream. kFailed: a protocol error was answered or the
  // client is gone.
  awaitable<Buffered> BufferLargeRequest(LargeRequestWalker::Status status, std::size_t used) {
    large_frame_.clear();
    const std::size_t cap = std::min<std::uint64_t>(kMaxCopiedRequest, ctx_.config->limits.max_message_bytes);
    for (;;) {
      if (status == LargeRequestWalker::Status::kError) {
        const std::size_t before = local_out_.size();
        resp::AppendProtocolErrorReply(local_out_, walker_.error(), walker_.offending_byte());
        PushLocal(before, kFlagCloseAfter | kFlagLinger);
        stop_reading_ = true;
        WakeWriter();
        co_return Buffered::kFailed;
      }
      const auto bytes = client_in_.Unparsed().subspan(0, used);
      large_frame_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      client_in_.CommitParsed(used);
      client_in_.Consume(client_in_.Parsed().size());
      if (status == LargeRequestWalker::Status::kDone) co_return Buffered::kWhole;
      if (large_frame_.size() > cap) co_return Buffered::kTooLarge;
      auto tail = client_in_.WritableTail();
      if (tail.empty()) {  // a header line longer than the buffer
        status = walker_.HeaderTooLong();
        continue;
      }
      auto [ec, n] = co_await client_->ReadSome(asio::buffer(tail.data(), tail.size()));
      if (ec || closed_) {
        Close();
        co_return Buffered::kFailed;
      }
      client_in_.CommitReceived(n);
      ctx_.route.bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
      last_activity_ = Clock::now();
      if (n >= kLargeProgressBytes) partial_since_ = last_activity_;  // moving, not trickling
      status = walker_.Walk(client_in_.Unparsed(), used);
    }
  }

  // The command in large_frame_, dispatched as if it had fit the buffer.
  awaitable<void> DispatchBuffered() {
    parser_.Reset();
    const auto status = parser_.Parse(std::string_view(large_frame_));
    if (status == resp::ParseStatus::kComplete) {
      const resp::Command& cmd = parser_.command();
      co_await Dispatch(cmd, reinterpret_cast<const std::uint8_t*>(large_frame_.data()));
      co_await FlushUpstream();  // its segments point into large_frame_
    } else {
      // The walker accepted it, so the parser does too; never trust that blindly.
      PushLocalError("ERR turnout: command too large");
    }
    parser_.Reset();
    ReleaseLargeFrame();
    WakeWriter();
  }

  void ReleaseLargeFrame() {
    large_frame_.clear();
    if (large_frame_.capacity() > (1u << 20)) std::string().swap(large_frame_);
  }

  // ------------------------------------------------------------ reply writer

  awaitable<void> WriterLoop() {
    while (!closed_) {
      const bool progress = Collect();
      if (fatal_) {
        co_await FlushClient();
        Close();
        co_return;
      }
      if (!client_segs_.empty()) {
        if (!co_await FlushClient()) {
          Close();
          co_return;
        }
      }
      FinishPartials();
      if (progress && waiting_space_) space_.cancel();
      if (close_after_write_) {
        if (linger_) co_await Linger();
        Close();
        co_return;
      }
      if (draining_ && AtBoundary()) {
        Close();
        co_return;
      }
      if (progress) continue;
      if (kill_probe_side_) {
        if (!co_await ProbeKilled()) co_return;
        continue;
      }
      if (fifo_.empty()) {
        if (input_done_) co_return;
        if (idle_read_side_ && Backend(*idle_read_side_) && Backend(*idle_read_side_)->is_open()) {
          writer_idle_reading_ = true;
          const bool ok = co_await ReadBackend(*Backend(*idle_read_side_));
          writer_idle_reading_ = false;
          barrier_pending_ = false;
          if (!ok) co_return;
        } else {
          co_await wake_.async_wait(kUseTuple);
        }
        continue;
      }
      const Entry& head = fifo_.front();
      if (head.stage == OpStage::kHeld) {
        // A sync dual-write: the reply is sent once the secondary applied
        // it; the channel wakes us (on_progress).
        const SecondaryOp* op = OpOf(head);
        if (op != nullptr && !op->secondary_done) co_await wake_.async_wait(kUseTuple);
        continue;
      }
      BackendConnection* conn = Backend(head.side);
      if (conn == nullptr) {
        UpstreamLost(nullptr);
        continue;
      }
      if (!co_await ReadBackend(*conn)) co_return;
    }
  }

  BackendConnection* Backend(Side side) { return backends_[static_cast<int>(side)].get(); }

  // After CLIENT KILL killed someone (its reply is written): the server
  // closes a killed connection right after the reply, so an end of stream
  // on that upstream within kKillProbe means it was this one, and the client
  // is closed as the server would close it. False: the session is over.
  static constexpr auto kKillProbe = std::chrono::milliseconds(200);
  awaitable<bool> ProbeKilled() {
    const Side side = *kill_probe_side_;
    kill_probe_side_.reset();
    BackendConnection* conn = Backend(side);
    if (conn != nullptr && conn->is_open() && fifo_.empty()) {
      auto tail = conn->in().WritableTail();
      Timer t(executor_, kKillProbe);
      auto r = co_await (conn->stream().ReadSome(asio::buffer(tail.data(), tail.size())) || t.async_wait());
      if (closed_) co_return false;
      if (r.index() == 0) {
        auto [ec, n] = std::get<0>(r);
        if (ec) {
          LogDebug("redis client killed its own connection", {{"route", route_.name}});
          Close();
          co_return false;
        }
        conn->in().CommitReceived(n);  // not for us to judge: Collect reads it
      }
    }
    ReleaseKillBarrier();
    co_return true;
  }

  void ReleaseKillBarrier() {
    kill_barrier_ = false;
    if (waiting_space_) space_.cancel();
  }

  // Reads more replies from `conn`. False when the session is over.
  awaitable<bool> ReadBackend(BackendConnection& conn) {
    auto tail = conn.in().WritableTail();
    if (tail.empty()) {
      LogWarn("redis reply line longer than the buffer", {{"route", route_.name}, {"backend", conn.backend().name}});
      UpstreamLost(&conn);
      co_await FlushClient();
      Close();
      co_return false;
    }
    auto [ec, n] = co_await conn.stream().ReadSome(asio::buffer(tail.data(), tail.size()));
    if (closed_) co_return false;
    if (ec) {
      if (!IsExpectedDisconnect(ec))
        LogWarn("redis backend read failed", {{"route", route_.name}, {"backend", conn.backend().name},
                                              {"error", ec.message()}});
      else
        LogInfo("redis backend closed the connection", {{"route", route_.name}, {"backend", conn.backend().name}});
      UpstreamLost(&conn);
      co_await FlushClient();
      Close();
      co_return false;
    }
    conn.in().CommitReceived(n);
    co_return true;
  }

  // The head's backend is gone: the client learns it, then the session ends
  // (a client library reconnects, as it does when a server goes away).
  void UpstreamLost(BackendConnection* conn) {
    if (conn != nullptr) ctx_.route.RecordUpstreamError(conn->side());
    client_segs_.clear();
    write_scratch_.clear();
    if (!fifo_.empty()) {
      resp::AppendError(write_scratch_, absl::StrCat("ERR turnout: connection to backend ",
                                                     conn ? conn->backend().name : std::string("?"), " lost"));
      client_segs_.push_back({nullptr, 0, write_scratch_.size()});
    }
    fatal_ = true;
  }

  // Gathers every reply that is ready, in FIFO order, into client_segs_.
  // Synchronous: no view it records can move before FlushClient writes it.
  bool Collect() {
    client_segs_.clear();
    write_scratch_.clear();
    bool progress = false;
    const auto now = Clock::now();
    while (client_segs_.size() < kMaxWriteSegments && !fatal_ && !close_after_write_) {
      BackendConnection* conn = nullptr;
      Entry* head = fifo_.empty() ? nullptr : &fifo_.front();
      if (head == nullptr) {
        if (!idle_read_side_) break;
        conn = Backend(*idle_read_side_);
        if (conn == nullptr || !conn->is_open()) break;
      } else if (head->kind == EntryKind::kLocal) {
        if (!(head->flags & kFlagSuppress)) {
          const std::size_t off = write_scratch_.size();
          write_scratch_.append(local_out_, local_consumed_, head->local_len);
          client_segs_.push_back({nullptr, off, head->local_len});
        }
        local_consumed_ += head->local_len;
        if (local_consumed_ == local_out_.size()) {
          local_out_.clear();
          local_consumed_ = 0;
        }
        if (head->flags & kFlagCloseAfter) {
          close_after_write_ = true;
          linger_ = (head->flags & kFlagLinger) != 0;
        }
        fifo_.pop_front();
        progress = true;
        continue;
      } else {
        if (head->stage == OpStage::kHeld) {
          const SecondaryOp* op = OpOf(*head);
          if (op != nullptr && !op->secondary_done) break;
          EmitHeld(*head);
          progress = true;
          continue;
        }
        conn = Backend(head->side);
        if (conn == nullptr) break;
      }
      auto& in = conn->in();
      auto& parser = conn->parser();
      const int s = static_cast<int>(conn->side());
      if (partial_take_[s] != 0) break;  // finish that write first
      const auto unparsed = in.Unparsed();
      const auto status = parser.Parse(unparsed);
      if (status == resp::ParseStatus::kError) {
        LogWarn("redis backend sent an invalid reply", {{"route", route_.name}, {"backend", conn->backend().name},
                                                        {"error", parser.error_code().message()}});
        UpstreamLost(conn);
        break;
      }
      const std::string_view text(reinterpret_cast<const char*>(unparsed.data()), unparsed.size());
      if (status == resp::ParseStatus::kNeedMore) {
        const std::size_t v = parser.validated();
        if (v < in.capacity() / 2) break;
        // A reply larger than half the buffer: forward what is validated.
        const bool first_chunk = !partial_active_[s];
        if (!partial_active_[s]) {
          partial_active_[s] = true;
          partial_oob_[s] = IsOutOfBand(text, head);
        }
        bool drop = !partial_oob_[s] && head != nullptr &&
                    (head->kind == EntryKind::kSwallow || (head->flags & kFlagSuppress));
        if (!partial_oob_[s] && head != nullptr && HasOpWork(*head)) {
          // Streamed through: never held (sync waits only for replies that
          // fit the buffer); captures are kept, not forwarded.
          if (head->stage == OpStage::kCaptures) drop = true;
          FeedOp(*head, text.substr(0, v), first_chunk, false);
        }
        if (!drop) client_segs_.push_back({unparsed.data(), 0, v});
        partial_take_[s] = v;
        progress = true;
        break;
      }
      const std::size_t len = parser.frame().length;
      const auto frame = text.substr(0, len);
      in.CommitParsed(len);
      progress = true;
      bool oob;
      const bool streamed = partial_active_[s];
      if (partial_active_[s]) {
        partial_active_[s] = false;
        oob = partial_oob_[s];
      } else {
        oob = IsOutOfBand(frame, head);
      }
      if (oob || head == nullptr) {
        if (!oob) {
          LogWarn("redis backend sent an unexpected reply", {{"route", route_.name},
                                                             {"backend", conn->backend().name}});
          UpstreamLost(conn);
          break;
        }
        client_segs_.push_back({unparsed.data(), 0, len});
        continue;
      }
      if (head->flags & kFlagExecSelect) NoteExecReply(*head, frame, streamed);
      if (HasOpWork(*head)) {
        HandleOpReply(*head, frame, unparsed.data(), now, streamed);
      } else {
        HandleReply(*head, *conn, frame, unparsed.data(), now);
      }
    }
    return progress;
  }

  // ------------------------------------------------ replies of secondary work

  static bool HasOpWork(const Entry& e) { return e.op != 0 || e.captures_left != 0; }

  SecondaryOp* OpOf(const Entry& e) {
    if (e.op == 0) return nullptr;
    auto& ch = channels_[static_cast<int>(e.op_side)];
    return ch ? ch->Find(e.op) : nullptr;
  }

  // (Part of) a reply to an op-linked entry, while it streams through.
  void FeedOp(Entry& head, std::string_view bytes, bool first, bool held) {
    SecondaryOp* op = OpOf(head);
    if (op == nullptr) return;
    if (head.stage == OpStage::kFirst) {
      if (first) op->primary.Clear();
      op->primary.Append(bytes, held ? SecondaryChannel::kCopyCap : SecondaryChannel::kCompareCap);
    } else if (head.stage == OpStage::kCaptures) {
      if (first) op->captures.emplace_back();
      op->captures.back().Append(bytes, SecondaryChannel::kCopyCap);
    }
  }

  // A complete reply for an entry with secondary work: the command's own
  // reply (forwarded, or held for a sync dual-write), then the DUMP/PTTL
  // captures of a copy. `streamed`: earlier parts were already fed.
  void HandleOpReply(Entry& head, std::string_view frame, const std::uint8_t* data, Clock::time_point now,
                     bool streamed) {
    SecondaryOp* op = OpOf(head);
    SecondaryChannel* ch = op ? channels_[static_cast<int>(head.op_side)].get() : nullptr;
    if (head.stage == OpStage::kFirst) {
      // Sync: the reply waits for the secondary, unless it already applied
      // (and nothing is left to copy) or the reply streamed through.
      const bool hold = op != nullptr && op->sync && !streamed && !(head.captures_left == 0 && op->secondary_done);
      if (hold) {
        head.flags |= kFlagHeld;
      } else if (head.kind == EntryKind::kForward && !(head.flags & kFlagSuppress)) {
        client_segs_.push_back({data, 0, frame.size()});
      }
      FeedOp(head, frame, !streamed, hold);
      const auto us = static_cast<std::uint64_t>(
          std::max<std::int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - head.start).count(), 0));
      ctx_.route.RecordRequest(head.side, head.cls, us);
      if (head.flags & kFlagBlocking) {
        --blocking_inflight_;
        head.flags &= ~kFlagBlocking;
      }
      if (op != nullptr) {
        op->primary_us = us;
        ch->PrimaryReply(*op);
      }
      if (head.captures_left > 0) {
        head.stage = OpStage::kCaptures;
        return;
      }
    } else if (head.stage == OpStage::kCaptures) {
      FeedOp(head, frame, !streamed, false);
      if (--head.captures_left > 0) return;
    }
    // The command's reply and every capture are in.
    if (op != nullptr && (op->kind == OpKind::kCopy || op->kind == OpKind::kBlock)) ch->CapturesDone(*op);
    if (head.flags & kFlagHeld) {
      head.stage = OpStage::kHeld;
      return;
    }
    FinishOpEntry(head);
  }

  // A held reply whose secondary applied: now to the client.
  void EmitHeld(Entry& head) {
    SecondaryOp* op = OpOf(head);
    if (op != nullptr && head.kind == EntryKind::kForward && !(head.flags & kFlagSuppress)) {
      const std::size_t off = write_scratch_.size();
      write_scratch_.append(op->primary.bytes());
      client_segs_.push_back({nullptr, off, op->primary.bytes().size()});
    }
    FinishOpEntry(head);
  }

  void FinishOpEntry(Entry& head) {
    if (SecondaryOp* op = OpOf(head)) channels_[static_cast<int>(head.op_side)]->Release(*op);
    if (head.flags & kFlagBlocking) --blocking_inflight_;
    const Side side = head.side;
    fifo_.pop_front();
    NoteAnswered(side);
  }

  // A primary request on `side` was answered (channel barriers).
  void NoteAnswered(Side side) {
    ++main_answered_[static_cast<int>(side)];
    if (auto& ch = channels_[static_cast<int>(side)]) ch->MainAnswered();
  }

  // Pub/sub messages and RESP3 pushes that answer no command.
  bool IsOutOfBand(std::string_view frame, const Entry* head) {
    if (frame.empty()) return false;
    if (monitoring_ && head == nullptr) return true;  // a MONITOR feed line
    const bool push = frame[0] == '>';
    if (!push && !(frame[0] == '*' && !writer_resp3_ && (SubscribedView() || (head && (head->flags & kFlagPubSub)))))
      return false;
    PubSubPeek peek;
    if (!PeekPubSub(frame, peek)) return push;  // an unreadable push is still out of band
    if (peek.kind == PubSubKind::kMessage || peek.kind == PubSubKind::kInvalidate) return true;
    if (IsConfirmation(peek.kind)) {
      if (head != nullptr && (head->flags & kFlagPubSub)) return false;
      // An unsolicited confirmation (e.g. sunsubscribe after a slot moved).
      UpdateSubscriptionCounts(peek);
      return true;
    }
    return push;
  }

  void UpdateSubscriptionCounts(const PubSubPeek& peek) {
    const std::int64_t c = std::max<std::int64_t>(peek.count, 0);
    switch (peek.kind) {
      case PubSubKind::kSubscribe:
      case PubSubKind::kUnsubscribe: sub_channels_ = std::max<std::int64_t>(c - sub_patterns_, 0); break;
      case PubSubKind::kPSubscribe:
      case PubSubKind::kPUnsubscribe: sub_patterns_ = std::max<std::int64_t>(c - sub_channels_, 0); break;
      case PubSubKind::kSSubscribe:
      case PubSubKind::kSUnsubscribe: sub_shard_ = c; break;
      default: break;
    }
  }

  std::int64_t CountOfKind(PubSubKind k) const {
    switch (k) {
      case PubSubKind::kUnsubscribe: return sub_channels_;
      case PubSubKind::kPUnsubscribe: return sub_patterns_;
      case PubSubKind::kSUnsubscribe: return sub_shard_;
      default: return 0;
    }
  }

  // One reply for the FIFO head: forward or swallow it, apply its effect on
  // the session state, pop the head when it has all its replies.
  void HandleReply(Entry& head, BackendConnection& conn, std::string_view frame, const std::uint8_t* data,
                   Clock::time_point now) {
    const bool is_error = !frame.empty() && (frame[0] == '-' || frame[0] == '!');
    if (head.kind == EntryKind::kForward && !(head.flags & kFlagSuppress))
      client_segs_.push_back({data, 0, frame.size()});
    if (head.flags & kFlagClientKill) {
      // ":0": nobody was killed; otherwise this upstream may be among them.
      if (!is_error && frame != ":0\r\n") {
        kill_probe_side_ = head.side;
      } else {
        ReleaseKillBarrier();
      }
    }
    bool done = true;
    if (head.flags & kFlagPubSub) {
      PubSubPeek peek;
      if (!is_error && PeekPubSub(frame, peek) && IsConfirmation(peek.kind)) {
        if (head.aux == -1) head.aux = static_cast<std::int32_t>(std::max<std::int64_t>(CountOfKind(head.pubsub), 1));
        UpdateSubscriptionCounts(peek);
        done = --head.aux <= 0;
      }
    }
    if (is_error && (head.flags & kFlagLoginCheck)) {
      LogWarn("redis backend refused the re-login after RESET",
              {{"route", route_.name}, {"backend", conn.backend().name}});
      UpstreamLost(&conn);
      return;
    }
    if (!is_error) {
      if (head.flags & kFlagSelect) db_ = head.aux;
      if ((head.flags & kFlagHello) && head.aux != 0 && head.kind == EntryKind::kForward)
        writer_resp3_ = head.aux == 3;
      if ((head.flags & kFlagReset) && head.kind == EntryKind::kForward) {
        writer_resp3_ = false;
        sub_channels_ = sub_patterns_ = sub_shard_ = 0;
      }
    }
    if (!done) return;
    if (head.kind == EntryKind::kForward) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - head.start).count();
      ctx_.route.RecordRequest(head.side, head.cls, static_cast<std::uint64_t>(std::max<std::int64_t>(us, 0)));
    }
    if (head.flags & kFlagBlocking) --blocking_inflight_;
    if (head.flags & kFlagPubSub) --pubsub_pending_;
    const bool was_pubsub_or_reset = (head.flags & (kFlagPubSub | kFlagReset)) != 0;
    const Side answered = head.side;
    fifo_.pop_front();
    NoteAnswered(answered);
    if (was_pubsub_or_reset && !SubscribedView()) {
      if (!(tracking_ && resp3_)) idle_read_side_.reset();
      MaybeUnpin();
    }
  }

  awaitable<bool> FlushClient() {
    if (client_segs_.empty()) co_return true;
    client_bufs_.clear();
    std::size_t total = 0;
    for (const auto& seg : client_segs_) {
      const void* p = seg.data ? static_cast<const void*>(seg.data)
                               : static_cast<const void*>(write_scratch_.data() + seg.offset);
      client_bufs_.emplace_back(p, seg.size);
      total += seg.size;
    }
    client_segs_.clear();
    auto [ec, n] = co_await client_->Write(client_bufs_);
    ctx_.route.bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    last_activity_ = Clock::now();
    if (ec) {
      if (!closed_ && !IsExpectedDisconnect(ec))
        LogWarn("redis client write failed", {{"route", route_.name}, {"error", ec.message()}});
      co_return false;
    }
    (void)total;
    co_return true;
  }

  // After a client write: drop the bytes written (and swallowed) from each
  // backend's buffer, including the forwarded prefix of a partial reply.
  void FinishPartials() {
    for (int s = 0; s < 2; ++s) {
      BackendConnection* conn = backends_[s].get();
      if (conn == nullptr) continue;
      auto& in = conn->in();
      in.Consume(in.Parsed().size() + partial_take_[s]);
      if (partial_take_[s] != 0) {
        conn->parser().DropPrefix(partial_take_[s]);
        partial_take_[s] = 0;
      }
    }
  }

  // After a protocol error: read and discard what the client still sends for
  // a moment, so closing does not reset the connection before the client
  // has read the error.
  awaitable<void> Linger() {
    Timer timer(executor_, std::chrono::milliseconds(250));
    auto discard = [this]() -> awaitable<void> {
      std::array<char, 4096> sink;
      for (;;) {
        auto [ec, n] = co_await client_->ReadSome(asio::buffer(sink));
        if (ec) co_return;
      }
    };
    co_await (discard() || timer.async_wait());
  }

  bool AtBoundary() const {
    return fifo_.empty() && !in_multi_ && !SubscribedView() && client_in_.Unconsumed().empty();
  }

  // limits.idle_timeout (issue 13 item 15): no command and no reply for
  // that long closes the client, as Redis' `timeout` does (pub/sub
  // subscribers and monitors excepted, clientsCronHandleTimeout). And, with
  // or without it, a command that was started but not completed within
  // idle_timeout (at most kPartialCommandTimeout, also without one) closes
  // the client: a client sending one byte a second would otherwise keep a
  // connection "active" forever. A large command being streamed restarts
  // that clock with every read of kLargeProgressBytes or more.
  static constexpr auto kPartialCommandTimeout = std::chrono::seconds(60);
  static constexpr std::size_t kLargeProgressBytes = 4096;
  awaitable<void> IdleWatch(absl::Duration idle) {
    const bool has_idle = idle > absl::ZeroDuration();
    const auto limit = has_idle ? std::chrono::microseconds(absl::ToInt64Microseconds(idle))
                                : std::chrono::microseconds(kPartialCommandTimeout);
    const auto partial_limit = std::min<std::chrono::microseconds>(limit, kPartialCommandTimeout);
    Timer timer(executor_);
    for (;;) {
      auto next = last_activity_ + limit;
      if (partial_since_) next = std::min(next, *partial_since_ + partial_limit);
      timer.expires_at(next);
      auto [ec] = co_await timer.async_wait();
      if (ec || closed_) co_return;
      const auto now = Clock::now();
      if (partial_since_ && now - *partial_since_ >= partial_limit) {
        LogInfo("redis client left a command incomplete for too long; closing", {{"route", route_.name}});
        co_return;
      }
      if (has_idle && now - last_activity_ >= limit && fifo_.empty() && !SubscribedView() && !monitoring_) {
        LogInfo("idle timeout", {{"route", route_.name}});
        co_return;
      }
      if (now - last_activity_ >= limit) last_activity_ = now;
    }
  }

  // ------------------------------------------------------------------ state

  std::optional<Socket> raw_;     // until the first-byte peek; then client_
  std::optional<Stream> client_;
  tcp::socket::executor_type executor_;
  SessionContext ctx_;
  SessionRegistration registration_;
  const routing::Route& route_;
  const UserList* users_ = nullptr;
  std::string address_;

  protocol::IoBuffer client_in_;
  resp::RequestParser parser_;
  LargeRequestWalker walker_;
  std::string large_frame_;  // a large dual-written command, copied whole
  std::shared_ptr<KeyWaiter> key_waiter_;  // made on the first wait for a key (KeyOrder)
  InflightQueue<Entry> fifo_;
  std::string local_out_;        // local replies not yet written, in FIFO order
  std::size_t local_consumed_ = 0;
  std::array<std::unique_ptr<BackendConnection>, 2> backends_;
  std::array<std::vector<UpstreamSegment>, 2> upstream_segs_;
  std::array<std::string, 2> synth_;  // commands turnout writes itself
  std::vector<asio::const_buffer> upstream_bufs_;
  std::vector<ClientSegment> client_segs_;
  std::vector<asio::const_buffer> client_bufs_;
  std::string write_scratch_;
  std::array<std::size_t, 2> partial_take_{};
  std::array<bool, 2> partial_active_{};
  std::array<bool, 2> partial_oob_{};

  Timer wake_;   // the writer waits here for new entries
  Timer space_;  // the request loop waits here for FIFO room
  bool waiting_space_ = false;
  Timer room_;   // ... and here for room in a secondary queue (WaitForRoom)
  bool waiting_room_ = false;

  routing::RouteTableReader reader_;
  bool has_policy_ = false;
  std::string new_backend_name_;  // what Side::kNew stands for (policy, else route)
  std::vector<std::string_view> targets_;
  resp::KeyIndices key_indices_;

  // Secondary work (issue 5): one channel per side, created on first use.
  static constexpr std::size_t kMaxCopyKeys = 1024;
  std::array<std::unique_ptr<SecondaryChannel>, 2> channels_;
  routing::ReadYourWritesFence fence_;
  std::array<std::uint64_t, 2> main_dispatched_{};  // backend entries pushed, per side
  std::array<std::uint64_t, 2> main_answered_{};    // ... and answered
  Timer channel_created_;  // ChannelLoop waits here for its channel
  Timer drain_timer_;      // MainLoops waits here for the channels to drain
  int channels_running_ = 0;
  bool main_done_ = false;
  routing::Plan last_plan_;      // of the last ForwardCommand
  Entry* last_entry_ = nullptr;  // its FIFO entry (valid until the next await)
  int dispatch_db_ = 0;          // the database as of the last dispatched SELECT
  struct Block {
    bool active = false;
    Side side = Side::kNew;
    bool sync = false;
    std::string wire;                      // MULTI, the deterministic writes and SELECTs
    std::uint32_t index = 0;               // commands queued on the primary so far
    std::vector<std::uint32_t> positions;  // their indices among the primary's
    std::size_t writes = 0;                // deterministic writes in `wire`
    std::vector<std::pair<std::string, int>> copy_keys;  // keys of non-deterministic writes, their db
    std::vector<std::string> keys;         // every key written (journal)
    std::vector<BlockSelect> selects;      // SELECTs queued (tracked with or without a secondary)
    int db = 0;                            // the database as of the last valid SELECT queued
  } block_;
  // EXEC of a block with SELECTs, until its reply is in (FollowExecSelect).
  std::vector<BlockSelect> exec_selects_;
  bool exec_pending_ = false;
  int exec_db_ = 0;
  Timer exec_wake_;

  // Client session state (dispatch time).
  bool authenticated_ = false;
  std::string user_;
  std::string client_name_;
  int db_ = 0;
  bool resp3_ = false;
  bool in_multi_ = false;
  bool multi_dirty_ = false;
  bool watching_ = false;
  bool tracking_ = false;
  bool monitoring_ = false;  // MONITOR went to idle_read_side_
  bool kill_barrier_ = false;  // a CLIENT KILL that may kill this upstream is in flight
  std::optional<Side> kill_probe_side_;
  bool reply_off_ = false;
  bool reply_skip_ = false;
  std::optional<Side> pinned_;
  std::optional<Side> idle_read_side_;
  int pubsub_pending_ = 0;
  int blocking_inflight_ = 0;
  // Subscriptions as the server reports them (reply time).
  std::int64_t sub_channels_ = 0, sub_patterns_ = 0, sub_shard_ = 0;
  bool writer_resp3_ = false;

  Clock::time_point batch_start_ = Clock::now();
  Clock::time_point last_activity_ = Clock::now();
  std::optional<Clock::time_point> partial_since_;  // first byte of an unfinished command
  bool closed_ = false;
  bool draining_ = false;
  bool stop_reading_ = false;
  bool input_done_ = false;
  bool writer_idle_reading_ = false;
  bool barrier_pending_ = false;
  bool close_after_write_ = false;
  bool linger_ = false;
  bool fatal_ = false;
};

}  // namespace

awaitable<void> RunRedisSession(Socket client, SessionContext ctx) {
  RedisSession session(std::move(client), std::move(ctx));
  co_await session.Run();
}

}  // namespace turnout::proxy::redis
