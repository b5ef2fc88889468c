// Issue 13 item 11: client-side caching through turnout. `CLIENT TRACKING on
// REDIRECT <id>` (to a RESP2 connection subscribed to __redis__:invalidate)
// with BCAST/PREFIX/OPTIN/OPTOUT/NOLOOP, CLIENT GETREDIR, CLIENT
// TRACKINGINFO and CLIENT CACHING behave as they do directly: the redirect
// target gets each invalidation once, from the authoritative side, in
// order, and the ids the client reads are the ones REDIRECT takes. One run
// directly against old, one through turnout per mode (passthrough, sync
// and async dual-write, shadow), compared byte for byte.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/redis/redis_migration_fixture.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kShadow[] = R"({"type":"shadow_traffic"})";
// Every read to new, were the client not tracking.
constexpr char kCanaryReads[] = R"({"type":"canary","read_percentage":1.0,
    "write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"}})";
constexpr char kSyncNewAuthoritative[] = R"({"type":"canary","read_percentage":0.0,
    "write_mode":{"mode":"dual_write","policy":"new_authoritative","apply":"sync"}})";

// `text` with every ":<id>\r\n" (a RESP integer equal to the redirect
// target's id) written as ":ID\r\n", so runs against different servers
// compare.
std::string Normalized(std::string text, const std::string& id) {
  const std::string from = ":" + id + "\r\n";
  for (std::size_t p = text.find(from); p != std::string::npos; p = text.find(from, p + 4))
    text.replace(p, from.size(), ":ID\r\n");
  return text;
}

// Invalidation messages `b` (subscribed) receives until it is quiet.
std::string Invalidations(RespConn& b) {
  std::string got = b.Drain(400);
  for (std::string more = got; !more.empty();) {
    more = b.Drain(200);
    got += more;
  }
  return got;
}

class RedisTrackingTest : public RedisMigrationTest, public ::testing::WithParamInterface<const char*> {
 protected:
  void StartMode() {
    Start();
    if (HasFatalFailure()) return;
    const std::string mode = GetParam();
    if (mode == "sync") Migrate(kSync);
    if (mode == "async") Migrate(kAsync);
    if (mode == "shadow") Migrate(kShadow);
    if (mode == "canary") Migrate(kCanaryReads);
  }

  // The whole exchange against `port`; every reply and every batch of
  // invalidations the redirect target received, in order.
  std::vector<std::string> Run(int port, bool login, const std::string& prefix) {
    std::vector<std::string> seen;
    RespConn b(port), a(port), w(port);
    if (login) {
      LoggedIn(b);
      LoggedIn(a);
      LoggedIn(w);
    }
    const std::string id_reply = b.Call({"CLIENT", "ID"});
    EXPECT_THAT(id_reply, StartsWith(":"));
    const std::string id = id_reply.substr(1, id_reply.size() - 3);
    auto note = [&](std::string s) { seen.push_back(Normalized(std::move(s), id)); };
    note(b.Call({"SUBSCRIBE", "__redis__:invalidate"}));
    const std::string k = prefix + "k";

    // Default mode: keys read are invalidated once each, in write order.
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id}));
    note(a.Call({"CLIENT", "GETREDIR"}));
    note(a.Call({"CLIENT", "TRACKINGINFO"}));
    note(a.Call({"GET", k + "1"}));
    note(a.Call({"GET", k + "2"}));
    note(w.Call({"SET", k + "2", "a"}));
    note(w.Call({"SET", k + "1", "b"}));
    note(w.Call({"SET", k + "1", "c"}));  // no longer tracked: no second message
    note(w.Call({"MSET", k + "1", "d", k + "2", "e"}));
    note(Invalidations(b));
    note(a.Call({"GET", k + "1"}));
    note(w.Call({"DEL", k + "1"}));
    note(Invalidations(b));

    // BCAST with prefixes: every write under them, read or not.
    note(a.Call({"CLIENT", "TRACKING", "off"}));
    note(a.Call({"CLIENT", "GETREDIR"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX", prefix + "b:", "PREFIX",
                 prefix + "c:"}));
    note(a.Call({"CLIENT", "TRACKINGINFO"}));
    note(w.Call({"SET", prefix + "b:1", "x"}));
    note(w.Call({"SET", prefix + "x:1", "x"}));
    note(w.Call({"SADD", prefix + "c:1", "m", "n"}));
    note(w.Call({"INCR", prefix + "b:2"}));
    note(Invalidations(b));

    // OPTIN: only reads after CLIENT CACHING yes.
    note(a.Call({"CLIENT", "TRACKING", "off"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id, "OPTIN"}));
    note(a.Call({"CLIENT", "CACHING", "yes"}));
    note(a.Call({"GET", k + "3"}));
    note(a.Call({"GET", k + "4"}));
    note(w.Call({"SET", k + "4", "x"}));
    note(w.Call({"SET", k + "3", "x"}));
    note(Invalidations(b));

    // OPTOUT: every read but the one after CLIENT CACHING no.
    note(a.Call({"CLIENT", "TRACKING", "off"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id, "OPTOUT"}));
    note(a.Call({"CLIENT", "CACHING", "no"}));
    note(a.Call({"GET", k + "5"}));
    note(a.Call({"GET", k + "6"}));
    note(w.Call({"SET", k + "5", "x"}));
    note(w.Call({"SET", k + "6", "x"}));
    note(Invalidations(b));

    // NOLOOP: the tracking client's own writes invalidate nothing for it.
    note(a.Call({"CLIENT", "TRACKING", "off"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id, "NOLOOP"}));
    note(a.Call({"GET", k + "7"}));
    note(a.Call({"GET", k + "8"}));
    note(a.Call({"SET", k + "7", "own"}));
    note(w.Call({"SET", k + "8", "other"}));
    note(Invalidations(b));

    // Errors, as the server words them.
    note(a.Call({"CLIENT", "TRACKING", "off"}));
    note(a.Call({"CLIENT", "CACHING", "yes"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", "987654321"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id, "OPTIN", "OPTOUT"}));
    note(a.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id, "PREFIX", prefix}));
    note(a.Call({"PING"}));
    note(Invalidations(b));
    return seen;
  }
};

TEST_P(RedisTrackingTest, RedirectedInvalidationsArriveOnceInOrderAsDirectly) {
  StartMode();
  ASSERT_FALSE(HasFatalFailure());
  const auto& b = TestBackends::Get();
  const std::string prefix = Prefix(std::string("track-") + GetParam());
  const auto direct = Run(b.redis_old_port, true, prefix);
  Cleanup(prefix + "*");
  const auto through = Run(port_, false, prefix);
  ASSERT_EQ(through.size(), direct.size());
  // The direct run shows what is compared: the first batch names k2 then k1, once each.
  const std::string first = direct[10];
  const std::string msg2 = "$" + std::to_string(prefix.size() + 2) + "\r\n" + prefix + "k2\r\n";
  const std::string msg1 = "$" + std::to_string(prefix.size() + 2) + "\r\n" + prefix + "k1\r\n";
  ASSERT_THAT(first, HasSubstr(msg2));
  EXPECT_LT(first.find(msg2), first.find(msg1));
  EXPECT_EQ(first.find(msg1), first.rfind(msg1));
  EXPECT_EQ(direct[2], ":ID\r\n");  // GETREDIR names the id CLIENT ID gave
  for (std::size_t i = 0; i < direct.size(); ++i) EXPECT_EQ(through[i], direct[i]) << "step " << i;
  Cleanup(prefix + "*");
}

// The authoritative side moves (old_authoritative → new_authoritative):
// tracking state stays on the server it was enabled on, so a tracking
// client is closed at its next command, and after reconnecting it tracks
// on the new authoritative side, each invalidation once.
class RedisTrackingFlipTest : public RedisMigrationTest {};

TEST_F(RedisTrackingFlipTest, TrackingClientIsClosedWhenAuthorityMovesAndTracksOnTheNewSideAfter) {
  Start();
  ASSERT_FALSE(HasFatalFailure());
  Migrate(kSync);
  ASSERT_FALSE(HasFatalFailure());
  const std::string prefix = Prefix("track-flip");
  const std::string k = prefix + "k";
  const std::string push = ">2\r\n$10\r\ninvalidate\r\n*1\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
  RespConn w(port_);
  {
    RespConn a(port_);
    a.Send(Cmd({"HELLO", "3"}));
    a.Drain(300);
    EXPECT_EQ(a.Call({"CLIENT", "TRACKING", "on"}), "+OK\r\n");
    EXPECT_EQ(a.Call({"GET", k}), "_\r\n");
    EXPECT_EQ(w.Call({"SET", k, "v1"}), "+OK\r\n");
    EXPECT_EQ(Invalidations(a), push);
    EXPECT_EQ(a.Call({"GET", k}), "$2\r\nv1\r\n");
    auto r = admin_.Patch("/api/v1/migrations/ri", std::string(R"({"strategy":)") + kSyncNewAuthoritative + "}");
    ASSERT_EQ(r.status, 200) << r.body;
    // Closed at its next command, which is not answered.
    a.Send(Cmd({"GET", k}));
    auto [bytes, closed] = a.ReadToClose(5000);
    EXPECT_TRUE(closed);
    EXPECT_EQ(bytes, "");
  }
  // Reconnected: tracking on new, invalidated once per write.
  RespConn a(port_);
  a.Send(Cmd({"HELLO", "3"}));
  a.Drain(300);
  EXPECT_EQ(a.Call({"CLIENT", "TRACKING", "on"}), "+OK\r\n");
  EXPECT_EQ(a.Call({"GET", k}), "$2\r\nv1\r\n");
  EXPECT_EQ(w.Call({"SET", k, "v2"}), "+OK\r\n");
  EXPECT_EQ(Invalidations(a), push);
  // The redirect form: CLIENT ID and REDIRECT name connections on new now.
  RespConn b(port_), a2(port_);
  const std::string id_reply = b.Call({"CLIENT", "ID"});
  const std::string id = id_reply.substr(1, id_reply.size() - 3);
  b.Call({"SUBSCRIBE", "__redis__:invalidate"});
  EXPECT_EQ(a2.Call({"CLIENT", "TRACKING", "on", "REDIRECT", id}), "+OK\r\n");
  EXPECT_EQ(a2.Call({"CLIENT", "GETREDIR"}), id_reply);
  EXPECT_EQ(a2.Call({"GET", k}), "$2\r\nv2\r\n");
  EXPECT_EQ(a.Call({"GET", k}), "$2\r\nv2\r\n");
  EXPECT_EQ(w.Call({"SET", k, "v3"}), "+OK\r\n");
  EXPECT_EQ(Invalidations(b), "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$" +
                                  std::to_string(k.size()) + "\r\n" + k + "\r\n");
  EXPECT_EQ(Invalidations(a), push);
  Cleanup(prefix + "*");
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisTrackingTest, ::testing::Values("passthrough", "sync", "async", "shadow", "canary"),
                         [](const auto& p) { return std::string(p.param); });

}  // namespace
}  // namespace turnout::testing
