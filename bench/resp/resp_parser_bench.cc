// RESP codec figures: request framing (GET/SET, pipelined batches), reply
// framing (bulk, arrays), and command lookup. Bytes/s come from
// SetBytesProcessed, commands/s from SetItemsProcessed.
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "protocol/resp/command_table.h"
#include "protocol/resp/reply_parser.h"
#include "protocol/resp/reply_writer.h"
#include "protocol/resp/request_parser.h"

namespace turnout::protocol::resp {
namespace {

std::string SetCommand(std::size_t value_size) {
  std::string out;
  std::string value(value_size, 'v');
  AppendCommand(out, {"SET", "user:1000:session", value});
  return out;
}

std::string GetCommand() {
  std::string out;
  AppendCommand(out, {"GET", "user:1000:session"});
  return out;
}

// Frames every command of `input` back to back, as a session does.
void FrameAll(benchmark::State& state, const std::string& input, std::size_t commands) {
  RequestParser parser;
  for (auto _ : state) {
    std::string_view rest = input;
    while (!rest.empty()) {
      if (parser.Parse(rest) != ParseStatus::kComplete) state.SkipWithError("parse failed");
      benchmark::DoNotOptimize(parser.command().args.data());
      rest.remove_prefix(parser.command().frame_length);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * commands));
}

void BM_RequestGet(benchmark::State& state) { FrameAll(state, GetCommand(), 1); }
BENCHMARK(BM_RequestGet);

void BM_RequestSet(benchmark::State& state) {
  FrameAll(state, SetCommand(static_cast<std::size_t>(state.range(0))), 1);
}
BENCHMARK(BM_RequestSet)->Arg(16)->Arg(1024)->Arg(64 * 1024);

void BM_RequestPipeline(benchmark::State& state) {
  std::string input;
  const auto n = static_cast<std::size_t>(state.range(0));
  for (std::size_t i = 0; i < n; ++i) input += (i % 2 == 0) ? GetCommand() : SetCommand(32);
  FrameAll(state, input, n);
}
BENCHMARK(BM_RequestPipeline)->Arg(16)->Arg(256);

void BM_RequestInline(benchmark::State& state) {
  FrameAll(state, "SET user:1000:session \"some value\"\r\n", 1);
}
BENCHMARK(BM_RequestInline);

void FrameReplies(benchmark::State& state, const std::string& input) {
  ReplyParser parser;
  for (auto _ : state) {
    if (parser.Parse(input) != ParseStatus::kComplete) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(parser.frame().length);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_ReplyBulk(benchmark::State& state) {
  std::string out;
  AppendBulkString(out, std::string(static_cast<std::size_t>(state.range(0)), 'x'));
  FrameReplies(state, out);
}
BENCHMARK(BM_ReplyBulk)->Arg(16)->Arg(4096);

void BM_ReplyArray(benchmark::State& state) {
  // LRANGE/MGET-like: an array of short bulk strings.
  std::string out;
  const auto n = static_cast<std::size_t>(state.range(0));
  AppendArrayHeader(out, n);
  for (std::size_t i = 0; i < n; ++i) AppendBulkString(out, "value-" + std::to_string(i));
  FrameReplies(state, out);
}
BENCHMARK(BM_ReplyArray)->Arg(10)->Arg(1000);

void BM_ReplyResp3Map(benchmark::State& state) {
  std::string out;
  AppendMapHeader(out, 100, true);
  for (int i = 0; i < 100; ++i) {
    AppendBulkString(out, "field-" + std::to_string(i));
    AppendDouble(out, i * 1.5, true);
  }
  FrameReplies(state, out);
}
BENCHMARK(BM_ReplyResp3Map);

void BM_CommandLookup(benchmark::State& state) {
  const std::vector<std::string_view> names = {"get", "SET", "hgetall", "ZADD", "xreadgroup",
                                               "Evalsha", "unknowncmd", "blpop"};
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(FindCommand(names[i++ & 7]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CommandLookup);

void BM_LookupAndExtractKeys(benchmark::State& state) {
  const std::vector<std::string_view> args = {"MSET", "a", "1", "b", "2", "c", "3"};
  KeyIndices keys;
  for (auto _ : state) {
    const CommandInfo* info = LookupCommand(args);
    ExtractKeys(*info, args, keys);
    benchmark::DoNotOptimize(keys.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupAndExtractKeys);

}  // namespace
}  // namespace turnout::protocol::resp

BENCHMARK_MAIN();
