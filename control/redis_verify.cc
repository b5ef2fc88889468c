#include "control/redis_verify.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "control/redis_client.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

using Reason = RedisKeyDifference::Reason;

std::string Truncated(const std::string& s, std::size_t limit) {
  if (s.size() <= limit) return s;
  std::size_t n = limit;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "…";
}

std::string Str(const redisReply* r) { return r && r->str ? std::string(r->str, r->len) : std::string(); }

// Pipelining (RedisAppend, RedisNextReply; after a connection error every
// reply is null): sends what was appended without waiting for replies, so
// both servers work at once.
void Flush(redisContext* c) {
  int done = 0;
  while (!done && redisBufferWrite(c, &done) == REDIS_OK) {
  }
}

// The command that reads a key of type `t` (TYPE's answer).
std::vector<std::string> ValueCommand(const std::string& t, const std::string& key) {
  if (t == "string") return {"GET", key};
  if (t == "list") return {"LRANGE", key, "0", "-1"};
  if (t == "set") return {"SMEMBERS", key};
  if (t == "zset") return {"ZRANGE", key, "0", "-1", "WITHSCORES"};
  if (t == "hash") return {"HGETALL", key};
  return {"DUMP", key};
}

// A value independent of encoding and of order where Redis has none:
// (name, value) pairs, sorted by name for hashes (field, value), sets
// (member, "") and sorted sets (member, score); in order for lists ("", item);
// one pair for strings and DUMPs.
using Value = std::vector<std::pair<std::string, std::string>>;

Value Canonical(const std::string& t, const RedisReply& r) {
  Value v;
  const bool array = r && r->type == REDIS_REPLY_ARRAY;
  if (t == "list" || t == "set") {
    if (array)
      for (size_t i = 0; i < r->elements; ++i)
        v.emplace_back(t == "set" ? Str(r->element[i]) : std::string(), t == "set" ? std::string() : Str(r->element[i]));
  } else if (t == "hash" || t == "zset") {
    // HGETALL: field, value, …; ZRANGE WITHSCORES: member, score, … (RESP2).
    if (array)
      for (size_t i = 0; i + 1 < r->elements; i += 2) v.emplace_back(Str(r->element[i]), Str(r->element[i + 1]));
  } else {
    v.emplace_back(std::string(), r && r->type == REDIS_REPLY_STRING ? Str(r.get()) : std::string());
  }
  if (t != "list") std::sort(v.begin(), v.end());
  return v;
}

// What differs first between two values of type `t`, for the report.
std::string FirstDifference(const std::string& t, const Value& a, const Value& b, std::size_t cut) {
  if (t == "hash" || t == "set" || t == "zset") {
    const char* what = t == "hash" ? "field " : "member ";
    auto i = a.begin();
    auto j = b.begin();
    while (i != a.end() || j != b.end()) {
      if (j == b.end() || (i != a.end() && i->first < j->first))
        return absl::StrCat(what, Truncated(i->first, cut), " only on old");
      if (i == a.end() || j->first < i->first) return absl::StrCat(what, Truncated(j->first, cut), " only on new");
      if (i->second != j->second)
        return absl::StrCat(what, Truncated(i->first, cut), t == "zset" ? ": score " : ": ", Truncated(i->second, cut),
                            " on old, ", Truncated(j->second, cut), " on new");
      ++i;
      ++j;
    }
    return "";
  }
  if (t == "list") {
    for (std::size_t k = 0; k < std::max(a.size(), b.size()); ++k) {
      if (k >= a.size()) return absl::StrCat("element ", k, " only on new");
      if (k >= b.size()) return absl::StrCat("element ", k, " only on old");
      if (a[k].second != b[k].second)
        return absl::StrCat("element ", k, ": ", Truncated(a[k].second, cut), " on old, ", Truncated(b[k].second, cut),
                            " on new");
    }
    return "";
  }
  if (t == "string")
    return absl::StrCat(Truncated(a.empty() ? "" : a[0].second, cut), " on old, ",
                        Truncated(b.empty() ? "" : b[0].second, cut), " on new");
  return "serialized values differ";
}

bool TtlDiffers(std::int64_t a, std::int64_t b, std::int64_t tolerance) {
  if (a < 0 || b < 0) return a != b;
  return std::llabs(a - b) > tolerance;
}

// Compares `keys` on both servers: TYPE and PTTL of the whole batch, then
// each key's value command; two pipelined round trips per batch, both
// servers working at once. Appends what differs, in order.
void CompareBatch(redisContext* old_c, redisContext* new_c, const std::vector<const std::string*>& keys,
                  const RedisVerifyOptions& o, std::vector<RedisKeyDifference>& out) {
  redisContext* const sides[2] = {old_c, new_c};
  for (redisContext* c : sides) {
    for (const std::string* key : keys) {
      (void)RedisAppend(c, {"TYPE", *key});
      (void)RedisAppend(c, {"PTTL", *key});
    }
    Flush(c);
  }
  // "" where TYPE did not answer with a status (connection lost).
  std::vector<std::string> types[2];
  std::vector<std::int64_t> ttls[2];
  for (int s = 0; s < 2; ++s) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      RedisReply t = RedisNextReply(sides[s]);
      types[s].push_back(t && t->type == REDIS_REPLY_STATUS ? Str(t.get()) : std::string());
      RedisReply p = RedisNextReply(sides[s]);
      ttls[s].push_back(p && p->type == REDIS_REPLY_INTEGER ? p->integer : -2);
    }
  }
  // Values only where both sides hold the key with the same type.
  auto comparable = [&](std::size_t i) {
    return !types[0][i].empty() && types[0][i] == types[1][i] && types[0][i] != "none";
  };
  for (int s = 0; s < 2; ++s) {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (comparable(i)) (void)RedisAppend(sides[s], ValueCommand(types[s][i], *keys[i]));
    Flush(sides[s]);
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    RedisKeyDifference d;
    d.key = *keys[i];
    d.old_type = types[0][i].empty() ? "?" : types[0][i];
    d.new_type = types[1][i].empty() ? "?" : types[1][i];
    d.old_ttl_ms = ttls[0][i];
    d.new_ttl_ms = ttls[1][i];
    if (!comparable(i)) {
      if (d.old_type == d.new_type && d.old_type == "none") continue;  // gone from both since SCAN
      d.reason = d.new_type == "none" ? Reason::kOnlyOld : d.old_type == "none" ? Reason::kOnlyNew : Reason::kType;
      if (d.reason == Reason::kType) d.detail = absl::StrCat(d.old_type, " on old, ", d.new_type, " on new");
      out.push_back(std::move(d));
      continue;
    }
    const Value a = Canonical(types[0][i], RedisNextReply(sides[0]));
    const Value b = Canonical(types[1][i], RedisNextReply(sides[1]));
    if (a != b) {
      d.reason = Reason::kValue;
      d.detail = FirstDifference(types[0][i], a, b, o.max_value_chars);
      out.push_back(std::move(d));
    } else if (TtlDiffers(d.old_ttl_ms, d.new_ttl_ms, o.ttl_tolerance_ms)) {
      d.reason = Reason::kTtl;
      d.detail = absl::StrCat("ttl ", d.old_ttl_ms, " ms on old, ", d.new_ttl_ms, " ms on new");
      out.push_back(std::move(d));
    }
  }
}

// Every key matching `glob` on either server: one SCAN in flight on each at
// a time, both sent before either reply is read.
absl::Status ScanBoth(redisContext* old_c, redisContext* new_c, const std::string& glob, std::set<std::string>& keys) {
  redisContext* const sides[2] = {old_c, new_c};
  std::string cursor[2] = {"0", "0"};
  bool done[2] = {false, false};
  while (!done[0] || !done[1]) {
    for (int s = 0; s < 2; ++s)
      if (!done[s]) {
        (void)RedisAppend(sides[s], {"SCAN", cursor[s], "MATCH", glob, "COUNT", "1000"});
        Flush(sides[s]);
      }
    for (int s = 0; s < 2; ++s) {
      if (done[s]) continue;
      RedisReply page = RedisNextReply(sides[s]);
      if (!page || page->type != REDIS_REPLY_ARRAY || page->elements != 2)
        return absl::UnavailableError(absl::StrCat(s == 0 ? "old" : "new", ": SCAN failed",
                                                   page && page->type == REDIS_REPLY_ERROR ? ": " + Str(page.get()) : ""));
      cursor[s] = Str(page->element[0]);
      for (size_t k = 0; k < page->element[1]->elements; ++k) keys.insert(Str(page->element[1]->element[k]));
      done[s] = cursor[s] == "0";
    }
  }
  return absl::OkStatus();
}

absl::Status CompareAll(redisContext* old_c, redisContext* new_c, const std::vector<std::string>& keys,
                        const RedisVerifyOptions& o, std::vector<RedisKeyDifference>& out, bool count = true) {
  std::vector<const std::string*> batch;
  for (std::size_t i = 0; i < keys.size();) {
    batch.clear();
    for (; i < keys.size() && batch.size() < o.batch; ++i) batch.push_back(&keys[i]);
    CompareBatch(old_c, new_c, batch, o, out);
    if (count && o.after_batch)
      if (auto st = o.after_batch(static_cast<std::int64_t>(batch.size())); !st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

const char* RedisDifferenceReasonName(Reason r) {
  switch (r) {
    case Reason::kOnlyOld:
      return "only_old";
    case Reason::kOnlyNew:
      return "only_new";
    case Reason::kType:
      return "type";
    case Reason::kValue:
      return "value";
    case Reason::kTtl:
      return "ttl";
  }
  return "value";
}

absl::StatusOr<RedisVerifyResult> VerifyRedisKeys(redisContext* old_c, redisContext* new_c,
                                                  const std::vector<std::string>& globs,
                                                  const RedisVerifyOptions& options) {
  RedisVerifyOptions o = options;
  o.batch = std::max<std::size_t>(o.batch, 1);
  RedisVerifyResult out;
  out.mode = o.recheck_delay > absl::ZeroDuration() ? "recheck" : "single pass";
  // Keys of each glob in order; a key matched by two globs is compared twice
  // (as before: each scope stands on its own).
  std::vector<RedisKeyDifference> found;
  for (const auto& glob : globs) {
    std::set<std::string> seen;
    if (auto st = ScanBoth(old_c, new_c, glob, seen); !st.ok()) return st;
    out.keys_compared += static_cast<std::int64_t>(seen.size());
    if (auto st = CompareAll(old_c, new_c, std::vector<std::string>(seen.begin(), seen.end()), o, found); !st.ok())
      return st;
  }
  if (!found.empty() && o.recheck_delay > absl::ZeroDuration()) {
    absl::SleepFor(o.recheck_delay);
    std::vector<std::string> again;
    for (const auto& d : found) again.push_back(d.key);
    found.clear();
    if (auto st = CompareAll(old_c, new_c, again, o, found, /*count=*/false); !st.ok()) return st;
  }
  if (old_c->err || new_c->err)
    return absl::UnavailableError(absl::StrCat(old_c->err ? "old: " : "new: ", old_c->err ? old_c->errstr : new_c->errstr));
  out.keys_differing = static_cast<std::int64_t>(found.size());
  if (found.size() > o.max_reported) found.resize(o.max_reported);
  out.differences = std::move(found);
  return out;
}

json::object RedisKeyDifferenceToJson(const RedisKeyDifference& d) {
  json::object o{{"key", d.key}, {"reason", RedisDifferenceReasonName(d.reason)}, {"old_type", d.old_type},
                 {"new_type", d.new_type}, {"old_ttl_ms", d.old_ttl_ms}, {"new_ttl_ms", d.new_ttl_ms}};
  if (!d.detail.empty()) o["detail"] = d.detail;
  return o;
}

}  // namespace turnout::control
