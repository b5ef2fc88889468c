// Decisions of every strategy and phase (DESIGN.md §2).

#include "routing/policy.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "routing/plan.h"
#include "routing/read_your_writes.h"
#include "routing/stable_hash.h"

namespace turnout::routing {
namespace {

constexpr Secondary kDualNewSync{Side::kNew, SecondaryRole::kDualWrite, Apply::kSync};
constexpr Secondary kDualNewAsync{Side::kNew, SecondaryRole::kDualWrite, Apply::kAsync};
constexpr Secondary kDualOldSync{Side::kOld, SecondaryRole::kDualWrite, Apply::kSync};
constexpr Secondary kDualOldAsync{Side::kOld, SecondaryRole::kDualWrite, Apply::kAsync};
constexpr Secondary kShadowNew{Side::kNew, SecondaryRole::kShadow, Apply::kAsync};

const absl::Time kNow = absl::FromUnixSeconds(1705284000);

std::shared_ptr<const Policy> MustCompile(PolicyInputs in) {
  auto p = Policy::Compile(std::move(in));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : Policy::Passthrough("x", Protocol::kPostgres);
}

PolicyInputs Executing(StrategySpec spec, Protocol protocol = Protocol::kPostgres) {
  PolicyInputs in;
  in.route = "db";
  in.protocol = protocol;
  in.migration_id = "m1";
  in.version = 7;
  in.strategy = std::move(spec);
  in.phase = MigrationPhase::kExecuting;
  return in;
}

// A request of class `c` touching `targets` from connection `conn`.
struct Req {
  std::vector<std::string_view> targets;
  Request r;
  Req(RequestClass c, std::vector<std::string_view> t = {}, std::uint64_t conn = 1)
      : targets(std::move(t)) {
    r.request_class = c;
    r.targets = targets;
    r.connection_id = conn;
  }
  operator const Request&() const { return r; }
};

std::vector<Secondary> Sec(const Plan& p) { return {p.secondaries().begin(), p.secondaries().end()}; }

Plan Decide(const Policy& p, RequestClass c, std::vector<std::string_view> targets = {},
            std::uint64_t conn = 1, absl::Time now = kNow) {
  Req req(c, std::move(targets), conn);
  return p.Decide(req, now);
}

constexpr RequestClass kAllClasses[] = {RequestClass::kRead,       RequestClass::kWrite,
                                        RequestClass::kDdl,        RequestClass::kTxnControl,
                                        RequestClass::kSession,    RequestClass::kAdmin};

void ExpectAllTo(const Policy& p, Side side) {
  for (RequestClass c : kAllClasses) {
    const Plan plan = Decide(p, c, {"t"});
    EXPECT_EQ(plan.primary(), side) << RequestClassName(c) << ": " << plan.DebugString();
    EXPECT_FALSE(plan.has_secondaries()) << RequestClassName(c) << ": " << plan.DebugString();
  }
}

// ---------------------------------------------------------------- phases --

TEST(PolicyPhaseTest, PassthroughSendsEverythingToOld) {
  auto p = Policy::Passthrough("db", Protocol::kPostgres, 3);
  EXPECT_EQ(p->version(), 3u);
  ExpectAllTo(*p, Side::kOld);
  EXPECT_FALSE(p->refuses_high_risk_ddl());
}

TEST(PolicyPhaseTest, NotStartedRolledBackCompleted) {
  for (StrategySpec spec : {StrategySpec(BigBangSpec{}), StrategySpec(CanarySpec{0.5}),
                            StrategySpec(BlueGreenSpec{true, true})}) {
    PolicyInputs in = Executing(spec);
    in.phase = MigrationPhase::kNotStarted;
    ExpectAllTo(*MustCompile(in), Side::kOld);
    in.phase = MigrationPhase::kRolledBack;
    ExpectAllTo(*MustCompile(in), Side::kOld);
    in.phase = MigrationPhase::kCompleted;
    ExpectAllTo(*MustCompile(in), Side::kNew);
  }
}

TEST(PolicyPhaseTest, PreparedStartsDualWriteWhereTheStrategyAsks) {
  CanarySpec c{0.5};
  c.write_mode.apply = DualWriteApply::kAsync;
  c.write_mode.policy = Authority::kNewAuthoritative;
  PolicyInputs in = Executing(c);
  in.phase = MigrationPhase::kPrepared;
  auto p = MustCompile(in);
  // Reads stay on old; writes on old with new dual-written (old is the only
  // serving side before migrate, whatever the later authority).
  EXPECT_EQ(Decide(*p, RequestClass::kRead).primary(), Side::kOld);
  Plan w = Decide(*p, RequestClass::kWrite);
  EXPECT_EQ(w.primary(), Side::kOld);
  EXPECT_THAT(Sec(w), ::testing::ElementsAre(kDualNewAsync));
  EXPECT_THAT(Sec(Decide(*p, RequestClass::kTxnControl)), ::testing::ElementsAre(kDualNewAsync));
  EXPECT_THAT(Sec(Decide(*p, RequestClass::kDdl)), ::testing::ElementsAre(kDualNewSync));
  EXPECT_FALSE(Decide(*p, RequestClass::kSession).has_secondaries());

  // big_bang asks for no dual-write.
  in.strategy = BigBangSpec{};
  ExpectAllTo(*MustCompile(in), Side::kOld);
  // blue_green keep_standby does.
  in.strategy = BlueGreenSpec{true, true};
  EXPECT_THAT(Sec(Decide(*MustCompile(in), RequestClass::kWrite)),
              ::testing::ElementsAre(kDualNewSync));
}

// The change stream carries dual-writes to new: plans mark them instead of
// sending statements there; dual-writes to old and shadow work stay.
TEST(PolicyPhaseTest, WritesByStreamMarkThePlanInsteadOfDualWritingToNew) {
  CanarySpec c{0.5};
  PolicyInputs in = Executing(c);
  in.writes_by_stream = true;
  auto sync = MustCompile(in);
  for (RequestClass cls : {RequestClass::kWrite, RequestClass::kTxnControl, RequestClass::kDdl}) {
    const Plan w = Decide(*sync, cls);
    EXPECT_EQ(w.primary(), Side::kOld) << RequestClassName(cls);
    EXPECT_FALSE(w.has_secondaries()) << w.DebugString();
    EXPECT_TRUE(w.has(kPlanStreamSync)) << RequestClassName(cls);
    EXPECT_FALSE(w.has(kPlanStreamAsync));
  }
  EXPECT_FALSE(Decide(*sync, RequestClass::kRead).has(kPlanStreamSync));

  c.write_mode.apply = DualWriteApply::kAsync;
  in.strategy = c;
  const Plan w = Decide(*MustCompile(in), RequestClass::kWrite);
  EXPECT_FALSE(w.has_secondaries());
  EXPECT_TRUE(w.has(kPlanStreamAsync));
  EXPECT_FALSE(w.has(kPlanStreamSync));

  // New authoritative: the dual-write goes to old, which the stream does not reach.
  c.write_mode.policy = Authority::kNewAuthoritative;
  in.strategy = c;
  const Plan to_old = Decide(*MustCompile(in), RequestClass::kWrite);
  EXPECT_THAT(Sec(to_old), ::testing::ElementsAre(kDualOldAsync));
  EXPECT_FALSE(to_old.has(kPlanStreamSync) || to_old.has(kPlanStreamAsync));
}

// A cutover's write window: what may start a write transaction carries the
// hold (the session holds it only at a transaction's start), reads do not.
TEST(PolicyPhaseTest, HoldWritesMarksWritesAndDdlOnly) {
  PolicyInputs in = Executing(CanarySpec{0.5});
  in.writes_by_stream = true;
  in.hold_writes = true;
  auto p = MustCompile(in);
  EXPECT_TRUE(Decide(*p, RequestClass::kWrite).has(kPlanHoldWrites));
  EXPECT_TRUE(Decide(*p, RequestClass::kDdl).has(kPlanHoldWrites));
  EXPECT_TRUE(Decide(*p, RequestClass::kTxnControl).has(kPlanHoldWrites));
  for (RequestClass c : {RequestClass::kRead, RequestClass::kSession, RequestClass::kAdmin})
    EXPECT_FALSE(Decide(*p, c).has(kPlanHoldWrites)) << RequestClassName(c);
  in.hold_writes = false;
  EXPECT_FALSE(Decide(*MustCompile(in), RequestClass::kWrite).has(kPlanHoldWrites));
}

TEST(PolicyPhaseTest, PausedKeepsTheRollout) {
  PolicyInputs in = Executing(BigBangSpec{});
  in.phase = MigrationPhase::kPaused;
  ExpectAllTo(*MustCompile(in), Side::kNew);
}

// ------------------------------------------------------------- big_bang --

TEST(BigBangTest, AllToNewWhenExecuting) {
  ExpectAllTo(*MustCompile(Executing(BigBangSpec{})), Side::kNew);
}

// --------------------------------------------------------------- canary --

TEST(CanaryTest, DualWriteOldAuthoritative) {
  CanarySpec c{0.0};  // default write_mode: dual_write, old_authoritative, sync
  auto p = MustCompile(Executing(c));
  EXPECT_EQ(Decide(*p, RequestClass::kRead).primary(), Side::kOld);
  const Plan w = Decide(*p, RequestClass::kWrite, {"orders"});
  EXPECT_EQ(w.primary(), Side::kOld);
  EXPECT_THAT(Sec(w), ::testing::ElementsAre(kDualNewSync));
  EXPECT_FALSE(w.has(kPlanFenceable));
  const Plan t = Decide(*p, RequestClass::kTxnControl);
  EXPECT_EQ(t.primary(), Side::kOld);
  EXPECT_THAT(Sec(t), ::testing::ElementsAre(kDualNewSync));
  const Plan d = Decide(*p, RequestClass::kDdl, {"orders"});
  EXPECT_THAT(Sec(d), ::testing::ElementsAre(kDualNewSync));
  for (RequestClass cls : {RequestClass::kSession, RequestClass::kAdmin}) {
    const Plan s = Decide(*p, cls);
    EXPECT_EQ(s.primary(), Side::kOld);
    EXPECT_FALSE(s.has_secondaries());
  }
}

TEST(CanaryTest, DualWriteNewAuthoritativeAsync) {
  CanarySpec c{1.0};
  c.write_mode.policy = Authority::kNewAuthoritative;
  c.write_mode.apply = DualWriteApply::kAsync;
  auto p = MustCompile(Executing(c));
  const Plan w = Decide(*p, RequestClass::kWrite);
  EXPECT_EQ(w.primary(), Side::kNew);
  EXPECT_THAT(Sec(w), ::testing::ElementsAre(kDualOldAsync));
  // DDL dual-writes are always sync.
  EXPECT_THAT(Sec(Decide(*p, RequestClass::kDdl)), ::testing::ElementsAre(kDualOldSync));
  const Plan r = Decide(*p, RequestClass::kRead);
  EXPECT_EQ(r.primary(), Side::kNew);
  EXPECT_TRUE(r.has(kPlanFenceable));
  EXPECT_EQ(r.fence_side(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kSession).primary(), Side::kNew);
}

TEST(CanaryTest, AtomicDualWrite) {
  CanarySpec c{0.1};
  c.write_mode.atomic = true;
  auto p = MustCompile(Executing(c));
  EXPECT_TRUE(Decide(*p, RequestClass::kWrite).has(kPlanAtomic));
  EXPECT_TRUE(Decide(*p, RequestClass::kDdl).has(kPlanAtomic));
  EXPECT_FALSE(Decide(*p, RequestClass::kRead).has(kPlanAtomic));
}

TEST(CanaryTest, OldOnlyAndNewOnly) {
  CanarySpec c{0.5};
  c.write_mode.mode = WriteMode::kOldOnly;
  auto p = MustCompile(Executing(c));
  for (RequestClass cls : {RequestClass::kWrite, RequestClass::kDdl, RequestClass::kTxnControl}) {
    EXPECT_EQ(Decide(*p, cls).primary(), Side::kOld);
    EXPECT_FALSE(Decide(*p, cls).has_secondaries());
  }
  c.write_mode.mode = WriteMode::kNewOnly;
  p = MustCompile(Executing(c));
  for (RequestClass cls : {RequestClass::kWrite, RequestClass::kDdl, RequestClass::kTxnControl,
                           RequestClass::kSession}) {
    EXPECT_EQ(Decide(*p, cls).primary(), Side::kNew);
    EXPECT_FALSE(Decide(*p, cls).has_secondaries());
  }
}

TEST(CanaryTest, CutoverSplitsWritesLikeReads) {
  CanarySpec c{0.3};
  c.write_mode = {WriteMode::kCutover, Authority::kOldAuthoritative, DualWriteApply::kSync, false,
                  0.3};
  auto p = MustCompile(Executing(c));
  int new_count = 0;
  for (std::uint64_t conn = 0; conn < 2000; ++conn) {
    const Plan r = Decide(*p, RequestClass::kRead, {}, conn);
    const Plan w = Decide(*p, RequestClass::kWrite, {}, conn);
    EXPECT_EQ(r.primary(), w.primary()) << conn;  // same hash, same side
    EXPECT_FALSE(w.has_secondaries());
    new_count += w.primary() == Side::kNew;
    // DDL during a split: old, with new kept in step, sync.
    const Plan d = Decide(*p, RequestClass::kDdl, {}, conn);
    EXPECT_EQ(d.primary(), Side::kOld);
    EXPECT_THAT(Sec(d), ::testing::ElementsAre(kDualNewSync));
  }
  EXPECT_GT(new_count, 450);
  EXPECT_LT(new_count, 750);

  c.write_mode.write_percentage = 1.0;
  p = MustCompile(Executing(c));
  const Plan d = Decide(*p, RequestClass::kDdl);
  EXPECT_EQ(d.primary(), Side::kNew);
  EXPECT_FALSE(d.has_secondaries());
}

TEST(CanaryTest, KeyStickinessUsesFirstKeyAndFallsBackToConnection) {
  CanarySpec c{0.5};
  c.stickiness = Stickiness::kKey;
  auto p = MustCompile(Executing(c, Protocol::kRedis));
  for (int i = 0; i < 200; ++i) {
    const std::string key = "user:" + std::to_string(i);
    const Side first = Decide(*p, RequestClass::kRead, {key}, 1).primary();
    // Any connection, same key, same side; extra keys do not matter.
    EXPECT_EQ(Decide(*p, RequestClass::kRead, {key, "other"}, 99).primary(), first);
    Req req(RequestClass::kRead, {key}, 5);
    EXPECT_EQ(StickyHash(req, Stickiness::kKey), StableHash(std::string_view(key)));
  }
  Req none(RequestClass::kRead, {}, 42);
  EXPECT_EQ(StickyHash(none, Stickiness::kKey), StableHash(std::uint64_t{42}));
}

TEST(CanaryTest, ClientStickinessUsesCachedHashWhenGiven) {
  Req req(RequestClass::kRead);
  req.r.client = {"app", "billing", "127.0.0.1"};
  EXPECT_EQ(StickyHash(req, Stickiness::kClient), ClientHash(req.r.client));
  req.r.client_hash = 1234;
  EXPECT_EQ(StickyHash(req, Stickiness::kClient), 1234u);
}

// ---------------------------------------------------- read-your-writes --

TEST(ReadYourWritesTest, FenceRedirectsReadsToAuthority) {
  CanarySpec c{1.0};  // every read to new
  c.write_mode.apply = DualWriteApply::kAsync;  // old authoritative
  auto p = MustCompile(Executing(c));
  const Plan r = Decide(*p, RequestClass::kRead);
  EXPECT_EQ(r.primary(), Side::kNew);
  EXPECT_EQ(ApplyReadYourWritesFence(r, false), r);
  const Plan fenced = ApplyReadYourWritesFence(r, true);
  EXPECT_EQ(fenced.primary(), Side::kOld);
  EXPECT_TRUE(fenced.has(kPlanFenced));
  // Already on the authority: unchanged.
  c.read_percentage = 0.0;
  const Plan on_old = Decide(*MustCompile(Executing(c)), RequestClass::kRead);
  EXPECT_EQ(ApplyReadYourWritesFence(on_old, true), on_old);
}

TEST(ReadYourWritesTest, SyncDualWriteIsNotFenceable) {
  auto p = MustCompile(Executing(CanarySpec{1.0}));
  const Plan r = Decide(*p, RequestClass::kRead);
  EXPECT_FALSE(r.has(kPlanFenceable));
  EXPECT_EQ(ApplyReadYourWritesFence(r, true).primary(), Side::kNew);
}

TEST(ReadYourWritesTest, FenceDropsSecondaryOnTheNewPrimary) {
  Plan p(Side::kNew);
  p.AddSecondary({Side::kOld, SecondaryRole::kShadow, Apply::kAsync});
  p.set_fence_side(Side::kOld);
  const Plan f = ApplyReadYourWritesFence(p, true);
  EXPECT_EQ(f.primary(), Side::kOld);
  EXPECT_FALSE(f.has_secondaries());
}

TEST(ReadYourWritesTest, Tracker) {
  ReadYourWritesFence fence;
  EXPECT_FALSE(fence.pending());
  const auto a = fence.OnQueued();
  const auto b = fence.OnQueued();
  EXPECT_TRUE(fence.pending());
  fence.OnResolved(a);
  EXPECT_TRUE(fence.pending());
  fence.OnResolved(b);
  EXPECT_FALSE(fence.pending());
  fence.OnResolved(a);  // stale report
  EXPECT_FALSE(fence.pending());
  EXPECT_EQ(fence.resolved(), b);
}

// ----------------------------------------------------------- blue_green --

TEST(BlueGreenTest, ActiveSideAndStandby) {
  ExpectAllTo(*MustCompile(Executing(BlueGreenSpec{false, false})), Side::kOld);
  ExpectAllTo(*MustCompile(Executing(BlueGreenSpec{true, false})), Side::kNew);
  auto p = MustCompile(Executing(BlueGreenSpec{true, true}));
  EXPECT_EQ(Decide(*p, RequestClass::kRead).primary(), Side::kNew);
  EXPECT_FALSE(Decide(*p, RequestClass::kRead).has_secondaries());
  for (RequestClass cls : {RequestClass::kWrite, RequestClass::kDdl, RequestClass::kTxnControl}) {
    const Plan w = Decide(*p, cls);
    EXPECT_EQ(w.primary(), Side::kNew);
    EXPECT_THAT(Sec(w), ::testing::ElementsAre(kDualOldSync));
  }
  EXPECT_FALSE(Decide(*p, RequestClass::kSession).has_secondaries());
}

// ------------------------------------------------------- shadow_traffic --

TEST(ShadowTrafficTest, ReadsMirroredWritesOptional) {
  auto p = MustCompile(Executing(ShadowTrafficSpec{}));
  const Plan r = Decide(*p, RequestClass::kRead);
  EXPECT_EQ(r.primary(), Side::kOld);
  EXPECT_THAT(Sec(r), ::testing::ElementsAre(kShadowNew));
  EXPECT_FALSE(Decide(*p, RequestClass::kWrite).has_secondaries());
  EXPECT_TRUE(p->scratch_key_prefix().empty());

  ShadowTrafficSpec s;
  s.shadow_writes = true;
  p = MustCompile(Executing(s, Protocol::kRedis));
  EXPECT_THAT(Sec(Decide(*p, RequestClass::kWrite)), ::testing::ElementsAre(kShadowNew));
  EXPECT_EQ(p->scratch_key_prefix(), "turnout:shadow:");
  for (RequestClass cls : {RequestClass::kDdl, RequestClass::kTxnControl, RequestClass::kSession,
                           RequestClass::kAdmin}) {
    EXPECT_EQ(Decide(*p, cls).primary(), Side::kOld);
    EXPECT_FALSE(Decide(*p, cls).has_secondaries()) << RequestClassName(cls);
  }
}

// ------------------------------------------------------- rolling_update --

TEST(RollingUpdateTest, ByInstanceId) {
  RollingUpdateSpec r{{"turnout-1", "turnout-3"}, 5};
  PolicyInputs in = Executing(r);
  in.sidecar.instance_id = "turnout-3";
  ExpectAllTo(*MustCompile(in), Side::kNew);
  in.sidecar.instance_id = "turnout-2";
  ExpectAllTo(*MustCompile(in), Side::kOld);
  in.sidecar.instance_id = "";
  ExpectAllTo(*MustCompile(in), Side::kOld);
}

// ----------------------------------------------------------- geographic --

TEST(GeographicTest, ByRegion) {
  GeographicSpec g{{{"us-east-1", true}, {"eu-west-1", false}}};
  PolicyInputs in = Executing(g);
  in.sidecar.region = "us-east-1";
  ExpectAllTo(*MustCompile(in), Side::kNew);
  in.sidecar.region = "eu-west-1";
  ExpectAllTo(*MustCompile(in), Side::kOld);
  in.sidecar.region = "ap-southeast-1";
  ExpectAllTo(*MustCompile(in), Side::kOld);
  in.sidecar.region = "";
  ExpectAllTo(*MustCompile(in), Side::kOld);
}

// -------------------------------------------------------- strangler_fig --

PolicyInputs StranglerPg() {
  StranglerFigSpec s{{{"user_auth", true}, {"payments", false}, {"reporting", true}}};
  PolicyInputs in = Executing(s);
  in.scopes = {{"user_auth", {"users", "sessions"}, {}},
               {"payments", {"payments", "invoices"}, {}},
               {"reporting", {"sales.report_*"}, {}}};
  return in;
}

TEST(StranglerFigTest, AllTargetsInEnabledScopesGoToNew) {
  auto p = MustCompile(StranglerPg());
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"users"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kWrite, {"users", "sessions"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"public.users"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"sales.report_daily"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"report_daily"}).primary(), Side::kOld);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"payments"}).primary(), Side::kOld);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"orders"}).primary(), Side::kOld);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {}).primary(), Side::kOld);
  EXPECT_FALSE(Decide(*p, RequestClass::kRead, {"orders"}).has(kPlanCrossScope));
  // Mixed: old, flagged.
  const Plan mixed = Decide(*p, RequestClass::kRead, {"users", "payments"});
  EXPECT_EQ(mixed.primary(), Side::kOld);
  EXPECT_TRUE(mixed.has(kPlanCrossScope));
  // Never secondaries.
  EXPECT_FALSE(Decide(*p, RequestClass::kWrite, {"users"}).has_secondaries());
  // Transaction control and session statements touch no table: old.
  EXPECT_EQ(Decide(*p, RequestClass::kTxnControl).primary(), Side::kOld);
}

TEST(StranglerFigTest, RedisKeyGlobs) {
  StranglerFigSpec s{{{"users", true}}};
  PolicyInputs in = Executing(s, Protocol::kRedis);
  in.scopes = {{"users", {}, {"user:*", "session:??"}}};
  auto p = MustCompile(in);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"user:1"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kWrite, {"user:1", "session:ab"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kWrite, {"session:abc"}).primary(), Side::kOld);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"cart:1"}).primary(), Side::kOld);
}

TEST(StranglerFigTest, FeatureWithoutScopeMatchesNothing) {
  StranglerFigSpec s{{{"later", true}}};
  auto p = MustCompile(Executing(s));
  ExpectAllTo(*p, Side::kOld);
}

// --------------------------------------------------------- feature_flag --

TEST(FeatureFlagTest, UnscopedFlagCoversAllTrafficByClient) {
  FeatureFlagSpec f{{{"new_database", true}, {"beta_features", false}}, 0.25};
  auto p = MustCompile(Executing(f));
  int on_new = 0;
  const int kClients = 20000;
  for (int i = 0; i < kClients; ++i) {
    const std::string user = "user" + std::to_string(i);
    Req read(RequestClass::kRead, {"orders"}, 1);
    read.r.client = {user, "app", "127.0.0.1"};
    Req write(RequestClass::kWrite, {}, 2);
    write.r.client = read.r.client;
    const Side s = p->Decide(read, kNow).primary();
    EXPECT_EQ(p->Decide(write, kNow).primary(), s);  // one client, one side
    on_new += s == Side::kNew;
  }
  EXPECT_NEAR(static_cast<double>(on_new) / kClients, 0.25, 0.015);
}

TEST(FeatureFlagTest, ScopedFlag) {
  FeatureFlagSpec f{{{"carts", true}}, 1.0};
  PolicyInputs in = Executing(f, Protocol::kRedis);
  in.scopes = {{"carts", {}, {"cart:*"}}};
  auto p = MustCompile(in);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"cart:9"}).primary(), Side::kNew);
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {"user:9"}).primary(), Side::kOld);
  EXPECT_TRUE(Decide(*p, RequestClass::kRead, {"cart:9", "user:9"}).has(kPlanCrossScope));
  EXPECT_EQ(Decide(*p, RequestClass::kRead, {}).primary(), Side::kOld);
}

TEST(FeatureFlagTest, DisabledOrZero) {
  ExpectAllTo(*MustCompile(Executing(FeatureFlagSpec{{{"x", false}}, 1.0})), Side::kOld);
  ExpectAllTo(*MustCompile(Executing(FeatureFlagSpec{{{"x", true}}, 0.0})), Side::kOld);
  ExpectAllTo(*MustCompile(Executing(FeatureFlagSpec{{{"x", true}}, 1.0})), Side::kNew);
}

// ---------------------------------------------------------- time_window --

TEST(TimeWindowTest, CutsOverInsideTheWindow) {
  const absl::Time start = kNow;
  const absl::Time end = kNow + absl::Hours(2);
  TimeWindowSpec t{start, end, false};
  auto p = MustCompile(Executing(t));
  auto at = [&](RequestClass c, absl::Time now) { return Decide(*p, c, {}, 1, now); };
  EXPECT_EQ(at(RequestClass::kRead, start - absl::Seconds(1)).primary(), Side::kOld);
  EXPECT_EQ(at(RequestClass::kRead, start).primary(), Side::kNew);
  EXPECT_EQ(at(RequestClass::kRead, end).primary(), Side::kNew);
  EXPECT_EQ(at(RequestClass::kRead, end + absl::Nanoseconds(1)).primary(), Side::kOld);
  // Inside the window, old keeps every write until `executed`.
  const Plan w = at(RequestClass::kWrite, start + absl::Minutes(5));
  EXPECT_EQ(w.primary(), Side::kNew);
  EXPECT_THAT(Sec(w), ::testing::ElementsAre(kDualOldSync));
  EXPECT_FALSE(at(RequestClass::kWrite, end + absl::Hours(1)).has_secondaries());

  t.executed = true;
  p = MustCompile(Executing(t));
  EXPECT_EQ(at(RequestClass::kRead, end + absl::Hours(100)).primary(), Side::kNew);
  EXPECT_FALSE(at(RequestClass::kWrite, start).has_secondaries());
}

// ------------------------------------------------------------------ DDL --

TEST(DdlTest, HighRiskRefusedOnMigratingRoute) {
  PolicyInputs in = Executing(CanarySpec{0.1});
  for (MigrationPhase phase : {MigrationPhase::kPrepared, MigrationPhase::kExecuting,
                               MigrationPhase::kPaused}) {
    in.phase = phase;
    in.allow_high_risk_ddl = false;
    auto p = MustCompile(in);
    EXPECT_TRUE(p->refuses_high_risk_ddl());
    Req high(RequestClass::kDdl, {"orders"});
    high.r.ddl_risk = DdlRisk::kHigh;
    EXPECT_TRUE(p->Decide(high, kNow).refused()) << MigrationPhaseName(phase);
    Req medium(RequestClass::kDdl, {"orders"});
    medium.r.ddl_risk = DdlRisk::kMedium;
    EXPECT_FALSE(p->Decide(medium, kNow).refused());
    // A HIGH risk value on a non-DDL request means nothing.
    Req write(RequestClass::kWrite, {"orders"});
    write.r.ddl_risk = DdlRisk::kHigh;
    EXPECT_FALSE(p->Decide(write, kNow).refused());

    in.allow_high_risk_ddl = true;
    p = MustCompile(in);
    EXPECT_FALSE(p->Decide(high, kNow).refused());
  }
  for (MigrationPhase phase : {MigrationPhase::kNotStarted, MigrationPhase::kCompleted,
                               MigrationPhase::kRolledBack}) {
    in.phase = phase;
    in.allow_high_risk_ddl = false;
    Req high(RequestClass::kDdl, {"orders"});
    high.r.ddl_risk = DdlRisk::kHigh;
    EXPECT_FALSE(MustCompile(in)->Decide(high, kNow).refused()) << MigrationPhaseName(phase);
  }
}

// The strategy's `ddl.high_risk` (routing/ddl_policy.h): by default only
// tables the migration moves are protected (its scopes' tables, or every
// table when it has none), plus HIGH statements that name no table.
TEST(DdlTest, HighRiskDdlModesAndScopes) {
  std::shared_ptr<const Policy> p;
  auto refused = [&](std::vector<std::string_view> tables) {
    Req r(RequestClass::kDdl, std::move(tables));
    r.r.ddl_risk = DdlRisk::kHigh;
    return p->Decide(r, kNow).refused();
  };
  CanarySpec spec{0.1};
  PolicyInputs in = Executing(spec);
  p = MustCompile(in);
  EXPECT_EQ(p->high_risk_ddl(), HighRiskDdl::kAllowOutsideScope);
  EXPECT_TRUE(refused({"anything"}));  // no scope: every table moves
  in.scopes.push_back(Scope{"orders", {"orders", "sales.items_*"}, {}});
  p = MustCompile(in);
  EXPECT_TRUE(refused({"orders"}));
  EXPECT_TRUE(refused({"public.orders"}));
  EXPECT_TRUE(refused({"scratch", "sales.items_1"}));
  EXPECT_FALSE(refused({"scratch"}));
  EXPECT_FALSE(refused({"other.items_1"}));
  EXPECT_TRUE(refused({}));  // CASCADE, ALTER SCHEMA ...: may reach any table

  spec.ddl.high_risk = HighRiskDdl::kRefuse;
  in.strategy = spec;
  p = MustCompile(in);
  EXPECT_TRUE(refused({"scratch"}));
  spec.ddl.high_risk = HighRiskDdl::kAllow;
  in.strategy = spec;
  p = MustCompile(in);
  EXPECT_FALSE(p->refuses_high_risk_ddl());
  EXPECT_FALSE(refused({"orders"}));
  EXPECT_FALSE(refused({}));
  EXPECT_NE(MustCompile(Executing(BlueGreenSpec{}))->DebugString().find("refuse_high_risk_ddl=allow_outside_scope"),
            std::string::npos);
}

TEST(DdlTest, HighRiskDdlNamesRoundTrip) {
  for (HighRiskDdl h : {HighRiskDdl::kAllowOutsideScope, HighRiskDdl::kRefuse, HighRiskDdl::kAllow})
    EXPECT_EQ(*ParseHighRiskDdl(HighRiskDdlName(h)), h);
  auto bad = ParseHighRiskDdl("maybe");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("strategy.ddl.high_risk"), std::string::npos);
}

TEST(PolicyTest, OutOfRangeClassIsAWrite) {
  auto p = MustCompile(Executing(CanarySpec{0.0}));
  Req req(static_cast<RequestClass>(17));
  EXPECT_EQ(p->Decide(req, kNow), Decide(*p, RequestClass::kWrite));
}

TEST(PolicyTest, DebugStringDescribesRules) {
  auto p = MustCompile(Executing(CanarySpec{0.25}));
  const std::string s = p->DebugString();
  EXPECT_THAT(s, ::testing::HasSubstr("route=db version=7 migration=m1 phase=executing"));
  EXPECT_THAT(s, ::testing::HasSubstr("read: split"));
  EXPECT_THAT(s, ::testing::HasSubstr("write: fixed a={primary=old secondaries=[new dual_write sync]}"));
}

}  // namespace
}  // namespace turnout::routing
