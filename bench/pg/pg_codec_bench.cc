// Throughput of PostgreSQL framing, typed decoding and SQL classification.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "protocol/pg/frame_decoder.h"
#include "protocol/pg/message_writer.h"
#include "protocol/pg/messages.h"
#include "protocol/pg/sql_classifier.h"

namespace turnout::protocol::pg {
namespace {

// A client stream: simple queries and extended-protocol batches.
std::string FrontendStream(std::size_t* messages) {
  std::string s;
  *messages = 0;
  for (int i = 0; i < 200; ++i) {
    AppendQuery(&s, "SELECT id, name, total FROM orders WHERE customer_id = 42 ORDER BY id LIMIT 50");
    const std::uint32_t types[] = {23};
    AppendParse(&s, "", "UPDATE orders SET status = $1 WHERE id = $2", types);
    const Value params[] = {std::string_view("shipped"), std::string_view("12345")};
    AppendBind(&s, "", "", {}, params, {});
    AppendDescribe(&s, Target::kPortal, "");
    AppendExecute(&s, "", 0);
    AppendSync(&s);
    *messages += 6;
  }
  return s;
}

// A server stream: row descriptions, many DataRows, completion.
std::string BackendStream(std::size_t* messages) {
  std::string s;
  *messages = 0;
  const std::string_view cols[] = {"id", "name", "email", "total", "created_at"};
  for (int q = 0; q < 20; ++q) {
    AppendRowDescription(&s, cols);
    ++*messages;
    for (int r = 0; r < 100; ++r) {
      const Value row[] = {std::string_view("123456"), std::string_view("Alice Example"),
                           std::string_view("alice@example.com"), std::string_view("1234.50"),
                           std::string_view("2024-01-02 03:04:05+00")};
      AppendDataRow(&s, row);
      ++*messages;
    }
    AppendCommandComplete(&s, "SELECT 100");
    AppendReadyForQuery(&s, TransactionStatus::kIdle);
    *messages += 2;
  }
  return s;
}

void Frame(benchmark::State& state, Direction dir, const std::string& stream, std::size_t messages) {
  for (auto _ : state) {
    FrameDecoder decoder(dir);
    decoder.set_phase(FrameDecoder::Phase::kRegular);
    Bytes in(reinterpret_cast<const std::uint8_t*>(stream.data()), stream.size());
    std::size_t n = 0;
    while (!in.empty()) {
      const FrameResult r = decoder.Decode(in);
      if (!r.ok()) break;
      in = in.subspan(r.value.total_size);
      ++n;
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * messages));
}

void BM_FrameFrontend(benchmark::State& state) {
  std::size_t messages = 0;
  const std::string stream = FrontendStream(&messages);
  Frame(state, Direction::kFrontend, stream, messages);
}
BENCHMARK(BM_FrameFrontend);

void BM_FrameBackend(benchmark::State& state) {
  std::size_t messages = 0;
  const std::string stream = BackendStream(&messages);
  Frame(state, Direction::kBackend, stream, messages);
}
BENCHMARK(BM_FrameBackend);

// Framing plus DataRow decoding (what shadow comparison pays).
void BM_FrameAndDecodeDataRows(benchmark::State& state) {
  std::size_t messages = 0;
  const std::string stream = BackendStream(&messages);
  DataRow row;
  for (auto _ : state) {
    FrameDecoder decoder(Direction::kBackend);
    Bytes in(reinterpret_cast<const std::uint8_t*>(stream.data()), stream.size());
    std::size_t cells = 0;
    while (!in.empty()) {
      const FrameResult r = decoder.Decode(in);
      if (!r.ok()) break;
      if (r.value.type == 'D' && !Decode(r.value.payload, &row)) cells += row.columns.size();
      in = in.subspan(r.value.total_size);
    }
    benchmark::DoNotOptimize(cells);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * messages));
}
BENCHMARK(BM_FrameAndDecodeDataRows);

void BM_EncodeQueryBatch(benchmark::State& state) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    AppendParse(&out, "", "UPDATE orders SET status = $1 WHERE id = $2");
    const Value params[] = {std::string_view("shipped"), std::string_view("12345")};
    AppendBind(&out, "", "", {}, params, {});
    AppendExecute(&out, "", 0);
    AppendSync(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 4));
}
BENCHMARK(BM_EncodeQueryBatch);

const std::vector<std::string_view>& StatementMix() {
  static const std::vector<std::string_view> kMix = {
      "SELECT id, name, total FROM orders WHERE customer_id = $1 ORDER BY id LIMIT 50",
      "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = $1",
      "UPDATE orders SET status = $1, updated_at = now() WHERE id = $2",
      "INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, $3) RETURNING id",
      "DELETE FROM sessions WHERE expires_at < now()",
      "BEGIN",
      "COMMIT",
      "SET application_name = 'web'",
      "SELECT nextval('orders_id_seq')",
      "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') "
      "SELECT count(*) FROM recent",
      "SELECT * FROM inventory WHERE sku = $1 FOR UPDATE",
      "ALTER TABLE orders ADD COLUMN note text",
      "/* app:checkout */ SELECT 1",
  };
  return kMix;
}

void BM_Classify(benchmark::State& state) {
  const auto& mix = StatementMix();
  SqlClassifier classifier;
  Classification c;
  std::size_t bytes = 0;
  for (std::string_view s : mix) bytes += s.size();
  for (auto _ : state) {
    for (std::string_view s : mix) {
      classifier.Classify(s, &c);
      benchmark::DoNotOptimize(c.statement_class);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * mix.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_Classify);

void BM_ClassifyMultiStatement(benchmark::State& state) {
  std::string sql;
  for (std::string_view s : StatementMix()) {
    sql.append(s);
    sql.append(";\n");
  }
  SqlClassifier classifier;
  Classification c;
  for (auto _ : state) {
    classifier.Classify(sql, &c);
    benchmark::DoNotOptimize(c.statement_class);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * StatementMix().size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * sql.size()));
}
BENCHMARK(BM_ClassifyMultiStatement);

}  // namespace
}  // namespace turnout::protocol::pg

BENCHMARK_MAIN();
