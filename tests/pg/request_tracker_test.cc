// The session's sans-I/O bookkeeping: the verdict per client frame (which
// frames ask for routing, with what class, risk and tables), request
// accounting (pipelining, COPY in extended mode, errors), statement classes
// kept from Parse, transaction boundaries, session state, routing refusals,
// and no heap allocation per message once warm.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
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
  void Answered(const RequestTracker::Record& r, std::chrono::microseconds) override { answered.push_back(r.cls); }
  void InFlight(bool busy) override { transitions.push_back(busy); }

  std::vector<RequestClass> answered;
  std::vector<bool> transitions;
};

// What a session does with kRoute: decides (here: refuses HIGH-risk DDL
// when asked to) and answers Routed().
struct FakeRouter {
  Verdict Answer(RequestTracker& tracker) {
    const RequestTracker::RequestStart& r = tracker.request();
    ++routes;
    last_class = r.cls;
    last_risk = r.risk;
    last_type = r.type;
    last_batch_start = r.batch_start;
    last_targets.assign(r.tables.begin(), r.tables.end());
    return tracker.Routed(refuse_ddl && r.cls == RequestClass::kDdl && r.risk == routing::DdlRisk::kHigh);
  }

  int routes = 0;
  RequestClass last_class = RequestClass::kSession;
  routing::DdlRisk last_risk = routing::DdlRisk::kNone;
  char last_type = 0;
  bool last_batch_start = false;
  std::vector<std::string> last_targets;
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
      Verdict v = tracker.OnClientFrame(r.value);
      if (v == Verdict::kRoute) v = router.Answer(tracker);
      out.push_back(v);
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
  FakeRouter router;
  RequestTracker tracker{&hooks, /*debug_hooks=*/true};
};

TEST_F(TrackerTest, SimpleQueryIsOneRequest) {
  EXPECT_TRUE(tracker.AtBoundary());
  EXPECT_THAT(Client(Q("select * from orders where id = 1")), ::testing::ElementsAre(Verdict::kForward));
  EXPECT_EQ(tracker.InFlight(), 1u);
  EXPECT_FALSE(tracker.BackendIdle());
  EXPECT_EQ(router.last_class, RequestClass::kRead);
  EXPECT_THAT(router.last_targets, ::testing::ElementsAre("orders"));
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

// The latency records start small and grow with the pipeline: every request
// of a pipeline up to 64 deep is answered with its own class, in order, and
// deeper ones are counted without a record.
TEST_F(TrackerTest, DeepPipelinesKeepEachRequestsRecordUpToTheRingsDepth) {
  std::string batches;
  std::vector<RequestClass> sent;
  for (int i = 0; i < 40; ++i) {
    const bool write = i % 3 == 0;
    batches += Extended("", write ? "insert into t values ($1)" : "select $1::int");
    sent.push_back(write ? RequestClass::kWrite : RequestClass::kRead);
  }
  Client(batches);
  EXPECT_EQ(tracker.InFlight(), 40u);
  for (int i = 0; i < 40; ++i) Backend(std::string("1\0\0\0\4", 5) + std::string("2\0\0\0\4", 5) + C("SELECT 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_EQ(hooks.answered, sent);

  // 100 in flight: the ring holds the 64 latest; the first 36 had theirs
  // overwritten and are answered without one.
  hooks.answered.clear();
  batches.clear();
  for (int i = 0; i < 100; ++i) batches += Extended("", "select $1::int");
  Client(batches);
  for (int i = 0; i < 100; ++i) Backend(std::string("1\0\0\0\4", 5) + std::string("2\0\0\0\4", 5) + C("SELECT 1") + Z());
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_EQ(hooks.answered.size(), 64u);
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
  EXPECT_EQ(no_hooks.OnClientFrame(d.Decode(q).value), Verdict::kRoute);
  EXPECT_EQ(no_hooks.Routed(false), Verdict::kForward);
}

TEST_F(TrackerTest, RefusedPlansAreNotForwarded) {
  router.refuse_ddl = true;
  EXPECT_THAT(Client(Q("drop table orders")), ::testing::ElementsAre(Verdict::kRefuse));
  EXPECT_EQ(tracker.InFlight(), 0u);
  EXPECT_THAT(Client(Q("create index on orders(id)")), ::testing::ElementsAre(Verdict::kForward));
}

// Issue 13: a refusal holds in the extended protocol too, the whole batch
// to its Sync, and a refused batch is never taken for secondary work.
TEST_F(TrackerTest, RefusedExtendedBatchesAreDroppedToTheirSync) {
  router.refuse_ddl = true;
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
  router.refuse_ddl = true;
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

// Which client frames ask for routing, and with what: the verdict a
// session routes on (RequestStart), one row per input.
struct Ask {
  std::size_t frame = 0;  // index of the frame in the input
  char type = 0;
  RequestClass cls = RequestClass::kWrite;
  routing::DdlRisk risk = routing::DdlRisk::kNone;
  std::vector<std::string> tables;
  bool batch_start = true;
  friend bool operator==(const Ask&, const Ask&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Ask& a) {
    os << "{frame " << a.frame << " '" << a.type << "' class " << static_cast<int>(a.cls) << " risk "
       << static_cast<int>(a.risk) << " tables [";
    for (const auto& t : a.tables) os << t << " ";
    return os << "] batch_start " << a.batch_start << "}";
  }
};

struct VerdictCase {
  std::string name;
  std::string setup;  // client frames sent (and answered by the server) first
  std::string input;
  std::vector<Ask> asks;
};

std::string Query(std::string_view sql) {
  std::string s;
  ppg::AppendQuery(&s, sql);
  return s;
}
std::string Parse(std::string_view name, std::string_view sql) {
  std::string s;
  ppg::AppendParse(&s, name, sql);
  return s;
}
std::string Bind(std::string_view statement) {
  std::string s;
  const ppg::Value params[] = {std::string_view("1")};
  ppg::AppendBind(&s, "", statement, {}, params, {});
  return s;
}
std::string Execute() {
  std::string s;
  ppg::AppendExecute(&s, "");
  return s;
}
std::string Sync() {
  std::string s;
  ppg::AppendSync(&s);
  return s;
}
std::string Describe() {
  std::string s;
  ppg::AppendDescribe(&s, ppg::Target::kPortal, "");
  return s;
}

using R = routing::DdlRisk;
using T = std::vector<std::string>;

class VerdictTableTest : public TrackerTest, public ::testing::WithParamInterface<VerdictCase> {};

TEST_P(VerdictTableTest, AsksForRoutingWithWhatTheRequestIs) {
  const VerdictCase& c = GetParam();
  if (!c.setup.empty()) {
    Client(c.setup);
    // Each request of the setup answered (ParseComplete and the rest are
    // not needed for the accounting).
    while (tracker.InFlight() > 0) Backend(Z());
  }
  std::vector<Ask> asks;
  ppg::FrameDecoder d(ppg::Direction::kFrontend);
  d.set_phase(ppg::FrameDecoder::Phase::kRegular);
  std::string_view rest = c.input;
  for (std::size_t i = 0; !rest.empty(); ++i) {
    auto r = d.Decode(rest);
    ASSERT_TRUE(r.ok());
    const std::uint64_t in_flight = tracker.InFlight();
    const bool unsynced = tracker.unsynced();
    Verdict v = tracker.OnClientFrame(r.value);
    if (v == Verdict::kRoute) {
      // Nothing is recorded before the session answers.
      EXPECT_EQ(tracker.InFlight(), in_flight) << c.name;
      EXPECT_EQ(tracker.unsynced(), unsynced) << c.name;
      const auto& q = tracker.request();
      asks.push_back(Ask{i, q.type, q.cls, q.risk, T(q.tables.begin(), q.tables.end()), q.batch_start});
      v = tracker.Routed(false);
    }
    EXPECT_EQ(v, Verdict::kForward) << c.name << " frame " << i;
    rest.remove_prefix(r.value.total_size);
  }
  EXPECT_EQ(asks, c.asks) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Requests, VerdictTableTest,
    ::testing::Values(
        VerdictCase{"select", "", Query("select * from orders where id = 1"),
                    {{0, 'Q', RequestClass::kRead, R::kNone, T{"orders"}, true}}},
        VerdictCase{"insert_schema", "", Query("insert into Shop.Orders values (1)"),
                    {{0, 'Q', RequestClass::kWrite, R::kNone, T{"shop.orders"}, true}}},
        VerdictCase{"drop_is_high_risk", "", Query("drop table orders"),
                    {{0, 'Q', RequestClass::kDdl, R::kHigh, T{"orders"}, true}}},
        VerdictCase{"begin", "", Query("begin"), {{0, 'Q', RequestClass::kTxnControl, R::kNone, T{}, true}}},
        VerdictCase{"set", "", Query("set search_path to a"), {{0, 'Q', RequestClass::kSession, R::kNone, T{}, true}}},
        VerdictCase{"multi_statement_takes_the_strongest", "", Query("select 1 from a; update b set x = 1"),
                    {{0, 'Q', RequestClass::kWrite, R::kNone, T{"a", "b"}, true}}},
        VerdictCase{"sql_execute_takes_the_prepared_class", Query("prepare w as update orders set x = 1"),
                    Query("execute w"), {{0, 'Q', RequestClass::kWrite, R::kNone, T{}, true}}},
        // A batch is routed at its first message; a later Execute asks again
        // (refusal, unforeseen writes), a Bind or Describe in it does not.
        VerdictCase{"batch_at_its_parse", "",
                    Parse("", "update orders set x = $1") + Bind("") + Describe() + Execute() + Sync(),
                    {{0, 'P', RequestClass::kWrite, R::kNone, T{"orders"}, true},
                     {3, 'E', RequestClass::kWrite, R::kNone, T{"orders"}, false}}},
        VerdictCase{"second_statement_of_a_batch", "",
                    Parse("", "select 1 from a") + Bind("") + Execute() + Parse("", "delete from b") + Bind("") +
                        Execute() + Sync(),
                    {{0, 'P', RequestClass::kRead, R::kNone, T{"a"}, true},
                     {2, 'E', RequestClass::kRead, R::kNone, T{"a"}, false},
                     {5, 'E', RequestClass::kWrite, R::kNone, T{"b"}, false}}},
        VerdictCase{"batch_at_its_bind", Parse("s1", "select * from orders") + Sync(),
                    Bind("s1") + Execute() + Sync(),
                    {{0, 'B', RequestClass::kRead, R::kNone, T{"orders"}, true},
                     {1, 'E', RequestClass::kRead, R::kNone, T{"orders"}, false}}},
        // A statement the tracker never saw (a Parse too large to read) has
        // no class to route on: the batch goes where the session is.
        VerdictCase{"bind_of_an_unknown_statement", "", Bind("nope") + Execute() + Sync(), {}},
        VerdictCase{"sync_alone", "", Sync(), {}}),
    [](const ::testing::TestParamInfo<VerdictCase>& param) { return param.param.name; });

TEST_F(TrackerTest, ARefusedParseKeepsItsStatementsClass) {
  router.refuse_ddl = true;
  Client(Parse("s1", "insert into orders values (1)") + Sync());
  Backend(Z());
  // Parsed again as a high-risk statement and refused: the server never
  // sees it, so "s1" stays the insert.
  EXPECT_THAT(Client(Parse("s1", "drop table orders") + Sync()),
              ::testing::ElementsAre(Verdict::kDiscard, Verdict::kRefuse));
  EXPECT_THAT(Client(Bind("s1") + Execute() + Sync()), ::testing::Each(Verdict::kForward));
  EXPECT_EQ(router.last_class, RequestClass::kWrite);
  EXPECT_THAT(router.last_targets, ::testing::ElementsAre("orders"));
}

TEST_F(TrackerTest, RoutedWithoutARouteAskIsAnError) {
  EXPECT_EQ(tracker.Routed(false), Verdict::kProtocolError);
  EXPECT_THAT(Client(Q("select 1")), ::testing::ElementsAre(Verdict::kForward));
  EXPECT_EQ(tracker.Routed(false), Verdict::kProtocolError);  // answered once only
  EXPECT_EQ(tracker.InFlight(), 1u);
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
  // As the session: a kRoute frame's request is read, then answered.
  std::size_t routed = 0, not_forwarded = 0;
  auto client = [&](const ppg::Frame& f) {
    if (tracker.OnClientFrame(f) != Verdict::kRoute) return;
    routed += tracker.request().tables.size();
    if (tracker.Routed(false) != Verdict::kForward) ++not_forwarded;
  };
  for (const auto& f : f_prepared) client(f);
  for (const auto& f : f_parse_replies) tracker.OnBackendFrame(f);
  auto round = [&] {
    for (const auto& f : f_execute) client(f);
    for (const auto& f : f_replies) tracker.OnBackendFrame(f);
    for (const auto& f : f_simple) client(f);
    for (const auto& f : f_simple_replies) tracker.OnBackendFrame(f);
  };
  for (int i = 0; i < 200; ++i) round();  // warm up (records, scratch capacity)
  hooks.answered.shrink_to_fit();
  hooks.answered.reserve(100000);
  hooks.transitions.reserve(100000);
  const std::size_t before = turnout::testing::AllocationCount();
  for (int i = 0; i < 1000; ++i) round();
  EXPECT_EQ(turnout::testing::AllocationCount() - before, 0u);
  EXPECT_EQ(tracker.InFlight(), 0u);
  // The first batch's Parse and Execute, then per round the Bind and
  // Execute of the prepared statement and the Query: each asked with its table.
  EXPECT_EQ(routed, 2 + 1200u * 3);
  EXPECT_EQ(not_forwarded, 0u);
}

}  // namespace
}  // namespace turnout::proxy::pg
