#include "protocol/pg/sql_lexer.h"

#include <algorithm>
#include <array>

namespace turnout::protocol::pg {
namespace {

#define TURNOUT_PG_KEYWORD_TEXT(name, text) std::string_view(text),
constexpr std::array kKeywordText = {TURNOUT_PG_SQL_KEYWORDS(TURNOUT_PG_KEYWORD_TEXT)};
#undef TURNOUT_PG_KEYWORD_TEXT

// Binary search below needs the list sorted; checked at compile time.
static_assert(std::is_sorted(kKeywordText.begin(), kKeywordText.end()));
constexpr std::size_t kMaxKeywordLength = 15;

constexpr char ToLower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
constexpr bool IsDigit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool IsHigh(char c) noexcept { return static_cast<unsigned char>(c) >= 0x80; }
// sql-syntax-lexical: identifiers start with a letter, underscore or any
// non-ASCII byte, and continue with those, digits and dollar signs.
constexpr bool IsIdentStart(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || IsHigh(c);
}
constexpr bool IsIdentChar(char c) noexcept { return IsIdentStart(c) || IsDigit(c) || c == '$'; }
constexpr bool IsSpace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
// Characters an operator is made of (sql-syntax-lexical: Operators).
constexpr bool IsOperatorChar(char c) noexcept {
  switch (c) {
    case '+': case '-': case '*': case '/': case '<': case '>': case '=': case '~':
    case '!': case '@': case '#': case '%': case '^': case '&': case '|': case '`': case '?':
      return true;
    default:
      return false;
  }
}

}  // namespace

bool EqualsLower(std::string_view text, std::string_view lower) noexcept {
  if (text.size() != lower.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (ToLower(text[i]) != lower[i]) return false;
  }
  return true;
}

Keyword LookupKeyword(std::string_view word) noexcept {
  if (word.size() > kMaxKeywordLength || word.size() < 2) return Keyword::kNone;
  char buf[kMaxKeywordLength];
  for (std::size_t i = 0; i < word.size(); ++i) buf[i] = ToLower(word[i]);
  const std::string_view lower(buf, word.size());
  const auto it = std::lower_bound(kKeywordText.begin(), kKeywordText.end(), lower);
  if (it == kKeywordText.end() || *it != lower) return Keyword::kNone;
  return static_cast<Keyword>(1 + (it - kKeywordText.begin()));
}

std::string_view KeywordText(Keyword k) noexcept {
  const auto i = static_cast<std::size_t>(k);
  return i == 0 || i > kKeywordText.size() ? std::string_view() : kKeywordText[i - 1];
}

Token SqlLexer::Error(std::size_t begin) noexcept {
  pos_ = sql_.size();
  return {sql_.substr(begin), TokenKind::kError, Keyword::kNone};
}

bool SqlLexer::SkipSpaceAndComments(std::size_t* error_begin) noexcept {
  const std::size_t n = sql_.size();
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (IsSpace(c)) {
      ++pos_;
    } else if (c == '-' && pos_ + 1 < n && sql_[pos_ + 1] == '-') {
      const std::size_t eol = sql_.find('\n', pos_);
      pos_ = eol == std::string_view::npos ? n : eol + 1;
    } else if (c == '/' && pos_ + 1 < n && sql_[pos_ + 1] == '*') {
      // Block comments nest in PostgreSQL, unlike the SQL standard.
      const std::size_t begin = pos_;
      int depth = 0;
      while (pos_ < n) {
        if (sql_[pos_] == '/' && pos_ + 1 < n && sql_[pos_ + 1] == '*') {
          ++depth;
          pos_ += 2;
        } else if (sql_[pos_] == '*' && pos_ + 1 < n && sql_[pos_ + 1] == '/') {
          pos_ += 2;
          if (--depth == 0) break;
        } else {
          ++pos_;
        }
      }
      if (depth != 0) {
        *error_begin = begin;
        return false;
      }
    } else {
      break;
    }
  }
  return true;
}

Token SqlLexer::QuotedString(std::size_t begin, bool backslash_escapes) noexcept {
  // pos_ is at the opening quote. '' is a quote inside the string; with
  // escapes, a backslash protects the next byte (sql-syntax-strings-escape).
  const std::size_t n = sql_.size();
  ++pos_;
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (c == '\\' && backslash_escapes) {
      pos_ += 2;
    } else if (c == '\'') {
      if (pos_ + 1 < n && sql_[pos_ + 1] == '\'') {
        pos_ += 2;
      } else {
        ++pos_;
        return Make(TokenKind::kString, begin);
      }
    } else {
      ++pos_;
    }
  }
  return Error(begin);
}

Token SqlLexer::QuotedIdentifier(std::size_t begin) noexcept {
  const std::size_t n = sql_.size();
  ++pos_;
  while (pos_ < n) {
    if (sql_[pos_] == '"') {
      if (pos_ + 1 < n && sql_[pos_ + 1] == '"') {
        pos_ += 2;
        continue;
      }
      ++pos_;
      return Make(TokenKind::kQuotedIdentifier, begin);
    }
    ++pos_;
  }
  return Error(begin);
}

Token SqlLexer::DollarOrParam(std::size_t begin) noexcept {
  const std::size_t n = sql_.size();
  std::size_t p = pos_ + 1;
  if (p < n && IsDigit(sql_[p])) {
    while (p < n && IsDigit(sql_[p])) ++p;
    pos_ = p;
    return Make(TokenKind::kParam, begin);
  }
  // sql-syntax-dollar-quoting: $tag$ where the tag is an identifier without
  // dollar signs, or empty.
  if (p < n && IsIdentStart(sql_[p])) {
    while (p < n && IsIdentChar(sql_[p]) && sql_[p] != '$') ++p;
  }
  if (p >= n || sql_[p] != '$') {
    ++pos_;
    return Make(TokenKind::kOperator, begin);
  }
  const std::string_view tag = sql_.substr(pos_, p + 1 - pos_);
  const std::size_t close = sql_.find(tag, p + 1);
  if (close == std::string_view::npos) return Error(begin);
  pos_ = close + tag.size();
  return Make(TokenKind::kString, begin);
}

Token SqlLexer::Word(std::size_t begin) noexcept {
  const std::size_t n = sql_.size();
  while (pos_ < n && IsIdentChar(sql_[pos_])) ++pos_;
  Token t = Make(TokenKind::kWord, begin);
  t.keyword = LookupKeyword(t.text);
  return t;
}

Token SqlLexer::Number(std::size_t begin) noexcept {
  // Digits, one decimal point, an exponent; also 0x1F / 1_000 (PostgreSQL
  // 16) by taking trailing ASCII identifier characters.
  const std::size_t n = sql_.size();
  bool seen_dot = false;
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (c == '.') {
      if (seen_dot) break;
      seen_dot = true;
      ++pos_;
    } else if ((c == 'e' || c == 'E') && pos_ + 1 < n && (sql_[pos_ + 1] == '+' || sql_[pos_ + 1] == '-')) {
      pos_ += 2;
    } else if (IsDigit(c) || (IsIdentStart(c) && !IsHigh(c))) {
      ++pos_;
    } else {
      break;
    }
  }
  return Make(TokenKind::kNumber, begin);
}

Token SqlLexer::Operator(std::size_t begin) noexcept {
  const std::size_t n = sql_.size();
  while (pos_ < n && IsOperatorChar(sql_[pos_])) {
    // A comment start ends the operator (sql-syntax-lexical: Operators).
    if (pos_ > begin && pos_ + 1 < n &&
        ((sql_[pos_] == '-' && sql_[pos_ + 1] == '-') || (sql_[pos_] == '/' && sql_[pos_ + 1] == '*'))) {
      break;
    }
    ++pos_;
  }
  return Make(TokenKind::kOperator, begin);
}

Token SqlLexer::Next() noexcept {
  std::size_t error_begin = 0;
  if (!SkipSpaceAndComments(&error_begin)) return Error(error_begin);
  const std::size_t n = sql_.size();
  if (pos_ >= n) return {sql_.substr(n), TokenKind::kEnd, Keyword::kNone};
  const std::size_t begin = pos_;
  const char c = sql_[pos_];
  const char next = pos_ + 1 < n ? sql_[pos_ + 1] : '\0';

  if (IsIdentStart(c)) {
    if (next == '\'') {
      switch (c) {
        case 'e': case 'E':  // escape string
          ++pos_;
          return QuotedString(begin, true);
        case 'b': case 'B': case 'x': case 'X':  // bit strings: no escapes
          ++pos_;
          return QuotedString(begin, false);
        case 'n': case 'N':  // national character: a plain string
          ++pos_;
          return QuotedString(begin, !options_.standard_conforming_strings);
        default:
          break;
      }
    }
    if ((c == 'u' || c == 'U') && next == '&' && pos_ + 2 < n) {
      // U&'...' and U&"...": Unicode escapes use \XXXX, and a backslash
      // never protects a quote, so '' / "" doubling is the only quoting.
      if (sql_[pos_ + 2] == '\'') {
        pos_ += 2;
        return QuotedString(begin, false);
      }
      if (sql_[pos_ + 2] == '"') {
        pos_ += 2;
        return QuotedIdentifier(begin);
      }
    }
    return Word(begin);
  }
  if (IsDigit(c) || (c == '.' && IsDigit(next))) return Number(begin);
  switch (c) {
    case '\'':
      return QuotedString(begin, !options_.standard_conforming_strings);
    case '"':
      return QuotedIdentifier(begin);
    case '$':
      return DollarOrParam(begin);
    case '(':
      ++pos_;
      return Make(TokenKind::kLParen, begin);
    case ')':
      ++pos_;
      return Make(TokenKind::kRParen, begin);
    case '[':
      ++pos_;
      return Make(TokenKind::kLBracket, begin);
    case ']':
      ++pos_;
      return Make(TokenKind::kRBracket, begin);
    case ',':
      ++pos_;
      return Make(TokenKind::kComma, begin);
    case ';':
      ++pos_;
      return Make(TokenKind::kSemicolon, begin);
    case '.':
      ++pos_;
      return Make(TokenKind::kDot, begin);
    case ':':
      if (next == ':') {
        pos_ += 2;
        return Make(TokenKind::kDoubleColon, begin);
      }
      ++pos_;
      return Make(TokenKind::kColon, begin);
    default:
      break;
  }
  if (IsOperatorChar(c)) return Operator(begin);
  ++pos_;  // any other byte: a one-byte operator, so the walk always advances
  return Make(TokenKind::kOperator, begin);
}

}  // namespace turnout::protocol::pg
