#include "proxy/redis/secondary_work.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "protocol/resp/reply_value.h"
#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"

namespace turnout::proxy::redis {
namespace {

namespace resp = protocol::resp;
using Mismatch = RouteRuntime::ShadowMismatch;

std::optional<Mismatch> FromReplyMismatch(resp::ReplyMismatch m) {
  switch (m) {
    case resp::ReplyMismatch::kNone: return std::nullopt;
    case resp::ReplyMismatch::kType: return Mismatch::kType;
    case resp::ReplyMismatch::kLength: return Mismatch::kLength;
    case resp::ReplyMismatch::kValue: return Mismatch::kValue;
  }
  return Mismatch::kValue;
}

bool IsErrorType(resp::ReplyType t) { return t == resp::ReplyType::kError || t == resp::ReplyType::kBlobError; }

std::optional<Mismatch> CompareValues(const resp::Value& a, const resp::Value& b, CompareMode mode) {
  const bool ea = IsErrorType(a.type), eb = IsErrorType(b.type);
  if (ea != eb) return Mismatch::kError;
  if (mode == CompareMode::kOutcomeOnly) {
    if (ea) return std::nullopt;
    const bool null_a = a.type == resp::ReplyType::kNull, null_b = b.type == resp::ReplyType::kNull;
    // A scratch key may be missing where the real one exists: nil against
    // a value of the command's type is not a difference of behaviour.
    if (null_a || null_b) return std::nullopt;
    return a.type == b.type ? std::nullopt : std::optional<Mismatch>(Mismatch::kType);
  }
  if (ea) return a.str == b.str ? std::nullopt : std::optional<Mismatch>(Mismatch::kError);
  resp::CompareOptions options;
  options.unordered = mode == CompareMode::kUnordered;
  return FromReplyMismatch(resp::CompareReplies(a, b, options));
}

bool NeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  for (unsigned char c : s)
    if (c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\') return true;
  return false;
}

void AppendQuoted(std::string& out, std::string_view s) {
  if (!NeedsQuotes(s)) {
    out.append(s);
    return;
  }
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out.append("\\\\"); break;
      case '"': out.append("\\\""); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out.append(buf);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void Truncate(std::string& s, std::size_t max_bytes) {
  if (s.size() > max_bytes) {
    s.resize(max_bytes);
    s.append("...");
  }
}

void RenderValue(const resp::Value& v, std::string& out, std::size_t max_bytes) {
  if (out.size() > max_bytes) return;
  switch (v.type) {
    case resp::ReplyType::kSimpleString: out.append(v.str); return;
    case resp::ReplyType::kError:
    case resp::ReplyType::kBlobError:
      out.append("(error) ");
      out.append(v.str);
      return;
    case resp::ReplyType::kInteger: absl::StrAppend(&out, "(integer) ", v.integer); return;
    case resp::ReplyType::kNull: out.append("(nil)"); return;
    case resp::ReplyType::kDouble: absl::StrAppend(&out, "(double) ", v.str); return;
    case resp::ReplyType::kBoolean: out.append(v.integer ? "(true)" : "(false)"); return;
    case resp::ReplyType::kBigNumber: absl::StrAppend(&out, "(big number) ", v.str); return;
    case resp::ReplyType::kBulkString:
    case resp::ReplyType::kVerbatimString: {
      out.push_back('"');
      std::string tmp;
      AppendQuoted(tmp, v.str);
      // AppendQuoted adds quotes only when needed; always show them here.
      if (!tmp.empty() && tmp.front() == '"') tmp = tmp.substr(1, tmp.size() - 2);
      out.append(tmp);
      out.push_back('"');
      return;
    }
    case resp::ReplyType::kArray:
    case resp::ReplyType::kSet:
    case resp::ReplyType::kMap:
    case resp::ReplyType::kPush:
    case resp::ReplyType::kAttribute: {
      if (v.elements.empty()) {
        out.append("(empty array)");
        return;
      }
      out.push_back(v.type == resp::ReplyType::kSet ? '{' : '[');
      for (std::size_t i = 0; i < v.elements.size(); ++i) {
        if (i) out.append(", ");
        if (out.size() > max_bytes) break;
        absl::StrAppend(&out, i + 1, ") ");
        RenderValue(v.elements[i], out, max_bytes);
      }
      out.push_back(v.type == resp::ReplyType::kSet ? '}' : ']');
      return;
    }
  }
}

std::string EscapedRaw(std::string_view bytes, std::size_t max_bytes) {
  std::string out;
  AppendQuoted(out, bytes.substr(0, max_bytes));
  if (bytes.size() > max_bytes) out.append("...");
  return out;
}

bool IsCommand(const resp::CommandInfo& info, std::string_view name) { return info.full_name == name; }

}  // namespace

void CapturedReply::Append(std::string_view chunk, std::size_t cap) {
  if (chunk.empty()) return;
  if (length_ == 0) first_ = chunk[0];
  length_ += chunk.size();
  for (unsigned char c : chunk) {
    hash_ ^= c;
    hash_ *= 0x100000001b3ull;
  }
  if (bytes_.size() < cap) bytes_.append(chunk.substr(0, cap - bytes_.size()));
}

void CapturedReply::Clear() {
  bytes_.clear();
  length_ = 0;
  hash_ = kHashSeed;
  first_ = 0;
}

std::optional<Mismatch> CompareCaptured(const CapturedReply& primary, const CapturedReply& secondary,
                                        CompareMode mode) {
  if (primary.is_error() != secondary.is_error()) return Mismatch::kError;
  if (primary.length() == secondary.length() && primary.hash() == secondary.hash() &&
      (primary.truncated() || secondary.truncated() || primary.bytes() == secondary.bytes()))
    return std::nullopt;
  if (primary.truncated() || secondary.truncated()) {
    if (mode == CompareMode::kUnordered) return std::nullopt;
    if (mode == CompareMode::kOutcomeOnly)
      return primary.first_byte() == secondary.first_byte() ? std::nullopt : std::optional<Mismatch>(Mismatch::kType);
    return primary.length() != secondary.length() ? Mismatch::kLength : Mismatch::kValue;
  }
  resp::Value a, b;
  if (resp::DecodeReply(primary.bytes(), a) || resp::DecodeReply(secondary.bytes(), b)) return Mismatch::kValue;
  return CompareValues(a, b, mode);
}

std::optional<Mismatch> CompareExec(const CapturedReply& primary, const CapturedReply& secondary,
                                    std::span<const std::uint32_t> positions, std::size_t copies) {
  if (primary.is_error() != secondary.is_error()) return Mismatch::kError;
  if (primary.truncated() || secondary.truncated()) return CompareCaptured(primary, secondary, CompareMode::kFull);
  resp::Value a, b;
  if (resp::DecodeReply(primary.bytes(), a) || resp::DecodeReply(secondary.bytes(), b)) return Mismatch::kValue;
  if (a.type != b.type) return Mismatch::kType;
  if (a.type != resp::ReplyType::kArray) return CompareValues(a, b, CompareMode::kFull);
  if (b.elements.size() != positions.size() + copies) return Mismatch::kLength;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    if (positions[i] >= a.elements.size()) return Mismatch::kLength;
    if (auto m = CompareValues(a.elements[positions[i]], b.elements[i], CompareMode::kFull)) return m;
  }
  for (std::size_t i = positions.size(); i < b.elements.size(); ++i)
    if (IsErrorType(b.elements[i].type)) return Mismatch::kError;
  return std::nullopt;
}

int DbAfterExec(std::string_view exec_reply, std::span<const BlockSelect> selects, int db_before, bool streamed) {
  int db = db_before;
  if (streamed) {
    for (const auto& s : selects)
      if (s.db >= 0) db = s.db;
    return db;
  }
  resp::Value v;
  if (resp::DecodeReply(exec_reply, v) || v.type != resp::ReplyType::kArray) return db_before;
  for (const auto& s : selects) {
    if (s.db < 0 || s.index >= v.elements.size() || IsErrorType(v.elements[s.index].type)) continue;
    db = s.db;
  }
  return db;
}

std::string RenderArgs(std::span<const std::string_view> args, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) out.push_back(' ');
    AppendQuoted(out, args[i]);
    if (out.size() > max_bytes) break;
  }
  Truncate(out, max_bytes);
  return out;
}

std::string RenderCommandFrame(std::string_view frame, std::size_t max_bytes) {
  const auto args = ArgsOfFrame(frame);
  if (args.empty()) return EscapedRaw(frame, max_bytes);
  return RenderArgs(args, max_bytes);
}

std::string RenderReply(std::string_view frame, std::size_t max_bytes) {
  resp::Value v;
  if (resp::DecodeReply(frame, v)) return EscapedRaw(frame, max_bytes);
  std::string out;
  RenderValue(v, out, max_bytes);
  Truncate(out, max_bytes);
  return out;
}

std::string RenderReply(const CapturedReply& reply, std::size_t max_bytes) {
  if (!reply.present()) return "(no reply)";
  if (!reply.truncated()) return RenderReply(reply.bytes(), max_bytes);
  std::string out = EscapedRaw(std::string_view(reply.bytes()).substr(0, max_bytes), max_bytes);
  absl::StrAppend(&out, "... (", reply.length(), " bytes)");
  return out;
}

bool AppendCopyCommand(std::string_view key, std::string_view dump_frame, std::string_view pttl_frame,
                       std::string& wire, std::string& error) {
  resp::Value dump, pttl;
  if (resp::DecodeReply(dump_frame, dump) || resp::DecodeReply(pttl_frame, pttl)) {
    error = "unreadable DUMP/PTTL reply";
    return false;
  }
  if (dump.type == resp::ReplyType::kNull) {
    resp::AppendCommand(wire, {"DEL", key});
    return true;
  }
  if (dump.type != resp::ReplyType::kBulkString) {
    error = absl::StrCat("DUMP ", RenderReply(dump_frame, 200));
    return false;
  }
  if (pttl.type != resp::ReplyType::kInteger) {
    error = absl::StrCat("PTTL ", RenderReply(pttl_frame, 200));
    return false;
  }
  // PTTL: -1 no expiry, -2 gone since DUMP (then RESTORE with 0 keeps the
  // value without expiry; the next write or expiry check settles it).
  const std::string ttl = std::to_string(pttl.integer > 0 ? pttl.integer : 0);
  resp::AppendCommand(wire, {"RESTORE", key, ttl, dump.str, "REPLACE"});
  return true;
}

std::optional<std::string> RewriteKeysUnderPrefix(const resp::CommandInfo& info,
                                                  std::span<const std::string_view> args,
                                                  std::string_view prefix) {
  if (IsCommand(info, "MIGRATE") || IsCommand(info, "SORT") || IsCommand(info, "SORT_RO")) return std::nullopt;
  for (const auto& spec : info.key_specs)
    if (spec.flags & resp::key_flag::kIncomplete) return std::nullopt;
  resp::KeyIndices idx;
  if (!resp::ExtractKeys(info, args, idx) || idx.empty()) return std::nullopt;
  std::vector<std::string> owned(args.begin(), args.end());
  std::vector<bool> done(args.size(), false);
  for (auto i : idx) {
    if (i >= owned.size() || done[i]) continue;
    owned[i] = absl::StrCat(std::string(prefix), owned[i]);
    done[i] = true;
  }
  std::vector<std::string_view> views(owned.begin(), owned.end());
  std::string wire;
  resp::AppendCommand(wire, views);
  return wire;
}

std::vector<std::string> KeysOf(const resp::CommandInfo& info, std::span<const std::string_view> args) {
  std::vector<std::string> keys;
  resp::KeyIndices idx;
  if (info.first_key == 0 && info.key_specs.empty()) return keys;
  resp::ExtractKeys(info, args, idx);
  for (auto i : idx) {
    if (i >= args.size()) continue;
    std::string k(args[i]);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(std::move(k));
  }
  return keys;
}

std::vector<std::string_view> ArgsOfFrame(std::string_view frame) {
  resp::RequestParser parser;
  if (parser.Parse(frame) != resp::ParseStatus::kComplete || parser.command().inline_form) return {};
  const auto args = parser.command().args;
  return {args.begin(), args.end()};
}

}  // namespace turnout::proxy::redis
