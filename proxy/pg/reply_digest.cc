#include "proxy/pg/reply_digest.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/sql_lexer.h"
#include "protocol/pg/wire.h"
#include "routing/stable_hash.h"

namespace turnout::proxy::pg {
namespace {

namespace ppg = protocol::pg;
using Mismatch = RouteRuntime::ShadowMismatch;
using Hash128 = ReplyDigest::Hash128;

// ---------------------------------------------------------------- hashing

// XXH64's primes; two lanes with different rounds and seeds give a 128-bit
// hash of a row, so that sums over millions of rows stay far from chance
// collisions. Both digests live in one process, so native byte order is fine.
constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr std::uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr std::uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr std::uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr std::uint64_t kP5 = 0x27D4EB2F165667C5ull;

Hash128 HashRow(ppg::Bytes b) noexcept {
  std::uint64_t a = kP1 ^ kP5;
  std::uint64_t c = kP2 + kP3;
  const std::uint8_t* p = b.data();
  const std::size_t n = b.size();
  auto step = [&](std::uint64_t w) {
    a = std::rotl(a + w * kP2, 31) * kP1;
    c = std::rotl(c ^ (w * kP4), 27) * kP3 + kP5;
  };
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    step(w);
  }
  if (i < n) {
    std::uint64_t w = 0;  // zero padding: the length below keeps it unambiguous
    std::memcpy(&w, p + i, n - i);
    step(w);
  }
  // MurmurHash3 fmix64 finishes each lane (a bijection with full avalanche).
  return {routing::Fmix64(a ^ n), routing::Fmix64(c + n * kP5)};
}

// Fixed starting points so that an empty set has non-trivial hashes too.
constexpr Hash128 kChainSeed{kP4, kP1};

void AddToMultiset(Hash128* acc, const Hash128& h) noexcept {
  acc->lo += h.lo;  // wraps: addition mod 2^64 is order-independent
  acc->hi += h.hi;
}

void AddToChain(Hash128* acc, const Hash128& h) noexcept {
  acc->lo = routing::Fmix64(acc->lo + h.lo);
  acc->hi = routing::Fmix64(acc->hi ^ h.hi) + kP3;
}

// ---------------------------------------------------------------- rendering

bool Printable(std::string_view s) noexcept {
  // Text format values: ASCII graphic and space, tab, and UTF-8 bytes.
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto u = static_cast<unsigned char>(ch);
    return (u >= 0x20 && u != 0x7f) || u == '\t';
  });
}

// Appends a value as a SQL literal ('it''s'), NULL, or \x hex (the bytea
// output format) for binary and non-printable values; at most about
// `limit` characters, then "...".
void AppendValue(std::string* out, const ppg::Value& v, bool binary, std::size_t limit) {
  if (!v) {
    out->append("NULL");
    return;
  }
  std::string_view s = *v;
  if (!binary && Printable(s)) {
    out->push_back('\'');
    std::size_t written = 0;
    for (char ch : s) {
      if (written >= limit) {
        out->append("...");
        break;
      }
      out->push_back(ch);
      if (ch == '\'') out->push_back('\'');
      ++written;
    }
    out->push_back('\'');
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\x");
  std::size_t written = 0;
  for (char ch : s) {
    if (written + 2 > limit) {
      out->append("...");
      break;
    }
    const auto u = static_cast<unsigned char>(ch);
    out->push_back(kHex[u >> 4]);
    out->push_back(kHex[u & 0xf]);
    written += 2;
  }
}

std::string_view TrimNul(std::string_view s) noexcept {
  const auto nul = s.find('\0');
  return nul == std::string_view::npos ? s : s.substr(0, nul);
}

// ---------------------------------------------------------------- comparison

std::optional<Mismatch> CompareColumns(const ReplyDigest::ResultSet& a, const ReplyDigest::ResultSet& b) {
  using Shape = ReplyDigest::Shape;
  if (a.shape != b.shape) return Mismatch::kRowDescription;
  if (a.shape != Shape::kColumns) return std::nullopt;
  if (a.columns.size() != b.columns.size()) return Mismatch::kRowDescription;
  for (std::size_t i = 0; i < a.columns.size(); ++i) {
    if (a.columns[i].name != b.columns[i].name) return Mismatch::kRowDescription;
  }
  for (std::size_t i = 0; i < a.columns.size(); ++i) {
    const auto& x = a.columns[i];
    const auto& y = b.columns[i];
    if (x.format != y.format) return Mismatch::kType;
    const bool user_type = x.type_oid >= kFirstNormalObjectId || y.type_oid >= kFirstNormalObjectId;
    if (!user_type && (x.type_oid != y.type_oid || x.type_modifier != y.type_modifier)) return Mismatch::kType;
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------- ORDER BY

bool QueryHasTopLevelOrderBy(std::string_view sql) {
  using ppg::Keyword;
  using ppg::TokenKind;
  ppg::SqlLexer lexer(sql);
  int depth = 0;
  bool after_order = false;  // the previous token was ORDER at depth 0
  bool statement = false;    // the current statement has a token
  bool ordered = false;      // ... and an ORDER BY at depth 0
  bool any = false;
  bool all = true;
  auto finish = [&] {
    if (statement) {
      any = true;
      all = all && ordered;
    }
    statement = ordered = after_order = false;
    depth = 0;
  };
  for (;;) {
    const ppg::Token t = lexer.Next();
    if (t.kind == TokenKind::kEnd || t.kind == TokenKind::kError) break;
    if (t.kind == TokenKind::kSemicolon) {
      finish();
      continue;
    }
    statement = true;
    switch (t.kind) {
      case TokenKind::kLParen:
      case TokenKind::kLBracket:
        ++depth;
        break;
      case TokenKind::kRParen:
      case TokenKind::kRBracket:
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
    const bool word_at_top = depth == 0 && t.kind == TokenKind::kWord;
    if (word_at_top && after_order && t.keyword == Keyword::kBy) ordered = true;
    after_order = word_at_top && t.keyword == Keyword::kOrder;
  }
  finish();
  return any && all;
}

// ---------------------------------------------------------------- digest

void ReplyDigest::Reset(Options o) {
  options_ = o;
  sets_.clear();
  open_ = false;
  total_rows_ = 0;
  sample_budget_used_ = 0;
  tags_.clear();
  has_error_ = false;
  error_sqlstate_.clear();
  error_message_.clear();
}

ReplyDigest::ResultSet& ReplyDigest::OpenSet() {
  if (!open_) {
    sets_.emplace_back();
    sets_.back().chain = kChainSeed;
    open_ = true;
  }
  return sets_.back();
}

ReplyDigest::ResultSet& ReplyDigest::CloseSet(End end) {
  ResultSet& s = OpenSet();
  s.end = end;
  open_ = false;
  return s;
}

void ReplyDigest::OnFrame(const ppg::Frame& f) {
  if (f.kind != ppg::FrameKind::kRegular) return;
  switch (f.type) {
    case ppg::RowDescription::kType:
      OnRowDescription(f);
      break;
    case ppg::DataRow::kType:
      OnDataRow(f);
      break;
    case ppg::NoData::kType: {
      ResultSet& s = OpenSet();
      s.shape = Shape::kNoData;
      s.columns.clear();
      break;
    }
    case ppg::CommandComplete::kType: {
      ppg::CommandComplete cc;
      std::string_view tag = ppg::Decode(f, &cc) ? TrimNul(ppg::AsText(f.payload)) : cc.tag;
      ResultSet& s = CloseSet(End::kCommandComplete);
      s.tag.assign(tag);
      if (!tags_.empty()) tags_.push_back(';');
      tags_.append(tag);
      break;
    }
    case ppg::EmptyQueryResponse::kType:
      CloseSet(End::kEmptyQuery);
      break;
    case ppg::PortalSuspended::kType:
      CloseSet(End::kSuspended);
      break;
    case ppg::ErrorResponse::kType:
      OnError(f);
      break;
    default:
      break;  // '1', '2', '3', 't', 'N', 'S', 'A', 'Z', copy messages
  }
}

void ReplyDigest::OnRowDescription(const ppg::Frame& f) {
  // Describe (statement) and then Describe (portal) before Execute describe
  // the same rows twice: the later one, with the real format codes, wins.
  if (open_ && sets_.back().rows != 0) open_ = false;
  ResultSet& s = OpenSet();
  s.columns.clear();
  ppg::RowDescription rd;
  if (ppg::Decode(f, &rd)) {
    s.shape = Shape::kMalformed;
    return;
  }
  s.shape = Shape::kColumns;
  s.columns.reserve(rd.fields.size());
  for (const auto& fd : rd.fields) {
    s.columns.push_back({std::string(fd.name), fd.type_oid, fd.type_modifier, fd.format});
  }
}

void ReplyDigest::OnDataRow(const ppg::Frame& f) {
  ResultSet& s = OpenSet();
  const Hash128 h = HashRow(f.payload);
  AddToMultiset(&s.multiset, h);
  AddToChain(&s.chain, h);
  ++s.rows;
  ++total_rows_;
  if (s.sampled_rows < options_.sample_rows && sample_budget_used_ < options_.sample_bytes) {
    SampleRow(s, f.payload);
  }
}

void ReplyDigest::SampleRow(ResultSet& s, ppg::Bytes payload) {
  const std::size_t before = s.sample.size();
  const std::size_t budget = options_.sample_bytes - sample_budget_used_;
  ppg::PayloadReader r(payload);
  std::int16_t n = 0;
  if (!s.sample.empty()) s.sample.push_back(' ');
  s.sample.push_back('[');
  if (!r.ReadI16(&n) || n < 0) {
    s.sample.append("malformed");
  } else {
    for (std::int16_t i = 0; i < n; ++i) {
      if (i > 0) s.sample.append(", ");
      const std::size_t used = s.sample.size() - before;
      if (used >= budget) {
        s.sample.append("...");
        break;
      }
      std::int32_t len = 0;
      ppg::Value v;
      std::string_view text;
      if (!r.ReadI32(&len) || len < -1 || (len >= 0 && !r.ReadText(static_cast<std::size_t>(len), &text))) {
        s.sample.append("malformed");
        break;
      }
      if (len >= 0) v = text;
      const auto col = static_cast<std::size_t>(i);
      const bool binary = s.shape == Shape::kColumns && col < s.columns.size() &&
                          s.columns[col].format == ppg::kFormatBinary;
      AppendValue(&s.sample, v, binary, budget - used);
    }
  }
  s.sample.push_back(']');
  ++s.sampled_rows;
  sample_budget_used_ += s.sample.size() - before;
}

void ReplyDigest::OnError(const ppg::Frame& f) {
  ppg::ErrorResponse e;
  const bool ok = !ppg::Decode(f, &e);
  if (!has_error_) {
    has_error_ = true;
    if (ok) {
      error_sqlstate_.assign(e.sqlstate());
      error_message_.assign(e.message());
    } else {
      error_message_ = "malformed ErrorResponse";
    }
  }
  CloseSet(End::kError);
}

std::string ReplyDigest::Outcome() const {
  std::string out = tags_;
  if (has_error_) {
    absl::StrAppend(&out, out.empty() ? "" : ";", "ERROR ", error_sqlstate_, " ", error_message_);
  }
  return out;
}

std::string ReplyDigest::Render() const {
  std::string out;
  bool error_shown = false;
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    const ResultSet& s = sets_[i];
    std::size_t mark = out.size();
    if (i > 0) out.append(" | ");
    switch (s.shape) {
      case Shape::kNone:
        break;
      case Shape::kNoData:
        out.append("(no data)");
        break;
      case Shape::kMalformed:
        out.append("(malformed)");
        break;
      case Shape::kColumns:
        out.push_back('(');
        for (std::size_t c = 0; c < s.columns.size(); ++c) {
          absl::StrAppend(&out, c > 0 ? ", " : "", s.columns[c].name, ":", s.columns[c].type_oid);
        }
        out.push_back(')');
        break;
    }
    auto space = [&] {
      if (out.size() > mark + (i > 0 ? 3 : 0)) out.push_back(' ');
    };
    if (!s.sample.empty()) {
      space();
      out.append(s.sample);
      if (s.rows > s.sampled_rows) out.append(" ...");
    }
    if (s.shape == Shape::kColumns || s.rows > 0) {
      space();
      absl::StrAppend(&out, s.rows, s.rows == 1 ? " row" : " rows");
    }
    switch (s.end) {
      case End::kOpen:
        break;
      case End::kCommandComplete:
        space();
        out.append(s.tag);
        break;
      case End::kEmptyQuery:
        space();
        out.append("EMPTY QUERY");
        break;
      case End::kSuspended:
        space();
        out.append("SUSPENDED");
        break;
      case End::kError:
        space();
        if (!error_shown) {
          absl::StrAppend(&out, "ERROR ", error_sqlstate_, " ", error_message_);
          error_shown = true;
        } else {
          out.append("ERROR");
        }
        break;
    }
    if (out.size() > options_.sample_bytes) break;
  }
  if (out.size() > options_.sample_bytes) {
    constexpr std::string_view kEllipsis = "...";
    if (options_.sample_bytes >= kEllipsis.size()) {
      out.resize(options_.sample_bytes - kEllipsis.size());
      out.append(kEllipsis);
    } else {
      out.resize(options_.sample_bytes);
    }
  }
  return out;
}

// ---------------------------------------------------------------- compare

std::optional<Mismatch> CompareDigests(const ReplyDigest& primary, const ReplyDigest& secondary,
                                       CompareScope scope) {
  if (primary.has_error() != secondary.has_error()) return Mismatch::kError;
  if (primary.has_error() && primary.error_sqlstate() != secondary.error_sqlstate()) return Mismatch::kError;

  const auto& a = primary.result_sets();
  const auto& b = secondary.result_sets();
  const std::size_t n = std::min(a.size(), b.size());
  using End = ReplyDigest::End;
  // Both failed alike, but at a different statement of the request.
  for (std::size_t i = 0; i < n; ++i) {
    if ((a[i].end == End::kError) != (b[i].end == End::kError)) return Mismatch::kError;
  }

  if (scope == CompareScope::kFull) {
    const bool ordered = primary.options().ordered || secondary.options().ordered;
    for (std::size_t i = 0; i < n; ++i) {
      const bool cut_short = a[i].end == End::kError;
      // An error may come before or after the description (planning vs
      // execution), so a set it cut short compares only what both sides got.
      if (!cut_short || (a[i].shape != ReplyDigest::Shape::kNone && b[i].shape != ReplyDigest::Shape::kNone)) {
        if (auto m = CompareColumns(a[i], b[i])) return m;
      }
      if (cut_short) continue;
      if (a[i].rows != b[i].rows) return Mismatch::kLength;
      if (ordered ? a[i].chain != b[i].chain : a[i].multiset != b[i].multiset) return Mismatch::kRows;
    }
  }

  if (a.size() != b.size()) return Mismatch::kCommandTag;
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i].end != b[i].end || a[i].tag != b[i].tag) return Mismatch::kCommandTag;
  }
  return std::nullopt;
}

}  // namespace turnout::proxy::pg
