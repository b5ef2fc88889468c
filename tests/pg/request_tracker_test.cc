// The session's sans-I/O bookkeeping: request accounting (pipelining,
// COPY in extended mode, errors), statement classes kept from Parse,
// transaction boundaries, session state, routing refusals, and no heap
// allocation per message once warm.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "proxy/pg/request_tracker.h"
#include "tests/support/allocation_counter.h"


namespace turnout::proxy::pg {
namespace {

namespace ppg = protocol::pg;
using routing::RequestClass;
using Verdict = RequestTracker::Verdict;
using TS = ppg::TransactionStatus;

class FakeHooks : public RequestTracker::Hooks {
 public:
  routing::Plan Route(RequestClass cls, routing::DdlRisk risk, std::span<const std::string_view> targets) override {
    ++routes;
    last_class = cls;
    last_targets.assign(targets.begin(), targets.end());
    routing::Plan p;
    if (refuse_ddl && cls == RequestClass::kDdl && risk == routing::DdlRisk::kHigh) p.set(routing::kPlanRefused);
    return p;
  }
  void Answered(const RequestTracker::Record& r, std::chrono::microseconds) override { answered.push_back(r.cls); }
  void InFlight(bool busy) override { transitions.push_back(busy); }

  int routes = 0;
  RequestClass last_class = RequestClass::kSession;
  std::vector<std::string_view> last_targets;
  std::vector<RequestClass> answered;
  std::vector<bool> transitions;
  bool refuse_ddl = false;
};

// Feeds whole messages (as a client or backend would send them) to the tracker.
class TrackerTest : public ::testing::Test {
 protected:
  std::vector<Verdict> Client(const std::string& bytes) {
    std::vector<Verdict> out;
    ppg::FrameDecoder d(ppg::Direction::kFrontend);
    d.set_phase(ppg::FrameDecoder::Phase::kRegular);
    std::string_view rest = bytes;
    while (!rest.empty()) {
      auto r = d.Decode(rest);
      EXPECT_TRUE(r.ok());
      if (!r.ok()) break;
      out.push_back(tracker.OnClientFrame(r.value));
      rest.remove_prefix(r.value.total_size);
    }
    return out;
  }
  void Backend(const std::string& bytes) {
    ppg::FrameDecoder d(ppg::Direction::kBackend);
    std::string_view rest = bytes;
    while (!rest.empty()) {
      auto r = d.Decode(rest);
      ASSERT_TRUE(r.ok());
      tracker.OnBackendFrame(r.value);
      rest.remove_prefix(r.value.total_size);
    }
  }
  static std::string Q(std::string_view sql) { std::string s; ppg::AppendQuery(&s, sql); return s; }
  static std::string Z(TS status = TS::kIdle) { std::string s; ppg::AppendReadyForQuery(&s, status); return s; }
  static std::string C(std::string_view tag) { std::string s; ppg::AppendCommandComplete(&s, tag); return s; }
  static std::string Extended(std::string_view name, std::string_view sql, bool parse = true) {
    std::string s;
    if (parse) ppg::AppendParse(&s, name, sql);
    const ppg::Value params[] = {std::string_view("1")};
    ppg::AppendBind(&s, "", name, {}, params, {});
    ppg::AppendExecute(&s, "");
    ppg::AppendSync(&s);
    return s;
  }

  FakeHooks hooks;
  RequestTracker tracker{&hooks, /*debug_hooks=*/true};
};

TEST_F(TrackerTest, SimpleQueryIsOneRequest) {
  EXPECT_TRUE(tracker.AtBoundary());
  EXPECT_THAT(Client(Q("select * from orders where id = 1")), ::testing::ElementsAre(Verdict::kForward));
  EXPECT_EQ(tracker.InFlight(), 1u);
  EXPECT_FALSE(tracker.BackendIdle());
  EXPECT_EQ(hooks.last_class, RequestClass::kRead);
  EXPECT_THAT(hooks.last_targets, ::testing::ElementsAre("orders"));
  Backend(C("SELECT 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_TRUE(tracker.AtBoundary());
  EXPECT_THAT(hooks.answered, ::testing::ElementsAre(RequestClass::kRead));
  EXPECT_THAT(hooks.transitions, ::testing::ElementsAre(true, false));
}

TEST_F(TrackerTest, PipelinedBatchesAndNamedStatementsKeepTheirClass) {
  std::string batch = Extended("ins", "insert into t values ($1)") + Extended("ins", "", /*parse=*/false) +
                      Extended("", "select $1::int");
  for (Verdict v : Client(batch)) EXPECT_EQ(v, Verdict::kForward);
  EXPECT_EQ(tracker.InFlight(), 3u);
  Backend(std::string("1\0\0\0\4", 5) + std::string("2\0\0\0\4", 5) + C("INSERT 0 1") + Z());
  Backend(std::string("2\0\0\0\4", 5) + C("INSERT 0 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 1u);
  Backend(std::string("1\0\0\0\4", 5) + std::string("2\0\0\0\4", 5) + C("SELECT 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  // The second batch only Binds "ins": its class comes from the Parse.
  EXPECT_THAT(hooks.answered,
              ::testing::ElementsAre(RequestClass::kWrite, RequestClass::kWrite, RequestClass::kRead));
  ASSERT_EQ(tracker.state().prepared().size(), 1u);
  EXPECT_EQ(tracker.state().prepared()[0].first, "ins");
}

TEST_F(TrackerTest, UnsyncedExtendedMessagesAreNotABoundary) {
  std::string s;
  ppg::AppendParse(&s, "", "select 1");
  ppg::AppendDescribe(&s, ppg::Target::kStatement, "");
  ppg::AppendFlush(&s);
  Client(s);
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_TRUE(tracker.BackendIdle());
  EXPECT_FALSE(tracker.AtBoundary());
  s.clear();
  ppg::AppendSync(&s);
  Client(s);
  Backend(Z());
  EXPECT_TRUE(tracker.AtBoundary());
}

TEST_F(TrackerTest, ExtendedCopyTheServerIgnoresTheFirstSync) {
  // libpq: Parse/Bind/Execute/Sync, CopyData..., CopyDone, Sync.
  Client(Extended("", "copy t from stdin"));
  EXPECT_EQ(tracker.InFlight(), 1u);
  std::string g;
  ppg::FrameBuilder(&g, 'G').Byte(0).Int16(0).Finish();
  Backend(std::string("1\0\0\0\4", 5) + std::string("2\0\0\0\4", 5) + g);
  EXPECT_FALSE(tracker.BackendIdle());
  std::string data;
  ppg::AppendCopyData(&data, "1\n");
  ppg::AppendCopyDone(&data);
  ppg::AppendSync(&data);
  Client(data);
  Backend(C("COPY 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_TRUE(tracker.AtBoundary());
  EXPECT_EQ(hooks.answered.size(), 1u);
}

TEST_F(TrackerTest, ExtendedCopyThatNeverStartsAnswersItsSync) {
  Client(Extended("", "copy no_such_table from stdin"));
  std::string e;
  ppg::AppendErrorResponse(&e, ppg::ErrorSpec{.sqlstate = "42P01", .message = "relation does not exist"});
  Backend(e + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_TRUE(tracker.AtBoundary());
  // And a later plain request is counted normally.
  Client(Q("select 1"));
  EXPECT_EQ(tracker.InFlight(), 1u);
  Backend(C("SELECT 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
}

TEST_F(TrackerTest, SimpleQueryCopyIgnoresSyncDuringCopyIn) {
  Client(Q("copy t from stdin"));
  std::string g;
  ppg::FrameBuilder(&g, 'G').Byte(0).Int16(0).Finish();
  Backend(g);
  std::string data;
  ppg::AppendCopyData(&data, "1\n");
  ppg::AppendSync(&data);  // ignored by the server in copy-in
  ppg::AppendCopyDone(&data);
  Client(data);
  Backend(C("COPY 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
}

TEST_F(TrackerTest, TransactionsAreNotBoundaries) {
  Client(Q("begin"));
  Backend(C("BEGIN") + Z(TS::kInTransaction));
  EXPECT_TRUE(tracker.BackendIdle());
  EXPECT_FALSE(tracker.AtBoundary());
  Client(Q("set search_path to a"));
  Backend(C("SET") + Z(TS::kInTransaction));
  EXPECT_TRUE(tracker.state().settings().empty());
  Client(Q("commit"));
  Backend(C("COMMIT") + Z());
  EXPECT_TRUE(tracker.AtBoundary());
  EXPECT_EQ(tracker.state().settings().size(), 1u);
}

TEST_F(TrackerTest, SetThroughTheExtendedProtocolIsRecorded) {
  Client(Extended("", "set application_name = 'x'"));
  Backend(std::string("1\0\0\0\4", 5) + std::string("2\0\0\0\4", 5) + C("SET") + Z());
  ASSERT_EQ(tracker.state().settings().size(), 1u);
  EXPECT_EQ(tracker.state().settings()[0].first, "application_name");
}

TEST_F(TrackerTest, VerdictsForSpecialAndBrokenMessages) {
  std::string x;
  ppg::AppendTerminate(&x);
  EXPECT_THAT(Client(x), ::testing::ElementsAre(Verdict::kTerminate));
  std::string p;
  ppg::AppendPasswordMessage(&p, "secret");
  EXPECT_THAT(Client(p), ::testing::ElementsAre(Verdict::kProtocolError));
  EXPECT_THAT(Client(Q("TURNOUT DEBUG USE NEW")), ::testing::ElementsAre(Verdict::kDebugUse));
  EXPECT_THAT(Client(std::string("B\0\0\0\6ab", 7)), ::testing::ElementsAre(Verdict::kProtocolError));
  EXPECT_EQ(tracker.InFlight(), 0u);
  RequestTracker no_hooks(&hooks, /*debug_hooks=*/false);
  ppg::FrameDecoder d(ppg::Direction::kFrontend);
  d.set_phase(ppg::FrameDecoder::Phase::kRegular);
  const std::string q = Q("TURNOUT DEBUG USE NEW");
  EXPECT_EQ(no_hooks.OnClientFrame(d.Decode(q).value), Verdict::kForward);
}

TEST_F(TrackerTest, RefusedPlansAreNotForwarded) {
  hooks.refuse_ddl = true;
  EXPECT_THAT(Client(Q("drop table orders")), ::testing::ElementsAre(Verdict::kRefuse));
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_THAT(Client(Q("create index on orders(id)")), ::testing::ElementsAre(Verdict::kForward));
}

// Issue 13: a refusal holds in the extended protocol too, the whole batch
// to its Sync, and a refused batch is never taken for secondary work.
TEST_F(TrackerTest, RefusedExtendedBatchesAreDroppedToTheirSync) {
  hooks.refuse_ddl = true;
  EXPECT_THAT(Client(Extended("S_1", "drop table if exists orders")),
              ::testing::ElementsAre(Verdict::kDiscard, Verdict::kDiscard, Verdict::kDiscard, Verdict::kRefuse));
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_FALSE(tracker.unsynced());
  // In the middle of a batch: the refused Execute is replaced, the Sync goes on.
  std::string batch;
  ppg::AppendParse(&batch, "", "insert into orders values (1)");
  const ppg::Value none[] = {std::string_view("1")};
  ppg::AppendBind(&batch, "", "", {}, none, {});
  ppg::AppendExecute(&batch, "");
  ppg::AppendParse(&batch, "", "truncate orders");
  ppg::AppendBind(&batch, "", "", {}, none, {});
  ppg::AppendExecute(&batch, "");
  ppg::AppendSync(&batch);
  EXPECT_THAT(Client(batch), ::testing::ElementsAre(Verdict::kForward, Verdict::kForward, Verdict::kForward,
                                                    Verdict::kForward, Verdict::kForward,
                                                    Verdict::kRefuseInBatch, Verdict::kForward));
  EXPECT_EQ(tracker.InFlight(), 1u);
  Backend(std::string("E\0\0\0\4", 5) + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  // The session goes on.
  EXPECT_THAT(Client(Extended("", "select 1")), ::testing::Each(Verdict::kForward));
}

TEST_F(TrackerTest, TemporaryTablesAndRowlessDropsAreNotHighRisk) {
  hooks.refuse_ddl = true;
  EXPECT_THAT(Client(Q("create temp table t(id int)")), ::testing::ElementsAre(Verdict::kForward));
  // Not yet: the CREATE may still fail.
  EXPECT_THAT(Client(Q("drop table t")), ::testing::ElementsAre(Verdict::kRefuse));
  Backend(C("CREATE TABLE") + Z());
  EXPECT_THAT(Client(Q("truncate t")), ::testing::ElementsAre(Verdict::kForward));
  EXPECT_THAT(Client(Q("drop table t")), ::testing::ElementsAre(Verdict::kForward));
  Backend(C("TRUNCATE TABLE") + Z() + C("DROP TABLE") + Z());
  // Dropped: the name may come back as a permanent table.
  EXPECT_THAT(Client(Q("drop table t")), ::testing::ElementsAre(Verdict::kRefuse));
  EXPECT_THAT(Client(Q("drop table pg_temp.x")), ::testing::ElementsAre(Verdict::kForward));
  for (const char* sql : {"drop function if exists f()", "drop role if exists r", "drop schema s",
                          "drop database if exists d", "alter function f() rename to g",
                          "alter sequence s rename to s2", "alter table pg_temp.x rename to y"})
    EXPECT_THAT(Client(Q(sql)), ::testing::ElementsAre(Verdict::kForward)) << sql;
  for (const char* sql : {"drop schema s cascade", "drop owned by r", "drop type t cascade",
                          "alter schema public rename to p2", "alter database d rename to e",
                          "alter table orders rename to o2"})
    EXPECT_THAT(Client(Q(sql)), ::testing::ElementsAre(Verdict::kRefuse)) << sql;
}

TEST_F(TrackerTest, NoAllocationPerMessageOnceWarm) {
  // pgbench -M prepared and -M simple, as steady state.
  const std::string prepared = Extended("P0_1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
  const std::string execute = Extended("P0_1", "", /*parse=*/false);
  const std::string simple = Q("SELECT abalance FROM pgbench_accounts WHERE aid = 42;");
  const std::string replies = std::string("2\0\0\0\4", 5) + C("SELECT 1") + Z();
  const std::string parse_replies = std::string("1\0\0\0\4", 5) + replies;
  const std::string simple_replies = C("SELECT 1") + Z();
  // Pre-decode so the loop measures the tracker only.
  auto frames = [](const std::string& bytes, ppg::Direction dir) {
    std::vector<ppg::Frame> out;
    ppg::FrameDecoder d(dir);
    d.set_phase(ppg::FrameDecoder::Phase::kRegular);
    std::string_view rest = bytes;
    while (!rest.empty()) {
      auto r = d.Decode(rest);
      out.push_back(r.value);
      rest.remove_prefix(r.value.total_size);
    }
    return out;
  };
  const auto f_prepared = frames(prepared, ppg::Direction::kFrontend);
  const auto f_execute = frames(execute, ppg::Direction::kFrontend);
  const auto f_simple = frames(simple, ppg::Direction::kFrontend);
  const auto f_replies = frames(replies, ppg::Direction::kBackend);
  const auto f_parse_replies = frames(parse_replies, ppg::Direction::kBackend);
  const auto f_simple_replies = frames(simple_replies, ppg::Direction::kBackend);
  for (const auto& f : f_prepared) tracker.OnClientFrame(f);
  for (const auto& f : f_parse_replies) tracker.OnBackendFrame(f);
  auto round = [&] {
    for (const auto& f : f_execute) tracker.OnClientFrame(f);
    for (const auto& f : f_replies) tracker.OnBackendFrame(f);
    for (const auto& f : f_simple) tracker.OnClientFrame(f);
    for (const auto& f : f_simple_replies) tracker.OnBackendFrame(f);
  };
  for (int i = 0; i < 200; ++i) round();  // warm up (records, scratch capacity)
  hooks.answered.shrink_to_fit();
  hooks.answered.reserve(100000);
  hooks.transitions.reserve(100000);
  hooks.last_targets.reserve(16);
  const std::size_t before = turnout::testing::AllocationCount();
  for (int i = 0; i < 1000; ++i) round();
  EXPECT_EQ(turnout::testing::AllocationCount() - before, 0u);
  EXPECT_EQ(tracker.InFlight(), 0u);
}

}  // namespace
}  // namespace turnout::proxy::pg
