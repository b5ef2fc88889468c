#include "proxy/redis/large_request.h"

#include <algorithm>
#include <cstring>

#include "protocol/resp/request_parser.h"

namespace turnout::proxy::redis {

using protocol::resp::CodecError;

void LargeRequestWalker::Reset() noexcept {
  state_ = State::kCommandStart;
  argc_ = args_left_ = 0;
  payload_left_ = 0;
  walked_ = 0;
  capturing_ = true;
  n_captured_ = 0;
}

LargeRequestWalker::Status LargeRequestWalker::Walk(std::span<const std::uint8_t> input,
                                                    std::size_t& used) noexcept {
  const char* data = reinterpret_cast<const char*>(input.data());
  const std::size_t size = input.size();
  std::size_t pos = 0;
  auto line = [&](std::string_view& out) {
    const void* lf = std::memchr(data + pos, '\n', size - pos);
    if (lf == nullptr) return false;
    const std::size_t end = static_cast<const char*>(lf) - data;
    std::size_t stop = end;
    if (stop > pos && data[stop - 1] == '\r') --stop;
    out = std::string_view(data + pos, stop - pos);
    pos = end + 1;
    return true;
  };
  // A "*<n>" or "$<n>" line at `pos`: its number, or kIncomplete with
  // `pos` left at the line's start (the rest has not arrived yet).
  enum class Header { kIncomplete, kInvalid, kParsed };
  auto header = [&](std::int64_t& n) {
    const std::size_t start = pos;
    std::string_view l;
    if (!line(l)) {
      pos = start;
      return Header::kIncomplete;
    }
    return protocol::resp::ParseRedisInt64(l.substr(1), n) ? Header::kParsed : Header::kInvalid;
  };
  Status status = Status::kNeedMore;
  while (pos < size) {
    if (state_ == State::kCommandStart) {
      if (data[pos] == '\r' || data[pos] == '\n') {  // blank inline line
        ++pos;
        continue;
      }
      if (data[pos] != '*') {
        used = pos;
        walked_ += pos;
        return Fail(CodecError::kTooBigInlineRequest);
      }
      const std::size_t start = pos;
      std::int64_t n = 0;
      const Header h = header(n);
      if (h == Header::kIncomplete) break;
      if (h == Header::kInvalid || n > max_multibulk_) {
        used = start;
        return Fail(CodecError::kInvalidMultibulkLength);
      }
      if (n <= 0) continue;  // empty command: Redis skips it
      argc_ = args_left_ = n;
      state_ = State::kBulkHeader;
    } else if (state_ == State::kBulkHeader) {
      if (data[pos] != '$') {
        used = pos;
        return Fail(CodecError::kExpectedDollar, data[pos]);
      }
      const std::size_t start = pos;
      std::int64_t n = 0;
      const Header h = header(n);
      if (h == Header::kIncomplete) break;
      if (h == Header::kInvalid || n < 0 || n > max_bulk_) {
        used = start;
        return Fail(CodecError::kInvalidBulkLength);
      }
      payload_left_ = static_cast<std::uint64_t>(n) + 2;
      if (capturing_ && n_captured_ < kCapturedArgs && size - pos >= payload_left_) {
        captured_[n_captured_++] = std::string_view(data + pos, static_cast<std::size_t>(n));
      } else {
        capturing_ = false;  // keep the captured arguments a prefix
      }
      state_ = State::kPayload;
    } else {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, size - pos));
      pos += take;
      payload_left_ -= take;
      if (payload_left_ == 0) {
        if (--args_left_ == 0) {
          status = Status::kDone;
          break;
        }
        state_ = State::kBulkHeader;
      }
    }
  }
  capturing_ = false;
  used = pos;
  walked_ += pos;
  return status;
}

}  // namespace turnout::proxy::redis
