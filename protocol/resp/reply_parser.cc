#include "protocol/resp/reply_parser.h"

#include <cstring>

namespace turnout::protocol::resp {
namespace {

bool AllDigits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

// RESP3 "," : a floating point number, or inf / -inf / nan (RESP3.md,
// "Double type"). Redis writes it with %.17g, so exponents may appear.
bool IsValidRespDouble(std::string_view s) noexcept {
  if (s == "inf" || s == "-inf" || s == "+inf" || s == "nan" || s == "-nan") return true;
  if (s.empty()) return false;
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+') {
      return false;
    }
  }
  return digit;
}

// RESP3 "(" : an optional sign and at least one digit.
bool IsValidRespBigNumber(std::string_view s) noexcept {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return AllDigits(s);
}

std::string_view ReplyTypeName(ReplyType t) noexcept {
  switch (t) {
    case ReplyType::kSimpleString: return "simple_string";
    case ReplyType::kError: return "error";
    case ReplyType::kInteger: return "integer";
    case ReplyType::kBulkString: return "bulk_string";
    case ReplyType::kArray: return "array";
    case ReplyType::kNull: return "null";
    case ReplyType::kDouble: return "double";
    case ReplyType::kBoolean: return "boolean";
    case ReplyType::kBlobError: return "blob_error";
    case ReplyType::kVerbatimString: return "verbatim_string";
    case ReplyType::kBigNumber: return "big_number";
    case ReplyType::kMap: return "map";
    case ReplyType::kSet: return "set";
    case ReplyType::kAttribute: return "attribute";
    case ReplyType::kPush: return "push";
  }
  return "unknown";
}

ReplyParser::ReplyParser(ReplyLimits limits) : limits_(limits) {
  stack_.reserve(16);
}

void ReplyParser::Reset() noexcept {
  stack_.clear();
  pos_ = dropped_base_ = scan_from_ = 0;
  payload_left_ = 0;
  in_payload_ = in_streamed_string_ = attribute_pending_ = false;
}

void ReplyParser::DropPrefix(std::size_t n) noexcept {
  if (n > pos_ - dropped_base_) n = pos_ - dropped_base_;
  dropped_base_ += n;
}

ParseStatus ReplyParser::Fail(CodecError e) noexcept {
  error_ = e;
  Reset();
  return ParseStatus::kError;
}

bool ReplyParser::Push(std::int64_t count, bool attribute) noexcept {
  if (stack_.size() >= limits_.max_depth) return false;
  stack_.push_back(Level{count, attribute});
  return true;
}

bool ReplyParser::ValueDone() noexcept {
  while (!stack_.empty()) {
    Level& top = stack_.back();
    if (top.remaining < 0) return false;  // streamed: ends with '.'
    if (--top.remaining > 0) return false;
    bool attribute = top.attribute;
    stack_.pop_back();
    // RESP3.md "Attribute type": the attribute is followed by the value it
    // annotates and is not itself an element of the enclosing aggregate.
    if (attribute) {
      attribute_pending_ = true;
      return false;
    }
  }
  return true;
}

ParseStatus ReplyParser::Parse(std::span<const std::uint8_t> input) noexcept {
  const char* data = reinterpret_cast<const char*>(input.data());
  const std::size_t end = dropped_base_ + input.size();  // logical end
  auto at = [&](std::size_t logical) noexcept { return data[logical - dropped_base_]; };
  if (pos_ == 0 && stack_.empty() && !in_payload_ && !in_streamed_string_) frame_ = ReplyFrame{};

  while (true) {
    if (in_payload_) {
      std::uint64_t available = end - pos_;
      std::uint64_t skip = available < payload_left_ ? available : payload_left_;
      pos_ += static_cast<std::size_t>(skip);
      payload_left_ -= skip;
      if (payload_left_ > 0 || end - pos_ < 2) return ParseStatus::kNeedMore;
      if (at(pos_) != '\r' || at(pos_ + 1) != '\n') return Fail(CodecError::kMissingTerminator);
      pos_ += 2;
      scan_from_ = pos_;
      in_payload_ = false;
      if (in_streamed_string_) continue;
      if (ValueDone()) break;
      continue;
    }

    // One header line: type byte, content, CRLF. Reject a bad type byte at
    // once instead of waiting for a CRLF that may never come.
    if (pos_ >= end) return ParseStatus::kNeedMore;
    if (std::strchr(in_streamed_string_ ? ";" : "+-:,#(_$!=*~>%|.", at(pos_)) == nullptr ||
        at(pos_) == '\0') {
      return Fail(in_streamed_string_ ? CodecError::kInvalidStreamChunk
                                      : CodecError::kInvalidReplyType);
    }
    std::size_t from = scan_from_ > pos_ + 1 ? scan_from_ : pos_ + 1;
    std::size_t cr = std::string_view::npos;
    if (from < end) {
      const void* hit = std::memchr(data + (from - dropped_base_), '\r', end - from);
      if (hit != nullptr) cr = static_cast<std::size_t>(static_cast<const char*>(hit) - data) + dropped_base_;
    }
    if (cr == std::string_view::npos) {
      scan_from_ = end;
      if (static_cast<std::int64_t>(end - pos_) > limits_.max_bulk_length + 64) {
        return Fail(CodecError::kLineTooLong);
      }
      return ParseStatus::kNeedMore;
    }
    if (cr + 1 >= end) {
      scan_from_ = cr;
      return ParseStatus::kNeedMore;
    }
    if (at(cr + 1) != '\n') return Fail(CodecError::kMissingTerminator);
    const char type = at(pos_);
    const std::string_view content(data + (pos_ + 1 - dropped_base_), cr - pos_ - 1);
    pos_ = cr + 2;
    scan_from_ = pos_;

    if (in_streamed_string_) {
      // RESP3.md "Streamed strings": ";<len>\r\n<data>\r\n" chunks, ";0" ends.
      std::int64_t len = 0;
      if (type != ';' || !ParseRedisInt64(content, len) || len < 0 ||
          len > limits_.max_bulk_length) {
        return Fail(CodecError::kInvalidStreamChunk);
      }
      if (len == 0) {
        in_streamed_string_ = false;
        if (ValueDone()) break;
        continue;
      }
      payload_left_ = static_cast<std::uint64_t>(len);
      in_payload_ = true;
      continue;
    }

    const bool top = stack_.empty();
    const bool after_attribute = attribute_pending_;
    attribute_pending_ = false;
    auto set_top = [&](ReplyType t) noexcept {
      if (top) frame_.type = t;
    };
    bool done = false;
    switch (type) {
      case '+':
        set_top(ReplyType::kSimpleString);
        done = ValueDone();
        break;
      case '-':
        set_top(ReplyType::kError);
        done = ValueDone();
        break;
      case ':': {
        std::int64_t v = 0;
        std::string_view digits = content;
        if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
        if (!ParseRedisInt64(digits, v) && !(digits == "-0")) return Fail(CodecError::kInvalidInteger);
        set_top(ReplyType::kInteger);
        done = ValueDone();
        break;
      }
      case ',':
        if (!IsValidRespDouble(content)) return Fail(CodecError::kInvalidDouble);
        set_top(ReplyType::kDouble);
        done = ValueDone();
        break;
      case '#':
        if (content != "t" && content != "f") return Fail(CodecError::kInvalidBoolean);
        set_top(ReplyType::kBoolean);
        done = ValueDone();
        break;
      case '(':
        if (!IsValidRespBigNumber(content)) return Fail(CodecError::kInvalidBigNumber);
        set_top(ReplyType::kBigNumber);
        done = ValueDone();
        break;
      case '_':
        if (!content.empty()) return Fail(CodecError::kInvalidLength);
        set_top(ReplyType::kNull);
        done = ValueDone();
        break;
      case '$':
      case '!':
      case '=': {
        ReplyType t = type == '$'   ? ReplyType::kBulkString
                      : type == '!' ? ReplyType::kBlobError
                                    : ReplyType::kVerbatimString;
        if (type == '$' && content == "?") {
          set_top(t);
          in_streamed_string_ = true;
          continue;
        }
        std::int64_t len = 0;
        if (!ParseRedisInt64(content, len) || len < -1 || len > limits_.max_bulk_length) {
          return Fail(CodecError::kInvalidLength);
        }
        if (len == -1) {
          if (type != '$') return Fail(CodecError::kInvalidLength);
          set_top(ReplyType::kNull);  // RESP2 null bulk string
          done = ValueDone();
          break;
        }
        // RESP3.md "Verbatim string": three format bytes and ':' lead the data.
        if (type == '=' && len < 4) return Fail(CodecError::kInvalidVerbatim);
        set_top(t);
        payload_left_ = static_cast<std::uint64_t>(len);
        in_payload_ = true;
        continue;
      }
      case '*':
      case '~':
      case '>':
      case '%':
      case '|': {
        ReplyType t = type == '*'   ? ReplyType::kArray
                      : type == '~' ? ReplyType::kSet
                      : type == '>' ? ReplyType::kPush
                      : type == '%' ? ReplyType::kMap
                                    : ReplyType::kAttribute;
        const bool attribute = type == '|';
        if (attribute) {
          if (top) frame_.has_attribute = true;
        } else {
          set_top(t);
        }
        if (content == "?" && !attribute) {
          // RESP3.md "Streamed aggregate data types": elements until ".".
          if (!Push(-1, false)) return Fail(CodecError::kNestingTooDeep);
          continue;
        }
        std::int64_t count = 0;
        if (!ParseRedisInt64(content, count) || count < -1 ||
            count > limits_.max_aggregate_length) {
          return Fail(CodecError::kInvalidLength);
        }
        if (count == -1) {
          if (type != '*') return Fail(CodecError::kInvalidLength);
          set_top(ReplyType::kNull);  // RESP2 null array
          done = ValueDone();
          break;
        }
        if (type == '%' || attribute) count *= 2;
        if (count == 0) {
          if (attribute) {
            attribute_pending_ = true;
            continue;
          }
          done = ValueDone();
          break;
        }
        if (!Push(count, attribute)) return Fail(CodecError::kNestingTooDeep);
        continue;
      }
      case '.':
        // An attribute must annotate a value, not the end of a stream.
        if (!content.empty() || stack_.empty() || stack_.back().remaining >= 0 ||
            after_attribute) {
          return Fail(CodecError::kUnexpectedStreamEnd);
        }
        stack_.pop_back();
        done = ValueDone();
        break;
      default:
        return Fail(CodecError::kInvalidReplyType);
    }
    if (done) break;
  }
  frame_.length = pos_ - dropped_base_;
  ReplyFrame keep = frame_;
  Reset();
  frame_ = keep;
  return ParseStatus::kComplete;
}

}  // namespace turnout::protocol::resp
