// Reply digests for shadow comparison and dual-write outcome checks
// (DESIGN.md §2): replies built frame by frame, digested and compared with
// no server; the top-level ORDER BY detection; no heap allocation per
// DataRow once the samples are taken.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "proxy/pg/reply_digest.h"
#include "tests/support/allocation_counter.h"


namespace turnout::proxy::pg {
namespace {

namespace ppg = protocol::pg;
using Mismatch = RouteRuntime::ShadowMismatch;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::uint32_t kInt4 = 23;
constexpr std::uint32_t kText = 25;
constexpr std::uint32_t kNumeric = 1700;
constexpr std::uint32_t kBytea = 17;

struct Col {
  std::string_view name;
  std::uint32_t type_oid = kText;
  std::int32_t type_modifier = -1;
  std::int16_t format = ppg::kFormatText;
  std::uint32_t table_oid = 16400;
  std::int16_t attnum = 1;
};

// One request's reply, built with the message writer.
class Reply {
 public:
  Reply& Describe(std::initializer_list<Col> cols) {
    ppg::FrameBuilder b(&wire_, 'T');
    b.Int16(static_cast<std::int16_t>(cols.size()));
    for (const Col& c : cols) {
      // protocol-message-formats: RowDescription; type size -1 (varlena) throughout.
      b.CString(c.name).UInt32(c.table_oid).Int16(c.attnum).UInt32(c.type_oid).Int16(-1);
      b.Int32(c.type_modifier).Int16(c.format);
    }
    b.Finish();
    return *this;
  }
  Reply& Row(std::initializer_list<ppg::Value> values) {
    std::vector<ppg::Value> v(values);
    ppg::AppendDataRow(&wire_, v);
    return *this;
  }
  Reply& Tag(std::string_view tag) {
    ppg::AppendCommandComplete(&wire_, tag);
    return *this;
  }
  Reply& Error(std::string_view sqlstate, std::string_view message = "boom") {
    ppg::AppendErrorResponse(&wire_, ppg::ErrorSpec{.sqlstate = sqlstate, .message = message});
    return *this;
  }
  Reply& NoData() {
    ppg::AppendNoData(&wire_);
    return *this;
  }
  Reply& EmptyQuery() {
    ppg::AppendEmptyQueryResponse(&wire_);
    return *this;
  }
  Reply& Suspended() {
    ppg::FrameBuilder(&wire_, 's').Finish();
    return *this;
  }
  // Frames a digest must ignore.
  Reply& Noise() {
    ppg::AppendParseComplete(&wire_);
    ppg::AppendBindComplete(&wire_);
    ppg::FrameBuilder(&wire_, 't').Int16(1).UInt32(kInt4).Finish();
    ppg::AppendNoticeResponse(&wire_, ppg::ErrorSpec{.severity = "NOTICE", .sqlstate = "00000", .message = "hi"});
    ppg::AppendParameterStatus(&wire_, "TimeZone", "UTC");
    ppg::AppendNotificationResponse(&wire_, 7, "chan", "payload");
    return *this;
  }
  Reply& Ready() {
    ppg::AppendReadyForQuery(&wire_, ppg::TransactionStatus::kIdle);
    return *this;
  }

  void FeedTo(ReplyDigest* d) const {
    ppg::FrameDecoder decoder(ppg::Direction::kBackend);
    std::string_view rest = wire_;
    while (!rest.empty()) {
      const ppg::FrameResult r = decoder.Decode(rest);
      ASSERT_TRUE(r.ok());
      d->OnFrame(r.value);
      rest.remove_prefix(r.value.total_size);
    }
  }
  ReplyDigest Digest(ReplyDigest::Options o = {}) const {
    ReplyDigest d(o);
    FeedTo(&d);
    return d;
  }

 private:
  std::string wire_;
};

std::optional<Mismatch> Compare(const Reply& a, const Reply& b, CompareScope scope = CompareScope::kFull,
                                bool ordered = false) {
  return CompareDigests(a.Digest({.ordered = ordered}), b.Digest({.ordered = ordered}), scope);
}

Reply People(std::initializer_list<std::initializer_list<ppg::Value>> rows, std::string_view tag) {
  Reply r;
  r.Describe({{.name = "id", .type_oid = kInt4}, {.name = "name"}});
  for (const auto& row : rows) r.Row(row);
  r.Tag(tag).Ready();
  return r;
}

// ---------------------------------------------------------------- rows

TEST(ReplyDigestTest, IdenticalRepliesMatch) {
  const Reply a = People({{"1", "ann"}, {"2", std::nullopt}}, "SELECT 2");
  EXPECT_EQ(Compare(a, a), std::nullopt);
  EXPECT_EQ(Compare(a, a, CompareScope::kFull, true), std::nullopt);
  EXPECT_EQ(Compare(a, a, CompareScope::kOutcome), std::nullopt);
}

TEST(ReplyDigestTest, RowOrderMattersOnlyWhenOrdered) {
  const Reply a = People({{"1", "ann"}, {"2", "bob"}, {"3", "cy"}}, "SELECT 3");
  const Reply b = People({{"3", "cy"}, {"1", "ann"}, {"2", "bob"}}, "SELECT 3");
  EXPECT_EQ(Compare(a, b), std::nullopt);
  EXPECT_EQ(Compare(a, b, CompareScope::kFull, true), Mismatch::kRows);
  // Either side made ordered is enough.
  EXPECT_EQ(CompareDigests(a.Digest({.ordered = true}), b.Digest(), CompareScope::kFull), Mismatch::kRows);
}

TEST(ReplyDigestTest, DifferentValueIsRows) {
  const Reply a = People({{"1", "ann"}, {"2", "bob"}}, "SELECT 2");
  const Reply b = People({{"1", "ann"}, {"2", "bobby"}}, "SELECT 2");
  EXPECT_EQ(Compare(a, b), Mismatch::kRows);
  EXPECT_EQ(Compare(a, b, CompareScope::kFull, true), Mismatch::kRows);
}

TEST(ReplyDigestTest, NullIsNotEmpty) {
  const Reply a = People({{"1", std::nullopt}}, "SELECT 1");
  const Reply b = People({{"1", ""}}, "SELECT 1");
  EXPECT_EQ(Compare(a, b), Mismatch::kRows);
}

TEST(ReplyDigestTest, ValuesDoNotShiftBetweenColumns) {
  const Reply a = People({{"1", "2ann"}}, "SELECT 1");
  const Reply b = People({{"12", "ann"}}, "SELECT 1");
  EXPECT_EQ(Compare(a, b), Mismatch::kRows);
}

TEST(ReplyDigestTest, DuplicatesCountAsAMultiset) {
  const Reply a = People({{"1", "a"}, {"1", "a"}, {"2", "b"}}, "SELECT 3");
  const Reply b = People({{"1", "a"}, {"2", "b"}, {"2", "b"}}, "SELECT 3");
  const Reply c = People({{"2", "b"}, {"1", "a"}, {"1", "a"}}, "SELECT 3");
  EXPECT_EQ(Compare(a, b), Mismatch::kRows);
  EXPECT_EQ(Compare(a, c), std::nullopt);
}

TEST(ReplyDigestTest, MissingRowIsLength) {
  const Reply a = People({{"1", "ann"}, {"2", "bob"}}, "SELECT 2");
  const Reply b = People({{"1", "ann"}}, "SELECT 2");  // same tag: the rows alone differ
  EXPECT_EQ(Compare(a, b), Mismatch::kLength);
  EXPECT_EQ(Compare(a, b, CompareScope::kFull, true), Mismatch::kLength);
}

TEST(ReplyDigestTest, ManyRowsKeepConstantState) {
  Reply a, b;
  a.Describe({{.name = "n", .type_oid = kInt4}});
  b.Describe({{.name = "n", .type_oid = kInt4}});
  for (int i = 0; i < 20000; ++i) {
    const std::string v = std::to_string(i);
    a.Row({v});
    b.Row({std::to_string(19999 - i)});
  }
  a.Tag("SELECT 20000");
  b.Tag("SELECT 20000");
  const ReplyDigest da = a.Digest();
  ASSERT_EQ(da.result_sets().size(), 1u);
  EXPECT_EQ(da.result_sets()[0].rows, 20000u);
  EXPECT_EQ(da.result_sets()[0].sampled_rows, 3u);
  EXPECT_EQ(da.total_rows(), 20000u);
  EXPECT_EQ(CompareDigests(da, b.Digest(), CompareScope::kFull), std::nullopt);
  EXPECT_EQ(CompareDigests(da, b.Digest({.ordered = true}), CompareScope::kFull), Mismatch::kRows);
}

TEST(ReplyDigestTest, NoAllocationPerDataRow) {
  std::string row;
  const std::vector<ppg::Value> values = {"12345", std::nullopt, "a somewhat longer text value"};
  ppg::AppendDataRow(&row, values);
  ppg::FrameDecoder decoder(ppg::Direction::kBackend);
  const ppg::FrameResult frame = decoder.Decode(row);
  ASSERT_TRUE(frame.ok());

  ReplyDigest d;
  Reply().Describe({{.name = "a"}, {.name = "b"}, {.name = "c"}}).FeedTo(&d);
  for (int i = 0; i < 3; ++i) d.OnFrame(frame.value);  // the samples
  const std::size_t before = turnout::testing::AllocationCount();
  for (int i = 0; i < 100000; ++i) d.OnFrame(frame.value);
  EXPECT_EQ(turnout::testing::AllocationCount(), before);
  EXPECT_EQ(d.total_rows(), 100003u);
}

// ---------------------------------------------------------------- errors

TEST(ReplyDigestTest, OneSidedErrorIsError) {
  const Reply ok = Reply().Tag("INSERT 0 1").Ready();
  const Reply failed = Reply().Error("23505", "duplicate key value violates unique constraint").Ready();
  EXPECT_EQ(Compare(ok, failed), Mismatch::kError);
  EXPECT_EQ(Compare(failed, ok), Mismatch::kError);
  EXPECT_EQ(Compare(ok, failed, CompareScope::kOutcome), Mismatch::kError);
}

TEST(ReplyDigestTest, BothErrorsCompareBySqlstate) {
  const Reply a = Reply().Error("42P01", "relation \"t\" does not exist").Ready();
  const Reply same = Reply().Error("42P01", "relation with OID 16512 does not exist").Ready();
  const Reply other = Reply().Error("42703", "column \"x\" does not exist").Ready();
  EXPECT_EQ(Compare(a, same), std::nullopt);
  EXPECT_EQ(Compare(a, same, CompareScope::kOutcome), std::nullopt);
  EXPECT_EQ(Compare(a, other), Mismatch::kError);
  EXPECT_EQ(Compare(a, other, CompareScope::kOutcome), Mismatch::kError);
}

TEST(ReplyDigestTest, ErrorAtAnotherStatementIsError) {
  // "INSERT ...; INSERT ...": each side fails on a different one.
  const Reply a = Reply().Tag("INSERT 0 1").Error("23505").Ready();
  const Reply b = Reply().Error("23505").Ready();
  EXPECT_EQ(Compare(a, b), Mismatch::kError);
  EXPECT_EQ(Compare(a, b, CompareScope::kOutcome), Mismatch::kError);
}

TEST(ReplyDigestTest, RowsBeforeAnErrorAreNotCompared) {
  // A scan failing on division by zero stops wherever the bad row was in
  // each server's physical order.
  Reply a, b;
  a.Describe({{.name = "q", .type_oid = kInt4}}).Row({"1"}).Row({"2"}).Error("22012", "division by zero").Ready();
  b.Describe({{.name = "q", .type_oid = kInt4}}).Row({"5"}).Error("22012", "division by zero").Ready();
  EXPECT_EQ(Compare(a, b), std::nullopt);
  // Planning failed before any description on one side: still the same error.
  const Reply c = Reply().Error("22012", "division by zero").Ready();
  EXPECT_EQ(Compare(a, c), std::nullopt);
  // The description that both sent is still compared.
  Reply d;
  d.Describe({{.name = "other", .type_oid = kInt4}}).Error("22012").Ready();
  EXPECT_EQ(Compare(a, d), Mismatch::kRowDescription);
}

TEST(ReplyDigestTest, ErrorAccessors) {
  const ReplyDigest d = Reply()
                            .Tag("INSERT 0 1")
                            .Error("23505", "duplicate key")
                            .Error("57P01", "terminating connection")
                            .Digest();
  EXPECT_TRUE(d.has_error());
  EXPECT_EQ(d.error_sqlstate(), "23505");  // the first one
  EXPECT_EQ(d.error_message(), "duplicate key");
  EXPECT_EQ(d.tags(), "INSERT 0 1");
  EXPECT_EQ(d.Outcome(), "INSERT 0 1;ERROR 23505 duplicate key");
  EXPECT_EQ(Reply().Error("42601", "syntax error").Digest().Outcome(), "ERROR 42601 syntax error");
}

// ---------------------------------------------------------------- row descriptions

TEST(ReplyDigestTest, TableOidAndAttnumAreIgnored) {
  Reply a, b;
  a.Describe({{.name = "id", .type_oid = kInt4, .table_oid = 16400, .attnum = 1}}).Row({"1"}).Tag("SELECT 1");
  b.Describe({{.name = "id", .type_oid = kInt4, .table_oid = 24576, .attnum = 3}}).Row({"1"}).Tag("SELECT 1");
  EXPECT_EQ(Compare(a, b), std::nullopt);
}

TEST(ReplyDigestTest, TypeDifferencesAreType) {
  auto one = [](Col c) { return Reply().Describe({{.name = "id", .type_oid = kInt4}, c}).Tag("SELECT 0"); };
  const Reply base = one({.name = "v", .type_oid = kNumeric, .type_modifier = 655366});  // numeric(10,2)
  EXPECT_EQ(Compare(base, one({.name = "v", .type_oid = kText})), Mismatch::kType);
  EXPECT_EQ(Compare(base, one({.name = "v", .type_oid = kNumeric, .type_modifier = -1})), Mismatch::kType);
  EXPECT_EQ(Compare(base, one({.name = "v",
                               .type_oid = kNumeric,
                               .type_modifier = 655366,
                               .format = ppg::kFormatBinary})),
            Mismatch::kType);
  EXPECT_EQ(Compare(base, one({.name = "v", .type_oid = kNumeric, .type_modifier = 655366})), std::nullopt);
  // kOutcome does not look at row descriptions.
  EXPECT_EQ(Compare(base, one({.name = "v", .type_oid = kText}), CompareScope::kOutcome), std::nullopt);
}

TEST(ReplyDigestTest, NameOrCountDifferenceIsRowDescription) {
  const Reply a = Reply().Describe({{.name = "id", .type_oid = kInt4}, {.name = "name"}}).Tag("SELECT 0");
  const Reply renamed = Reply().Describe({{.name = "id", .type_oid = kInt4}, {.name = "full_name"}}).Tag("SELECT 0");
  const Reply fewer = Reply().Describe({{.name = "id", .type_oid = kInt4}}).Tag("SELECT 0");
  // A name difference wins over a type difference elsewhere.
  const Reply both = Reply().Describe({{.name = "id", .type_oid = kText}, {.name = "nom"}}).Tag("SELECT 0");
  const Reply no_data = Reply().NoData().Tag("SELECT 0");
  EXPECT_EQ(Compare(a, renamed), Mismatch::kRowDescription);
  EXPECT_EQ(Compare(a, fewer), Mismatch::kRowDescription);
  EXPECT_EQ(Compare(a, both), Mismatch::kRowDescription);
  EXPECT_EQ(Compare(a, no_data), Mismatch::kRowDescription);
}

TEST(ReplyDigestTest, UserTypeOidsAreNotCompared) {
  const Reply a = Reply().Describe({{.name = "mood", .type_oid = 16391}}).Row({"happy"}).Tag("SELECT 1");
  const Reply b = Reply().Describe({{.name = "mood", .type_oid = 40960}}).Row({"happy"}).Tag("SELECT 1");
  const Reply c = Reply().Describe({{.name = "mood", .type_oid = 40960}}).Row({"sad"}).Tag("SELECT 1");
  EXPECT_EQ(Compare(a, b), std::nullopt);
  EXPECT_EQ(Compare(a, c), Mismatch::kRows);
  // FirstNormalObjectId - 1 is a built-in type and still compared.
  const Reply d = Reply().Describe({{.name = "mood", .type_oid = kFirstNormalObjectId - 1}}).Tag("SELECT 0");
  const Reply e = Reply().Describe({{.name = "mood", .type_oid = kText}}).Tag("SELECT 0");
  EXPECT_EQ(Compare(d, e), Mismatch::kType);
}

TEST(ReplyDigestTest, DescribeStatementThenPortalIsOneSet) {
  // Describe 'S' (formats unknown: text) then Describe 'P' (real formats).
  Reply a;
  a.Noise().Describe({{.name = "b", .type_oid = kBytea}});
  a.Describe({{.name = "b", .type_oid = kBytea, .format = ppg::kFormatBinary}}).Row({"\x01\x02"}).Tag("SELECT 1");
  Reply b;
  b.Describe({{.name = "b", .type_oid = kBytea, .format = ppg::kFormatBinary}}).Row({"\x01\x02"}).Tag("SELECT 1");
  const ReplyDigest da = a.Digest();
  ASSERT_EQ(da.result_sets().size(), 1u);
  EXPECT_EQ(da.result_sets()[0].columns[0].format, ppg::kFormatBinary);
  EXPECT_EQ(CompareDigests(da, b.Digest(), CompareScope::kFull), std::nullopt);
}

// ---------------------------------------------------------------- tags and scopes

TEST(ReplyDigestTest, TagDifferenceIsCommandTag) {
  const Reply a = Reply().Tag("UPDATE 1").Ready();
  const Reply b = Reply().Tag("UPDATE 0").Ready();
  EXPECT_EQ(Compare(a, b), Mismatch::kCommandTag);
  EXPECT_EQ(Compare(a, b, CompareScope::kOutcome), Mismatch::kCommandTag);
  // An extra statement's tag on one side.
  const Reply c = Reply().Tag("UPDATE 1").Tag("DELETE 2").Ready();
  EXPECT_EQ(Compare(a, c), Mismatch::kCommandTag);
  EXPECT_EQ(Compare(a, c, CompareScope::kOutcome), Mismatch::kCommandTag);
}

TEST(ReplyDigestTest, RowsAreCheckedBeforeTags) {
  const Reply a = People({{"1", "ann"}, {"2", "bob"}}, "SELECT 2");
  const Reply b = People({{"1", "ann"}}, "SELECT 1");
  EXPECT_EQ(Compare(a, b), Mismatch::kLength);
  EXPECT_EQ(Compare(a, b, CompareScope::kOutcome), Mismatch::kCommandTag);
}

TEST(ReplyDigestTest, OutcomeScopeIgnoresRowsAndDescriptions) {
  // INSERT ... RETURNING on a shadow write: generated ids differ.
  Reply a, b;
  a.Describe({{.name = "id", .type_oid = kInt4}}).Row({"41"}).Tag("INSERT 0 1").Ready();
  b.Describe({{.name = "id", .type_oid = 20}}).Row({"7"}).Tag("INSERT 0 1").Ready();
  EXPECT_EQ(Compare(a, b, CompareScope::kOutcome), std::nullopt);
  EXPECT_NE(Compare(a, b), std::nullopt);
}

TEST(ReplyDigestTest, TagsAreJoined) {
  const ReplyDigest d = Reply().Noise().Tag("BEGIN").NoData().Tag("INSERT 0 1").Tag("UPDATE 3").Ready().Digest();
  EXPECT_EQ(d.tags(), "BEGIN;INSERT 0 1;UPDATE 3");
  EXPECT_EQ(d.Outcome(), "BEGIN;INSERT 0 1;UPDATE 3");
  EXPECT_FALSE(d.has_error());
  EXPECT_EQ(d.error_sqlstate(), "");
}

TEST(ReplyDigestTest, IgnoredFramesDoNotCount) {
  Reply a, b;
  a.Noise().Describe({{.name = "x"}}).Noise().Row({"1"}).Noise().Tag("SELECT 1").Noise().Ready();
  b.Describe({{.name = "x"}}).Row({"1"}).Tag("SELECT 1");
  EXPECT_EQ(Compare(a, b), std::nullopt);
  EXPECT_EQ(a.Digest().result_sets().size(), 1u);
}

// ---------------------------------------------------------------- several result sets

TEST(ReplyDigestTest, ResultSetsCompareInOrder) {
  // "SELECT ... FROM a; SELECT ... FROM b" with the same tags.
  auto two = [](std::string_view first, std::string_view second) {
    Reply r;
    r.Describe({{.name = "v"}}).Row({first}).Tag("SELECT 1");
    r.Describe({{.name = "v"}}).Row({second}).Tag("SELECT 1");
    return r.Ready();
  };
  EXPECT_EQ(Compare(two("x", "y"), two("x", "y")), std::nullopt);
  EXPECT_EQ(Compare(two("x", "y"), two("y", "x")), Mismatch::kRows);

  Reply a, b;
  a.Describe({{.name = "v"}}).Row({"x"}).Row({"y"}).Tag("SELECT 2").Describe({{.name = "v"}}).Tag("SELECT 0");
  b.Describe({{.name = "v"}}).Tag("SELECT 0").Describe({{.name = "v"}}).Row({"x"}).Row({"y"}).Tag("SELECT 2");
  EXPECT_EQ(Compare(a, b), Mismatch::kLength);
  EXPECT_EQ(Compare(a, b, CompareScope::kOutcome), Mismatch::kCommandTag);
  EXPECT_EQ(a.Digest().tags(), "SELECT 2;SELECT 0");
}

TEST(ReplyDigestTest, PortalSuspendedAndEmptyQueryEndSets) {
  // Execute with max_rows 2, twice, on a portal described once.
  Reply a;
  a.Describe({{.name = "v"}}).Row({"1"}).Row({"2"}).Suspended().Row({"3"}).Tag("SELECT 1").EmptyQuery().Ready();
  const ReplyDigest d = a.Digest();
  ASSERT_EQ(d.result_sets().size(), 3u);
  EXPECT_EQ(d.result_sets()[0].end, ReplyDigest::End::kSuspended);
  EXPECT_EQ(d.result_sets()[0].rows, 2u);
  EXPECT_EQ(d.result_sets()[1].end, ReplyDigest::End::kCommandComplete);
  EXPECT_EQ(d.result_sets()[1].shape, ReplyDigest::Shape::kNone);
  EXPECT_EQ(d.result_sets()[2].end, ReplyDigest::End::kEmptyQuery);
  EXPECT_EQ(CompareDigests(d, a.Digest(), CompareScope::kFull), std::nullopt);

  Reply b;  // all rows in the first Execute
  b.Describe({{.name = "v"}}).Row({"1"}).Row({"2"}).Row({"3"}).Tag("SELECT 3").Ready();
  EXPECT_EQ(CompareDigests(d, b.Digest(), CompareScope::kFull), Mismatch::kLength);
  const Reply c = Reply().EmptyQuery().Ready();
  const Reply e = Reply().Tag("SELECT 0").Ready();
  EXPECT_EQ(Compare(c, e), Mismatch::kCommandTag);
}

TEST(ReplyDigestTest, ResetStartsOver) {
  ReplyDigest d({.ordered = true});
  People({{"1", "ann"}}, "SELECT 1").Error("XX000").FeedTo(&d);
  d.Reset();
  EXPECT_FALSE(d.has_error());
  EXPECT_TRUE(d.tags().empty());
  EXPECT_TRUE(d.result_sets().empty());
  EXPECT_FALSE(d.options().ordered);
  EXPECT_EQ(d.Render(), "");
  People({{"1", "ann"}}, "SELECT 1").FeedTo(&d);
  EXPECT_EQ(CompareDigests(d, People({{"1", "ann"}}, "SELECT 1").Digest(), CompareScope::kFull), std::nullopt);
}

// ---------------------------------------------------------------- rendering

TEST(ReplyDigestTest, RenderShowsColumnsRowsTagAndError) {
  const ReplyDigest d = People({{"1", "it's"}, {"2", std::nullopt}, {"3", "tab\there"}, {"4", "nl\n"}}, "SELECT 4")
                            .Digest({.sample_rows = 3});
  EXPECT_EQ(d.Render(), "(id:23, name:25) ['1', 'it''s'] ['2', NULL] ['3', 'tab\there'] ... 4 rows SELECT 4");

  const ReplyDigest e = Reply()
                            .Describe({{.name = "n", .type_oid = kInt4}})
                            .Row({"1"})
                            .Tag("SELECT 1")
                            .Tag("INSERT 0 1")
                            .Error("23505", "duplicate key")
                            .Digest();
  EXPECT_EQ(e.Render(), "(n:23) ['1'] 1 row SELECT 1 | INSERT 0 1 | ERROR 23505 duplicate key");
  EXPECT_EQ(Reply().NoData().EmptyQuery().Digest().Render(), "(no data) EMPTY QUERY");
}

TEST(ReplyDigestTest, RenderHexForBinaryAndNonPrintable) {
  const ReplyDigest d = Reply()
                            .Describe({{.name = "raw", .type_oid = kBytea, .format = ppg::kFormatBinary},
                                       {.name = "txt"}})
                            .Row({"AB", std::string_view("\x00\xff", 2)})
                            .Row({"", "\x7f"})
                            .Tag("SELECT 2")
                            .Digest();
  EXPECT_EQ(d.Render(), "(raw:17, txt:25) [\\x4142, \\x00ff] [\\x, \\x7f] 2 rows SELECT 2");
}

TEST(ReplyDigestTest, RenderIsBounded) {
  Reply r;
  r.Describe({{.name = "big"}, {.name = "small"}});
  const std::string big(100000, 'z');
  for (int i = 0; i < 50; ++i) r.Row({big, "s"});
  r.Tag("SELECT 50");
  for (std::size_t limit : {16u, 100u, 1024u, 4096u}) {
    const ReplyDigest d = r.Digest({.sample_rows = 5, .sample_bytes = limit});
    const std::string out = d.Render();
    EXPECT_LE(out.size(), limit) << limit;
    EXPECT_THAT(out, HasSubstr("..."));
    if (limit >= 100) {  // cut at the end, not the start
      EXPECT_THAT(out, HasSubstr("(big:25, small:25) ['zzz")) << limit;
    }
    // The samples themselves stay within the budget too.
    EXPECT_LE(d.result_sets()[0].sample.size(), limit + 16) << limit;
  }
  // A small reply is not cut.
  const std::string small = People({{"1", "ann"}}, "SELECT 1").Digest({.sample_bytes = 64}).Render();
  EXPECT_EQ(small, "(id:23, name:25) ['1', 'ann'] 1 row SELECT 1");
  EXPECT_THAT(small, Not(HasSubstr("...")));
}

TEST(ReplyDigestTest, SampleRowsLimit) {
  const Reply r = People({{"1", "a"}, {"2", "b"}, {"3", "c"}}, "SELECT 3");
  EXPECT_EQ(r.Digest({.sample_rows = 0}).Render(), "(id:23, name:25) 3 rows SELECT 3");
  EXPECT_EQ(r.Digest({.sample_rows = 1}).Render(), "(id:23, name:25) ['1', 'a'] ... 3 rows SELECT 3");
  EXPECT_EQ(r.Digest({.sample_rows = 3}).Render(),
            "(id:23, name:25) ['1', 'a'] ['2', 'b'] ['3', 'c'] 3 rows SELECT 3");
}

// ---------------------------------------------------------------- ORDER BY

struct OrderByCase {
  std::string_view sql;
  bool ordered;
};

class TopLevelOrderByTest : public ::testing::TestWithParam<OrderByCase> {};

TEST_P(TopLevelOrderByTest, Detects) {
  EXPECT_EQ(QueryHasTopLevelOrderBy(GetParam().sql), GetParam().ordered) << GetParam().sql;
}

INSTANTIATE_TEST_SUITE_P(
    Queries, TopLevelOrderByTest,
    ::testing::Values(
        OrderByCase{"SELECT id FROM t ORDER BY id", true},
        OrderByCase{"select id from t order by id desc", true},
        OrderByCase{"SELECT id FROM t\n  ORDER\n  BY id", true},
        OrderByCase{"SELECT id FROM t ORDER /* why not */ BY id", true},
        OrderByCase{"SELECT * FROM t ORDER BY 1 LIMIT 5", true},
        OrderByCase{"SELECT a FROM t UNION SELECT a FROM u ORDER BY a", true},
        OrderByCase{"SELECT a FROM t ORDER BY a;", true},
        OrderByCase{"SELECT a FROM t ORDER BY a; SELECT b FROM u ORDER BY b", true},
        OrderByCase{"WITH c AS (SELECT a FROM t) SELECT * FROM c ORDER BY a", true},
        OrderByCase{"SELECT id FROM t", false},
        OrderByCase{"SELECT 'ORDER BY x' FROM t", false},
        OrderByCase{"SELECT id FROM t -- ORDER BY id", false},
        OrderByCase{"SELECT id FROM t /* ORDER BY id */", false},
        OrderByCase{"SELECT $$ ORDER BY id $$ FROM t", false},
        OrderByCase{"SELECT $q$ it's ORDER BY $q$ FROM t", false},
        OrderByCase{"SELECT \"ORDER\" FROM t", false},
        OrderByCase{"SELECT * FROM (SELECT id FROM t ORDER BY id) s", false},
        OrderByCase{"SELECT * FROM t WHERE id IN (SELECT id FROM u ORDER BY id LIMIT 3)", false},
        OrderByCase{"SELECT id, row_number() OVER (ORDER BY id) FROM t", false},
        OrderByCase{"SELECT string_agg(name, ',' ORDER BY name) FROM t", false},
        OrderByCase{"WITH c AS (SELECT a FROM t ORDER BY a) SELECT * FROM c", false},
        OrderByCase{"SELECT a FROM t ORDER BY a; SELECT b FROM u", false},
        OrderByCase{"SELECT ARRAY[(SELECT 1 ORDER BY 1)]", false},
        OrderByCase{"SELECT a FROM t ORDER", false},
        OrderByCase{"SELECT 'unterminated ORDER BY", false},
        OrderByCase{"", false},
        OrderByCase{";;", false}));

}  // namespace
}  // namespace turnout::proxy::pg
