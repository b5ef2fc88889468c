// Tests of the PostgreSQL v3 framing, typed decoders and writers. Every
// valid stream is also fed split at every byte offset; every valid payload
// is also decoded truncated at every length.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "protocol/pg/codec_error.h"
#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/messages.h"

namespace turnout::protocol::pg {
namespace {

Bytes B(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }
std::string S(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

struct Decoded {
  FrameKind kind;
  char type;
  std::uint32_t code;
  std::string bytes;
  std::string payload;
  bool operator==(const Decoded&) const = default;
};

// Decodes a whole stream that arrives in two reads split at `split`, the way
// a session drives the decoder over its receive buffer.
std::vector<Decoded> DecodeSplit(Direction dir, std::string_view stream, std::size_t split,
                                 CodecError* error = nullptr) {
  FrameDecoder decoder(dir);
  std::vector<Decoded> out;
  std::string buffer;
  std::size_t fed = 0;
  const std::size_t chunks[2] = {split, stream.size() - split};
  for (std::size_t c : chunks) {
    buffer.append(stream.substr(fed, c));
    fed += c;
    while (true) {
      FrameResult r = decoder.Decode(B(buffer));
      if (r.failed()) {
        if (error) *error = r.error;
        return out;
      }
      if (r.need_more()) {
        EXPECT_GT(r.bytes_needed, buffer.size());
        break;
      }
      const Frame& f = r.value;
      EXPECT_EQ(f.bytes.data(), reinterpret_cast<const std::uint8_t*>(buffer.data()));  // zero-copy
      EXPECT_EQ(f.total_size, f.bytes.size());
      out.push_back({f.kind, f.type, f.code, S(f.bytes), S(f.payload)});
      buffer.erase(0, f.total_size);
    }
  }
  EXPECT_TRUE(buffer.empty()) << "left over: " << buffer.size();
  return out;
}

std::vector<Decoded> DecodeAllSplits(Direction dir, std::string_view stream) {
  const std::vector<Decoded> whole = DecodeSplit(dir, stream, stream.size());
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    EXPECT_EQ(DecodeSplit(dir, stream, split), whole) << "split at " << split;
  }
  return whole;
}

// Every strict prefix of a payload with a closed layout must be rejected.
template <typename T>
void ExpectPrefixesRejected(std::string_view payload) {
  for (std::size_t n = 0; n < payload.size(); ++n) {
    T msg;
    EXPECT_TRUE(Decode(B(payload.substr(0, n)), &msg)) << "prefix " << n << " of " << payload.size();
  }
}

// ------------------------------------------------------------- frontend

TEST(PgFrameDecoder, FrontendStreamRoundTripAtEverySplit) {
  std::string s;
  const std::pair<std::string_view, std::string_view> params[] = {
      {"user", "alice"}, {"database", "shop"}, {"application_name", "psql"}};
  AppendStartupMessage(&s, params);
  AppendQuery(&s, "SELECT 1; SELECT 'a'");
  const std::uint32_t types[] = {23, 25};
  AppendParse(&s, "s1", "SELECT $1::int, $2", types);
  const std::int16_t pf[] = {kFormatText, kFormatBinary};
  const Value values[] = {std::string_view("42"), std::nullopt};
  const std::int16_t rf[] = {kFormatBinary};
  AppendBind(&s, "p1", "s1", pf, values, rf);
  AppendDescribe(&s, Target::kPortal, "p1");
  AppendExecute(&s, "p1", 100);
  AppendClose(&s, Target::kStatement, "s1");
  AppendFlush(&s);
  AppendSync(&s);
  AppendCopyData(&s, std::string_view("1\tx\n", 4));
  AppendCopyDone(&s);
  AppendCopyFail(&s, "client gave up");
  AppendTerminate(&s);

  const auto frames = DecodeAllSplits(Direction::kFrontend, s);
  ASSERT_EQ(frames.size(), 13u);
  EXPECT_EQ(frames[0].kind, FrameKind::kStartupMessage);
  EXPECT_EQ(frames[0].code, kProtocolVersion3);

  FrameDecoder d(Direction::kFrontend);
  auto r = d.Decode(B(frames[0].bytes));
  ASSERT_TRUE(r.ok());
  StartupMessage sm;
  ASSERT_FALSE(DecodeStartupMessage(r.value, &sm));
  EXPECT_EQ(sm.major(), 3);
  EXPECT_EQ(sm.minor(), 0);
  ASSERT_EQ(sm.parameters.size(), 3u);
  EXPECT_EQ(sm.Get("user"), "alice");
  EXPECT_EQ(sm.Get("database"), "shop");
  EXPECT_FALSE(sm.Get("options").has_value());
  EXPECT_EQ(d.phase(), FrameDecoder::Phase::kRegular);

  Query q;
  ASSERT_FALSE(Decode(B(frames[1].payload), &q));
  EXPECT_EQ(frames[1].type, 'Q');
  EXPECT_EQ(q.sql, "SELECT 1; SELECT 'a'");

  Parse p;
  ASSERT_FALSE(Decode(B(frames[2].payload), &p));
  EXPECT_EQ(p.statement, "s1");
  EXPECT_EQ(p.query, "SELECT $1::int, $2");
  EXPECT_EQ(std::vector<std::uint32_t>(p.param_types.begin(), p.param_types.end()),
            (std::vector<std::uint32_t>{23, 25}));

  Bind b;
  ASSERT_FALSE(Decode(B(frames[3].payload), &b));
  EXPECT_EQ(b.portal, "p1");
  EXPECT_EQ(b.statement, "s1");
  ASSERT_EQ(b.params.size(), 2u);
  EXPECT_EQ(b.params[0], std::optional<std::string_view>("42"));
  EXPECT_FALSE(b.params[1].has_value());
  EXPECT_EQ(b.ParamFormat(0), kFormatText);
  EXPECT_EQ(b.ParamFormat(1), kFormatBinary);
  ASSERT_EQ(b.result_formats.size(), 1u);
  EXPECT_EQ(b.result_formats[0], kFormatBinary);

  Describe desc;
  ASSERT_FALSE(Decode(B(frames[4].payload), &desc));
  EXPECT_EQ(desc.target, Target::kPortal);
  EXPECT_EQ(desc.name, "p1");

  Execute e;
  ASSERT_FALSE(Decode(B(frames[5].payload), &e));
  EXPECT_EQ(e.portal, "p1");
  EXPECT_EQ(e.max_rows, 100);

  Close c;
  ASSERT_FALSE(Decode(B(frames[6].payload), &c));
  EXPECT_EQ(c.target, Target::kStatement);
  EXPECT_EQ(c.name, "s1");

  EXPECT_EQ(frames[7].type, 'H');
  EXPECT_EQ(frames[8].type, 'S');
  Sync sync;
  EXPECT_FALSE(Decode(B(frames[8].payload), &sync));
  CopyData cd;
  ASSERT_FALSE(Decode(B(frames[9].payload), &cd));
  EXPECT_EQ(S(cd.data), "1\tx\n");
  EXPECT_EQ(frames[10].type, 'c');
  CopyFail cf;
  ASSERT_FALSE(Decode(B(frames[11].payload), &cf));
  EXPECT_EQ(cf.message, "client gave up");
  EXPECT_EQ(frames[12].type, 'X');
  EXPECT_EQ(frames[12].bytes, std::string("X\0\0\0\4", 5));
}

TEST(PgFrameDecoder, SslRequestKeepsStartupPhase) {
  std::string s;
  AppendSslRequest(&s);
  AppendGssEncRequest(&s);
  const std::pair<std::string_view, std::string_view> params[] = {{"user", "u"}};
  AppendStartupMessage(&s, params);
  AppendQuery(&s, "select 1");
  const auto frames = DecodeAllSplits(Direction::kFrontend, s);
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].kind, FrameKind::kSslRequest);
  EXPECT_EQ(frames[0].bytes, std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8));
  EXPECT_EQ(frames[1].kind, FrameKind::kGssEncRequest);
  EXPECT_EQ(frames[2].kind, FrameKind::kStartupMessage);
  EXPECT_EQ(frames[3].kind, FrameKind::kRegular);
  EXPECT_EQ(frames[3].type, 'Q');
}

TEST(PgFrameDecoder, CancelRequest) {
  for (int variant = 0; variant < 2; ++variant) {
    std::string s;
    const std::uint8_t long_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                       17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    if (variant == 0) {
      AppendCancelRequest(&s, 1234, -559038737);
    } else {
      AppendCancelRequest(&s, 1234, Bytes(long_key, 32));  // protocol 3.2 key
    }
    const auto frames = DecodeAllSplits(Direction::kFrontend, s);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].kind, FrameKind::kCancelRequest);
    FrameDecoder d(Direction::kFrontend);
    auto r = d.Decode(B(s));
    ASSERT_TRUE(r.ok());
    CancelRequest cr;
    ASSERT_FALSE(DecodeCancelRequest(r.value, &cr));
    EXPECT_EQ(cr.process_id, 1234);
    if (variant == 0) {
      EXPECT_EQ(cr.secret_key32(), -559038737);
    } else {
      EXPECT_EQ(cr.secret_key.size(), 32u);
      EXPECT_EQ(cr.secret_key32(), 0);
    }
  }
}

TEST(PgStartup, UnsupportedVersionAndMalformed) {
  FrameDecoder d(Direction::kFrontend);
  std::string s;
  AppendStartupMessage(&s, {}, 2 << 16);  // protocol 2.0
  auto r = d.Decode(B(s));
  ASSERT_TRUE(r.ok());
  StartupMessage sm;
  EXPECT_EQ(DecodeStartupMessage(r.value, &sm), CodecError::kUnsupportedProtocolVersion);
  EXPECT_EQ(SqlState(CodecError::kUnsupportedProtocolVersion), "0A000");

  // Protocol 3.2 is accepted (NegotiateProtocolVersion is the session's job).
  s.clear();
  AppendStartupMessage(&s, {}, (3 << 16) | 2);
  FrameDecoder d2(Direction::kFrontend);
  r = d2.Decode(B(s));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(DecodeStartupMessage(r.value, &sm));
  EXPECT_EQ(sm.minor(), 2);
  EXPECT_TRUE(sm.parameters.empty());

  const std::string bad[] = {
      std::string("\0\0\0\x08\0\3\0\0", 8),                    // no terminator at all
      std::string("\0\0\0\x0d\0\3\0\0user\0", 13),             // name without value
      std::string("\0\0\0\x10\0\3\0\0user\0bob", 15 + 1 - 1),  // value without NUL (length says 16)
      std::string("\0\0\0\x0b\0\3\0\0\0\0\0", 11),             // bytes after the terminator
  };
  for (const std::string& b : bad) {
    FrameDecoder fd(Direction::kFrontend);
    auto fr = fd.Decode(B(b));
    if (!fr.ok()) continue;  // the length itself is short: also an error later
    EXPECT_EQ(DecodeStartupMessage(fr.value, &sm), CodecError::kMalformed);
  }
}

// ------------------------------------------------------------- backend

TEST(PgFrameDecoder, BackendStreamRoundTripAtEverySplit) {
  std::string s;
  AppendAuthenticationOk(&s);
  AppendAuthenticationCleartextPassword(&s);
  const std::uint8_t salt[4] = {0xde, 0xad, 0xbe, 0xef};
  AppendAuthenticationMd5Password(&s, salt);
  const std::string_view mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
  AppendAuthenticationSasl(&s, mechs);
  AppendAuthenticationSaslContinue(&s, "r=abc,s=c2FsdA==,i=4096");
  AppendAuthenticationSaslFinal(&s, "v=signature");
  AppendParameterStatus(&s, "server_version", "16.2");
  AppendBackendKeyData(&s, 77, 0x12345678);
  AppendReadyForQuery(&s, TransactionStatus::kInTransaction);
  AppendErrorResponse(&s, ErrorSpec{.severity = "ERROR",
                                    .sqlstate = "42P01",
                                    .message = "relation \"x\" does not exist",
                                    .detail = "d",
                                    .hint = "h"});
  AppendNoticeResponse(&s, ErrorSpec{.severity = "NOTICE", .sqlstate = "00000", .message = "hi"});
  AppendCommandComplete(&s, "INSERT 0 5");
  const std::string_view cols[] = {"id", "name"};
  AppendRowDescription(&s, cols);
  const Value row[] = {std::string_view("1"), std::nullopt};
  AppendDataRow(&s, row);
  const std::string_view row2[] = {"", "x"};
  AppendDataRow(&s, row2);
  AppendEmptyQueryResponse(&s);
  AppendParseComplete(&s);
  AppendBindComplete(&s);
  AppendCloseComplete(&s);
  AppendNoData(&s);
  AppendNotificationResponse(&s, 9, "orders", "42");
  {
    FrameBuilder b(&s, 't');
    b.Int16(2).UInt32(23).UInt32(25);
    b.Finish();
  }
  {
    FrameBuilder b(&s, 'G');
    b.Byte(0).Int16(2).Int16(0).Int16(0);
    b.Finish();
  }
  {
    FrameBuilder b(&s, 'H');
    b.Byte(1).Int16(1).Int16(1);
    b.Finish();
  }
  {
    FrameBuilder b(&s, 's');
    b.Finish();
  }
  {
    FrameBuilder b(&s, 'v');
    b.Int32(0).Int32(1).CString("_pq_.foo");
    b.Finish();
  }

  const auto f = DecodeAllSplits(Direction::kBackend, s);
  ASSERT_EQ(f.size(), 26u);
  std::size_t i = 0;
  Authentication a;
  ASSERT_FALSE(Decode(B(f[i++].payload), &a));
  EXPECT_EQ(a.type, AuthType::kOk);
  ASSERT_FALSE(Decode(B(f[i++].payload), &a));
  EXPECT_EQ(a.type, AuthType::kCleartextPassword);
  ASSERT_FALSE(Decode(B(f[i++].payload), &a));
  EXPECT_EQ(a.type, AuthType::kMd5Password);
  EXPECT_EQ(a.salt, (std::array<std::uint8_t, 4>{0xde, 0xad, 0xbe, 0xef}));
  ASSERT_FALSE(Decode(B(f[i++].payload), &a));
  EXPECT_EQ(a.type, AuthType::kSasl);
  ASSERT_EQ(a.mechanisms.size(), 2u);
  EXPECT_EQ(a.mechanisms[1], "SCRAM-SHA-256");
  ASSERT_FALSE(Decode(B(f[i++].payload), &a));
  EXPECT_EQ(a.type, AuthType::kSaslContinue);
  EXPECT_EQ(S(a.data), "r=abc,s=c2FsdA==,i=4096");
  ASSERT_FALSE(Decode(B(f[i++].payload), &a));
  EXPECT_EQ(a.type, AuthType::kSaslFinal);
  EXPECT_EQ(S(a.data), "v=signature");

  ParameterStatus ps;
  ASSERT_FALSE(Decode(B(f[i++].payload), &ps));
  EXPECT_EQ(ps.name, "server_version");
  EXPECT_EQ(ps.value, "16.2");
  BackendKeyData k;
  ASSERT_FALSE(Decode(B(f[i++].payload), &k));
  EXPECT_EQ(k.process_id, 77);
  EXPECT_EQ(k.secret_key32(), 0x12345678);
  ReadyForQuery rfq;
  ASSERT_FALSE(Decode(B(f[i++].payload), &rfq));
  EXPECT_EQ(rfq.status, TransactionStatus::kInTransaction);
  ErrorResponse er;
  ASSERT_FALSE(Decode(B(f[i++].payload), &er));
  EXPECT_EQ(er.severity(), "ERROR");
  EXPECT_EQ(er.sqlstate(), "42P01");
  EXPECT_EQ(er.message(), "relation \"x\" does not exist");
  EXPECT_EQ(er.detail(), "d");
  EXPECT_EQ(er.hint(), "h");
  EXPECT_FALSE(er.Has(field::kPosition));
  NoticeResponse nr;
  ASSERT_FALSE(Decode(B(f[i++].payload), &nr));
  EXPECT_EQ(nr.message(), "hi");
  CommandComplete cc;
  ASSERT_FALSE(Decode(B(f[i++].payload), &cc));
  EXPECT_EQ(cc.command, "INSERT");
  EXPECT_EQ(cc.rows, 5u);
  RowDescription rd;
  ASSERT_FALSE(Decode(B(f[i++].payload), &rd));
  ASSERT_EQ(rd.fields.size(), 2u);
  EXPECT_EQ(rd.fields[1].name, "name");
  EXPECT_EQ(rd.fields[1].type_oid, 25u);
  EXPECT_EQ(rd.fields[1].type_size, -1);
  DataRow dr;
  ASSERT_FALSE(Decode(B(f[i++].payload), &dr));
  ASSERT_EQ(dr.columns.size(), 2u);
  EXPECT_EQ(dr.columns[0], std::optional<std::string_view>("1"));
  EXPECT_FALSE(dr.columns[1].has_value());
  ASSERT_FALSE(Decode(B(f[i++].payload), &dr));
  ASSERT_TRUE(dr.columns[0].has_value());  // empty is not NULL
  EXPECT_EQ(*dr.columns[0], "");
  EXPECT_EQ(f[i++].type, 'I');
  EXPECT_EQ(f[i++].type, '1');
  EXPECT_EQ(f[i++].type, '2');
  EXPECT_EQ(f[i++].type, '3');
  EXPECT_EQ(f[i++].type, 'n');
  NotificationResponse n;
  ASSERT_FALSE(Decode(B(f[i++].payload), &n));
  EXPECT_EQ(n.process_id, 9);
  EXPECT_EQ(n.channel, "orders");
  EXPECT_EQ(n.payload, "42");
  ParameterDescription pd;
  ASSERT_FALSE(Decode(B(f[i++].payload), &pd));
  ASSERT_EQ(pd.param_types.size(), 2u);
  EXPECT_EQ(pd.param_types[1], 25u);
  CopyInResponse cin;
  ASSERT_FALSE(Decode(B(f[i++].payload), &cin));
  EXPECT_EQ(cin.format, 0);
  EXPECT_EQ(cin.column_formats.size(), 2u);
  CopyOutResponse cout;
  ASSERT_FALSE(Decode(B(f[i++].payload), &cout));
  EXPECT_EQ(cout.format, 1);
  PortalSuspended suspended;
  EXPECT_FALSE(Decode(B(f[i++].payload), &suspended));
  NegotiateProtocolVersion npv;
  ASSERT_FALSE(Decode(B(f[i++].payload), &npv));
  ASSERT_EQ(npv.unrecognized_options.size(), 1u);
  EXPECT_EQ(npv.unrecognized_options[0], "_pq_.foo");
}

TEST(PgMessages, FrameOverloadChecksType) {
  std::string s;
  AppendQuery(&s, "select 1");
  FrameDecoder d(Direction::kFrontend);
  d.set_phase(FrameDecoder::Phase::kRegular);
  auto r = d.Decode(B(s));
  ASSERT_TRUE(r.ok());
  Query q;
  EXPECT_FALSE(Decode(r.value, &q));
  Parse p;
  EXPECT_EQ(Decode(r.value, &p), CodecError::kUnexpectedMessage);
}

TEST(PgMessages, SaslInitialResponseAndPassword) {
  std::string s;
  AppendSaslInitialResponse(&s, "SCRAM-SHA-256", "n,,n=,r=nonce");
  AppendSaslInitialResponse(&s, "SCRAM-SHA-256", std::nullopt);
  AppendSaslResponse(&s, "c=biws,r=nonce,p=proof");
  AppendPasswordMessage(&s, "md5abcdef");
  FrameDecoder d(Direction::kFrontend);
  d.set_phase(FrameDecoder::Phase::kRegular);
  Bytes in = B(s);
  std::vector<Frame> frames;
  while (!in.empty()) {
    auto r = d.Decode(in);
    ASSERT_TRUE(r.ok());
    frames.push_back(r.value);
    in = in.subspan(r.value.total_size);
  }
  ASSERT_EQ(frames.size(), 4u);
  SaslInitialResponse init;
  ASSERT_FALSE(Decode(frames[0], &init));
  EXPECT_EQ(init.mechanism, "SCRAM-SHA-256");
  ASSERT_TRUE(init.data.has_value());
  EXPECT_EQ(S(*init.data), "n,,n=,r=nonce");
  ASSERT_FALSE(Decode(frames[1], &init));
  EXPECT_FALSE(init.data.has_value());
  SaslResponse resp;
  ASSERT_FALSE(Decode(frames[2], &resp));
  EXPECT_EQ(S(resp.data), "c=biws,r=nonce,p=proof");
  PasswordMessage pw;
  ASSERT_FALSE(Decode(frames[3], &pw));
  EXPECT_EQ(pw.password, "md5abcdef");
}

// ------------------------------------------------------------- framing errors

struct FramingErrorCase {
  const char* name;
  Direction direction;
  bool startup;
  std::string bytes;
  CodecError error;
};

TEST(PgFrameDecoder, FramingErrors) {
  const FramingErrorCase cases[] = {
      {"length 3", Direction::kFrontend, false, std::string("Q\0\0\0\3", 5), CodecError::kInvalidLength},
      {"length 0", Direction::kBackend, false, std::string("Z\0\0\0\0", 5), CodecError::kInvalidLength},
      {"negative length", Direction::kFrontend, false, std::string("Q\xff\xff\xff\xfe", 5),
       CodecError::kInvalidLength},
      {"int32 min", Direction::kBackend, false, std::string("D\x80\0\0\0", 5), CodecError::kInvalidLength},
      {"too large", Direction::kFrontend, false, std::string("Q\x40\0\0\0", 5), CodecError::kMessageTooLarge},
      {"unknown frontend type", Direction::kFrontend, false, std::string("Z\0\0\0\4", 5),
       CodecError::kUnknownMessageType},
      {"unknown backend type", Direction::kBackend, false, std::string("Q\0\0\0\4", 5),
       CodecError::kUnknownMessageType},
      {"garbage byte", Direction::kBackend, false, std::string("\0", 1), CodecError::kUnknownMessageType},
      {"startup length 7", Direction::kFrontend, true, std::string("\0\0\0\7\0\3\0\0", 8),
       CodecError::kInvalidLength},
      {"startup negative", Direction::kFrontend, true, std::string("\xff\0\0\x10", 4),
       CodecError::kInvalidLength},
      {"startup too large", Direction::kFrontend, true, std::string("\0\0\x27\x11", 4),
       CodecError::kStartupTooLarge},
      {"ssl request length 12", Direction::kFrontend, true, std::string("\0\0\0\x0c\x04\xd2\x16\x2f\0\0\0\0", 12),
       CodecError::kInvalidLength},
      {"cancel too short", Direction::kFrontend, true, std::string("\0\0\0\x0c\x04\xd2\x16\x2e\0\0\0\1", 12),
       CodecError::kInvalidLength},
      {"cancel too long", Direction::kFrontend, true, std::string("\0\0\x01\x10\x04\xd2\x16\x2e", 8),
       CodecError::kInvalidLength},
  };
  for (const auto& c : cases) {
    FrameDecoder d(c.direction);
    if (!c.startup) d.set_phase(FrameDecoder::Phase::kRegular);
    auto r = d.Decode(B(c.bytes));
    EXPECT_TRUE(r.failed()) << c.name;
    EXPECT_EQ(r.error, c.error) << c.name;
    EXPECT_EQ(r.error_code(), make_error_code(c.error)) << c.name;
    auto h = d.DecodeHeader(B(c.bytes));
    EXPECT_EQ(h.error, c.error) << c.name;
  }
}

TEST(PgFrameDecoder, ConfigurableLimitAndHeaderOnlyForStreaming) {
  FrameDecoder d(Direction::kBackend, FrameLimits{.max_message_size = 1000});
  std::string s("D\0\0\x03\xe9", 5);  // length 1001
  EXPECT_EQ(d.Decode(B(s)).error, CodecError::kMessageTooLarge);

  // A 100 MB DataRow: only the header is buffered; the relay learns the
  // total and streams the rest without holding the payload.
  FrameDecoder big(Direction::kBackend);
  std::string h("D\x06\0\0\x04", 5);
  h += "\0\1";
  auto r = big.Decode(B(h));
  ASSERT_TRUE(r.need_more());
  EXPECT_EQ(r.bytes_needed, 0x06000004u + 1);
  auto hr = big.DecodeHeader(B(h));
  ASSERT_TRUE(hr.ok());
  EXPECT_EQ(hr.value.type, 'D');
  EXPECT_EQ(hr.value.header_size, 5u);
  EXPECT_EQ(hr.value.total_size, 0x06000004u + 1);
  EXPECT_EQ(hr.value.payload_size(), 0x06000000u);

  // Before the header is complete, need-more names the header size.
  EXPECT_EQ(big.Decode(B(std::string_view("D\0", 2))).bytes_needed, 5u);
  EXPECT_EQ(big.Decode(Bytes()).bytes_needed, 5u);
  FrameDecoder fe(Direction::kFrontend);
  EXPECT_EQ(fe.Decode(B(std::string_view("\0\0", 2))).bytes_needed, 4u);
  EXPECT_EQ(fe.Decode(B(std::string_view("\0\0\0\x10\0", 5))).bytes_needed, 8u);
  EXPECT_EQ(fe.Decode(B(std::string_view("\0\0\0\x10\0\3\0\0", 8))).bytes_needed, 16u);

  // Type validation can be turned off for an observe-only decoder.
  FrameDecoder lax(Direction::kBackend, FrameLimits{.validate_type = false});
  EXPECT_TRUE(lax.Decode(B(std::string_view("Q\0\0\0\4", 5))).ok());
}

// ------------------------------------------------------------- typed errors

struct TypedErrorCase {
  const char* name;
  char type;
  std::string payload;
};

std::error_code DecodeByType(Direction dir, char type, Bytes p) {
  if (dir == Direction::kFrontend) {
    switch (type) {
      case 'Q': { Query m; return Decode(p, &m); }
      case 'P': { Parse m; return Decode(p, &m); }
      case 'B': { Bind m; return Decode(p, &m); }
      case 'D': { Describe m; return Decode(p, &m); }
      case 'E': { Execute m; return Decode(p, &m); }
      case 'C': { Close m; return Decode(p, &m); }
      case 'S': { Sync m; return Decode(p, &m); }
      case 'H': { Flush m; return Decode(p, &m); }
      case 'X': { Terminate m; return Decode(p, &m); }
      case 'c': { CopyDone m; return Decode(p, &m); }
      case 'f': { CopyFail m; return Decode(p, &m); }
      case 'p': { SaslInitialResponse m; return Decode(p, &m); }
      default: return {};
    }
  }
  switch (type) {
    case 'R': { Authentication m; return Decode(p, &m); }
    case 'S': { ParameterStatus m; return Decode(p, &m); }
    case 'K': { BackendKeyData m; return Decode(p, &m); }
    case 'Z': { ReadyForQuery m; return Decode(p, &m); }
    case 'E': { ErrorResponse m; return Decode(p, &m); }
    case 'C': { CommandComplete m; return Decode(p, &m); }
    case 'T': { RowDescription m; return Decode(p, &m); }
    case 'D': { DataRow m; return Decode(p, &m); }
    case 'A': { NotificationResponse m; return Decode(p, &m); }
    case 't': { ParameterDescription m; return Decode(p, &m); }
    case 'G': { CopyInResponse m; return Decode(p, &m); }
    case 'v': { NegotiateProtocolVersion m; return Decode(p, &m); }
    case 'I': { EmptyQueryResponse m; return Decode(p, &m); }
    case 'n': { NoData m; return Decode(p, &m); }
    default: return {};
  }
}

TEST(PgMessages, FrontendMalformedPayloads) {
  const TypedErrorCase cases[] = {
      {"query without NUL", 'Q', "select 1"},
      {"query trailing bytes", 'Q', std::string("select 1\0x", 10)},
      {"parse count overrun", 'P', std::string("\0q\0\0\2\0\0\0\x17", 9)},
      {"parse negative count", 'P', std::string("\0q\0\xff\xff", 5)},
      {"bind negative value length", 'B', std::string("\0\0\0\0\0\1\xff\xff\xff\xfe\0\0", 12)},
      {"bind value overruns", 'B', std::string("\0\0\0\0\0\1\0\0\0\x10xx\0\0", 14)},
      {"bind format count mismatch", 'B',
       std::string("\0\0\0\2\0\0\0\0\0\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 26)},
      {"bind bad format code", 'B', std::string("\0\0\0\1\0\2\0\0\0\0", 10)},
      {"bind missing result formats", 'B', std::string("\0\0\0\0\0\0", 6)},
      {"describe bad target", 'D', std::string("Xname\0", 6)},
      {"execute short", 'E', std::string("\0\0\0", 3)},
      {"close bad target", 'C', std::string("Q\0", 2)},
      {"sync with payload", 'S', "x"},
      {"flush with payload", 'H', "x"},
      {"terminate with payload", 'X', "x"},
      {"copy done with payload", 'c', "x"},
      {"copy fail without NUL", 'f', "oops"},
      {"sasl initial negative length", 'p', std::string("SCRAM-SHA-256\0\xff\xff\xff\xfe", 18)},
      {"sasl initial overrun", 'p', std::string("SCRAM-SHA-256\0\0\0\0\x09" "abc", 21)},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(DecodeByType(Direction::kFrontend, c.type, B(c.payload))) << c.name;
  }
}

TEST(PgMessages, BackendMalformedPayloads) {
  const TypedErrorCase cases[] = {
      {"auth unknown code", 'R', std::string("\0\0\0\x63", 4)},
      {"auth ok trailing", 'R', std::string("\0\0\0\0x", 5)},
      {"auth md5 short salt", 'R', std::string("\0\0\0\5\1\2\3", 7)},
      {"auth sasl empty list", 'R', std::string("\0\0\0\x0a\0", 5)},
      {"auth sasl unterminated", 'R', std::string("\0\0\0\x0aSCRAM-SHA-256\0", 18)},
      {"parameter status one string", 'S', std::string("a\0", 2)},
      {"key data short", 'K', std::string("\0\0\0\1\0\0", 6)},
      {"rfq bad status", 'Z', "X"},
      {"rfq long", 'Z', "II"},
      {"error unterminated", 'E', std::string("SERROR\0", 7)},
      {"error value without NUL", 'E', std::string("SERROR", 6)},
      {"command complete no NUL", 'C', "SELECT 1"},
      {"row description count overrun", 'T', std::string("\0\5a\0", 4)},
      {"row description negative", 'T', std::string("\xff\xff", 2)},
      {"data row negative length", 'D', std::string("\0\1\xff\xff\xff\xfe", 6)},
      {"data row overrun", 'D', std::string("\0\1\0\0\0\5ab", 8)},
      {"data row trailing", 'D', std::string("\0\0x", 3)},
      {"data row huge count", 'D', std::string("\x7f\xff", 2)},
      {"notification no payload", 'A', std::string("\0\0\0\1chan\0", 9)},
      {"param description overrun", 't', std::string("\0\2\0\0\0\x17", 6)},
      {"copy in bad format", 'G', std::string("\2\0\0", 3)},
      {"copy in bad column format", 'G', std::string("\0\0\1\0\7", 5)},
      {"negotiate overrun", 'v', std::string("\0\0\0\0\0\0\0\5a\0", 10)},
      {"empty query with payload", 'I', "x"},
      {"no data with payload", 'n', "x"},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(DecodeByType(Direction::kBackend, c.type, B(c.payload))) << c.name;
  }
}

TEST(PgMessages, TruncatedPayloadsAreRejected) {
  std::string s;
  AppendParse(&s, "stmt", "select $1", std::vector<std::uint32_t>{23});
  ExpectPrefixesRejected<Parse>(std::string_view(s).substr(5));
  s.clear();
  const Value values[] = {std::string_view("abc"), std::nullopt, std::string_view("")};
  const std::int16_t rf[] = {0, 1};
  AppendBind(&s, "portal", "stmt", {}, values, rf);
  ExpectPrefixesRejected<Bind>(std::string_view(s).substr(5));
  s.clear();
  AppendErrorResponse(&s, ErrorSpec{.message = "boom", .detail = "why"});
  ExpectPrefixesRejected<ErrorResponse>(std::string_view(s).substr(5));
  s.clear();
  const std::string_view cols[] = {"a", "bb", "ccc"};
  AppendRowDescription(&s, cols);
  ExpectPrefixesRejected<RowDescription>(std::string_view(s).substr(5));
  s.clear();
  AppendDataRow(&s, values);
  ExpectPrefixesRejected<DataRow>(std::string_view(s).substr(5));
  s.clear();
  AppendExecute(&s, "p", 0);
  ExpectPrefixesRejected<Execute>(std::string_view(s).substr(5));
  s.clear();
  AppendNotificationResponse(&s, 1, "c", "p");
  ExpectPrefixesRejected<NotificationResponse>(std::string_view(s).substr(5));
  s.clear();
  AppendParameterStatus(&s, "a", "b");
  ExpectPrefixesRejected<ParameterStatus>(std::string_view(s).substr(5));
  s.clear();
  const std::string_view mechs[] = {"SCRAM-SHA-256"};
  AppendAuthenticationSasl(&s, mechs);
  ExpectPrefixesRejected<Authentication>(std::string_view(s).substr(5));
  s.clear();
  AppendSaslInitialResponse(&s, "SCRAM-SHA-256", "abc");
  ExpectPrefixesRejected<SaslInitialResponse>(std::string_view(s).substr(5));
}

// ------------------------------------------------------------- misc

TEST(PgMessages, CommandTags) {
  struct Case {
    const char* tag;
    const char* command;
    std::optional<std::uint64_t> rows;
  } cases[] = {
      {"INSERT 0 1", "INSERT", 1},
      {"INSERT 0 1000000", "INSERT", 1000000},
      {"UPDATE 3", "UPDATE", 3},
      {"DELETE 0", "DELETE", 0},
      {"MERGE 7", "MERGE", 7},
      {"SELECT 12", "SELECT", 12},
      {"MOVE 2", "MOVE", 2},
      {"FETCH 5", "FETCH", 5},
      {"COPY 99", "COPY", 99},
      {"CREATE TABLE", "CREATE TABLE", std::nullopt},
      {"BEGIN", "BEGIN", std::nullopt},
      {"SET", "SET", std::nullopt},
      {"INSERT 0", "INSERT 0", std::nullopt},
      {"UPDATE x", "UPDATE x", std::nullopt},
      {"SELECT -1", "SELECT -1", std::nullopt},
      {"", "", std::nullopt},
  };
  for (const auto& c : cases) {
    CommandComplete cc;
    ParseCommandTag(c.tag, &cc);
    EXPECT_EQ(cc.command, c.command) << c.tag;
    EXPECT_EQ(cc.rows, c.rows) << c.tag;
    EXPECT_EQ(cc.tag, c.tag);
  }
}

TEST(PgCodecError, CategoryAndSqlState) {
  const std::error_code ec = CodecError::kMessageTooLarge;
  EXPECT_EQ(ec.category().name(), std::string("turnout.pg"));
  EXPECT_EQ(ec.message(), "message too large");
  EXPECT_EQ(SqlState(CodecError::kMessageTooLarge), "54000");
  EXPECT_EQ(SqlState(CodecError::kStartupTooLarge), "54000");
  EXPECT_EQ(SqlState(CodecError::kMalformed), "08P01");
  EXPECT_EQ(SqlState(CodecError::kInvalidLength), "08P01");
  EXPECT_EQ(SqlState(CodecError::kUnknownMessageType), "08P01");
  EXPECT_FALSE(std::error_code(CodecError::kOk));

  std::string s;
  AppendErrorResponse(&s, CodecError::kMessageTooLarge);
  FrameDecoder d(Direction::kBackend);
  auto r = d.Decode(B(s));
  ASSERT_TRUE(r.ok());
  ErrorResponse er;
  ASSERT_FALSE(Decode(r.value, &er));
  EXPECT_EQ(er.severity(), "FATAL");
  EXPECT_EQ(er.sqlstate(), "54000");
  EXPECT_EQ(er.message(), "message too large");
}

TEST(PgMessageWriter, AppendsWithoutDisturbingPrefixAndCutsAtNul) {
  std::string s = "prefix";
  AppendQuery(&s, std::string_view("abc\0def", 7));
  EXPECT_EQ(s, std::string("prefixQ\0\0\0\x08" "abc\0", 15));
  s.clear();
  AppendReadyForQuery(&s, TransactionStatus::kIdle);
  EXPECT_EQ(s, std::string("Z\0\0\0\5I", 6));
  s.clear();
  AppendBackendKeyData(&s, 1, 2);
  EXPECT_EQ(s, std::string("K\0\0\0\x0c\0\0\0\1\0\0\0\2", 13));
}

}  // namespace
}  // namespace turnout::protocol::pg
