// Tests of the binary COPY trimmer (protocol/pg/binary_copy_trim.h) on a
// stream captured from a real server (PostgreSQL 15, UTF8):
//   CREATE TABLE ct (a int, c char(5), b bpchar, t text);
//   INSERT INTO ct VALUES (1, 'ab', 'x  ', 't  '), (2, NULL, NULL, NULL),
//                         (3, 'éé', '', ''), (4, 'abcde', ' ', 'z ');
//   COPY ct TO STDOUT (FORMAT binary);
// Only `c` is trimmed: unbounded bpchar and text keep their spaces.

#include "protocol/pg/binary_copy_trim.h"

#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "protocol/pg/codec_error.h"

namespace turnout::protocol::pg {
namespace {

std::string FromHex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

const std::string kHeader = FromHex("5047434f50590aff0d0a00" "00000000" "00000000");

// The captured stream, one row per line.
const std::string kCaptured = kHeader + FromHex(
    "0004" "00000004" "00000001" "00000005" "6162202020" "00000003" "782020" "00000003" "742020"
    "0004" "00000004" "00000002" "ffffffff" "ffffffff" "ffffffff"
    "0004" "00000004" "00000003" "00000007" "c3a9c3a9202020" "00000000" "00000000"
    "0004" "00000004" "00000004" "00000005" "6162636465" "00000001" "20" "00000002" "7a20"
    "ffff");

// The same with `c` trimmed: 'ab' and 'éé' lose their padding, 'abcde' has none.
const std::string kTrimmed = kHeader + FromHex(
    "0004" "00000004" "00000001" "00000002" "6162" "00000003" "782020" "00000003" "742020"
    "0004" "00000004" "00000002" "ffffffff" "ffffffff" "ffffffff"
    "0004" "00000004" "00000003" "00000004" "c3a9c3a9" "00000000" "00000000"
    "0004" "00000004" "00000004" "00000005" "6162636465" "00000001" "20" "00000002" "7a20"
    "ffff");

const std::vector<bool> kTrimC = {false, true, false, false};

TEST(BinaryCopyTrimTest, TrimsOnlyTheChosenColumnsOfACapturedStream) {
  BinaryCopyTrimmer trimmer(kTrimC);
  std::string out;
  ASSERT_FALSE(trimmer.Feed(kCaptured, &out));
  EXPECT_TRUE(trimmer.Finished());
  EXPECT_EQ(out, kTrimmed);
}

TEST(BinaryCopyTrimTest, NothingChosenLeavesTheStreamAsItIs) {
  BinaryCopyTrimmer trimmer({false, false, false, false});
  std::string out;
  ASSERT_FALSE(trimmer.Feed(kCaptured, &out));
  EXPECT_EQ(out, kCaptured);
}

TEST(BinaryCopyTrimTest, EverySplitInTwoGivesTheSameBytes) {
  for (std::size_t cut = 0; cut <= kCaptured.size(); ++cut) {
    BinaryCopyTrimmer trimmer(kTrimC);
    std::string out;
    ASSERT_FALSE(trimmer.Feed(std::string_view(kCaptured).substr(0, cut), &out)) << cut;
    EXPECT_EQ(trimmer.Finished(), cut == kCaptured.size()) << cut;
    ASSERT_FALSE(trimmer.Feed(std::string_view(kCaptured).substr(cut), &out)) << cut;
    EXPECT_TRUE(trimmer.Finished()) << cut;
    EXPECT_EQ(out, kTrimmed) << "cut at " << cut;
  }
}

TEST(BinaryCopyTrimTest, ByteByByteGivesTheSameBytes) {
  BinaryCopyTrimmer trimmer(kTrimC);
  std::string out;
  for (char c : kCaptured) ASSERT_FALSE(trimmer.Feed(std::string_view(&c, 1), &out));
  EXPECT_TRUE(trimmer.Finished());
  EXPECT_EQ(out, kTrimmed);
}

TEST(BinaryCopyTrimTest, AHeaderExtensionIsPassedOn) {
  const std::string with_extension = FromHex("5047434f50590aff0d0a00" "00000000" "00000003" "abcdef") +
                                     kCaptured.substr(kHeader.size());
  BinaryCopyTrimmer trimmer(kTrimC);
  std::string out;
  ASSERT_FALSE(trimmer.Feed(with_extension, &out));
  EXPECT_EQ(out, FromHex("5047434f50590aff0d0a00" "00000000" "00000003" "abcdef") + kTrimmed.substr(kHeader.size()));
}

// Each is rejected, and the trimmer stays failed afterwards.
TEST(BinaryCopyTrimTest, RejectsWhatIsNotBinaryCopy) {
  const std::string body = kCaptured.substr(kHeader.size());
  const std::string cases[] = {
      "1\tab   \n2\tcd   \n3\tef\n",                                          // text format
      FromHex("5047434f50590aff0d0a00" "00010000" "00000000") + body,          // OIDs (flag bit 16)
      FromHex("5047434f50590aff0d0a00" "00000001" "00000000") + body,          // an unknown critical flag
      kHeader + FromHex("0003" "00000004" "00000001" "ffffffff" "ffffffff"),  // 3 fields for 4 columns
      kHeader + FromHex("0004" "fffffffe"),                                    // length -2
      kHeader + FromHex("fffe"),                                               // count -2
      kCaptured + "x",                                                         // bytes after the trailer
  };
  for (const auto& input : cases) {
    BinaryCopyTrimmer trimmer(kTrimC);
    std::string out;
    EXPECT_EQ(trimmer.Feed(input, &out), make_error_code(CodecError::kMalformed)) << input;
    EXPECT_EQ(trimmer.Feed(kCaptured, &out), make_error_code(CodecError::kMalformed));
    EXPECT_FALSE(trimmer.Finished());
  }
}

}  // namespace
}  // namespace turnout::protocol::pg
