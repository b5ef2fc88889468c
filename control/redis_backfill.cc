#include "control/redis_backfill.h"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/redis_client.h"
#include "routing/key_stripes.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using Args = std::vector<std::string>;
using Reply = RedisReply;

std::string Text(const redisReply* r) { return r && r->str ? std::string(r->str, r->len) : std::string(); }

Reply Command(redisContext* c, const Args& args) { return RedisCommand(c, args); }

absl::Status ConnectionError(redisContext* c, const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", c->err ? c->errstr : "no reply"));
}

// Every command appended to the output buffer, then every reply read: one
// round trip for the batch (redisGetReply flushes the buffer first).
absl::StatusOr<std::vector<Reply>> Pipeline(redisContext* c, const std::vector<Args>& commands,
                                            const std::string& side) {
  for (const auto& args : commands)
    if (!RedisAppend(c, args)) return ConnectionError(c, side);
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    Reply r = RedisNextReply(c);
    if (!r) return ConnectionError(c, side);
    replies.push_back(std::move(r));
  }
  return replies;
}

absl::StatusOr<RedisConn> Connect(const routing::Backend& b, const char* side) {
  auto c = RedisConnect(b);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(side, " (", c.status().message(), ")"));
  // A batch of large values may take longer than the default 5 s to answer.
  timeval tv{30, 0};
  redisSetTimeout(c->get(), tv);
  // Named, so an operator tells turnout's copies (SCAN, DUMP, RESTORE) from
  // the application's in CLIENT LIST, and each of them in the SLOWLOG
  // (issue 13 item 17). A server that refuses the name still gets the copy.
  Reply named = Command(c->get(), {"CLIENT", "SETNAME", "turnout"});
  if (!named) return ConnectionError(c->get(), absl::StrCat(side, ": CLIENT SETNAME"));
  return c;
}

struct ScanPage {
  std::string cursor;
  std::vector<std::string> keys;
};

absl::StatusOr<ScanPage> Scan(redisContext* c, const std::string& cursor, const std::string& glob, int count) {
  Reply r = Command(c, {"SCAN", cursor, "MATCH", glob, "COUNT", std::to_string(count)});
  if (!r) return ConnectionError(c, "old: SCAN");
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY)
    return absl::InternalError(absl::StrCat("old: SCAN: ", Text(r.get())));
  ScanPage page{Text(r->element[0]), {}};
  for (std::size_t i = 0; i < r->element[1]->elements; ++i) page.keys.push_back(Text(r->element[1]->element[i]));
  return page;
}

// Keys matching the globs, for the progress ratio: DBSIZE for "*", else a
// keys-only SCAN pass (no values travel).
absl::StatusOr<std::int64_t> EstimateKeys(redisContext* c, const std::vector<std::string>& globs) {
  std::int64_t total = 0;
  for (const auto& glob : globs) {
    if (glob == "*") {
      Reply r = Command(c, {"DBSIZE"});
      if (!r || r->type != REDIS_REPLY_INTEGER) return ConnectionError(c, "old: DBSIZE");
      total += r->integer;
      continue;
    }
    std::string cursor = "0";
    do {
      auto page = Scan(c, cursor, glob, 1000);
      if (!page.ok()) return page.status();
      total += static_cast<std::int64_t>(page->keys.size());
      cursor = page->cursor;
    } while (cursor != "0");
  }
  return total;
}

// Unions old's members into new's key of the same type (new's values win).
// Returns whether new changed.
absl::StatusOr<bool> MergeKey(redisContext* from, redisContext* to, const std::string& key, const std::string& type) {
  if (type != "hash" && type != "set" && type != "zset") return false;  // strings, lists, streams: keep new's
  Reply to_type = Command(to, {"TYPE", key});
  if (!to_type) return ConnectionError(to, "new: TYPE");
  if (Text(to_type.get()) != type) return false;
  Reply members = type == "hash" ? Command(from, {"HGETALL", key})
                  : type == "set" ? Command(from, {"SMEMBERS", key})
                                  : Command(from, {"ZRANGE", key, "0", "-1", "WITHSCORES"});
  if (!members) return ConnectionError(from, "old: read members");
  if (members->type != REDIS_REPLY_ARRAY) return false;  // gone or changed type since DUMP
  std::vector<Args> writes;
  if (type == "hash") {
    for (std::size_t i = 0; i + 1 < members->elements; i += 2)
      writes.push_back({"HSETNX", key, Text(members->element[i]), Text(members->element[i + 1])});
  } else {
    // One command per 500 members keeps each request small.
    constexpr std::size_t kChunk = 500;
    const std::size_t step = type == "set" ? 1 : 2;
    for (std::size_t i = 0; i < members->elements; i += kChunk * step) {
      Args a = type == "set" ? Args{"SADD", key} : Args{"ZADD", key, "NX"};
      for (std::size_t j = i; j < members->elements && j < i + kChunk * step; j += step) {
        if (type == "set") {
          a.push_back(Text(members->element[j]));
        } else if (j + 1 < members->elements) {
          a.push_back(Text(members->element[j + 1]));  // score, then member
          a.push_back(Text(members->element[j]));
        }
      }
      writes.push_back(std::move(a));
    }
  }
  auto replies = Pipeline(to, writes, "new");
  if (!replies.ok()) return replies.status();
  bool changed = false;
  for (const auto& r : *replies) {
    if (r->type == REDIS_REPLY_ERROR) return absl::InternalError(absl::StrCat("new: merge ", key, ": ", Text(r.get())));
    changed |= r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  }
  return changed;
}

// Per-key order with live dual-writes (issue 13 item 18). A session holds
// a key's stripe from before old gets its write until new applied it; the
// backfill holds the stripes of a page's keys from before DUMP on old until
// RESTORE (or merge) on new answered. So a copy lands either wholly before
// a live write of that key on both sides or wholly after it: no RESTORE of
// an older value over a newer write, no key a live DEL removed brought
// back, whatever the conflict rule. Session owners are connection ids
// (small); the backfill is one owner far above them.
constexpr std::uint64_t kBackfillOwner = (std::uint64_t{1} << 38) + 1;
// A holder that never lets go is released by its secondary's reply
// timeout (10 s); past this the page is copied unordered, with a note.
constexpr auto kKeyOrderWait = std::chrono::seconds(60);

class ThreadWaiter final : public routing::KeyStripes::Waiter {
 public:
  void Notify() override {
    {
      std::lock_guard lock(mu_);
      notified_ = true;
    }
    cv_.notify_one();
  }
  void Reset() {
    std::lock_guard lock(mu_);
    notified_ = false;
  }
  void Wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [&] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// The stripes of one page, held while it is copied; released on every exit.
class HeldKeys {
 public:
  HeldKeys() : waiter_(std::make_shared<ThreadWaiter>()) {}
  ~HeldKeys() { Release(); }
  HeldKeys(const HeldKeys&) = delete;
  HeldKeys& operator=(const HeldKeys&) = delete;

  // False: the copy must stop (pause, rollback, shutdown) before it got them.
  bool Take(const std::vector<std::string>& keys, BackfillContext& ctx) {
    Release();
    for (const auto& k : keys) routing::KeyStripes::AddStripe(k, stripes_);
    auto& order = routing::KeyStripes::Global();
    const auto deadline = std::chrono::steady_clock::now() + kKeyOrderWait;
    std::uint32_t blocked = 0;
    while (!order.TryAcquire(stripes_, kBackfillOwner, false, &blocked)) {
      if (!ctx.ShouldContinue()) {
        stripes_.clear();
        return false;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ctx.Log("redis backfill: keys held by live writes for 60 s; copying this page unordered");
        stripes_.clear();
        return true;
      }
      const std::uint32_t registered = blocked;
      waiter_->Reset();
      order.Register(registered, waiter_);
      const bool got = order.TryAcquire(stripes_, kBackfillOwner, false, &blocked);
      if (!got) waiter_->Wait(std::chrono::milliseconds(100));  // woken by the release; bounded to see a stop
      order.Unregister(registered, waiter_.get());
      if (got) break;
    }
    held_ = true;
    return true;
  }
  void Release() {
    if (held_) routing::KeyStripes::Global().Release(stripes_, kBackfillOwner);
    held_ = false;
    stripes_.clear();
  }

 private:
  std::shared_ptr<ThreadWaiter> waiter_;
  routing::KeyStripes::Stripes stripes_;
  bool held_ = false;
};

std::int64_t IntOr(const json::value& v, const char* key, std::int64_t fallback) {
  if (!v.is_object()) return fallback;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<std::int64_t>() : fallback;
}

std::string StringOr(const json::value& v, const char* key, const std::string& fallback) {
  if (!v.is_object()) return fallback;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_string() ? std::string(f->as_string()) : fallback;
}

}  // namespace

absl::Status CopyRedis(const routing::Backend& old_backend, const routing::Backend& new_backend,
                       const std::vector<std::string>& scope_globs, const DataSpec& spec, RouteProgress& progress,
                       BackfillContext& ctx) {
  const std::vector<std::string> globs = scope_globs.empty() ? std::vector<std::string>{"*"} : scope_globs;
  auto from = Connect(old_backend, "old");
  if (!from.ok()) return from.status();
  auto to = Connect(new_backend, "new");
  if (!to.ok()) return to.status();

  // Resume point: the pass, the glob being scanned and its cursor.
  const int passes = std::max(1, spec.passes);
  int pass = static_cast<int>(std::max<std::int64_t>(1, IntOr(progress.checkpoint, "pass", 1)));
  std::size_t glob_index = static_cast<std::size_t>(IntOr(progress.checkpoint, "glob", 0));
  std::string cursor = StringOr(progress.checkpoint, "cursor", "0");
  if (progress.checkpoint.is_null() || progress.total == 0) {
    auto total = EstimateKeys(from->get(), globs);
    if (!total.ok()) return total.status();
    progress.total = *total * passes;
  }
  const bool merge = spec.rule == ConflictRule::kMerge;
  const bool replace = spec.rule == ConflictRule::kReplace;
  const std::size_t batch = static_cast<std::size_t>(spec.batch_size > 0 ? spec.batch_size : DataSpec::kRedisBatch);
  std::size_t unsaved = 0;  // keys applied since the last checkpoint
  HeldKeys held;

  // Later passes SCAN again: keys created during an earlier pass may have
  // been missed by it (SCAN only promises keys present throughout).
  while (pass <= passes) {
    if (glob_index == globs.size()) {
      if (pass == passes) break;
      ++pass;
      glob_index = 0;
      ctx.Log(absl::StrCat("scan pass ", pass - 1, " of ", passes, " done"));
    }
    if (!ctx.ShouldContinue()) return StoppedAtBatchBoundary();
    const std::string& glob = globs[glob_index];
    auto page = Scan(from->get(), cursor, glob, static_cast<int>(batch));
    if (!page.ok()) return page.status();
    cursor = page->cursor;

    if (!page->keys.empty()) {
      if (!held.Take(page->keys, ctx)) return StoppedAtBatchBoundary();
      std::vector<Args> reads;
      for (const auto& k : page->keys) {
        reads.push_back({"DUMP", k});
        reads.push_back({"PTTL", k});
        if (merge) reads.push_back({"TYPE", k});
      }
      auto got = Pipeline(from->get(), reads, "old");
      if (!got.ok()) return got.status();
      const std::size_t per_key = merge ? 3 : 2;
      std::vector<Args> restores;
      std::vector<std::size_t> restored_key;  // index into page->keys
      for (std::size_t i = 0; i < page->keys.size(); ++i) {
        const redisReply* dump = (*got)[i * per_key].get();
        const redisReply* pttl = (*got)[i * per_key + 1].get();
        if (dump->type == REDIS_REPLY_ERROR)
          return absl::InternalError(absl::StrCat("old: DUMP ", page->keys[i], ": ", Text(dump)));
        if (dump->type != REDIS_REPLY_STRING) continue;  // expired or deleted since SCAN
        // PTTL: -1 no expiry (RESTORE's 0), -2 gone meanwhile.
        const long long ttl = pttl->type == REDIS_REPLY_INTEGER ? pttl->integer : -1;
        if (ttl == -2) continue;
        Args a{"RESTORE", page->keys[i], std::to_string(ttl > 0 ? ttl : 0), Text(dump)};
        if (replace) a.push_back("REPLACE");
        restores.push_back(std::move(a));
        restored_key.push_back(i);
      }
      auto put = Pipeline(to->get(), restores, "new");
      if (!put.ok()) return put.status();
      for (std::size_t j = 0; j < put->size(); ++j) {
        const redisReply* r = (*put)[j].get();
        const std::string& key = page->keys[restored_key[j]];
        if (r->type != REDIS_REPLY_ERROR) {
          ++progress.written;
          continue;
        }
        const std::string err = Text(r);
        if (!absl::StartsWith(err, "BUSYKEY")) return absl::InternalError(absl::StrCat("new: RESTORE ", key, ": ", err));
        // New already has the key: none keeps it, merge unions collections.
        if (merge) {
          auto changed = MergeKey(from->get(), to->get(), key, Text((*got)[restored_key[j] * per_key + 2].get()));
          if (!changed.ok()) return changed.status();
          if (*changed) ++progress.written;
        }
      }
      progress.copied += static_cast<std::int64_t>(page->keys.size());
      held.Release();
    }
    unsaved += page->keys.size();
    const bool glob_done = cursor == "0";
    if (glob_done) {
      ++glob_index;
      cursor = "0";
    }
    // A batch is `batch_size` keys, not one SCAN page: a sparse glob returns
    // a few keys per page, each not worth a checkpoint.
    if (unsaved >= batch || glob_done) {
      progress.checkpoint =
          json::object{{"pass", pass}, {"glob", static_cast<std::int64_t>(glob_index)}, {"cursor", cursor}};
      if (auto st = ctx.Checkpoint(progress); !st.ok()) return st;
      unsaved = 0;
      if (glob_index < globs.size() || pass < passes) ctx.Sleep(spec.sleep);
    }
  }
  return absl::OkStatus();
}

}  // namespace turnout::control
