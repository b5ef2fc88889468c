#include "control/ctl.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/config_loader.h"
#include "control/json_text.h"

namespace turnout::control {
namespace json = boost::json;
namespace http = boost::beast::http;
namespace {

constexpr char kUsage[] =
    "usage: turnout ctl [--server URL] [--token TOKEN] COMMAND [ARGS]\n"
    "  list                         migrations as a table\n"
    "  get ID                       one migration (verbose JSON)\n"
    "  status ID [--watch]          state, rollout and data movement; --watch refreshes every second\n"
    "  create -f FILE               create from a JSON or YAML file\n"
    "  patch ID -f FILE             change the strategy (or description, data, failure_handling)\n"
    "  test|sync|migrate|pause|resume|rollback|verify|repair ID\n"
    "  repair ID --no-wait          start the repair as a job and return; follow it with status ID --watch\n"
    "  journal ID                   failed or pending secondary writes\n"
    "  delete ID\n"
    "The server defaults to http://127.0.0.1:9090; the token to $TURNOUT_TOKEN.\n";

struct Target {
  std::string host = "127.0.0.1";
  std::string port = "9090";
};

bool ParseServer(const std::string& url, Target& t) {
  std::string rest = url;
  if (absl::StartsWith(rest, "http://")) rest = rest.substr(7);
  else if (absl::StartsWith(rest, "https://")) return false;  // the admin port speaks plain HTTP on loopback
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) {
    t.host = rest;
    return !rest.empty();
  }
  t.host = rest.substr(0, colon);
  t.port = rest.substr(colon + 1);
  return !t.host.empty() && !t.port.empty();
}

struct Response {
  int status = 0;
  json::value body;
  std::string raw;
};

absl::StatusOr<Response> Call(const Target& t, const std::string& token, http::verb verb, const std::string& path,
                              const std::string& body = "", bool verbose = false) {
  try {
    boost::asio::io_context ctx;
    boost::asio::ip::tcp::resolver resolver(ctx);
    boost::beast::tcp_stream stream(ctx);
    stream.expires_after(std::chrono::seconds(60));
    stream.connect(resolver.resolve(t.host, t.port));
    http::request<http::string_body> req{verb, path, 11};
    req.set(http::field::host, t.host);
    req.set(http::field::user_agent, "turnout-ctl");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (verbose) req.set("X-Verbose", "true");
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    Response out;
    out.status = static_cast<int>(res.result_int());
    out.raw = res.body();
    boost::system::error_code ec;
    out.body = json::parse(out.raw, ec);
    return out;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot reach ", t.host, ":", t.port, ": ", e.what()));
  }
}

// Prints an API error ("error: …" and its details) and returns 1.
int PrintError(const Response& r) {
  if (r.body.is_object() && r.body.as_object().contains("error")) {
    std::fprintf(stderr, "error (%d): %s\n", r.status, std::string(r.body.at("error").as_string()).c_str());
    if (auto* d = r.body.as_object().if_contains("details"); d && d->is_string() && !d->as_string().empty())
      std::fprintf(stderr, "  %s\n", std::string(d->as_string()).c_str());
  } else {
    std::fprintf(stderr, "error (%d): %s\n", r.status, r.raw.c_str());
  }
  return 1;
}

std::string Str(const json::value& v, const char* key) {
  if (!v.is_object()) return "";
  auto* f = v.as_object().if_contains(key);
  if (f == nullptr) return "";
  return f->is_string() ? std::string(f->as_string()) : ToJsonText(*f);
}

// The share of traffic the strategy sends to new, for the progress bar.
double RolloutShare(const json::value& strategy) {
  const std::string type = Str(strategy, "type");
  auto num = [&](const char* k) {
    auto* f = strategy.as_object().if_contains(k);
    return f && f->is_number() ? f->to_number<double>() : 0.0;
  };
  if (type == "canary") return num("read_percentage");
  if (type == "feature_flag") return num("rollout_percentage");
  if (type == "blue_green") return strategy.as_object().contains("active_is_new") && strategy.at("active_is_new").as_bool() ? 1 : 0;
  if (type == "rolling_update") {
    const double total = num("total_instances");
    auto* m = strategy.as_object().if_contains("migrated_instances");
    return total > 0 && m && m->is_array() ? static_cast<double>(m->as_array().size()) / total : 0;
  }
  return 0;
}

std::string Bar(double share) {
  const int width = 30, filled = static_cast<int>(share * width + 0.5);
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ",
                      absl::StrFormat("%5.1f%%", share * 100));
}

double Num(const json::value& v, const char* key) {
  if (!v.is_object()) return 0;
  auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<double>() : 0.0;
}

// Where a resumed copy continues, in words. The Postgres backfill's
// checkpoint lists every table ({pass, tables: [{table, done, last}]}), the
// Redis one is a SCAN position ({pass, glob, cursor}); anything else as JSON.
std::string CheckpointText(const json::value& cp) {
  if (!cp.is_object()) return ToJsonText(cp);
  const auto& o = cp.as_object();
  if (auto* tables = o.if_contains("tables"); tables && tables->is_array()) {
    std::size_t done = 0;
    const json::value* current = nullptr;
    for (const auto& t : tables->as_array()) {
      if (!t.is_object()) continue;
      auto* f = t.as_object().if_contains("done");
      if (f && f->is_bool() && f->as_bool()) ++done;
      else if (current == nullptr) current = &t;
    }
    std::string text =
        absl::StrCat("pass ", Str(cp, "pass"), ", ", done, "/", tables->as_array().size(), " tables done");
    if (current != nullptr) {
      auto* last = current->as_object().if_contains("last");
      const bool started = last && last->is_array() && !last->as_array().empty();
      absl::StrAppend(&text, ", ", Str(*current, "table"),
                      started ? " after key " + ToJsonText(*last) : " from the start");
    }
    return text;
  }
  if (o.contains("cursor"))
    return absl::StrCat("pass ", Str(cp, "pass"), ", key glob #", Str(cp, "glob"), ", SCAN cursor ", Str(cp, "cursor"));
  return ToJsonText(cp);
}

// The data-movement job (GET …/{id} with X-Verbose: `progress`): its status,
// and per route the phase, what was copied of the estimated total, the rate
// and the checkpoint a resumed copy starts from.
void PrintDataProgress(const json::value& p) {
  // No status: data "none", shown only for its continuous verification.
  if (!Str(p, "status").empty()) {
    std::printf("  data      %-9s %s  runner %s", Str(p, "status").c_str(), Bar(Num(p, "ratio")).c_str(),
                Str(p, "runner").c_str());
    if (const std::string started = Str(p, "started_at"); !started.empty()) std::printf(", started %s", started.c_str());
    if (const std::string finished = Str(p, "finished_at"); !finished.empty())
      std::printf(", finished %s", finished.c_str());
    std::printf("\n");
  }
  if (auto* routes = p.as_object().if_contains("routes"); routes && routes->is_array()) {
    for (const auto& r : routes->as_array()) {
      const json::value* cp = r.is_object() ? r.as_object().if_contains("checkpoint") : nullptr;
      // The checkpoint's shape tells what is counted.
      const char* unit = "";
      if (cp && cp->is_object() && cp->as_object().contains("tables")) unit = " rows";
      if (cp && cp->is_object() && cp->as_object().contains("cursor")) unit = " keys";
      const auto copied = static_cast<std::int64_t>(Num(r, "copied"));
      const auto total = static_cast<std::int64_t>(Num(r, "total"));
      std::string line = absl::StrFormat("    %-9s %-8s %d", Str(r, "route"), Str(r, "phase"), copied);
      if (total > 0) absl::StrAppend(&line, " of ~", total);
      absl::StrAppend(&line, unit, " copied (", static_cast<std::int64_t>(Num(r, "written")), " written)  ",
                      Bar(Num(r, "ratio")));
      if (const double rate = Num(r, "rate"); rate > 0) absl::StrAppend(&line, absl::StrFormat("  %.0f/s", rate));
      if (const int attempts = static_cast<int>(Num(r, "attempts")); attempts > 0)
        absl::StrAppend(&line, "  retries ", attempts);
      std::printf("%s\n", line.c_str());
      // A finished route's checkpoint is no longer a resume point.
      if (cp && !cp->is_null() && Str(r, "phase") != "done")
        std::printf("              checkpoint: %s\n", CheckpointText(*cp).c_str());
      // The change stream (control/pg_change_stream.h): where it is and how
      // far behind; the stream back from new to old (control/stream_back.h)
      // the same way, with its error while it retries.
      for (const char* key : {"stream", "stream_back"}) {
        const json::value* st = r.is_object() ? r.as_object().if_contains(key) : nullptr;
        if (st == nullptr || !st->is_object() || Str(*st, "slot").empty()) continue;
        std::printf("              %s %s  %s  applied %s  lag %.0f bytes %.1f s  %.0f transactions %.0f rows  "
                    "slot keeps %.0f bytes of WAL\n",
                    std::string_view(key) == "stream" ? "stream" : "stream back", Str(*st, "slot").c_str(),
                    Str(*st, "phase").c_str(), Str(*st, "applied_lsn").c_str(), Num(*st, "lag_bytes"),
                    Num(*st, "lag_seconds"), Num(*st, "transactions"), Num(*st, "rows"), Num(*st, "retained_wal_bytes"));
        if (const std::string error = Str(*st, "error"); !error.empty())
          std::printf("              stream back error: %s\n", error.c_str());
      }
      if (const std::string error = Str(r, "error"); !error.empty())
        std::printf("              error: %s\n", error.c_str());
    }
  }
  if (auto* v = p.as_object().if_contains("verification"); v && v->is_object()) {
    auto* equal = v->as_object().if_contains("equal");
    const char* verdict = v->as_object().contains("skipped") ? "skipped (writes moved to new at the cutover)"
                          : !equal || !equal->is_bool()      ? "?"
                          : equal->as_bool()                 ? "equal"
                                                             : "differences (see ctl verify)";
    std::printf("  verified  %s\n", verdict);
  }
  if (auto* cv = p.as_object().if_contains("continuous_verification"); cv && cv->is_object()) {
    std::int64_t differences = 0;  // over the last report's tables and Redis routes
    if (auto* rs = cv->as_object().if_contains("routes"); rs && rs->is_array())
      for (const auto& r : rs->as_array()) {
        differences += static_cast<std::int64_t>(Num(r, "keys_differing"));
        if (auto* ts = r.is_object() ? r.as_object().if_contains("tables") : nullptr; ts && ts->is_array())
          for (const auto& t : ts->as_array()) differences += static_cast<std::int64_t>(Num(t, "differences_total"));
      }
    std::printf("  continuous verify  %.0f runs, %.0f rows compared, last at %s: %lld differences%s%s\n",
                Num(p, "verify_runs"), Num(p, "verify_rows"), Str(*cv, "at").c_str(),
                static_cast<long long>(differences), Str(*cv, "error").empty() ? "" : ", last run failed: ",
                Str(*cv, "error").c_str());
  }
}

// The last repair (POST …/repair, control/repair_job.h): where a running
// one is, or how the last one ended.
void PrintRepair(const json::value& r) {
  const std::string state = Str(r, "state");
  std::printf("  repair    %s  runner %s, started %s", state.c_str(), Str(r, "runner").c_str(),
              Str(r, "started_at").c_str());
  if (const std::string finished = Str(r, "finished_at"); !finished.empty())
    std::printf(", finished %s (%.1f s)", finished.c_str(), Num(r, "elapsed_s"));
  std::printf("\n");
  const json::value* p = r.is_object() ? r.as_object().if_contains("progress") : nullptr;
  if (state == "running" && p != nullptr && p->is_object()) {
    std::string line = absl::StrFormat("              %s", Str(*p, "phase"));
    if (const std::string table = Str(*p, "table"); !table.empty())
      absl::StrAppend(&line, "  ", Str(*p, "route"), " ", table);
    absl::StrAppend(&line, absl::StrFormat("  %.0f rows repaired  tables %.0f of %.0f  %.1f s  %.0f/s", Num(*p, "rows"),
                                           Num(*p, "tables_done"), Num(*p, "tables_total"), Num(*p, "elapsed_s"),
                                           Num(*p, "rate")));
    if (auto* c = p->as_object().if_contains("compared"); c && c->is_number())
      absl::StrAppend(&line, absl::StrFormat("  (verify compared %.0f)", Num(*p, "compared")));
    std::printf("%s\n", line.c_str());
  }
  if (auto* s = r.is_object() ? r.as_object().if_contains("summary") : nullptr; s && s->is_object()) {
    auto* eq = s->as_object().if_contains("postgres_equal");
    std::printf("              %.0f tables (%.0f rows upserted, %.0f deleted), %.0f keys, %.0f entries cleared, "
                "%.0f pending; postgres %s; %.0f failures\n",
                Num(*s, "tables_repaired"), Num(*s, "rows_upserted"), Num(*s, "rows_deleted"), Num(*s, "keys_copied"),
                Num(*s, "repaired_entries"), Num(*s, "pending"),
                eq && eq->is_bool() && eq->as_bool() ? "equal" : "differs", Num(*s, "failures"));
    if (auto* f = s->as_object().if_contains("first_failures"); f && f->is_array())
      for (const auto& line : f->as_array())
        if (line.is_string()) std::printf("              failure: %s\n", std::string(line.as_string()).c_str());
  }
  if (const std::string error = Str(r, "error"); !error.empty()) std::printf("              error: %s\n", error.c_str());
}

void PrintStatus(const json::value& d) {
  std::printf("%s  %s  (revision %s)\n", Str(d, "id").c_str(), Str(d, "state").c_str(), Str(d, "revision").c_str());
  const auto& strategy = d.at("strategy");
  std::printf("  strategy  %s\n", ToJsonText(strategy).c_str());
  std::printf("  to new    %s\n", Bar(RolloutShare(strategy)).c_str());
  if (auto* routes = d.as_object().if_contains("routes"); routes && routes->is_array())
    for (const auto& r : routes->as_array())
      std::printf("  route     %s -> %s\n", Str(r, "route").c_str(), Str(r, "endpoint").c_str());
  if (auto* progress = d.as_object().if_contains("progress"); progress && progress->is_object())
    PrintDataProgress(*progress);
  if (auto* repair = d.as_object().if_contains("repair"); repair && repair->is_object()) PrintRepair(*repair);
  std::printf("  updated   %s\n", Str(d, "updated_at").c_str());
}

absl::StatusOr<std::string> ReadBody(const std::string& file) {
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", file));
  std::stringstream ss;
  ss << in.rdbuf();
  // YAML is a superset of JSON: one parser for both.
  auto v = YamlTextToJson(ss.str());
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", v.status().message()));
  return ToJsonText(*v);
}

}  // namespace

int RunCtl(int argc, char** argv) {
  Target target;
  std::string token = std::getenv("TURNOUT_TOKEN") ? std::getenv("TURNOUT_TOKEN") : "";
  std::vector<std::string> args;
  std::string file;
  bool watch = false;
  bool no_wait = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--server") {
      if (!ParseServer(value(), target)) {
        std::fputs("error: --server takes http://host:port\n", stderr);
        return 2;
      }
    } else if (a == "--token") {
      token = value();
    } else if (a == "-f" || a == "--file") {
      file = value();
    } else if (a == "--watch" || a == "-w") {
      watch = true;
    } else if (a == "--no-wait") {
      no_wait = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = args[0];
  auto need_id = [&]() -> bool {
    if (args.size() == 2) return true;
    std::fprintf(stderr, "error: %s needs a migration id\n%s", cmd.c_str(), kUsage);
    return false;
  };
  auto run = [&](http::verb verb, const std::string& path, const std::string& body = "",
                 bool verbose = false) -> absl::StatusOr<Response> { return Call(target, token, verb, path, body, verbose); };
  auto fail = [](const absl::Status& st) {
    std::fprintf(stderr, "error: %s\n", std::string(st.message()).c_str());
    return 1;
  };
  const std::string base = "/api/v1/migrations";

  if (cmd == "list") {
    auto r = run(http::verb::get, base);
    if (!r.ok()) return fail(r.status());
    if (r->status != 200) return PrintError(*r);
    std::printf("%-28s %-12s %-16s %-8s %-20s %s\n", "ID", "STATE", "STRATEGY", "TO NEW", "ROUTES", "UPDATED");
    for (const auto& m : r->body.at("data").as_array()) {
      std::string routes;
      for (const auto& x : m.at("interlays").as_array()) absl::StrAppend(&routes, routes.empty() ? "" : ",", std::string(x.as_string()));
      std::printf("%-28s %-12s %-16s %-8s %-20s %s\n", Str(m, "id").c_str(), Str(m, "state").c_str(),
                  Str(m.at("strategy"), "type").c_str(), absl::StrFormat("%.0f%%", RolloutShare(m.at("strategy")) * 100).c_str(),
                  routes.c_str(), Str(m, "updated_at").c_str());
    }
    return 0;
  }
  if (cmd == "create" || (cmd == "patch" && need_id())) {
    if (cmd == "create" && args.size() != 1) {
      std::fputs("error: create takes -f FILE\n", stderr);
      return 2;
    }
    if (file.empty()) {
      std::fprintf(stderr, "error: %s needs -f FILE (JSON or YAML)\n", cmd.c_str());
      return 2;
    }
    auto body = ReadBody(file);
    if (!body.ok()) return fail(body.status());
    auto r = cmd == "create" ? run(http::verb::post, base, *body) : run(http::verb::patch, base + "/" + args[1], *body);
    if (!r.ok()) return fail(r.status());
    if (r->status >= 300) return PrintError(*r);
    PrintStatus(r->body.at("data"));
    return 0;
  }
  if (cmd == "patch") return 2;
  if (!need_id()) return 2;
  const std::string path = base + "/" + args[1];
  if (cmd == "get" || cmd == "journal") {
    auto r = run(http::verb::get, cmd == "get" ? path : path + "/journal", "", true);
    if (!r.ok()) return fail(r.status());
    if (r->status != 200) return PrintError(*r);
    std::printf("%s\n", ToJsonText(r->body.at("data")).c_str());
    return 0;
  }
  if (cmd == "status") {
    const bool tty = ::isatty(STDOUT_FILENO);
    for (;;) {
      auto r = run(http::verb::get, path, "", true);
      if (!r.ok()) return fail(r.status());
      if (r->status != 200) return PrintError(*r);
      if (watch && tty) std::fputs("\033[H\033[2J", stdout);  // redraw in place
      PrintStatus(r->body.at("data"));
      std::fflush(stdout);
      const std::string state = Str(r->body.at("data"), "state");
      const json::value* repair = r->body.at("data").as_object().if_contains("repair");
      const bool repairing = repair != nullptr && Str(*repair, "state") == "running";
      if (!watch || (state != "Running" && state != "Paused" && state != "RollingBack" && !repairing)) return 0;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  if (cmd == "delete") {
    auto r = run(http::verb::delete_, path);
    if (!r.ok()) return fail(r.status());
    if (r->status != 200) return PrintError(*r);
    std::printf("deleted %s\n", args[1].c_str());
    return 0;
  }
  if (cmd == "repair" && no_wait) {
    auto r = run(http::verb::post, path + "/repair", R"({"wait":false})");
    if (!r.ok()) return fail(r.status());
    if (r->status != 202) return PrintError(*r);
    if (auto* job = r->body.at("data").as_object().if_contains("repair"); job && job->is_object()) PrintRepair(*job);
    std::printf("follow it with: turnout ctl status %s --watch\n", args[1].c_str());
    return 0;
  }
  static const char* kActions[] = {"test", "sync", "migrate", "pause", "resume", "rollback", "verify", "repair"};
  for (const char* action : kActions) {
    if (cmd != action) continue;
    auto r = run(http::verb::post, path + "/" + action);
    if (!r.ok()) return fail(r.status());
    if (r->status != 200) return PrintError(*r);
    const auto& d = r->body.at("data");
    if (d.is_object() && d.as_object().contains("state")) PrintStatus(d);
    else std::printf("%s\n", ToJsonText(d).c_str());
    return 0;
  }
  std::fprintf(stderr, "error: unknown command %s\n%s", cmd.c_str(), kUsage);
  return 2;
}

}  // namespace turnout::control
