// The copies a secondary channel makes of keys that non-deterministic writes
// touched (DESIGN.md §4): DUMP/PTTL read on turnout's own connection to the
// authoritative side, named `turnout` (issue 13 item 17: the application's
// connection never runs them, so its SLOWLOG, INFO commandstats and CLIENT
// LIST stay its own), then RESTORE … REPLACE / DEL on this channel.
//
// Why the copy is exact although it is read after the write, on another
// connection: the keys' stripes (KeyOrder) are held from before the write
// reached the authoritative side until the copy is applied here, so no other
// session's write of those keys goes through in between; and the session
// itself sends no later write of those keys until `captured` is set
// (RedisSession::WaitForCopies). What DUMP reads is therefore exactly the
// state the write left. A blocking pop holds no stripe while it blocks; its
// copy takes them here, before the read.
#include "absl/strings/str_cat.h"
#include "protocol/resp/reply_writer.h"
#include "proxy/redis/secondary_channel.h"

namespace turnout::proxy::redis {

using namespace asio::experimental::awaitable_operators;
namespace resp = protocol::resp;
using routing::JournalKind;

awaitable<void> SecondaryChannel::PrepareCopy(SecondaryOp& op) {
  const std::size_t copy_count = op.kind == OpKind::kBlock ? op.copy_keys : op.keys.size();
  const int db = op.copy_db >= 0 ? op.copy_db : conn_state_.db;
  auto captured = [&] {
    op.captured = true;
    if (env_.on_progress) env_.on_progress();  // the session may wait for it
  };
  // 1. The keys' stripes, unless the session already holds them for this
  //    op: from here until RESTORE is applied no other writer of these
  //    keys goes through this process.
  if (op.stripes.empty()) {
    secondary::KeyOrder::Stripes stripes;
    for (std::size_t i = 0; i < copy_count; ++i) secondary::KeyOrder::AddStripe(op.keys[i], stripes);
    // Re-entrant even when others wait: this session's later writes of these
    // keys may hold them, queued behind this copy.
    if (!env_.services->key_order->TryAcquire(stripes, op.stripe_owner, true)) {
      if (!key_waiter_) key_waiter_ = std::make_shared<secondary::KeyWaiter>(executor_);
      const bool ok = co_await env_.services->key_order->Acquire(stripes, op.stripe_owner, true, *key_waiter_,
                                                                 Clock::now() + std::chrono::seconds(5), &aborted_);
      if (aborted_) co_return;
      if (!ok) {
        SecondaryFailed(op, JournalKind::kDropped, "key order wait timed out; repair copies the keys");
        captured();
        co_return;
      }
    }
    op.stripes = std::move(stripes);
  }
  // 2. DUMP/PTTL on the authoritative side, now.
  std::string error;
  if (source_ && source_open_ != source_backend_) {
    // The policy named another endpoint since (set_source_backend).
    source_->Close();
    source_.reset();
  }
  if (source_backend_ == nullptr) error = "no authoritative backend to copy from";
  if (error.empty() && (!source_ || !source_->is_open())) {
    auto conn = std::make_unique<BackendConnection>(routing::Other(side_), *source_backend_,
                                                    env_.config->limits.buffer_bytes, ServerReplyLimits());
    asio::ssl::context* tls =
        env_.services->tls ? env_.services->tls->ForBackend(source_backend_->name) : nullptr;
    const UpstreamState state{db, false, "turnout"};
    auto opened = co_await (conn->Open(tls, env_.config->limits.connect_timeout, state, error) || AbortWait());
    if (aborted_ || opened.index() == 1) co_return;
    if (std::get<0>(opened)) {
      source_ = std::move(conn);
      source_open_ = source_backend_;
      source_db_ = db;
    }
  }
  std::vector<CapturedReply> replies;
  if (error.empty()) {
    std::string out;
    int n = 0;
    if (source_db_ != db) {
      resp::AppendCommand(out, {"SELECT", std::to_string(db)});
      ++n;
      source_db_ = db;
    }
    const int skip = n;
    for (std::size_t i = 0; i < copy_count; ++i) {
      resp::AppendCommand(out, {"DUMP", op.keys[i]});
      resp::AppendCommand(out, {"PTTL", op.keys[i]});
      n += 2;
    }
    auto [ec, written] = co_await source_->stream().Write(asio::buffer(out));
    if (aborted_) co_return;
    if (ec) error = absl::StrCat("write to the authoritative side failed: ", ec.message());
    if (error.empty() && co_await ReadReplies(*source_, n, replies, error)) {
      replies.erase(replies.begin(), replies.begin() + skip);
    }
    if (aborted_) co_return;
    if (!error.empty()) {
      source_->Close();
      source_db_ = -1;
    }
  }
  // 3. The copy commands.
  std::string copies;
  int count = 0;
  for (std::size_t i = 0; error.empty() && i < copy_count; ++i) {
    if (replies[2 * i].truncated()) {
      error = absl::StrCat("value of ", op.keys[i], " too large to copy inline (", replies[2 * i].length(),
                           " bytes); repair copies it");
      break;
    }
    if (AppendCopyCommand(op.keys[i], replies[2 * i].bytes(), replies[2 * i + 1].bytes(), copies, error)) ++count;
  }
  if (!error.empty()) {
    SecondaryFailed(op, JournalKind::kFailed, std::move(error));
    captured();
    co_return;
  }
  const std::size_t wire_before = op.wire.size();
  if (op.kind == OpKind::kBlock) {
    // `wire` holds MULTI and the block's writes; the copies then EXEC
    // follow, so they apply atomically with them.
    op.wire.append(copies);
    resp::AppendCommand(op.wire, {"EXEC"});
    op.copies = static_cast<std::size_t>(count);
    op.replies_expected += count + 1;
  } else {
    op.wire = std::move(copies);
    op.replies_expected = count;
    if (count == 0) op.skipped = true;
  }
  ops_.Grow(op, op.wire.size() - wire_before);
  captured();
}

awaitable<bool> SecondaryChannel::ReadReplies(BackendConnection& conn, int n, std::vector<CapturedReply>& out,
                                              std::string& error) {
  auto& in = conn.in();
  auto& parser = conn.parser();
  bool partial = false;
  while (static_cast<int>(out.size()) < n) {
    const auto unparsed = in.Unparsed();
    const auto status = unparsed.empty() ? resp::ParseStatus::kNeedMore : parser.Parse(unparsed);
    if (status == resp::ParseStatus::kError) {
      error = "the authoritative side sent an invalid reply";
      co_return false;
    }
    const std::string_view text(reinterpret_cast<const char*>(unparsed.data()), unparsed.size());
    if (status == resp::ParseStatus::kComplete) {
      const std::size_t len = parser.frame().length;
      if (!partial) out.emplace_back();
      out.back().Append(text.substr(0, len), kCopyCap);
      partial = false;
      in.CommitParsed(len);
      in.Consume(len);
      continue;
    }
    if (!unparsed.empty() && parser.validated() >= in.capacity() / 2) {
      const std::size_t v = parser.validated();
      if (!partial) out.emplace_back();
      partial = true;
      out.back().Append(text.substr(0, v), kCopyCap);
      in.Consume(v);
      parser.DropPrefix(v);
      continue;
    }
    auto tail = in.WritableTail();
    if (tail.empty()) {
      error = "reply line longer than the buffer";
      co_return false;
    }
    auto [ec, got] = co_await conn.stream().ReadSome(asio::buffer(tail.data(), tail.size()));
    if (aborted_) co_return false;
    if (ec) {
      error = absl::StrCat("the authoritative side closed the connection: ", ec.message());
      co_return false;
    }
    in.CommitReceived(got);
  }
  co_return true;
}

}  // namespace turnout::proxy::redis
