// The per-message work of the PostgreSQL session outside the kernel: the
// RequestTracker's inspection of each frame (classification, the verdict a
// request is routed on, request accounting) for pgbench's select-only transaction in -M simple
// and -M prepared, in transactions/s. End-to-end figures: bench/pg_e2e.sh.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "proxy/pg/request_tracker.h"

namespace {

namespace ppg = turnout::protocol::pg;
using turnout::proxy::pg::RequestTracker;

class Hooks : public RequestTracker::Hooks {
 public:
  void Answered(const RequestTracker::Record&, std::chrono::microseconds) override {}
  void InFlight(bool) override {}
};

std::vector<ppg::Frame> Frames(const std::string& bytes, ppg::Direction dir) {
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
}

void Run(benchmark::State& state, const std::string& client, const std::string& backend,
         const std::string& warmup_client = "", const std::string& warmup_backend = "") {
  Hooks hooks;
  RequestTracker tracker(&hooks, false);
  // As the session: a frame that asks for routing is answered (never refused here).
  auto client_frame = [&tracker](const ppg::Frame& f) {
    auto v = tracker.OnClientFrame(f);
    if (v == RequestTracker::Verdict::kRoute) {
      benchmark::DoNotOptimize(tracker.request().tables.data());
      v = tracker.Routed(false);
    }
    return v;
  };
  for (const auto& f : Frames(warmup_client, ppg::Direction::kFrontend)) client_frame(f);
  for (const auto& f : Frames(warmup_backend, ppg::Direction::kBackend)) tracker.OnBackendFrame(f);
  const auto c = Frames(client, ppg::Direction::kFrontend);
  const auto b = Frames(backend, ppg::Direction::kBackend);
  for (auto _ : state) {
    for (const auto& f : c) benchmark::DoNotOptimize(client_frame(f));
    for (const auto& f : b) benchmark::DoNotOptimize(tracker.OnBackendFrame(f));
  }
  state.SetItemsProcessed(state.iterations());  // transactions
  state.counters["messages/s"] = benchmark::Counter(static_cast<double>(state.iterations() * (c.size() + b.size())),
                                                    benchmark::Counter::kIsRate);
}

std::string Replies(bool with_bind) {
  std::string s;
  if (with_bind) ppg::AppendBindComplete(&s);
  const std::string_view cols[] = {"abalance"};
  ppg::AppendRowDescription(&s, cols);
  const std::string_view row[] = {"0"};
  ppg::AppendDataRow(&s, row);
  ppg::AppendCommandComplete(&s, "SELECT 1");
  ppg::AppendReadyForQuery(&s, ppg::TransactionStatus::kIdle);
  return s;
}

void BM_SelectOnlySimple(benchmark::State& state) {
  std::string q;
  ppg::AppendQuery(&q, "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
  Run(state, q, Replies(false));
}
BENCHMARK(BM_SelectOnlySimple);

void BM_SelectOnlyPrepared(benchmark::State& state) {
  std::string parse, exec;
  ppg::AppendParse(&parse, "P0_1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
  ppg::AppendSync(&parse);
  const ppg::Value params[] = {std::string_view("48213")};
  ppg::AppendBind(&exec, "", "P0_1", {}, params, {});
  ppg::AppendExecute(&exec, "");
  ppg::AppendSync(&exec);
  std::string parse_reply;
  ppg::AppendParseComplete(&parse_reply);
  ppg::AppendReadyForQuery(&parse_reply, ppg::TransactionStatus::kIdle);
  Run(state, exec, Replies(true), parse, parse_reply);
}
BENCHMARK(BM_SelectOnlyPrepared);

}  // namespace

BENCHMARK_MAIN();
