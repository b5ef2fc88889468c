// Table-driven tests of the RESP request and reply parsers, the Value
// decoder, the comparator and the writers. Every valid input is also fed
// split at every byte offset (fresh parser: prefix, then all) and byte by
// byte into one resumable parser. hiredis' reader is the reference decoder
// for RESP2 replies.
#include <hiredis.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "protocol/resp/codec_error.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_value.h"
#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"

namespace turnout::protocol::resp {
namespace {

using namespace std::string_literals;

// ------------------------------------------------------------------ requests

struct RequestCase {
  std::string name;
  std::string input;
  std::vector<std::string> args;
  std::size_t frame_length;  // 0: the whole input
  bool inline_form = false;
};

std::vector<RequestCase> ValidRequests() {
  return {
      {"ping", "*1\r\n$4\r\nPING\r\n", {"PING"}, 0},
      {"set", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", {"SET", "k", "hello"}, 0},
      {"binary_bulk", "*2\r\n$4\r\nECHO\r\n$6\r\na\r\n\0b\n\r\n"s, {"ECHO", "a\r\n\0b\n"s}, 0},
      {"empty_bulk", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", {"ECHO", ""}, 0},
      {"pipelined_first", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", {"PING"}, 14},
      {"skips_empty_multibulk", "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", {"PING"}, 0},
      // networking.c skips the two bytes after a bulk without checking them.
      {"lax_bulk_terminator", "*1\r\n$4\r\nPINGxx", {"PING"}, 0},
      {"lax_count_terminator", "*1\rX$4\r\nPING\r\n", {"PING"}, 0},
      {"inline_crlf", "PING\r\n", {"PING"}, 0, true},
      {"inline_lf", "PING\n", {"PING"}, 0, true},
      {"inline_blanks", "  GET\t  key  \r\n", {"GET", "key"}, 0, true},
      {"inline_skips_blank_lines", "\r\n\n  \r\nPING\r\n", {"PING"}, 0, true},
      {"inline_double_quotes", "SET k \"a b\"\r\n", {"SET", "k", "a b"}, 0, true},
      {"inline_escapes", "ECHO \"\\x41\\n\\t\\q\" 'it\\'s'\r\n", {"ECHO", "A\n\tq", "it's"}, 0, true},
      {"inline_quote_mid_token", "a\"b c\"\n", {"ab c"}, 0, true},
      {"inline_empty_quotes", "ECHO \"\" ''\n", {"ECHO", "", ""}, 0, true},
      {"inline_vertical_tab_is_not_a_delimiter", "ECHO a\vb\n", {"ECHO", "a\vb"}, 0, true},
  };
}

// Parses `input` in one call and checks the result.
void ExpectCommand(const RequestCase& c, RequestParser& parser, ParseStatus status) {
  ASSERT_EQ(status, ParseStatus::kComplete) << c.name;
  const Command& cmd = parser.command();
  ASSERT_EQ(cmd.args.size(), c.args.size()) << c.name;
  for (std::size_t i = 0; i < c.args.size(); ++i) EXPECT_EQ(cmd.args[i], c.args[i]) << c.name;
  EXPECT_EQ(cmd.frame_length, c.frame_length == 0 ? c.input.size() : c.frame_length) << c.name;
  EXPECT_EQ(cmd.inline_form, c.inline_form) << c.name;
}

TEST(RequestParserTest, ValidInOneCall) {
  for (const RequestCase& c : ValidRequests()) {
    RequestParser parser;
    ExpectCommand(c, parser, parser.Parse(c.input));
  }
}

TEST(RequestParserTest, ValidSplitAtEveryOffset) {
  for (const RequestCase& c : ValidRequests()) {
    std::size_t frame = c.frame_length == 0 ? c.input.size() : c.frame_length;
    for (std::size_t k = 0; k < frame; ++k) {
      RequestParser parser;
      // Copy so that a view into the first buffer would be caught by ASan.
      std::string prefix = c.input.substr(0, k);
      ASSERT_EQ(parser.Parse(prefix), ParseStatus::kNeedMore) << c.name << " at " << k;
      std::string all = c.input;
      ExpectCommand(c, parser, parser.Parse(all));
    }
  }
}

TEST(RequestParserTest, ValidByteByByte) {
  for (const RequestCase& c : ValidRequests()) {
    std::size_t frame = c.frame_length == 0 ? c.input.size() : c.frame_length;
    RequestParser parser;
    std::string buffer;
    ParseStatus st = ParseStatus::kNeedMore;
    for (std::size_t k = 0; k < frame; ++k) {
      buffer.push_back(c.input[k]);
      st = parser.Parse(buffer);
      if (k + 1 < frame) {
        ASSERT_EQ(st, ParseStatus::kNeedMore) << c.name << " at " << k;
      }
    }
    ExpectCommand(c, parser, st);
  }
}

TEST(RequestParserTest, PipelineFramesEveryCommand) {
  std::string input;
  for (int i = 0; i < 100; ++i) {
    input += "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(std::to_string(i).size()) +
             "\r\n" + std::to_string(i) + "\r\n";
  }
  input += "GET k\r\n";
  RequestParser parser;
  std::string_view rest = input;
  int frames = 0;
  while (!rest.empty()) {
    ASSERT_EQ(parser.Parse(rest), ParseStatus::kComplete);
    if (frames < 100) {
      EXPECT_EQ(parser.command().args[2], std::to_string(frames));
    }
    rest.remove_prefix(parser.command().frame_length);
    ++frames;
  }
  EXPECT_EQ(frames, 101);
}

struct RequestErrorCase {
  std::string name;
  std::string input;
  CodecError error;
  std::string reply;  // exact Redis 7.0.15 reply, checked against a live server
  bool authenticated = true;
};

std::vector<RequestErrorCase> InvalidRequests() {
  return {
      {"count_not_number", "*abc\r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"count_plus", "*+1\r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"count_leading_zero", "*01\r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"count_space", "*1 \r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"count_too_big", "*3000000000\r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"count_over_limit", "*1048577\r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"count_overflow", "*99999999999999999999\r\n", CodecError::kInvalidMultibulkLength,
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"bulk_negative", "*1\r\n$-1\r\n", CodecError::kInvalidBulkLength,
       "-ERR Protocol error: invalid bulk length\r\n"},
      {"bulk_huge", "*1\r\n$600000000\r\n", CodecError::kInvalidBulkLength,
       "-ERR Protocol error: invalid bulk length\r\n"},
      {"bulk_not_number", "*1\r\n$abc\r\n", CodecError::kInvalidBulkLength,
       "-ERR Protocol error: invalid bulk length\r\n"},
      {"bulk_plus", "*1\r\n$+4\r\nPING\r\n", CodecError::kInvalidBulkLength,
       "-ERR Protocol error: invalid bulk length\r\n"},
      {"expected_dollar", "*2\r\nx\r\n", CodecError::kExpectedDollar,
       "-ERR Protocol error: expected '$', got 'x'\r\n"},
      {"expected_dollar_after_arg", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
       CodecError::kExpectedDollar, "-ERR Protocol error: expected '$', got 'f'\r\n"},
      {"unbalanced_double", "PING \"a\r\n", CodecError::kUnbalancedQuotes,
       "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"quote_followed_by_text", "PING \"a\"b\r\n", CodecError::kUnbalancedQuotes,
       "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"unbalanced_single", "PING 'a\n", CodecError::kUnbalancedQuotes,
       "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"too_big_inline", std::string(70000, 'x'), CodecError::kTooBigInlineRequest,
       "-ERR Protocol error: too big inline request\r\n"},
      // strchr() stops at NUL: the newline is never seen (networking.c).
      {"inline_nul_hides_newline", "ECHO a\0b\n"s + std::string(70000, 'x'),
       CodecError::kTooBigInlineRequest, "-ERR Protocol error: too big inline request\r\n"},
      {"too_big_count", "*" + std::string(70000, '1'), CodecError::kTooBigMultibulkCount,
       "-ERR Protocol error: too big mbulk count string\r\n"},
      {"too_big_bulk_count", "*1\r\n$" + std::string(70000, '1'), CodecError::kTooBigBulkCount,
       "-ERR Protocol error: too big bulk count string\r\n"},
      {"unauthenticated_count", "*11\r\n", CodecError::kUnauthenticatedMultibulkLength,
       "-ERR Protocol error: unauthenticated multibulk length\r\n", false},
      {"unauthenticated_bulk", "*2\r\n$4\r\nECHO\r\n$20000\r\n",
       CodecError::kUnauthenticatedBulkLength,
       "-ERR Protocol error: unauthenticated bulk length\r\n", false},
  };
}

TEST(RequestParserTest, InvalidGiveRedisErrors) {
  for (const RequestErrorCase& c : InvalidRequests()) {
    RequestParser parser;
    parser.set_authenticated(c.authenticated);
    ASSERT_EQ(parser.Parse(c.input), ParseStatus::kError) << c.name;
    EXPECT_EQ(parser.error(), c.error) << c.name;
    std::string reply;
    parser.AppendErrorReply(reply);
    EXPECT_EQ(reply, c.reply) << c.name;
    EXPECT_EQ(parser.error_code().category().name(), std::string("turnout.resp"));
  }
}

TEST(RequestParserTest, InvalidFedByteByByte) {
  for (const RequestErrorCase& c : InvalidRequests()) {
    if (c.input.size() > 2000) continue;  // the limit cases are quadratic here by design
    RequestParser parser;
    parser.set_authenticated(c.authenticated);
    std::string buffer;
    ParseStatus st = ParseStatus::kNeedMore;
    for (char ch : c.input) {
      buffer.push_back(ch);
      st = parser.Parse(buffer);
      if (st != ParseStatus::kNeedMore) break;
    }
    ASSERT_EQ(st, ParseStatus::kError) << c.name;
    EXPECT_EQ(parser.error(), c.error) << c.name;
  }
}

TEST(RequestParserTest, LimitsAreConfigurable) {
  RequestLimits limits;
  limits.max_bulk_length = 3;
  RequestParser parser(limits);
  EXPECT_EQ(parser.Parse("*1\r\n$4\r\nPING\r\n"), ParseStatus::kError);
  EXPECT_EQ(parser.error(), CodecError::kInvalidBulkLength);
  RequestParser ok;
  EXPECT_EQ(ok.Parse("*1\r\n$4\r\nPING\r\n"), ParseStatus::kComplete);
}

TEST(RequestParserTest, BigBulkInSmallChunksIsLinear) {
  // 8 MiB value fed 1 KiB at a time: each call only looks at new bytes, so
  // this finishes quickly; a rescanning parser would take seconds.
  std::string value(8 << 20, 'v');
  std::string input = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(value.size()) + "\r\n" +
                      value + "\r\n";
  RequestParser parser;
  ParseStatus st = ParseStatus::kNeedMore;
  std::size_t fed = 0;
  while (st == ParseStatus::kNeedMore) {
    fed = std::min(input.size(), fed + 1024);
    st = parser.Parse(std::string_view(input).substr(0, fed));
  }
  ASSERT_EQ(st, ParseStatus::kComplete);
  EXPECT_EQ(parser.command().args[2].size(), value.size());
  EXPECT_EQ(parser.command().frame_length, input.size());
}

TEST(RequestParserTest, ParseRedisInt64MatchesString2ll) {
  std::int64_t v = 0;
  EXPECT_TRUE(ParseRedisInt64("0", v));
  EXPECT_TRUE(ParseRedisInt64("-9223372036854775808", v));
  EXPECT_EQ(v, INT64_MIN);
  EXPECT_TRUE(ParseRedisInt64("9223372036854775807", v));
  EXPECT_FALSE(ParseRedisInt64("9223372036854775808", v));
  EXPECT_FALSE(ParseRedisInt64("-0", v));
  EXPECT_FALSE(ParseRedisInt64("01", v));
  EXPECT_FALSE(ParseRedisInt64("+1", v));
  EXPECT_FALSE(ParseRedisInt64("", v));
  EXPECT_FALSE(ParseRedisInt64("-", v));
  EXPECT_FALSE(ParseRedisInt64("1 ", v));
}

// ------------------------------------------------------------------- replies

struct ReplyCase {
  std::string name;
  std::string input;
  ReplyType type;
  bool resp2 = false;  // hiredis 0.14 understands it
  bool has_attribute = false;
};

std::vector<ReplyCase> ValidReplies() {
  return {
      {"simple", "+OK\r\n", ReplyType::kSimpleString, true},
      {"error", "-ERR unknown command 'x'\r\n", ReplyType::kError, true},
      {"integer", ":1000\r\n", ReplyType::kInteger, true},
      {"negative_integer", ":-42\r\n", ReplyType::kInteger, true},
      {"bulk", "$5\r\nhello\r\n", ReplyType::kBulkString, true},
      {"bulk_binary", "$4\r\n\r\n\0\n\r\n"s, ReplyType::kBulkString, true},
      {"empty_bulk", "$0\r\n\r\n", ReplyType::kBulkString, true},
      {"null_bulk", "$-1\r\n", ReplyType::kNull, true},
      {"null_array", "*-1\r\n", ReplyType::kNull, true},
      {"empty_array", "*0\r\n", ReplyType::kArray, true},
      {"array", "*3\r\n:1\r\n$3\r\nfoo\r\n+bar\r\n", ReplyType::kArray, true},
      {"nested", "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n$-1\r\n", ReplyType::kArray, true},
      {"null", "_\r\n", ReplyType::kNull},
      {"double", ",3.14\r\n", ReplyType::kDouble},
      {"double_inf", ",-inf\r\n", ReplyType::kDouble},
      {"double_exp", ",1.5e+300\r\n", ReplyType::kDouble},
      {"boolean", "#t\r\n", ReplyType::kBoolean},
      {"blob_error", "!21\r\nSYNTAX invalid syntax\r\n", ReplyType::kBlobError},
      {"verbatim", "=15\r\ntxt:Some string\r\n", ReplyType::kVerbatimString},
      {"big_number", "(3492890328409238509324850943850943825024385\r\n", ReplyType::kBigNumber},
      {"map", "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", ReplyType::kMap},
      {"empty_map", "%0\r\n", ReplyType::kMap},
      {"set", "~3\r\n+a\r\n+b\r\n+c\r\n", ReplyType::kSet},
      {"push", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", ReplyType::kPush},
      {"attribute", "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.19\r\n$1\r\nb\r\n,0.01\r\n"
                    "*2\r\n:2039123\r\n:9543892\r\n",
       ReplyType::kArray, false, true},
      {"nested_attribute", "*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nx\r\n:2\r\n", ReplyType::kArray},
      {"empty_attribute", "|0\r\n+OK\r\n", ReplyType::kSimpleString, false, true},
      {"streamed_string", "$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
       ReplyType::kBulkString},
      {"streamed_array", "*?\r\n:1\r\n:2\r\n:3\r\n.\r\n", ReplyType::kArray},
      {"streamed_map", "%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", ReplyType::kMap},
      {"streamed_nested", "*?\r\n*?\r\n.\r\n$?\r\n;1\r\nx\r\n;0\r\n.\r\n", ReplyType::kArray},
      {"map_in_array", "*2\r\n%1\r\n+a\r\n~1\r\n#f\r\n_\r\n", ReplyType::kArray},
  };
}

TEST(ReplyParserTest, ValidSplitAtEveryOffsetAndByteByByte) {
  for (const ReplyCase& c : ValidReplies()) {
    {
      ReplyParser parser;
      ASSERT_EQ(parser.Parse(c.input), ParseStatus::kComplete) << c.name;
      EXPECT_EQ(parser.frame().type, c.type) << c.name;
      EXPECT_EQ(parser.frame().length, c.input.size()) << c.name;
      EXPECT_EQ(parser.frame().has_attribute, c.has_attribute) << c.name;
      // Followed by another reply: the frame still ends at the same byte.
      ASSERT_EQ(parser.Parse(c.input + "+NEXT\r\n"), ParseStatus::kComplete) << c.name;
      EXPECT_EQ(parser.frame().length, c.input.size()) << c.name;
    }
    for (std::size_t k = 0; k < c.input.size(); ++k) {
      ReplyParser parser;
      std::string prefix = c.input.substr(0, k);
      ASSERT_EQ(parser.Parse(prefix), ParseStatus::kNeedMore) << c.name << " at " << k;
      std::string all = c.input;
      ASSERT_EQ(parser.Parse(all), ParseStatus::kComplete) << c.name << " at " << k;
      EXPECT_EQ(parser.frame().type, c.type) << c.name;
      EXPECT_EQ(parser.frame().length, c.input.size()) << c.name;
    }
    ReplyParser parser;
    std::string buffer;
    for (std::size_t k = 0; k < c.input.size(); ++k) {
      buffer.push_back(c.input[k]);
      ParseStatus st = parser.Parse(buffer);
      if (k + 1 < c.input.size()) {
        ASSERT_EQ(st, ParseStatus::kNeedMore) << c.name << " at " << k;
      } else {
        ASSERT_EQ(st, ParseStatus::kComplete) << c.name;
        EXPECT_EQ(parser.frame().type, c.type) << c.name;
      }
    }
  }
}

// Compares a decoded Value with hiredis' reply tree.
void ExpectSameAsHiredis(const Value& v, const redisReply* r, const std::string& name) {
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      EXPECT_EQ(v.type, ReplyType::kSimpleString) << name;
      EXPECT_EQ(v.str, std::string(r->str, r->len)) << name;
      break;
    case REDIS_REPLY_ERROR:
      EXPECT_EQ(v.type, ReplyType::kError) << name;
      EXPECT_EQ(v.str, std::string(r->str, r->len)) << name;
      break;
    case REDIS_REPLY_INTEGER:
      EXPECT_EQ(v.type, ReplyType::kInteger) << name;
      EXPECT_EQ(v.integer, r->integer) << name;
      break;
    case REDIS_REPLY_STRING:
      EXPECT_EQ(v.type, ReplyType::kBulkString) << name;
      EXPECT_EQ(v.str, std::string(r->str, r->len)) << name;
      break;
    case REDIS_REPLY_NIL:
      EXPECT_EQ(v.type, ReplyType::kNull) << name;
      break;
    case REDIS_REPLY_ARRAY:
      EXPECT_EQ(v.type, ReplyType::kArray) << name;
      ASSERT_EQ(v.elements.size(), r->elements) << name;
      for (std::size_t i = 0; i < r->elements; ++i) {
        ExpectSameAsHiredis(v.elements[i], r->element[i], name);
      }
      break;
    default:
      ADD_FAILURE() << name << ": unexpected hiredis type " << r->type;
  }
}

TEST(ReplyParserTest, Resp2AgreesWithHiredis) {
  for (const ReplyCase& c : ValidReplies()) {
    if (!c.resp2) continue;
    redisReader* reader = redisReaderCreate();
    ASSERT_EQ(redisReaderFeed(reader, c.input.data(), c.input.size()), REDIS_OK);
    void* reply = nullptr;
    ASSERT_EQ(redisReaderGetReply(reader, &reply), REDIS_OK) << c.name;
    ASSERT_NE(reply, nullptr) << c.name;
    EXPECT_EQ(reader->len - reader->pos, 0u) << c.name << ": hiredis framed a different length";
    Value v;
    std::size_t consumed = 0;
    ASSERT_FALSE(DecodeReply(c.input, v, &consumed)) << c.name;
    EXPECT_EQ(consumed, c.input.size());
    ExpectSameAsHiredis(v, static_cast<redisReply*>(reply), c.name);
    freeReplyObject(reply);
    redisReaderFree(reader);
  }
}

struct ReplyErrorCase {
  std::string name;
  std::string input;
  CodecError error;
  bool hiredis_rejects = false;  // hiredis 0.14 also reports a protocol error
};

std::vector<ReplyErrorCase> InvalidReplies() {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  return {
      {"bad_type", "?x\r\n", CodecError::kInvalidReplyType, true},
      {"bad_type_binary", "\x01\x02\r\n", CodecError::kInvalidReplyType, true},
      {"bare_crlf", "\r\n", CodecError::kInvalidReplyType, true},
      {"bulk_len_not_number", "$abc\r\n", CodecError::kInvalidLength},
      {"bulk_len_negative", "$-2\r\n", CodecError::kInvalidLength},
      {"bulk_len_huge", "$99999999999\r\n", CodecError::kInvalidLength},
      {"bulk_no_crlf", "$3\r\nfooXY", CodecError::kMissingTerminator},
      {"array_len_negative", "*-2\r\n", CodecError::kInvalidLength},
      {"cr_without_lf", "+OK\rX\r\n", CodecError::kMissingTerminator},
      {"integer_garbage", ":12a\r\n", CodecError::kInvalidInteger},
      {"integer_overflow", ":99999999999999999999\r\n", CodecError::kInvalidInteger},
      {"double_garbage", ",abc\r\n", CodecError::kInvalidDouble},
      {"boolean_garbage", "#x\r\n", CodecError::kInvalidBoolean},
      {"big_number_garbage", "(12x\r\n", CodecError::kInvalidBigNumber},
      {"null_with_content", "_x\r\n", CodecError::kInvalidLength},
      {"verbatim_short", "=2\r\nab\r\n", CodecError::kInvalidVerbatim},
      {"null_blob_error", "!-1\r\n", CodecError::kInvalidLength},
      {"null_map", "%-1\r\n", CodecError::kInvalidLength},
      {"stream_end_outside", ".\r\n", CodecError::kUnexpectedStreamEnd},
      {"stream_end_in_counted", "*2\r\n:1\r\n.\r\n", CodecError::kUnexpectedStreamEnd},
      {"bad_stream_chunk", "$?\r\n+x\r\n", CodecError::kInvalidStreamChunk},
      {"streamed_attribute", "|?\r\n", CodecError::kInvalidLength},
      {"too_deep", deep, CodecError::kNestingTooDeep},
  };
}

TEST(ReplyParserTest, InvalidGiveErrors) {
  for (const ReplyErrorCase& c : InvalidReplies()) {
    ReplyParser parser;
    ASSERT_EQ(parser.Parse(c.input), ParseStatus::kError) << c.name;
    EXPECT_EQ(parser.error(), c.error) << c.name << ": " << parser.error_code().message();
    // Byte by byte reaches the same error.
    ReplyParser incremental;
    std::string buffer;
    ParseStatus st = ParseStatus::kNeedMore;
    for (char ch : c.input) {
      buffer.push_back(ch);
      st = incremental.Parse(buffer);
      if (st != ParseStatus::kNeedMore) break;
    }
    EXPECT_EQ(st, ParseStatus::kError) << c.name;
    EXPECT_EQ(incremental.error(), c.error) << c.name;
    Value v;
    EXPECT_TRUE(DecodeReply(c.input, v)) << c.name;
    if (c.hiredis_rejects) {
      redisReader* reader = redisReaderCreate();
      redisReaderFeed(reader, c.input.data(), c.input.size());
      void* reply = nullptr;
      EXPECT_EQ(redisReaderGetReply(reader, &reply), REDIS_ERR) << c.name;
      if (reply != nullptr) freeReplyObject(reply);
      redisReaderFree(reader);
    }
  }
}

TEST(ReplyParserTest, TruncatedNeedsMoreAndDecoderSaysTruncated) {
  for (const ReplyCase& c : ValidReplies()) {
    for (std::size_t k = 0; k < c.input.size(); ++k) {
      Value v;
      std::error_code ec = DecodeReply(std::string_view(c.input).substr(0, k), v);
      EXPECT_EQ(ec, CodecError::kTruncated) << c.name << " at " << k << ": " << ec.message();
    }
  }
}

TEST(ReplyParserTest, DepthLimitIsConfigurable) {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  ReplyParser parser(ReplyLimits{.max_depth = 300});
  ASSERT_EQ(parser.Parse(deep), ParseStatus::kComplete);
  EXPECT_EQ(parser.frame().length, deep.size());
  Value v;
  EXPECT_EQ(DecodeReply(deep, v), CodecError::kNestingTooDeep);
  EXPECT_FALSE(DecodeReply(deep, v, nullptr, DecodeOptions{.max_depth = 300}));
}

TEST(ReplyParserTest, HugeCountsDoNotAllocate) {
  // A peer-chosen count must not size an allocation.
  Value v;
  EXPECT_EQ(DecodeReply("*1000000000\r\n:1\r\n", v), CodecError::kTruncated);
  ReplyParser parser;
  EXPECT_EQ(parser.Parse("*4294967296\r\n"), ParseStatus::kNeedMore);
}

TEST(ReplyParserTest, StreamsAnOversizedBulkWithDropPrefix) {
  std::string payload(100000, 'p');
  std::string reply = "$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
  ReplyParser parser;
  std::string window;  // what the session still holds
  std::size_t offset = 0;
  std::size_t forwarded = 0;
  ParseStatus st = ParseStatus::kNeedMore;
  while (st == ParseStatus::kNeedMore) {
    std::size_t n = std::min<std::size_t>(4096, reply.size() - offset);
    window.append(reply, offset, n);
    offset += n;
    st = parser.Parse(window);
    if (st == ParseStatus::kNeedMore) {
      std::size_t ok = parser.validated();
      forwarded += ok;
      window.erase(0, ok);
      parser.DropPrefix(ok);
      EXPECT_LE(window.size(), 4096u + 2);
    }
  }
  ASSERT_EQ(st, ParseStatus::kComplete);
  EXPECT_EQ(forwarded + parser.frame().length, reply.size());
}

// --------------------------------------------------------- Value, comparator

TEST(ValueTest, DecodesEveryType) {
  Value v;
  ASSERT_FALSE(DecodeReply("=15\r\ntxt:Some string\r\n", v));
  EXPECT_EQ(v.type, ReplyType::kVerbatimString);
  EXPECT_EQ(v.format, "txt");
  EXPECT_EQ(v.str, "Some string");
  ASSERT_FALSE(DecodeReply("$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n", v));
  EXPECT_EQ(v.str, "Hello");
  ASSERT_FALSE(DecodeReply("|1\r\n+a\r\n:1\r\n%1\r\n+k\r\n#t\r\n", v));
  EXPECT_EQ(v.type, ReplyType::kMap);
  ASSERT_EQ(v.attributes.size(), 2u);
  EXPECT_EQ(v.attributes[0].str, "a");
  ASSERT_EQ(v.elements.size(), 2u);
  EXPECT_EQ(v.elements[1].integer, 1);
  ASSERT_FALSE(DecodeReply("~?\r\n+a\r\n+b\r\n.\r\n", v));
  EXPECT_EQ(v.type, ReplyType::kSet);
  EXPECT_EQ(v.elements.size(), 2u);
  std::size_t consumed = 0;
  ASSERT_FALSE(DecodeReply("+OK\r\n+NEXT\r\n", v, &consumed));
  EXPECT_EQ(consumed, 5u);
}

Value Decoded(std::string_view s) {
  Value v;
  std::error_code ec = DecodeReply(s, v);
  EXPECT_FALSE(ec) << s << ": " << ec.message();
  return v;
}

TEST(CompareTest, SetsAndMapsAreOrderFree) {
  EXPECT_EQ(CompareReplies(Decoded("~3\r\n+a\r\n+b\r\n+c\r\n"), Decoded("~3\r\n+c\r\n+a\r\n+b\r\n")),
            ReplyMismatch::kNone);
  EXPECT_EQ(CompareReplies(Decoded("~2\r\n+a\r\n+a\r\n"), Decoded("~2\r\n+a\r\n+b\r\n")),
            ReplyMismatch::kValue);
  EXPECT_EQ(CompareReplies(Decoded("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n"),
                           Decoded("%2\r\n+b\r\n:2\r\n+a\r\n:1\r\n")),
            ReplyMismatch::kNone);
  // Pairs stay pairs: swapping values is a difference.
  EXPECT_EQ(CompareReplies(Decoded("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n"),
                           Decoded("%2\r\n+a\r\n:2\r\n+b\r\n:1\r\n")),
            ReplyMismatch::kValue);
  // Nested sets inside an ordered array.
  EXPECT_EQ(CompareReplies(Decoded("*2\r\n~2\r\n:1\r\n:2\r\n:3\r\n"),
                           Decoded("*2\r\n~2\r\n:2\r\n:1\r\n:3\r\n")),
            ReplyMismatch::kNone);
}

TEST(CompareTest, ArraysAreOrderedUnlessFlagged) {
  Value a = Decoded("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
  Value b = Decoded("*3\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n");
  EXPECT_EQ(CompareReplies(a, b), ReplyMismatch::kValue);
  EXPECT_EQ(CompareReplies(a, b, CompareOptions{.unordered = true}), ReplyMismatch::kNone);
  // Only the top level is unordered: nested arrays keep their order.
  Value c = Decoded("*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n");
  Value d = Decoded("*2\r\n:3\r\n*2\r\n:2\r\n:1\r\n");
  EXPECT_EQ(CompareReplies(c, d, CompareOptions{.unordered = true}), ReplyMismatch::kValue);
}

TEST(CompareTest, KindsOfMismatch) {
  EXPECT_EQ(CompareReplies(Decoded(":1\r\n"), Decoded("$1\r\n1\r\n")), ReplyMismatch::kType);
  EXPECT_EQ(CompareReplies(Decoded("*1\r\n:1\r\n"), Decoded("*2\r\n:1\r\n:1\r\n")),
            ReplyMismatch::kLength);
  EXPECT_EQ(CompareReplies(Decoded("$1\r\na\r\n"), Decoded("$1\r\nb\r\n")), ReplyMismatch::kValue);
  EXPECT_EQ(CompareReplies(Decoded("$-1\r\n"), Decoded("_\r\n")), ReplyMismatch::kNone);
  EXPECT_EQ(CompareReplies(Decoded("*-1\r\n"), Decoded("$-1\r\n")), ReplyMismatch::kNone);
  // Attributes are ignored unless asked for.
  Value with = Decoded("|1\r\n+x\r\n:1\r\n+OK\r\n");
  Value without = Decoded("+OK\r\n");
  EXPECT_EQ(CompareReplies(with, without), ReplyMismatch::kNone);
  EXPECT_EQ(CompareReplies(with, without, CompareOptions{.compare_attributes = true}),
            ReplyMismatch::kValue);
  EXPECT_EQ(ReplyMismatchName(ReplyMismatch::kLength), "length");
}

// ------------------------------------------------------------------- writers

TEST(WriterTest, Forms) {
  std::string out;
  AppendSimpleString(out, "OK");
  AppendError(out, "ERR bad\r\nthing");
  AppendInteger(out, -5);
  AppendBulkString(out, "hi");
  AppendNull(out, false);
  AppendNull(out, false, true);
  AppendNull(out, true);
  AppendArrayHeader(out, 2);
  AppendMapHeader(out, 2, false);
  AppendMapHeader(out, 2, true);
  AppendSetHeader(out, 1, true);
  AppendPushHeader(out, 3, true);
  AppendPushHeader(out, 3, false);
  AppendBoolean(out, true, true);
  AppendBoolean(out, false, false);
  AppendDouble(out, 1.5, true);
  AppendDouble(out, 1.5, false);
  EXPECT_EQ(out,
            "+OK\r\n-ERR bad  thing\r\n:-5\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n_\r\n*2\r\n*4\r\n%2\r\n"
            "~1\r\n>3\r\n*3\r\n#t\r\n:0\r\n,1.5\r\n$3\r\n1.5\r\n");
}

TEST(WriterTest, CommandRoundTripsThroughRequestParser) {
  std::string out;
  std::string binary = "a\r\n\0b"s;
  AppendCommand(out, {"RESTORE", "key", "0", binary, "REPLACE"});
  RequestParser parser;
  ASSERT_EQ(parser.Parse(out), ParseStatus::kComplete);
  ASSERT_EQ(parser.command().args.size(), 5u);
  EXPECT_EQ(parser.command().args[3], binary);
  EXPECT_EQ(parser.command().frame_length, out.size());
}

TEST(WriterTest, RepliesRoundTripThroughReplyParser) {
  std::string out;
  AppendMapHeader(out, 1, true);
  AppendBulkString(out, "k");
  AppendArrayHeader(out, 2);
  AppendDouble(out, -2.25, true);
  AppendNull(out, true);
  ReplyParser parser;
  ASSERT_EQ(parser.Parse(out), ParseStatus::kComplete);
  EXPECT_EQ(parser.frame().type, ReplyType::kMap);
  EXPECT_EQ(parser.frame().length, out.size());
}

TEST(CodecErrorTest, CategoryAndText) {
  std::error_code ec = CodecError::kInvalidBulkLength;
  EXPECT_EQ(ec.message(), "ERR Protocol error: invalid bulk length");
  EXPECT_EQ(RedisErrorText(CodecError::kExpectedDollar, 'x'),
            "ERR Protocol error: expected '$', got 'x'");
  EXPECT_EQ(RedisErrorText(CodecError::kExpectedDollar, '\r'),
            "ERR Protocol error: expected '$', got ' '");
}

}  // namespace
}  // namespace turnout::protocol::resp
