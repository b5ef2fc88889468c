// libFuzzer target for the admin API: the server's request reading (Beast's
// parser with the server's limits, fed in chunks) and the handler behind it,
// in-process with the real auth layer (static tokens, HS256 JWTs) and a
// FileStateStore in a private folder. The first byte picks the read size; the
// rest is one or more pipelined HTTP requests. After every input the state
// file must load again and agree with the service (issue 14: one request once
// made a sidecar unable to start).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "control/admin_server.h"
#include "control/file_store.h"
#include "tests/control/admin_harness.h"

namespace {

using namespace turnout;

// Allocations stay bounded: the server's own limits, a small body limit.
constexpr std::size_t kBodyLimit = 64 * 1024;
constexpr std::size_t kMaxRequests = 32;

control::AdminApiDeps FakeBackends() {
  // The long handlers answer at once: the fuzzer drives the request path and
  // the deferred reply, not the backends.
  control::AdminApiDeps deps;
  auto report = [](const control::Migration& m) -> absl::StatusOr<boost::json::value> {
    return boost::json::value(boost::json::object{{"migration", m.id}, {"routes", m.interlays.size()}});
  };
  deps.dry_run = report;
  deps.verify = report;
  deps.repair = [report](const control::Migration& m, const control::RepairProgressFn&) { return report(m); };
  deps.journal = report;
  deps.shadow = report;
  deps.readiness = [] { return absl::OkStatus(); };
  return deps;
}

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "admin_request_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const std::string dir = testing::HarnessFolder("turnout-admin-fuzz");
  const std::string path = dir + "/state.json";
  std::error_code ec;
  std::filesystem::remove(path, ec);
  const std::size_t chunk = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::map<std::string, std::uint64_t> revisions;
  {
    testing::AdminHarness harness(path, FakeBackends());
    std::size_t handled = 0;
    for (auto& outcome : control::ReadHttpRequests(bytes, chunk, kBodyLimit)) {
      if (outcome.error_reply && (outcome.error_reply->status < 400 || outcome.error_reply->status > 499))
        Fail("a read error that is not a 4xx", outcome.error_reply->body);
      if (!outcome.request || ++handled > kMaxRequests) continue;
      const control::HttpReply reply = harness.Handle(*outcome.request);
      if (reply.status < 200 || reply.status > 599) Fail("status out of range", reply.body);
      if (reply.status >= 500 && reply.status != 501 && reply.status != 503) Fail("server error", reply.body);
    }
    for (const auto& m : harness.service().List()) revisions[m.id] = m.revision;
  }
  // The file loads, and holds exactly what the service acknowledged.
  auto reopened = control::FileStateStore::Open(path);
  if (!reopened.ok()) Fail("the state file no longer loads", reopened.status().ToString());
  auto all = (*reopened)->LoadAll();
  if (!all.ok() || all->size() != revisions.size()) Fail("the state file lost or gained migrations", path);
  for (const auto& m : *all) {
    auto it = revisions.find(m.id);
    if (it == revisions.end() || it->second != m.revision) Fail("the state file disagrees with the service", m.id);
  }
  return 0;
}
