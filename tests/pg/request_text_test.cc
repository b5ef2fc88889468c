// The journal's and shadow samples' text of a captured request.
#include "proxy/pg/request_text.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol/pg/message_writer.h"

namespace turnout::proxy::pg {
namespace {

namespace ppg = protocol::pg;

TEST(RequestText, SimpleQueryIsItsSql) {
  std::string sql;
  std::vector<std::string> params;
  DescribeRequest(QueryFrame("update t set a = 1"), SessionState{}, &sql, &params);
  EXPECT_EQ(sql, "update t set a = 1");
  EXPECT_TRUE(params.empty());
}

TEST(RequestText, ExtendedBatchShowsItsParametersAsText) {
  std::string wire;
  const std::array<std::uint32_t, 4> types = {23, 25, 20, 0};
  ppg::AppendParse(&wire, "", "insert into t values ($1, $2, $3, $4, $5)", types);
  const std::string int4("\x00\x00\x01\x00", 4);                  // 256
  const std::string int8("\xff\xff\xff\xff\xff\xff\xff\xfe", 8);  // -2
  const std::array<std::int16_t, 5> formats = {1, 0, 1, 1, 0};
  const std::array<ppg::Value, 5> values = {ppg::Value(int4), ppg::Value("text value"), ppg::Value(int8),
                                            ppg::Value(std::string_view("\x01\x02", 2)), std::nullopt};
  ppg::AppendBind(&wire, "", "", formats, values, {});
  ppg::AppendExecute(&wire, "");
  ppg::AppendSync(&wire);
  std::string sql;
  std::vector<std::string> params;
  DescribeRequest(wire, SessionState{}, &sql, &params);
  EXPECT_EQ(sql, "insert into t values ($1, $2, $3, $4, $5)");
  EXPECT_EQ(params, (std::vector<std::string>{"256", "text value", "-2", "\\x0102", "NULL"}));
}

TEST(RequestText, BindOfAPreparedStatementShowsItsText) {
  SessionState state;
  const std::array<std::uint32_t, 1> types = {21};
  state.OnParse("s1", "delete from t where id = $1", types, 0);
  state.OnParseComplete(0);
  state.OnReadyForQuery(0, ppg::TransactionStatus::kIdle);
  std::string wire;
  const std::array<std::int16_t, 1> formats = {1};
  const std::array<ppg::Value, 1> values = {ppg::Value(std::string_view("\x00\x07", 2))};
  ppg::AppendBind(&wire, "", "s1", formats, values, {});
  ppg::AppendExecute(&wire, "");
  ppg::AppendSync(&wire);
  std::string sql;
  std::vector<std::string> params;
  DescribeRequest(wire, state, &sql, &params);
  EXPECT_EQ(sql, "delete from t where id = $1");
  EXPECT_EQ(params, (std::vector<std::string>{"7"}));
}

TEST(RequestText, BrokenBytesStopWithoutHarm) {
  std::string sql;
  std::vector<std::string> params;
  DescribeRequest(std::string("Q\x00\x00\x00\x02", 5), SessionState{}, &sql, &params);
  EXPECT_EQ(sql, "");
  EXPECT_EQ(BinaryParamText(std::string_view("\x01", 1), 16), "true");
  EXPECT_EQ(BinaryParamText(std::string_view("\x00\x01", 2), 23), "\\x0001");  // wrong width for int4
}

}  // namespace
}  // namespace turnout::proxy::pg
