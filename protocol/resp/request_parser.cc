#include "protocol/resp/request_parser.h"

#include <cstring>
#include <limits>
#include <optional>

namespace turnout::protocol::resp {
namespace {

// C isspace() in the "C" locale, which sdssplitargs uses to skip blanks.
constexpr bool IsCSpace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

constexpr bool IsHex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

constexpr int HexValue(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Redis searches lines with strchr(), which stops at a NUL byte: a line with
// a NUL before its terminator is never found and the request waits until it
// trips the size limit. memchr for both and keep the earlier one to match.
// Returns the index of `ch` in [from, size) or npos; *stop is where the next
// search may resume (the NUL, or size).
std::size_t FindLikeStrchr(const char* data, std::size_t from, std::size_t size, char ch,
                           std::size_t* resume) noexcept {
  // Look for the NUL only before the hit: scanning to the end of a deep
  // pipeline for every command would make framing quadratic.
  const void* hit = std::memchr(data + from, ch, size - from);
  std::size_t stop = hit == nullptr ? size : static_cast<std::size_t>(static_cast<const char*>(hit) - data);
  const void* nul = std::memchr(data + from, '\0', stop - from);
  if (nul != nullptr) {
    *resume = static_cast<std::size_t>(static_cast<const char*>(nul) - data);
    return std::string_view::npos;
  }
  if (hit == nullptr) {
    *resume = size;
    return std::string_view::npos;
  }
  return stop;
}

}  // namespace

bool ParseRedisInt64(std::string_view s, std::int64_t& out) noexcept {
  // util.c string2ll: LONG_STR_SIZE is 21, so 20 characters at most.
  if (s.empty() || s.size() > 20) return false;
  if (s.size() == 1 && s[0] == '0') {
    out = 0;
    return true;
  }
  std::size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  if (s[i] < '1' || s[i] > '9') return false;
  std::uint64_t v = static_cast<std::uint64_t>(s[i] - '0');
  for (++i; i < s.size(); ++i) {
    char c = s[i];
    if (c < '0' || c > '9') return false;
    std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  constexpr std::uint64_t kMaxPos = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (negative) {
    if (v > kMaxPos + 1) return false;
    out = v == kMaxPos + 1 ? std::numeric_limits<std::int64_t>::min()
                           : -static_cast<std::int64_t>(v);
  } else {
    if (v > kMaxPos) return false;
    out = static_cast<std::int64_t>(v);
  }
  return true;
}

bool SplitInlineArgs(std::string_view line, std::string& scratch,
                     std::vector<std::string_view>& args) noexcept {
  if (std::size_t nul = line.find('\0'); nul != std::string_view::npos) line = line.substr(0, nul);
  const char* p = line.data();
  const char* end = p + line.size();
  // Reading past the end behaves like the C string's terminating NUL.
  auto at = [end](const char* q) noexcept { return q < end ? *q : '\0'; };
  while (true) {
    while (p < end && IsCSpace(*p)) ++p;
    if (p >= end) return true;
    bool in_double = false;
    bool in_single = false;
    bool quoted = false;
    bool done = false;
    const char* token_start = p;
    const char* token_end = p;
    std::size_t scratch_start = scratch.size();
    // Copies the unquoted prefix when a quote first appears mid-token.
    auto to_scratch = [&](const char* upto) {
      if (!quoted) {
        quoted = true;
        scratch.append(token_start, static_cast<std::size_t>(upto - token_start));
      }
    };
    while (!done) {
      char c = at(p);
      if (in_double) {
        if (c == '\\' && at(p + 1) == 'x' && IsHex(at(p + 2)) && IsHex(at(p + 3))) {
          scratch.push_back(static_cast<char>(HexValue(at(p + 2)) * 16 + HexValue(at(p + 3))));
          p += 3;
        } else if (c == '\\' && at(p + 1) != '\0') {
          ++p;
          char e = *p;
          switch (e) {
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'b': e = '\b'; break;
            case 'a': e = '\a'; break;
            default: break;
          }
          scratch.push_back(e);
        } else if (c == '"') {
          // sds.c: "closing quote must be followed by a space or nothing at all".
          if (at(p + 1) != '\0' && !IsCSpace(at(p + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          scratch.push_back(c);
        }
      } else if (in_single) {
        if (c == '\\' && at(p + 1) == '\'') {
          ++p;
          scratch.push_back('\'');
        } else if (c == '\'') {
          if (at(p + 1) != '\0' && !IsCSpace(at(p + 1))) return false;
          done = true;
        } else if (c == '\0') {
          return false;
        } else {
          scratch.push_back(c);
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case '\0':
            token_end = p;
            done = true;
            break;
          case '"':
            to_scratch(p);
            in_double = true;
            break;
          case '\'':
            to_scratch(p);
            in_single = true;
            break;
          default:
            if (quoted) scratch.push_back(c);
            break;
        }
      }
      if (p < end) ++p;
    }
    if (quoted) {
      args.emplace_back(scratch.data() + scratch_start, scratch.size() - scratch_start);
    } else {
      args.emplace_back(token_start, static_cast<std::size_t>(token_end - token_start));
    }
  }
}

}  // namespace turnout::protocol::resp
namespace turnout::protocol::resp {

RequestParser::RequestParser(RequestLimits limits) : limits_(limits) {
  offsets_.reserve(16);
  views_.reserve(16);
}

void RequestParser::Reset() noexcept {
  state_ = State::kStart;
  pos_ = command_start_ = scan_from_ = 0;
  remaining_args_ = bulk_length_ = 0;
  needed_hint_ = 0;
  offsets_.clear();
}

ParseStatus RequestParser::Fail(CodecError e) noexcept {
  error_ = e;
  Reset();
  return ParseStatus::kError;
}

ParseStatus RequestParser::Finish(const char* data) noexcept {
  views_.clear();
  for (auto [off, len] : offsets_) views_.emplace_back(data + off, len);
  command_.args = views_;
  command_.frame_length = pos_;
  command_.command_offset = command_start_;
  command_.inline_form = false;
  Reset();
  return ParseStatus::kComplete;
}

std::optional<ParseStatus> RequestParser::ParseInline(const char* data, std::size_t size) noexcept {
  // networking.c processInlineBuffer: the line ends at '\n', an optional
  // '\r' before it is dropped, and without a newline more than
  // PROTO_INLINE_MAX_SIZE pending bytes is an error.
  std::size_t resume = 0;
  std::size_t from = scan_from_ > command_start_ ? scan_from_ : command_start_;
  std::size_t nl = FindLikeStrchr(data, from, size, '\n', &resume);
  if (nl == std::string_view::npos) {
    scan_from_ = resume;
    if (size - command_start_ > limits_.max_inline_length) {
      return Fail(CodecError::kTooBigInlineRequest);
    }
    needed_hint_ = size + 1;
    return ParseStatus::kNeedMore;
  }
  std::size_t line_end = nl;
  if (line_end > command_start_ && data[line_end - 1] == '\r') --line_end;
  std::string_view line(data + command_start_, line_end - command_start_);
  scratch_.clear();
  if (scratch_.capacity() < line.size()) scratch_.reserve(line.size());
  views_.clear();
  if (!SplitInlineArgs(line, scratch_, views_)) return Fail(CodecError::kUnbalancedQuotes);
  pos_ = nl + 1;
  if (views_.empty()) {
    // A blank line is skipped without a reply; continue with what follows.
    scan_from_ = pos_;
    return std::nullopt;
  }
  command_.args = views_;
  command_.frame_length = pos_;
  command_.command_offset = command_start_;
  command_.inline_form = true;
  Reset();
  return ParseStatus::kComplete;
}

std::optional<ParseStatus> RequestParser::ParseLengthLine(LengthKind kind, const char* data,
                                                          std::size_t size,
                                                          std::int64_t* value) noexcept {
  const bool bulk = kind == LengthKind::kBulk;
  // networking.c: the line ends at '\r' and one more byte (not checked to be
  // '\n') must be present.
  std::size_t resume = size;
  std::size_t from = scan_from_ > pos_ ? scan_from_ : pos_;
  std::size_t cr = from < size ? FindLikeStrchr(data, from, size, '\r', &resume)
                               : std::string_view::npos;
  if (cr == std::string_view::npos) {
    scan_from_ = resume;
    if (size - pos_ > limits_.max_inline_length) {
      return Fail(bulk ? CodecError::kTooBigBulkCount : CodecError::kTooBigMultibulkCount);
    }
    needed_hint_ = size + 1;
    return ParseStatus::kNeedMore;
  }
  if (cr + 1 >= size) {
    scan_from_ = cr;
    needed_hint_ = cr + 2;
    return ParseStatus::kNeedMore;
  }
  // A multibulk line was dispatched on its '*'; a bulk line is checked only
  // once complete, as Redis does.
  if (bulk && data[pos_] != '$') {
    offending_byte_ = data[pos_];
    return Fail(CodecError::kExpectedDollar);
  }
  std::int64_t n = 0;
  bool ok = ParseRedisInt64(std::string_view(data + pos_ + 1, cr - pos_ - 1), n);
  // A negative count is an empty command; a negative bulk length is an error.
  if (!ok || (bulk && n < 0) ||
      n > (bulk ? limits_.max_bulk_length : limits_.max_multibulk_length)) {
    return Fail(bulk ? CodecError::kInvalidBulkLength : CodecError::kInvalidMultibulkLength);
  }
  if (!authenticated_ &&
      n > (bulk ? limits_.unauthenticated_max_bulk : limits_.unauthenticated_max_multibulk)) {
    return Fail(bulk ? CodecError::kUnauthenticatedBulkLength
                     : CodecError::kUnauthenticatedMultibulkLength);
  }
  pos_ = cr + 2;
  *value = n;
  return std::nullopt;
}

ParseStatus RequestParser::Parse(std::span<const std::uint8_t> input) noexcept {
  const char* data = reinterpret_cast<const char*>(input.data());
  const std::size_t size = input.size();
  while (true) {
    switch (state_) {
      case State::kStart: {
        if (pos_ >= size) {
          needed_hint_ = pos_ + 1;
          return ParseStatus::kNeedMore;
        }
        command_start_ = pos_;
        if (data[pos_] != '*') {
          std::optional<ParseStatus> st = ParseInline(data, size);
          if (!st.has_value()) continue;  // skipped a blank line
          return *st;
        }
        std::int64_t count = 0;
        if (auto st = ParseLengthLine(LengthKind::kMultibulk, data, size, &count)) return *st;
        scan_from_ = pos_;
        if (count <= 0) continue;  // "*0" and "*-1" are skipped without a reply
        remaining_args_ = count;
        offsets_.clear();
        state_ = State::kBulkHeader;
        break;
      }
      case State::kBulkHeader: {
        std::int64_t len = 0;
        if (auto st = ParseLengthLine(LengthKind::kBulk, data, size, &len)) return *st;
        bulk_length_ = len;
        state_ = State::kBulkPayload;
        break;
      }
      case State::kBulkPayload: {
        // Redis takes bulk_length bytes and skips the next two without
        // checking that they are CRLF; framing must agree with the server.
        std::size_t need = pos_ + static_cast<std::size_t>(bulk_length_) + 2;
        if (size < need) {
          needed_hint_ = need;
          return ParseStatus::kNeedMore;
        }
        offsets_.emplace_back(pos_, static_cast<std::size_t>(bulk_length_));
        pos_ = need;
        scan_from_ = pos_;
        if (--remaining_args_ == 0) return Finish(data);
        state_ = State::kBulkHeader;
        break;
      }
    }
  }
}

}  // namespace turnout::protocol::resp
