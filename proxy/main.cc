// turnout: the process. Parses flags, loads and validates the configuration,
// starts the data plane, and turns signals into lifecycle steps:
//   SIGTERM / SIGINT  stop accepting, drain sessions up to limits.drain_timeout, exit 0
//   SIGHUP            reload the configuration where that is safe

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "control/config_loader.h"
#include "control/control_plane.h"
#include "control/ctl.h"
#include "proxy/intent_ring.h"
#include "proxy/journal_file.h"
#include "proxy/metrics_collector.h"
#include "proxy/journal_flusher.h"
#include "proxy/logging.h"
#include "proxy/server.h"

ABSL_FLAG(std::string, config, "turnout.yaml", "path of the configuration file");
ABSL_FLAG(std::string, check_config, "", "validate this configuration file and exit");

namespace {

using turnout::proxy::LogError;
using turnout::proxy::LogInfo;
using turnout::proxy::LogWarn;

int CheckConfig(const std::string& path) {
  auto cfg = turnout::control::LoadConfigFile(path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "turnout: invalid configuration: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  std::printf("%s: ok (%zu backends, %zu routes)\n", path.c_str(), cfg->backends.size(), cfg->routes.size());
  return 0;
}

int Run(const std::string& path) {
  auto loaded = turnout::control::LoadConfigFile(path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "turnout: invalid configuration: %s\n", std::string(loaded.status().message()).c_str());
    return 2;
  }
  auto config = std::make_shared<const turnout::routing::Config>(*std::move(loaded));
  turnout::proxy::InitLogging(config->log_level, config->log_format);

  // Signals are handled on the main thread, away from the workers. The sets
  // exist before any listener opens, so a signal that arrives as soon as a
  // port accepts is queued for the waits below rather than lost.
  boost::asio::io_context main_context;
  boost::asio::signal_set stop_signals(main_context, SIGTERM, SIGINT);
  boost::asio::signal_set reload_signal(main_context, SIGHUP);

  turnout::routing::RouteTablePublisher route_table;
  auto journal = turnout::proxy::OpenJournalFile(config->journal.path, {.max_entries = config->journal.max_entries});
  if (!journal.ok()) {
    LogError("startup failed", {{"error", std::string(journal.status().message())}});
    return 1;
  }
  // The intent record (proxy/intent_ring.h): dual-writes a previous process
  // had in flight when it died become journal entries now, before any
  // listener accepts, so `repair` makes both sides equal again.
  auto intents = turnout::proxy::IntentRing::Open(config->journal.path + ".intents");
  if (!intents.ok()) {
    LogError("startup failed", {{"error", std::string(intents.status().message())}});
    return 1;
  }
  if (auto recovered = turnout::proxy::ReconcileIntents(**intents, **journal); !recovered.ok()) {
    LogError("startup failed", {{"error", std::string(recovered.status().message())}});
    return 1;
  } else if (*recovered > 0) {
    LogWarn("intent record: dual-writes in flight when turnout last stopped journaled for repair",
            {{"recovered", static_cast<std::int64_t>(*recovered)}, {"path", (*intents)->path()}});
  } else {
    LogInfo("intent record: nothing was in flight at the last stop", {{"path", (*intents)->path()}});
  }
  turnout::proxy::JournalFlusher journal_flusher(journal->get(), std::chrono::milliseconds(20), intents->get());
  turnout::routing::ShadowSamples shadow_samples;
  turnout::routing::StreamPositions stream_positions;
  // The control plane first: a corrupt state file must stop startup before
  // any listener accepts traffic under a wrong policy.
  auto control = turnout::control::ControlPlane::Start(config, &route_table, journal->get(), &shadow_samples,
                                                       &stream_positions);
  if (!control.ok()) {
    LogError("startup failed", {{"error", std::string(control.status().message())}});
    return 1;
  }
  turnout::proxy::Server server(config, &route_table, journal->get(), &shadow_samples, &stream_positions,
                                intents->get());
  if (auto st = server.Start(); !st.ok()) {
    LogError("startup failed", {{"error", std::string(st.message())}});
    server.Drain(absl::ZeroDuration());
    return 1;
  }
  turnout::proxy::ProxyMetricsCollector proxy_metrics([&server] { return server.Routes(); }, intents->get(),
                                                      server.PgParked());
  if (auto st = (*control)->StartAdmin(&proxy_metrics, [&server] { return server.Listening(); }); !st.ok()) {
    LogError("startup failed", {{"error", std::string(st.message())}});
    server.Drain(absl::ZeroDuration());
    return 1;
  }

  std::function<void()> wait_reload = [&] {
    reload_signal.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      auto next = turnout::control::LoadConfigFile(path);
      if (!next.ok()) {
        LogError("reload refused: invalid configuration; keeping the running one",
                 {{"error", std::string(next.status().message())}});
      } else {
        server.Reload(std::make_shared<const turnout::routing::Config>(*std::move(next)));
      }
      wait_reload();
    });
  };
  wait_reload();
  stop_signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    LogInfo("shutdown requested", {{"signal", signo}});
    server.Drain(server.config()->limits.drain_timeout);
    (*control)->Stop();
    reload_signal.cancel();
    main_context.stop();
  });
  main_context.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "ctl") return turnout::control::RunCtl(argc, argv);
  absl::SetProgramUsageMessage(
      "turnout: a database proxy that moves traffic from an old database to a new one.\n"
      "  turnout --config turnout.yaml      run\n"
      "  turnout --check-config FILE        validate a configuration and exit\n"
      "  turnout ctl --help                 drive the admin API");
  // Flags are spelled with dashes on the command line (--check-config);
  // Abseil's flag names use underscores.
  std::vector<std::string> spelled(argv, argv + argc);
  std::vector<char*> args;
  for (auto& a : spelled) {
    if (a.starts_with("--")) {
      const auto end = std::min(a.find('='), a.size());
      std::replace(a.begin() + 2, a.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
    }
    args.push_back(a.data());
  }
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  // Writes to a closed socket must return EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  if (const std::string check = absl::GetFlag(FLAGS_check_config); !check.empty())
    return CheckConfig(check);
  try {
    return Run(absl::GetFlag(FLAGS_config));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "turnout: fatal: %s\n", e.what());
    return 1;
  }
}
