// ns per Policy::Decide for the strategies with per-request work, and the
// cost of reaching the current policy: RouteTablePublisher::Load() versus a
// session's RouteTableReader::Refresh() (the intended hot path).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "routing/policy.h"
#include "routing/policy_table.h"
#include "routing/stable_hash.h"

namespace turnout::routing {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1705284000);

std::shared_ptr<const Policy> MustCompile(const PolicyInputs& in) {
  auto p = Policy::Compile(in);
  if (!p.ok()) std::abort();
  return *p;
}

std::shared_ptr<const Policy> Canary(Stickiness s, Protocol protocol) {
  PolicyInputs in;
  in.route = "r";
  in.protocol = protocol;
  CanarySpec c{0.25};
  c.stickiness = s;
  c.write_mode.apply = DualWriteApply::kAsync;
  in.strategy = c;
  in.phase = MigrationPhase::kExecuting;
  return MustCompile(in);
}

// arg 0: connection, 1: client (hashed per request), 2: client (cached
// hash), 3: key.
void BM_DecideCanaryRead(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const Stickiness s = mode == 0   ? Stickiness::kConnection
                       : mode == 3 ? Stickiness::kKey
                                   : Stickiness::kClient;
  auto p = Canary(s, mode == 3 ? Protocol::kRedis : Protocol::kPostgres);
  const std::string_view keys[] = {"user:1234567:profile"};
  Request r;
  r.request_class = RequestClass::kRead;
  r.targets = keys;
  r.client = {"app", "billing-worker-17", "127.0.0.1"};
  if (mode == 2) r.client_hash = ClientHash(r.client);
  std::uint64_t conn = 0;
  for (auto _ : state) {
    r.connection_id = ++conn;
    Plan plan = ApplyReadYourWritesFence(p->Decide(r, kNow), false);
    benchmark::DoNotOptimize(plan);
  }
  state.SetLabel(mode == 0 ? "connection" : mode == 1 ? "client" : mode == 2 ? "client_cached" : "key");
}
BENCHMARK(BM_DecideCanaryRead)->DenseRange(0, 3);

void BM_DecideCanaryWrite(benchmark::State& state) {
  auto p = Canary(Stickiness::kConnection, Protocol::kPostgres);
  Request r;
  r.request_class = RequestClass::kWrite;
  for (auto _ : state) {
    Plan plan = p->Decide(r, kNow);
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_DecideCanaryWrite);

// strangler_fig with four scopes (exact tables, qualified tables, globs);
// arg: number of tables the statement touches.
void BM_DecideStranglerFig(benchmark::State& state) {
  PolicyInputs in;
  in.route = "r";
  in.strategy = StranglerFigSpec{{{"auth", true}, {"billing", true}, {"reports", true},
                                  {"catalog", false}}};
  in.scopes = {{"auth", {"users", "sessions", "roles", "grants"}, {}},
               {"billing", {"invoices", "payments", "billing.ledger"}, {}},
               {"reports", {"report_*", "analytics.*"}, {}},
               {"catalog", {"products", "prices"}, {}}};
  in.phase = MigrationPhase::kExecuting;
  auto p = MustCompile(in);
  const std::string_view tables[] = {"users", "public.sessions", "report_daily", "invoices"};
  Request r;
  r.request_class = RequestClass::kRead;
  r.targets = {tables, static_cast<std::size_t>(state.range(0))};
  for (auto _ : state) {
    Plan plan = p->Decide(r, kNow);
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_DecideStranglerFig)->Arg(1)->Arg(2)->Arg(4);

void BM_DecideStranglerFigRedis(benchmark::State& state) {
  PolicyInputs in;
  in.route = "r";
  in.protocol = Protocol::kRedis;
  in.strategy = StranglerFigSpec{{{"users", true}, {"carts", true}, {"misc", true}}};
  in.scopes = {{"users", {}, {"user:*", "profile:*"}},
               {"carts", {}, {"cart:*:items", "cart:[0-9]*"}},
               {"misc", {}, {"feature-flags", "config:?"}}};
  in.phase = MigrationPhase::kExecuting;
  auto p = MustCompile(in);
  const std::string_view keys[] = {"cart:1234:items"};
  Request r;
  r.request_class = RequestClass::kRead;
  r.targets = keys;
  for (auto _ : state) {
    Plan plan = p->Decide(r, kNow);
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_DecideStranglerFigRedis);

void BM_DecideFixed(benchmark::State& state) {
  auto p = Policy::Passthrough("r", Protocol::kPostgres);
  Request r;
  r.request_class = RequestClass::kRead;
  for (auto _ : state) {
    Plan plan = p->Decide(r, kNow);
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_DecideFixed);

RouteTablePublisher& Publisher() {
  static RouteTablePublisher* pub = [] {
    auto* p = new RouteTablePublisher;
    p->Update("db", Canary(Stickiness::kConnection, Protocol::kPostgres));
    p->Update("cache", Canary(Stickiness::kKey, Protocol::kRedis));
    return p;
  }();
  return *pub;
}

// Threads contend on the shared control block, as sessions on all workers
// would if each request called Load().
void BM_RouteTableLoad(benchmark::State& state) {
  RouteTablePublisher& pub = Publisher();
  for (auto _ : state) {
    auto table = pub.Load();
    benchmark::DoNotOptimize(table->Find("db"));
  }
}
BENCHMARK(BM_RouteTableLoad)->Threads(1)->Threads(2)->Threads(4);

void BM_RouteTableReaderRefresh(benchmark::State& state) {
  RouteTableReader reader(Publisher(), "db");
  for (auto _ : state) {
    reader.Refresh();
    benchmark::DoNotOptimize(&reader.policy());
  }
}
BENCHMARK(BM_RouteTableReaderRefresh)->Threads(1)->Threads(2)->Threads(4);

}  // namespace
}  // namespace turnout::routing

BENCHMARK_MAIN();
