// Session state recording and replay, with no server: statements are
// announced as the client side forwards them and acknowledged (or not) as
// the backend's replies arrive.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/sql_classifier.h"
#include "proxy/pg/session_state.h"

namespace turnout::proxy::pg {
namespace {

namespace ppg = protocol::pg;
using ::testing::ElementsAre;
using ::testing::Pair;
using TS = ppg::TransactionStatus;

SessionOp Op(std::string_view sql) {
  auto c = ppg::ClassifySql(sql);
  EXPECT_EQ(c.statements.size(), 1u) << sql;
  auto op = SessionOp::From(c.statements[0]);
  EXPECT_TRUE(op.has_value()) << sql;
  return *op;
}

// One simple Query with one statement, acknowledged with `tag` (or failed).
void Exec(SessionState* s, std::uint64_t* seq, std::string_view sql, TS status = TS::kIdle, bool fail = false) {
  SessionOp op = Op(sql);
  const std::string tag(op.tag());
  s->OnStatement(std::move(op), *seq);
  if (fail) {
    s->OnError();
  } else {
    s->OnCommandComplete(tag, *seq);
  }
  s->OnReadyForQuery(*seq, status);
  ++*seq;
}

void Tag(SessionState* s, std::uint64_t* seq, std::string_view tag, TS status, bool fail = false) {
  if (fail) s->OnError();
  else s->OnCommandComplete(tag, *seq);
  s->OnReadyForQuery(*seq, status);
  ++*seq;
}

TEST(SessionStateTest, SetOutsideATransactionIsKeptAndReplaced) {
  SessionState s;
  std::uint64_t seq = 0;
  Exec(&s, &seq, "SET search_path TO a");
  Exec(&s, &seq, "SET application_name = 'x'");
  Exec(&s, &seq, "set SEARCH_PATH to b, public");
  EXPECT_THAT(s.settings(), ElementsAre(Pair("search_path", "set SEARCH_PATH to b, public"),
                                        Pair("application_name", "SET application_name = 'x'")));
  Exec(&s, &seq, "RESET search_path");
  EXPECT_THAT(s.settings(), ElementsAre(Pair("application_name", "SET application_name = 'x'")));
  Exec(&s, &seq, "RESET ALL");
  EXPECT_TRUE(s.settings().empty());
}

TEST(SessionStateTest, FailedSetIsNotRecorded) {
  SessionState s;
  std::uint64_t seq = 0;
  Exec(&s, &seq, "SET nonsense.x = 1", TS::kIdle, /*fail=*/true);
  EXPECT_TRUE(s.settings().empty());
}

TEST(SessionStateTest, SetInsideATransactionWaitsForCommit) {
  SessionState s;
  std::uint64_t seq = 0;
  Tag(&s, &seq, "BEGIN", TS::kInTransaction);
  Exec(&s, &seq, "SET work_mem = '8MB'", TS::kInTransaction);
  Exec(&s, &seq, "LISTEN jobs", TS::kInTransaction);
  EXPECT_TRUE(s.settings().empty());
  EXPECT_TRUE(s.listens().empty());
  Tag(&s, &seq, "COMMIT", TS::kIdle);
  EXPECT_THAT(s.settings(), ElementsAre(Pair("work_mem", "SET work_mem = '8MB'")));
  EXPECT_THAT(s.listens(), ElementsAre(Pair("jobs", "LISTEN jobs")));
}

TEST(SessionStateTest, RollbackAndFailedTransactionsDropTheirSets) {
  SessionState s;
  std::uint64_t seq = 0;
  Tag(&s, &seq, "BEGIN", TS::kInTransaction);
  Exec(&s, &seq, "SET work_mem = '8MB'", TS::kInTransaction);
  Tag(&s, &seq, "ROLLBACK", TS::kIdle);
  EXPECT_TRUE(s.settings().empty());

  Tag(&s, &seq, "BEGIN", TS::kInTransaction);
  Exec(&s, &seq, "SET work_mem = '8MB'", TS::kInTransaction);
  Tag(&s, &seq, "", TS::kFailed, /*fail=*/true);
  Tag(&s, &seq, "ROLLBACK", TS::kIdle);  // COMMIT of a failed transaction answers ROLLBACK
  EXPECT_TRUE(s.settings().empty());
}

TEST(SessionStateTest, SavepointRollbackKeepsTheTransactionOpen) {
  SessionState s;
  std::uint64_t seq = 0;
  Tag(&s, &seq, "BEGIN", TS::kInTransaction);
  Exec(&s, &seq, "SET work_mem = '8MB'", TS::kInTransaction);
  Tag(&s, &seq, "ROLLBACK", TS::kInTransaction);  // ROLLBACK TO SAVEPOINT
  Tag(&s, &seq, "COMMIT", TS::kIdle);
  EXPECT_EQ(s.settings().size(), 1u);
}

TEST(SessionStateTest, SetLocalLastsUntilTheTransactionEnds) {
  SessionState s;
  std::uint64_t seq = 0;
  Tag(&s, &seq, "BEGIN", TS::kInTransaction);
  Exec(&s, &seq, "SET LOCAL statement_timeout = 5", TS::kInTransaction);
  EXPECT_THAT(s.local_settings(), ElementsAre("SET LOCAL statement_timeout = 5"));
  Tag(&s, &seq, "COMMIT", TS::kIdle);
  EXPECT_TRUE(s.local_settings().empty());
  EXPECT_TRUE(s.settings().empty());
}

TEST(SessionStateTest, ImplicitTransactionWithAnErrorDropsItsSet) {
  // "SET search_path TO x; SELECT 1/0" runs as one implicit transaction.
  SessionState s;
  s.OnStatement(Op("SET search_path TO x"), 0);
  s.OnCommandComplete("SET", 0);
  s.OnError();
  s.OnReadyForQuery(0, TS::kIdle);
  EXPECT_TRUE(s.settings().empty());
}

TEST(SessionStateTest, ProtocolPreparedStatementsAreNotTransactional) {
  SessionState s;
  const std::uint32_t types[] = {23};
  s.OnParse("s1", "select $1::int", types, 0);
  s.OnParse("s2", "select broken", {}, 0);
  s.OnParseComplete(0);  // s1 parsed; s2 failed and everything after it was skipped
  s.OnError();
  s.OnReadyForQuery(0, TS::kIdle);
  ASSERT_EQ(s.prepared().size(), 1u);
  EXPECT_EQ(s.prepared()[0].first, "s1");
  EXPECT_EQ(s.prepared()[0].second.param_types, std::vector<std::uint32_t>{23});
  s.OnCloseStatement("s1", 1);
  s.OnCloseComplete(1);
  s.OnReadyForQuery(1, TS::kIdle);
  EXPECT_TRUE(s.prepared().empty());
}

TEST(SessionStateTest, SqlPrepareDeallocateAndDiscardAll) {
  SessionState s;
  std::uint64_t seq = 0;
  Exec(&s, &seq, "PREPARE q1 AS SELECT 1");
  Exec(&s, &seq, "PREPARE Q2 AS SELECT 2");
  Exec(&s, &seq, "LISTEN a");
  Exec(&s, &seq, "SET search_path TO a");
  ASSERT_EQ(s.prepared().size(), 2u);
  EXPECT_EQ(s.prepared()[1].first, "q2");
  Exec(&s, &seq, "DEALLOCATE q1");
  ASSERT_EQ(s.prepared().size(), 1u);
  Exec(&s, &seq, "DISCARD ALL");
  EXPECT_TRUE(s.empty());
}

TEST(SessionStateTest, MultiStatementQueryMatchesTagsInOrder) {
  SessionState s;
  s.OnStatement(Op("SET a.x = 1"), 0);
  s.OnStatement(Op("LISTEN c"), 0);
  s.OnStatement(Op("SET a.y = 2"), 0);
  s.OnCommandComplete("SET", 0);
  s.OnCommandComplete("SELECT 1", 0);
  s.OnCommandComplete("LISTEN", 0);
  s.OnCommandComplete("SET", 0);
  s.OnReadyForQuery(0, TS::kIdle);
  EXPECT_EQ(s.settings().size(), 2u);
  EXPECT_EQ(s.listens().size(), 1u);
  EXPECT_FALSE(s.HasPendingAcks());
}

TEST(SessionStateTest, ReplayProducesOneReplyPerQueryAndOneSync) {
  SessionState s;
  std::uint64_t seq = 0;
  Exec(&s, &seq, "SET search_path TO a");
  Exec(&s, &seq, "LISTEN jobs");
  Exec(&s, &seq, "PREPARE q AS SELECT 1");
  s.OnParse("s1", "select 1", {}, seq);
  s.OnParse("s2", "select 2", {}, seq);
  s.OnParseComplete(seq);
  s.OnParseComplete(seq);
  s.OnReadyForQuery(seq, TS::kIdle);
  std::string out;
  EXPECT_EQ(s.AppendReplay(&out), 4);  // 3 Queries and 1 Sync
  // Frame it back: Q SET, Q PREPARE, P s1, P s2, S, Q LISTEN.
  ppg::FrameDecoder d(ppg::Direction::kFrontend);
  d.set_phase(ppg::FrameDecoder::Phase::kRegular);
  std::string types;
  std::string_view rest = out;
  while (!rest.empty()) {
    auto r = d.Decode(rest);
    ASSERT_TRUE(r.ok());
    types += r.value.type;
    rest.remove_prefix(r.value.total_size);
  }
  EXPECT_EQ(types, "QQPPSQ");
}

}  // namespace
}  // namespace turnout::proxy::pg

namespace turnout::proxy::pg {
namespace {

std::string Types(const std::string& out) {
  ppg::FrameDecoder d(ppg::Direction::kFrontend);
  d.set_phase(ppg::FrameDecoder::Phase::kRegular);
  std::string types;
  std::string_view rest = out;
  while (!rest.empty()) {
    auto r = d.Decode(rest);
    if (!r.ok()) return types + "!";
    types += r.value.type;
    rest.remove_prefix(r.value.total_size);
  }
  return types;
}

TEST(SessionStateReplayTest, ReplayFromASnapshotSendsOnlyTheDifference) {
  SessionState s;
  std::uint64_t seq = 0;
  Exec(&s, &seq, "SET search_path TO a");
  Exec(&s, &seq, "SET work_mem = '8MB'");
  Exec(&s, &seq, "LISTEN one");
  s.OnParse("s1", "select 1", {}, seq);
  s.OnParseComplete(seq);
  s.OnReadyForQuery(seq++, TS::kIdle);
  const SessionState::Snapshot then = s.snapshot();
  std::string out;
  EXPECT_EQ(s.AppendReplay(&out, &then), 0);
  EXPECT_TRUE(out.empty());

  Exec(&s, &seq, "RESET work_mem");
  Exec(&s, &seq, "SET search_path TO b");
  Exec(&s, &seq, "UNLISTEN one");
  Exec(&s, &seq, "LISTEN \"Two\"");
  s.OnCloseStatement("s1", seq);
  s.OnCloseComplete(seq);
  s.OnParse("s2", "select 2", {}, seq);
  s.OnParseComplete(seq);
  s.OnReadyForQuery(seq++, TS::kIdle);
  out.clear();
  // RESET work_mem, SET search_path, Close s1 + Parse s2 + Sync,
  // UNLISTEN one, LISTEN "Two".
  EXPECT_EQ(s.AppendReplay(&out, &then), 5);
  EXPECT_EQ(Types(out), "QQCPSQQ");
  EXPECT_NE(out.find("RESET work_mem"), std::string::npos);
  EXPECT_NE(out.find("UNLISTEN one"), std::string::npos);
}

}  // namespace
}  // namespace turnout::proxy::pg
