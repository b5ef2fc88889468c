#pragma once
// Telling pub/sub traffic apart on an upstream connection (RESP2 and RESP3).
//
// A subscribed connection carries two kinds of frames: replies to the
// client's commands, in order, and messages the server pushes at any time.
// In RESP3 the out-of-band ones are push frames (">"); in RESP2 they are
// arrays whose first element names their kind ("message", "pmessage",
// "smessage"). Subscription confirmations are also push/array frames, one
// per channel, and carry the connection's subscription count as their third
// element (pubsub.c addReplyPubsubSubscribed and friends). The session needs
// the kind and that count, nothing else, so this peeks instead of decoding.

#include <cstdint>
#include <string_view>

namespace turnout::proxy::redis {

enum class PubSubKind : std::uint8_t {
  kNotPubSub,     // not an array/push, or its first element names no pub/sub kind
  kMessage,       // message / pmessage / smessage: out of band
  kInvalidate,    // RESP3 client-side caching invalidation: out of band
  kSubscribe,
  kUnsubscribe,
  kPSubscribe,
  kPUnsubscribe,
  kSSubscribe,
  kSUnsubscribe,
};

struct PubSubPeek {
  PubSubKind kind = PubSubKind::kNotPubSub;
  bool push = false;          // RESP3 ">" frame
  std::int64_t count = -1;    // subscription count of a confirmation
};

inline bool IsConfirmation(PubSubKind k) noexcept {
  return k >= PubSubKind::kSubscribe;
}

// Peeks at the start of a reply frame (complete, or a prefix of at least its
// first element; a confirmation's count needs the complete frame). Returns
// false when `frame` is too short to tell.
bool PeekPubSub(std::string_view frame, PubSubPeek& out) noexcept;

}  // namespace turnout::proxy::redis
