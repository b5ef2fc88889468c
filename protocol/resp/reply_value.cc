#include "protocol/resp/reply_value.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace turnout::protocol::resp {
namespace {

class Decoder {
 public:
  Decoder(std::string_view input, const DecodeOptions& options)
      : data_(input.data()), size_(input.size()), options_(options) {}

  CodecError Decode(Value& out, std::size_t depth) {
    if (depth > options_.max_depth) return CodecError::kNestingTooDeep;
    std::string_view line;
    char type = 0;
    if (CodecError e = ReadLine(type, line); e != CodecError{}) return e;
    // RESP3.md "Attribute type": attributes precede the value they annotate
    // at the same level. A loop, not recursion, so a chain of attributes
    // cannot grow the stack.
    while (type == '|') {
      std::int64_t pairs = 0;
      if (!ParseRedisInt64(line, pairs) || pairs < 0 || pairs > (1LL << 40)) {
        return CodecError::kInvalidLength;
      }
      if (pairs > 0) {
        if (depth + 1 > options_.max_depth) return CodecError::kNestingTooDeep;
        if (CodecError e = DecodeElements(pairs * 2, out.attributes, depth + 1); e != CodecError{}) {
          return e;
        }
      }
      if (CodecError e = ReadLine(type, line); e != CodecError{}) return e;
    }
    switch (type) {
      case '+':
        out.type = ReplyType::kSimpleString;
        out.str.assign(line);
        return {};
      case '-':
        out.type = ReplyType::kError;
        out.str.assign(line);
        return {};
      case ':': {
        std::string_view digits = line;
        if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
        out.type = ReplyType::kInteger;
        if (digits == "-0") {
          out.integer = 0;
          return {};
        }
        if (!ParseRedisInt64(digits, out.integer)) return CodecError::kInvalidInteger;
        return {};
      }
      case ',':
        out.type = ReplyType::kDouble;
        out.str.assign(line);
        if (!IsValidRespDouble(line)) return CodecError::kInvalidDouble;
        return {};
      case '#':
        if (line != "t" && line != "f") return CodecError::kInvalidBoolean;
        out.type = ReplyType::kBoolean;
        out.integer = line == "t" ? 1 : 0;
        return {};
      case '(':
        out.type = ReplyType::kBigNumber;
        out.str.assign(line);
        if (!IsValidRespBigNumber(line)) return CodecError::kInvalidBigNumber;
        return {};
      case '_':
        if (!line.empty()) return CodecError::kInvalidLength;
        out.type = ReplyType::kNull;
        return {};
      case '$':
      case '!':
      case '=':
        return DecodeBlob(type, line, out);
      case '*':
      case '~':
      case '>':
      case '%':
        return DecodeAggregate(type, line, out, depth);
      default:
        return CodecError::kInvalidReplyType;
    }
  }

  std::size_t pos() const { return pos_; }

 private:
  CodecError ReadLine(char& type, std::string_view& line) {
    if (pos_ >= size_) return CodecError::kTruncated;
    type = data_[pos_];
    const void* cr = pos_ + 1 < size_ ? std::memchr(data_ + pos_ + 1, '\r', size_ - pos_ - 1) : nullptr;
    if (cr == nullptr) return CodecError::kTruncated;
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(cr) - data_);
    if (at + 1 >= size_) return CodecError::kTruncated;
    if (data_[at + 1] != '\n') return CodecError::kMissingTerminator;
    line = std::string_view(data_ + pos_ + 1, at - pos_ - 1);
    pos_ = at + 2;
    return {};
  }

  CodecError ReadPayload(std::int64_t len, std::string& out) {
    std::size_t n = static_cast<std::size_t>(len);
    if (size_ - pos_ < n + 2) return CodecError::kTruncated;
    if (data_[pos_ + n] != '\r' || data_[pos_ + n + 1] != '\n') {
      return CodecError::kMissingTerminator;
    }
    out.append(data_ + pos_, n);
    pos_ += n + 2;
    return {};
  }

  CodecError DecodeBlob(char type, std::string_view line, Value& out) {
    out.type = type == '$' ? ReplyType::kBulkString
               : type == '!' ? ReplyType::kBlobError
                             : ReplyType::kVerbatimString;
    if (type == '$' && line == "?") {
      // Streamed string: ";len" chunks until ";0".
      while (true) {
        char t = 0;
        std::string_view chunk;
        if (CodecError e = ReadLine(t, chunk); e != CodecError{}) return e;
        std::int64_t len = 0;
        if (t != ';' || !ParseRedisInt64(chunk, len) || len < 0 ||
            len > options_.max_bulk_length) {
          return CodecError::kInvalidStreamChunk;
        }
        if (len == 0) return {};
        if (CodecError e = ReadPayload(len, out.str); e != CodecError{}) return e;
      }
    }
    std::int64_t len = 0;
    if (!ParseRedisInt64(line, len) || len < -1 || len > options_.max_bulk_length) {
      return CodecError::kInvalidLength;
    }
    if (len == -1) {
      if (type != '$') return CodecError::kInvalidLength;
      out.type = ReplyType::kNull;
      return {};
    }
    if (type == '=' && len < 4) return CodecError::kInvalidVerbatim;  // as the framer
    if (CodecError e = ReadPayload(len, out.str); e != CodecError{}) return e;
    // RESP3.md "Verbatim string": "txt:" or "mkd:" leads the data. The
    // framer only checks the length, so a missing ':' keeps the whole text.
    if (type == '=' && out.str.size() >= 4 && out.str[3] == ':') {
      out.format = out.str.substr(0, 3);
      out.str.erase(0, 4);
    }
    return {};
  }

  CodecError DecodeElements(std::int64_t count, std::vector<Value>& out, std::size_t depth) {
    // Every element takes at least 3 bytes ("_\r\n"), which bounds the
    // reservation by the input instead of by a peer-chosen count.
    std::size_t cap = (size_ - pos_) / 3;
    out.reserve(std::min<std::size_t>(static_cast<std::size_t>(count), cap));
    for (std::int64_t i = 0; i < count; ++i) {
      if (pos_ >= size_) return CodecError::kTruncated;
      out.emplace_back();
      if (CodecError e = Decode(out.back(), depth); e != CodecError{}) return e;
    }
    return {};
  }

  CodecError DecodeAggregate(char type, std::string_view line, Value& out, std::size_t depth) {
    out.type = type == '*'   ? ReplyType::kArray
               : type == '~' ? ReplyType::kSet
               : type == '>' ? ReplyType::kPush
                             : ReplyType::kMap;
    if (line == "?") {
      if (depth + 1 > options_.max_depth) return CodecError::kNestingTooDeep;
      while (true) {
        if (pos_ >= size_) return CodecError::kTruncated;
        if (data_[pos_] == '.') {
          char t = 0;
          std::string_view rest;
          if (CodecError e = ReadLine(t, rest); e != CodecError{}) return e;
          if (!rest.empty()) return CodecError::kUnexpectedStreamEnd;
          return {};
        }
        out.elements.emplace_back();
        if (CodecError e = Decode(out.elements.back(), depth + 1); e != CodecError{}) return e;
      }
    }
    std::int64_t count = 0;
    if (!ParseRedisInt64(line, count) || count < -1 || count > (1LL << 40)) {
      return CodecError::kInvalidLength;
    }
    if (count == -1) {
      if (type != '*') return CodecError::kInvalidLength;
      out.type = ReplyType::kNull;
      return {};
    }
    if (type == '%') count *= 2;
    if (count == 0) return {};
    // Same rule as the framer: only a non-empty aggregate adds a level.
    if (depth + 1 > options_.max_depth) return CodecError::kNestingTooDeep;
    return DecodeElements(count, out.elements, depth + 1);
  }

  const char* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  const DecodeOptions& options_;
};

// Canonical form: one tag byte per value, lengths as fixed 8 bytes so that
// concatenations cannot collide.
void AppendLength(std::size_t n, std::string& out) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((n >> (8 * (7 - i))) & 0xff);
  out.append(buf, 8);
}

void AppendString(char tag, std::string_view s, std::string& out) {
  out += tag;
  AppendLength(s.size(), out);
  out.append(s);
}

}  // namespace

std::error_code DecodeReply(std::string_view input, Value& out, std::size_t* consumed,
                            const DecodeOptions& options) {
  out = Value{};
  Decoder decoder(input, options);
  if (CodecError e = decoder.Decode(out, 0); e != CodecError{}) return make_error_code(e);
  if (consumed != nullptr) *consumed = decoder.pos();
  return {};
}

std::string_view ReplyMismatchName(ReplyMismatch m) noexcept {
  switch (m) {
    case ReplyMismatch::kNone: return "none";
    case ReplyMismatch::kType: return "type";
    case ReplyMismatch::kLength: return "length";
    case ReplyMismatch::kValue: return "value";
  }
  return "unknown";
}

void AppendCanonical(const Value& v, bool unordered_top, bool with_attributes, std::string& out) {
  if (with_attributes && !v.attributes.empty()) {
    Value attrs;
    attrs.type = ReplyType::kMap;
    attrs.elements = v.attributes;
    out += '|';
    AppendCanonical(attrs, false, true, out);
  }
  switch (v.type) {
    case ReplyType::kNull:
      out += 'N';
      return;
    case ReplyType::kInteger:
    case ReplyType::kBoolean:
      out += v.type == ReplyType::kInteger ? ':' : '#';
      AppendLength(static_cast<std::size_t>(v.integer), out);
      return;
    case ReplyType::kSimpleString: AppendString('+', v.str, out); return;
    case ReplyType::kError: AppendString('-', v.str, out); return;
    case ReplyType::kBulkString: AppendString('$', v.str, out); return;
    case ReplyType::kDouble: AppendString(',', v.str, out); return;
    case ReplyType::kBigNumber: AppendString('(', v.str, out); return;
    case ReplyType::kBlobError: AppendString('!', v.str, out); return;
    case ReplyType::kVerbatimString:
      AppendString('=', v.format, out);
      AppendString('=', v.str, out);
      return;
    case ReplyType::kArray:
    case ReplyType::kPush:
    case ReplyType::kSet:
    case ReplyType::kMap:
    case ReplyType::kAttribute: {
      out += v.type == ReplyType::kArray ? '*'
             : v.type == ReplyType::kPush ? '>'
             : v.type == ReplyType::kSet  ? '~'
                                          : '%';
      AppendLength(v.elements.size(), out);
      const bool is_map = v.type == ReplyType::kMap || v.type == ReplyType::kAttribute;
      const bool sorted = unordered_top || v.type == ReplyType::kSet || is_map;
      if (!sorted) {
        for (const Value& e : v.elements) AppendCanonical(e, false, with_attributes, out);
        return;
      }
      // Order-free: canonicalise each element (a map: each key/value pair)
      // and sort the encodings, a multiset comparison in O(n log n).
      std::vector<std::string> parts;
      const std::size_t step = is_map ? 2 : 1;
      parts.reserve(v.elements.size() / step + 1);
      for (std::size_t i = 0; i < v.elements.size(); i += step) {
        std::string part;
        AppendCanonical(v.elements[i], false, with_attributes, part);
        if (is_map && i + 1 < v.elements.size()) {
          AppendCanonical(v.elements[i + 1], false, with_attributes, part);
        }
        parts.push_back(std::move(part));
      }
      std::sort(parts.begin(), parts.end());
      for (const std::string& p : parts) out += p;
      return;
    }
  }
}

ReplyMismatch CompareReplies(const Value& a, const Value& b, const CompareOptions& options) {
  if (a.type != b.type) return ReplyMismatch::kType;
  if (a.is_aggregate() && a.elements.size() != b.elements.size()) return ReplyMismatch::kLength;
  std::string ca;
  std::string cb;
  AppendCanonical(a, options.unordered, options.compare_attributes, ca);
  AppendCanonical(b, options.unordered, options.compare_attributes, cb);
  return ca == cb ? ReplyMismatch::kNone : ReplyMismatch::kValue;
}

}  // namespace turnout::protocol::resp
