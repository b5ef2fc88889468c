#pragma once
// A PostgreSQL SQL lexer for classification (sql-syntax-lexical). It walks
// the text once, yields tokens as views into it and never allocates. It
// knows enough to never mistake quoted text or comments for keywords:
// -- and nested /* */ comments, '...' with '' doubling, E'...' with backslash
// escapes (and plain '...' too when standard_conforming_strings is off),
// B'', X'', N'', U&'...' and U&"...", "quoted ""identifiers""", dollar quoting
// $tag$...$tag$, $n parameters, numbers, operators and punctuation.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/pg/sql_keywords.inc"

namespace turnout::protocol::pg {

#define TURNOUT_PG_KEYWORD_ENUM(name, text) name,
// Keywords the classifier uses; any other word is kNone.
enum class Keyword : std::uint8_t {
  kNone = 0,
  TURNOUT_PG_SQL_KEYWORDS(TURNOUT_PG_KEYWORD_ENUM)
};
#undef TURNOUT_PG_KEYWORD_ENUM

enum class TokenKind : std::uint8_t {
  kEnd,               // no more input
  kWord,              // identifier or keyword, unquoted (keyword set when known)
  kQuotedIdentifier,  // "..." or U&"..." (text includes the quotes)
  kString,            // any string constant, including dollar-quoted (with quotes)
  kNumber,
  kParam,             // $1
  kOperator,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kSemicolon,
  kDot,
  kColon,
  kDoubleColon,
  kError,  // unterminated string, identifier or comment: the rest of the input
};

struct Token {
  std::string_view text;
  TokenKind kind = TokenKind::kEnd;
  Keyword keyword = Keyword::kNone;
};

struct LexerOptions {
  // Server setting standard_conforming_strings (on since 9.1); when off,
  // backslash escapes apply in plain '...' strings too.
  bool standard_conforming_strings = true;
};

class SqlLexer {
 public:
  explicit SqlLexer(std::string_view sql, LexerOptions options = {}) noexcept
      : sql_(sql), options_(options) {}

  // The next token; kEnd forever once the input is exhausted, and kEnd
  // after a kError token.
  Token Next() noexcept;

 private:
  Token Make(TokenKind kind, std::size_t begin) noexcept {
    return {sql_.substr(begin, pos_ - begin), kind, Keyword::kNone};
  }
  Token Error(std::size_t begin) noexcept;
  bool SkipSpaceAndComments(std::size_t* error_begin) noexcept;
  Token QuotedString(std::size_t begin, bool backslash_escapes) noexcept;
  Token QuotedIdentifier(std::size_t begin) noexcept;
  Token DollarOrParam(std::size_t begin) noexcept;
  Token Word(std::size_t begin) noexcept;
  Token Number(std::size_t begin) noexcept;
  Token Operator(std::size_t begin) noexcept;

  std::string_view sql_;
  LexerOptions options_;
  std::size_t pos_ = 0;
};

// The keyword spelled by `word`, ASCII case-insensitively; kNone otherwise.
Keyword LookupKeyword(std::string_view word) noexcept;
// Lower-case spelling of a keyword ("" for kNone).
std::string_view KeywordText(Keyword k) noexcept;

// ASCII case-insensitive equality; `lower` must already be lower case.
bool EqualsLower(std::string_view text, std::string_view lower) noexcept;

}  // namespace turnout::protocol::pg
