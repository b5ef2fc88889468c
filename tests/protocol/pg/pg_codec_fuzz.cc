// libFuzzer target for the PostgreSQL codec and SQL classifier. The first
// byte picks the read size; the rest is fed in chunks of that size through a
// frontend and a backend FrameDecoder (bounded buffer, like a session), every
// frame goes through the typed decoders, and the payload text through the
// classifier.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/sql_classifier.h"

namespace {

using namespace turnout::protocol::pg;

// Allocations stay bounded: frames above this are skipped by length, as the
// relay would stream them.
constexpr std::size_t kBufferCapacity = 64 * 1024;

template <typename T>
void Try(Bytes payload) {
  T msg;
  (void)Decode(payload, &msg);
}

void DecodeFrontend(const Frame& f, SqlClassifier& classifier, Classification& c) {
  switch (f.kind) {
    case FrameKind::kStartupMessage: {
      StartupMessage m;
      (void)DecodeStartupMessage(f, &m);
      return;
    }
    case FrameKind::kCancelRequest: {
      CancelRequest m;
      (void)DecodeCancelRequest(f, &m);
      return;
    }
    case FrameKind::kSslRequest:
    case FrameKind::kGssEncRequest:
      return;
    case FrameKind::kRegular:
      break;
  }
  switch (f.type) {
    case 'Q': {
      Query q;
      if (!Decode(f.payload, &q)) classifier.Classify(q.sql, &c);
      break;
    }
    case 'P': {
      Parse p;
      if (!Decode(f.payload, &p)) classifier.Classify(p.query, &c);
      break;
    }
    case 'B': Try<Bind>(f.payload); break;
    case 'D': Try<Describe>(f.payload); break;
    case 'E': Try<Execute>(f.payload); break;
    case 'C': Try<Close>(f.payload); break;
    case 'S': Try<Sync>(f.payload); break;
    case 'H': Try<Flush>(f.payload); break;
    case 'X': Try<Terminate>(f.payload); break;
    case 'd': Try<CopyData>(f.payload); break;
    case 'c': Try<CopyDone>(f.payload); break;
    case 'f': Try<CopyFail>(f.payload); break;
    case 'p':
      Try<PasswordMessage>(f.payload);
      Try<SaslInitialResponse>(f.payload);
      Try<SaslResponse>(f.payload);
      break;
    default: break;
  }
}

void DecodeBackend(const Frame& f) {
  switch (f.type) {
    case 'R': Try<Authentication>(f.payload); break;
    case 'S': Try<ParameterStatus>(f.payload); break;
    case 'K': Try<BackendKeyData>(f.payload); break;
    case 'Z': Try<ReadyForQuery>(f.payload); break;
    case 'E': Try<ErrorResponse>(f.payload); break;
    case 'N': Try<NoticeResponse>(f.payload); break;
    case 'C': Try<CommandComplete>(f.payload); break;
    case 'T': Try<RowDescription>(f.payload); break;
    case 'D': Try<DataRow>(f.payload); break;
    case 'A': Try<NotificationResponse>(f.payload); break;
    case 't': Try<ParameterDescription>(f.payload); break;
    case 'v': Try<NegotiateProtocolVersion>(f.payload); break;
    case 'G': Try<CopyInResponse>(f.payload); break;
    case 'H': Try<CopyOutResponse>(f.payload); break;
    case 'W': Try<CopyBothResponse>(f.payload); break;
    case '1': Try<ParseComplete>(f.payload); break;
    case '2': Try<BindComplete>(f.payload); break;
    case '3': Try<CloseComplete>(f.payload); break;
    case 'n': Try<NoData>(f.payload); break;
    case 'I': Try<EmptyQueryResponse>(f.payload); break;
    case 's': Try<PortalSuspended>(f.payload); break;
    default: break;
  }
}

// Feeds `input` in chunks through one decoder the way a session's bounded
// buffer would, skipping oversized frames by their remaining length.
void Drive(Direction dir, std::string_view input, std::size_t chunk, SqlClassifier& classifier,
           Classification& c) {
  FrameDecoder decoder(dir, FrameLimits{.max_message_size = 1u << 20});
  std::string buffer;
  buffer.reserve(kBufferCapacity);
  std::size_t pos = 0;
  std::size_t skip = 0;
  while (pos < input.size()) {
    std::string_view in = input.substr(pos, chunk);
    pos += in.size();
    if (skip > 0) {
      const std::size_t n = std::min(skip, in.size());
      skip -= n;
      in.remove_prefix(n);
    }
    buffer.append(in);
    while (true) {
      const FrameResult r = decoder.Decode(buffer);
      if (r.failed()) return;
      if (r.need_more()) {
        if (r.bytes_needed > kBufferCapacity) {
          // Stream it: drop what is buffered and skip the rest by length.
          skip = r.bytes_needed - buffer.size();
          buffer.clear();
        }
        break;
      }
      if (dir == Direction::kFrontend) {
        DecodeFrontend(r.value, classifier, c);
      } else {
        DecodeBackend(r.value);
      }
      buffer.erase(0, r.value.total_size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  SqlClassifier classifier;
  Classification c;
  Drive(Direction::kFrontend, input, chunk, classifier, c);
  Drive(Direction::kBackend, input, chunk, classifier, c);
  // The whole input as SQL text, both string modes.
  classifier.Classify(input, &c);
  classifier.set_standard_conforming_strings(false);
  classifier.Classify(input, &c);
  for (const StatementInfo& s : c.statements) {
    for (const TableRef& t : s.tables) (void)t.Normalized();
  }
  return 0;
}
