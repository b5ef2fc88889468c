// Issue 14 without backends: names from paths and bodies are checked before
// anything is stored; the file store never writes what it cannot read back;
// long admin requests run off the thread that answers probes, bounded; the
// server answers a malformed request; a full journal coalesces, never drops.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "control/admin_server.h"
#include "control/file_store.h"
#include "proxy/journal_file.h"
#include "routing/journal.h"
#include "tests/control/admin_harness.h"

namespace turnout::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

control::HttpRequest Request(const std::string& method, const std::string& target, const std::string& body = "",
                             const std::string& token = kHarnessAdminToken) {
  control::HttpRequest r;
  r.method = method;
  r.target = target;
  r.body = body;
  if (!token.empty()) r.headers["authorization"] = "Bearer " + token;
  return r;
}

class AdminNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = HarnessFolder("turnout-admin-names") + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    harness_ = std::make_unique<AdminHarness>(dir_ + "/state.json");
    ASSERT_EQ(Handle("POST", "/api/v1/migrations", R"({"id":"m1","strategy":{"type":"big_bang"}})").status, 201);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  control::HttpReply Handle(const std::string& method, const std::string& target, const std::string& body = "") {
    return harness_->Handle(Request(method, target, body));
  }
  // The request is a 400 naming `field`, and the state file is byte for byte
  // what it was (and still loads).
  void ExpectRefused(const std::string& method, const std::string& target, const std::string& body,
                     const std::string& field) {
    const std::string before = ReadFile(harness_->state_path());
    auto r = Handle(method, target, body);
    EXPECT_EQ(r.status, 400) << target << " " << body << " → " << r.body;
    EXPECT_THAT(r.body, HasSubstr(field + ":")) << target;
    EXPECT_EQ(ReadFile(harness_->state_path()), before) << target;
    EXPECT_TRUE(control::FileStateStore::Open(harness_->state_path()).ok());
  }

  std::string dir_;
  std::unique_ptr<AdminHarness> harness_;
};

TEST_F(AdminNamesTest, ScopeNameWithRawBytesIsA400AndTheFileStillLoads) {
  // The request of issue 14 that once bricked a sidecar.
  ExpectRefused("POST", "/api/v1/migrations/m1/api/\x8e\x84", R"({"tables":["t"]})", "scope");
  ExpectRefused("POST", "/api/v1/migrations/m1/api/a%20b", R"({"tables":["t"]})", "scope");
  ExpectRefused("POST", "/api/v1/migrations/m1/api/..", R"({"tables":["t"]})", "scope");
  ExpectRefused("POST", "/api/v1/migrations/m1/api/" + std::string(129, 'a'), R"({"tables":["t"]})", "scope");
  // A good one still works.
  EXPECT_EQ(Handle("POST", "/api/v1/migrations/m1/api/users", R"({"tables":["public.users"]})").status, 200);
}

TEST_F(AdminNamesTest, EveryNameFromAPathOrBodyFollowsTheIdRule) {
  ExpectRefused("POST", "/api/v1/migrations", R"({"id":".."})", "id");
  ExpectRefused("POST", "/api/v1/migrations", R"({"id":"."})", "id");
  ExpectRefused("POST", "/api/v1/migrations", R"({"id":"caf\u00e9"})", "id");
  ExpectRefused("GET", "/api/v1/migrations/\xff", "", "id");
  ExpectRefused("PATCH", "/api/v1/migrations/m\x01", R"({"description":"x"})", "id");
  ExpectRefused("POST", "/api/v1/migrations/m1/interlay/\xc3\x28", R"({"endpoint":"pg-new"})", "route");
  ExpectRefused("POST", "/api/v1/migrations/m1/interlay/spare", R"({"endpoint":"pg new\u0000"})", "endpoint");
  ExpectRefused("POST", "/api/v1/migrations/m1/api/s", R"({"tables":["a\nb"]})", "tables[0]");
  ExpectRefused("POST", "/api/v1/migrations/m1/api/s", R"({"keys":["k\u0007*"]})", "keys[0]");
  EXPECT_EQ(Handle("POST", "/api/v1/migrations/m1/interlay/spare", R"({"endpoint":"pg-new"})").status, 200);
}

TEST_F(AdminNamesTest, ABodyThatNamesAKeyTwiceIsA400NamingIt) {
  // boost::json::parse would keep the last value: refused instead, nothing changed.
  ExpectRefused("PATCH", "/api/v1/migrations/m1", R"({"description":"a","description":"b"})", "description");
  ExpectRefused("PATCH", "/api/v1/migrations/m1", R"({"strategy":{"type":"big_bang","type":"canary"}})",
                "strategy.type");
  ExpectRefused("POST", "/api/v1/migrations", R"({"id":"m2","id":"m3","strategy":{"type":"big_bang"}})", "id");
  ExpectRefused("POST", "/api/v1/migrations/m1/api/s", R"({"tables":["t"],"tables":["u"]})", "tables");
  EXPECT_EQ(Handle("GET", "/api/v1/migrations/m2").status, 404);
  EXPECT_EQ(Handle("GET", "/api/v1/migrations/m3").status, 404);
  EXPECT_EQ(Handle("PATCH", "/api/v1/migrations/m1", R"({"description":"b"})").status, 200);
}

TEST_F(AdminNamesTest, AuditHistoryStaysBoundedWhateverIsPatched) {
  // Issue 14: five PATCHes of a 900 kB description grew the file to 11.9 MB.
  for (int i = 0; i < 5; ++i) {
    const std::string description(900 * 1024, static_cast<char>('a' + i));
    ASSERT_EQ(Handle("PATCH", "/api/v1/migrations/m1", json::serialize(json::object{{"description", description}})).status,
              200);
  }
  // The current description is kept whole; the history adds little to it.
  EXPECT_LT(std::filesystem::file_size(harness_->state_path()), 900u * 1024 + 256 * 1024);
  control::HttpRequest get = Request("GET", "/api/v1/migrations/m1");
  get.headers["x-verbose"] = "true";
  auto r = harness_->Handle(get);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  const json::value m = json::parse(r.body).at("data");
  EXPECT_EQ(m.at("description").as_string().size(), 900u * 1024);
  const auto& history = m.at("history").as_array();
  ASSERT_EQ(history.size(), 6u);  // create and five patches
  const auto& last = history.back().as_object();
  EXPECT_LE(json::serialize(last.at("after")).size(), control::kMaxAuditBodyBytes);
  const auto& summary = last.at("after").at("description").as_object();
  EXPECT_EQ(summary.at("truncated"), true);
  EXPECT_EQ(summary.at("bytes").to_number<std::uint64_t>(), 900u * 1024 + 2);  // as JSON, with its quotes
  EXPECT_EQ(summary.at("sha256").as_string().size(), 64u);
  EXPECT_EQ(last.at("after").at("state"), m.at("state"));  // the small fields stay readable

  // And in count: the newest kMaxAuditEntries are kept, the rest counted.
  for (int i = 0; i < 120; ++i)
    ASSERT_EQ(Handle("PATCH", "/api/v1/migrations/m1", R"({"description":"d)" + std::to_string(i) + R"("})").status,
              200);
  r = harness_->Handle(get);
  const json::value after = json::parse(r.body).at("data");
  EXPECT_EQ(after.at("history").as_array().size(), control::kMaxAuditEntries);
  EXPECT_EQ(after.at("history_dropped").to_number<std::uint64_t>(), 126u - control::kMaxAuditEntries);
  EXPECT_EQ(after.at("history").as_array().back().at("after").at("description"), "d119");
  EXPECT_LT(std::filesystem::file_size(harness_->state_path()), 256u * 1024);
  // The bounded record reads back as it is.
  auto reopened = control::FileStateStore::Open(harness_->state_path());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto loaded = (*reopened)->Load("m1");
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ((*loaded)->history.size(), control::kMaxAuditEntries);
  EXPECT_EQ((*loaded)->history_dropped, 126u - control::kMaxAuditEntries);
}

TEST(FileStoreRoundTrip, RefusesToWriteWhatItCouldNotReadBack) {
  const std::string dir = HarnessFolder("turnout-store-roundtrip");
  const std::string path = dir + "/state.json";
  std::filesystem::remove(path);
  auto store = control::FileStateStore::Open(path);
  ASSERT_TRUE(store.ok());
  control::Migration m;
  m.id = "good";
  m.revision = 1;
  // Boost 1.81 reads this double back one ulp off: not a reason to refuse.
  m.data = json::object{{"rate", 21024.228416727026}};
  ASSERT_TRUE((*store)->Put(m, 0).ok());
  const std::string before = ReadFile(path);

  // Invalid UTF-8 reaches the store only past every check; it must stop here.
  control::Migration bad = m;
  bad.revision = 2;
  bad.description = "\x8e\x84";
  auto st = (*store)->Put(bad, 1);
  EXPECT_EQ(st.code(), absl::StatusCode::kInternal) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("would not read back"));
  control::Migration bad_name;
  bad_name.id = "x\xc3";
  bad_name.revision = 1;
  EXPECT_FALSE((*store)->Put(bad_name, 0).ok());

  EXPECT_EQ(ReadFile(path), before);  // untouched
  auto in_memory = (*store)->Load("good");
  ASSERT_TRUE(in_memory.ok() && in_memory->has_value());
  EXPECT_EQ((*in_memory)->revision, 1u);  // the refused change is not kept either
  auto reopened = control::FileStateStore::Open(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->LoadAll()->size(), 1u);
  std::filesystem::remove_all(dir);
}

// A minimal HTTP/1.1 client on its own connection.
struct Reply {
  int status = 0;
  std::string body;
  std::string retry_after;
};
Reply Call(int port, const std::string& method, const std::string& target, const std::string& token = "") {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return {static_cast<int>(res.result_int()), res.body(), std::string(res[http::field::retry_after])};
}

double InFlight(int port) {
  const std::string body = Call(port, "GET", "/metrics").body;
  const std::string series = "turnout_admin_long_requests_in_flight ";
  const auto at = body.find("\n" + series);
  return at == std::string::npos ? -1 : std::stod(body.substr(at + 1 + series.size()));
}

// verify blocks until the test releases it: a repair on a large table,
// without the table.
class LongRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = HarnessFolder("turnout-admin-long");
    std::filesystem::remove(dir_ + "/state.json");
    control::AdminApiDeps deps;
    deps.max_long_requests = 1;
    deps.verify = [this](const control::Migration& m) -> absl::StatusOr<json::value> {
      ++verify_started_;
      release_.wait();
      return json::value(json::object{{"verified", m.id}});
    };
    deps.readiness = [] { return absl::OkStatus(); };
    harness_ = std::make_unique<AdminHarness>(dir_ + "/state.json", std::move(deps));
    ASSERT_EQ(harness_->Handle(Request("POST", "/api/v1/migrations", R"({"id":"m1"})")).status, 201);
    routing::AdminListener settings;
    settings.listen = {"127.0.0.1", 0};
    server_ = std::make_unique<control::AdminServer>(settings, harness_->handler());
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }
  void TearDown() override {
    release_promise_.set_value();  // idempotence is the test's job: set once
    server_->Stop();
  }

  std::string dir_;
  std::unique_ptr<AdminHarness> harness_;
  std::unique_ptr<control::AdminServer> server_;
  int port_ = 0;
  std::atomic<int> verify_started_{0};
  std::promise<void> release_promise_;
  std::shared_future<void> release_ = release_promise_.get_future().share();
};

TEST_F(LongRequestTest, ProbesAndMetricsAnswerWhileAVerifyRuns) {
  std::atomic<bool> verify_done{false};
  Reply verify;
  std::thread client([&] {
    verify = Call(port_, "POST", "/api/v1/migrations/m1/verify", kHarnessAdminToken);
    verify_done = true;
  });
  // /metrics answers while the verify is in flight: it reports it. The
  // gauge counts a request from its admission; the worker starts it after.
  while (InFlight(port_) != 1 || verify_started_ != 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(Call(port_, "GET", "/healthz").status, 200);
  EXPECT_EQ(Call(port_, "GET", "/readyz").status, 200);
  EXPECT_EQ(Call(port_, "GET", "/api/v1/migrations", kHarnessReadToken).status, 200);
  EXPECT_FALSE(verify_done);  // every probe above completed while it was blocked
  release_promise_.set_value();
  client.join();
  EXPECT_EQ(verify.status, 200) << verify.body;
  EXPECT_THAT(verify.body, HasSubstr(R"("verified":"m1")"));
  EXPECT_EQ(InFlight(port_), 0);
  release_promise_ = std::promise<void>();  // TearDown sets it again
}

TEST_F(LongRequestTest, BeyondTheLimitIsA429WithRetryAfter) {
  std::thread client([&] { (void)Call(port_, "POST", "/api/v1/migrations/m1/verify", kHarnessAdminToken); });
  while (InFlight(port_) != 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto busy = Call(port_, "POST", "/api/v1/migrations/m1/verify", kHarnessAdminToken);
  EXPECT_EQ(busy.status, 429) << busy.body;
  EXPECT_EQ(busy.retry_after, "1");
  EXPECT_THAT(busy.body, HasSubstr("long admin requests"));
  EXPECT_THAT(Call(port_, "GET", "/metrics").body, HasSubstr("turnout_admin_long_requests_refused_total 1"));
  release_promise_.set_value();
  client.join();
  release_promise_ = std::promise<void>();
  // The slot is free again (verify no longer blocks: the future is ready).
  EXPECT_EQ(Call(port_, "POST", "/api/v1/migrations/m1/verify", kHarnessAdminToken).status, 200);
}

TEST(AdminRequestReading, MalformedRequestsGetAStatusAndSplitsDoNotMatter) {
  // Content-Length: 1e20 used to close the connection without a status.
  auto bad = control::ReadHttpRequests("POST / HTTP/1.1\r\nContent-Length: 1e20\r\n\r\n", 0, 4096);
  ASSERT_EQ(bad.size(), 1u);
  ASSERT_TRUE(bad[0].error_reply.has_value());
  EXPECT_EQ(bad[0].error_reply->status, 400);
  auto big = control::ReadHttpRequests("POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 0, 4096);
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(big[0].error_reply->status, 413);

  const std::string two =
      "POST /api/v1/migrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 9\r\n\r\n{\"id\":1}\n"
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::size_t chunk = 0; chunk <= two.size(); ++chunk) {
    auto got = control::ReadHttpRequests(two, chunk, 4096);
    ASSERT_EQ(got.size(), 2u) << "chunk " << chunk;
    ASSERT_TRUE(got[0].request && got[1].request) << "chunk " << chunk;
    EXPECT_EQ(got[0].request->body, "{\"id\":1}\n");
    EXPECT_EQ(got[0].request->Header("authorization"), "Bearer t");
    EXPECT_EQ(got[1].request->target, "/healthz");
  }
}

TEST(JournalWhenFull, RecordsTargetsInsteadOfDroppingAndSurvivesARestart) {
  const std::string dir = HarnessFolder("turnout-journal-full");
  const std::string path = dir + "/journal";
  std::filesystem::remove(path);
  auto entry = [](std::vector<std::string> targets, std::string route = "cache") {
    routing::JournalEntry e;
    e.migration_id = "m1";
    e.route = std::move(route);
    e.backend = "redis-new";
    e.statement = "SET ...";
    e.targets = std::move(targets);
    return e;
  };
  {
    auto j = proxy::OpenJournalFile(path, {.max_entries = 2});
    ASSERT_TRUE(j.ok());
    EXPECT_NE((*j)->Append(entry({"a"})), 0u);
    EXPECT_NE((*j)->Append(entry({"b"})), 0u);
    EXPECT_TRUE((*j)->full());
    // Full: 1,000 more failed writes over 3 keys and 1 other route, none refused.
    for (int i = 0; i < 1000; ++i) {
      const auto seq = (*j)->Append(entry({"k" + std::to_string(i % 3)}, i % 100 == 0 ? "pg" : "cache"));
      ASSERT_NE(seq, 0u);
    }
    EXPECT_EQ((*j)->dropped_when_full(), 0u);
    EXPECT_EQ((*j)->coalesced_when_full(), 1000u);
    ASSERT_TRUE((*j)->Flush().ok());
    const auto pending = (*j)->Pending("m1");
    ASSERT_EQ(pending.size(), 4u);  // a, b, and one overflow entry per route
    EXPECT_EQ(pending[2].statement, routing::Journal::kOverflowStatement);
    EXPECT_THAT(pending[2].targets, ::testing::UnorderedElementsAre("k0", "k1", "k2"));
    EXPECT_EQ(pending[2].route, "pg");  // the first write while full was i = 0
    EXPECT_THAT(pending[3].targets, ::testing::UnorderedElementsAre("k0", "k1", "k2"));
  }
  {
    // After a restart the overflow entries still name every key.
    auto j = proxy::OpenJournalFile(path, {.max_entries = 2});
    ASSERT_TRUE(j.ok());
    auto pending = (*j)->Pending("m1");
    ASSERT_EQ(pending.size(), 4u);
    EXPECT_THAT(pending[2].targets, ::testing::UnorderedElementsAre("k0", "k1", "k2"));
    // Repaired, the journal takes whole entries again.
    std::vector<std::uint64_t> seqs;
    for (const auto& e : pending) seqs.push_back(e.seq);
    (*j)->MarkRepaired(seqs);
    EXPECT_FALSE((*j)->full());
    (*j)->Append(entry({"z"}));
    EXPECT_EQ((*j)->Pending("m1").back().statement, "SET ...");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace turnout::testing
