#include "proxy/redis/pubsub_frame.h"

#include <charconv>

namespace turnout::proxy::redis {
namespace {

// One CRLF-terminated line starting at `pos`; false when incomplete.
bool Line(std::string_view s, std::size_t& pos, std::string_view& line) noexcept {
  const std::size_t end = s.find("\r\n", pos);
  if (end == std::string_view::npos) return false;
  line = s.substr(pos, end - pos);
  pos = end + 2;
  return true;
}

bool ToInt(std::string_view s, std::int64_t& v) noexcept {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

// A string element ($ bulk or + simple); `null` for RESP2 "$-1" or RESP3 "_".
// Returns false when incomplete; sets ok=false when it is not a string.
bool StringElement(std::string_view s, std::size_t& pos, std::string_view& value, bool& ok) noexcept {
  ok = true;
  if (pos >= s.size()) return false;
  std::string_view line;
  std::size_t p = pos;
  if (!Line(s, p, line) || line.empty()) return false;
  if (line[0] == '+') {
    value = line.substr(1);
  } else if (line[0] == '$') {
    std::int64_t n = 0;
    if (!ToInt(line.substr(1), n)) { ok = false; return true; }
    if (n < 0) {
      value = {};
    } else {
      if (s.size() - p < static_cast<std::size_t>(n) + 2) return false;
      value = s.substr(p, static_cast<std::size_t>(n));
      p += static_cast<std::size_t>(n) + 2;
    }
  } else if (line == "_") {
    value = {};
  } else {
    ok = false;
    return true;
  }
  pos = p;
  return true;
}

PubSubKind KindOf(std::string_view name) noexcept {
  // Redis writes these in lower case (server.c shared objects).
  if (name == "message" || name == "pmessage" || name == "smessage") return PubSubKind::kMessage;
  if (name == "subscribe") return PubSubKind::kSubscribe;
  if (name == "unsubscribe") return PubSubKind::kUnsubscribe;
  if (name == "psubscribe") return PubSubKind::kPSubscribe;
  if (name == "punsubscribe") return PubSubKind::kPUnsubscribe;
  if (name == "ssubscribe") return PubSubKind::kSSubscribe;
  if (name == "sunsubscribe") return PubSubKind::kSUnsubscribe;
  if (name == "invalidate") return PubSubKind::kInvalidate;
  return PubSubKind::kNotPubSub;
}

}  // namespace

bool PeekPubSub(std::string_view s, PubSubPeek& out) noexcept {
  out = PubSubPeek{};
  if (s.empty()) return false;
  if (s[0] != '*' && s[0] != '>') return true;  // not an aggregate: a plain reply
  out.push = s[0] == '>';
  std::size_t pos = 0;
  std::string_view header;
  if (!Line(s, pos, header)) return false;
  std::int64_t n = 0;
  if (!ToInt(header.substr(1), n) || n < 1) return true;
  std::string_view first;
  bool ok = true;
  if (!StringElement(s, pos, first, ok)) return false;
  if (!ok) return true;
  out.kind = KindOf(first);
  if (!IsConfirmation(out.kind)) return true;
  if (n != 3) {
    out.kind = PubSubKind::kNotPubSub;
    return true;
  }
  std::string_view channel;
  if (!StringElement(s, pos, channel, ok)) return false;
  if (!ok) {
    out.kind = PubSubKind::kNotPubSub;
    return true;
  }
  std::string_view count;
  if (!Line(s, pos, count)) return false;
  if (count.size() < 2 || count[0] != ':' || !ToInt(count.substr(1), out.count)) {
    out.kind = PubSubKind::kNotPubSub;
  }
  return true;
}

}  // namespace turnout::proxy::redis
