// libFuzzer target for the RESP codecs. The first byte picks the chunk size
// the rest is fed in (as a session's reads would split it), and the same
// bytes go through the request parser, the reply framer and the Value
// decoder. Invariants: no crash, frames never exceed the input, and the
// framer and the decoder agree on where a complete reply ends.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_value.h"
#include "protocol/resp/request_parser.h"

namespace {

using turnout::protocol::resp::DecodeOptions;
using turnout::protocol::resp::DecodeReply;
using turnout::protocol::resp::ParseStatus;
using turnout::protocol::resp::ReplyLimits;
using turnout::protocol::resp::ReplyParser;
using turnout::protocol::resp::RequestLimits;
using turnout::protocol::resp::RequestParser;
using turnout::protocol::resp::Value;

void Check(bool ok) {
  if (!ok) std::abort();
}

// Feeds `input` growing by `chunk` bytes; consumes each complete frame.
template <typename Parser, typename OnFrame>
void Drive(Parser& parser, std::string_view input, std::size_t chunk, OnFrame on_frame) {
  std::size_t start = 0;
  std::size_t have = 0;
  while (start < input.size()) {
    have = std::min(input.size(), have + chunk);
    ParseStatus st = parser.Parse(input.substr(start, have - start));
    while (st == ParseStatus::kComplete) {
      std::size_t n = on_frame(input.substr(start, have - start));
      Check(n > 0 && n <= have - start);
      start += n;
      if (start >= have) break;
      st = parser.Parse(input.substr(start, have - start));
    }
    if (st == ParseStatus::kError) return;
    if (have == input.size() && st != ParseStatus::kComplete) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = static_cast<std::size_t>(data[0] % 64) + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  // Small limits keep allocations bounded whatever the lengths claim.
  RequestParser requests(RequestLimits{.max_bulk_length = 1 << 20,
                                       .max_multibulk_length = 4096,
                                       .max_inline_length = 4096});
  requests.set_authenticated((data[0] & 0x80) == 0);
  Drive(requests, input, chunk, [&](std::string_view /*window*/) {
    const auto& cmd = requests.command();
    Check(!cmd.args.empty());
    Check(cmd.command_offset < cmd.frame_length);
    return cmd.frame_length;
  });

  ReplyParser replies(ReplyLimits{.max_bulk_length = 1 << 20, .max_depth = 64});
  Drive(replies, input, chunk, [&](std::string_view window) {
    std::size_t n = replies.frame().length;
    Value v;
    std::size_t consumed = 0;
    std::error_code ec = DecodeReply(window.substr(0, n), v, &consumed,
                                     DecodeOptions{.max_depth = 64, .max_bulk_length = 1 << 20});
    Check(!ec && consumed == n);
    return n;
  });

  // The decoder alone on raw bytes.
  Value v;
  (void)DecodeReply(input, v, nullptr, DecodeOptions{.max_depth = 64, .max_bulk_length = 1 << 20});
  return 0;
}
