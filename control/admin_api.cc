#include "control/admin_api.h"

#include <boost/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "control/api_status.h"
#include "control/json_text.h"
#include "control/migration_request.h"

namespace turnout::control {
namespace json = boost::json;
namespace {

HttpReply Json(int status, const json::value& v) { return {status, "application/json", ToJsonText(v) + "\n"}; }

HttpReply Success(int status, json::value data) {
  return Json(status, json::object{{"status", "success"}, {"data", std::move(data)}});
}

HttpReply Error(const absl::Status& st) {
  json::object o{{"status", "error"}, {"error", std::string(st.message())}};
  std::string details = DetailsOf(st);
  if (details.empty()) {
    switch (st.code()) {
      case absl::StatusCode::kUnauthenticated: details = "send Authorization: Bearer <token>"; break;
      case absl::StatusCode::kPermissionDenied: details = "this endpoint needs the admin role"; break;
      case absl::StatusCode::kInvalidArgument: details = "the request was not changed; fix the named field"; break;
      default: break;
    }
  }
  o["details"] = details;
  return Json(HttpStatusOf(st), o);
}

bool Truthy(const std::string& v) { return absl::EqualsIgnoreCase(v, "true") || v == "1"; }

absl::StatusOr<json::value> ParseBody(const HttpRequest& r, bool required) {
  if (absl::StripAsciiWhitespace(r.body).empty()) {
    if (required) return absl::InvalidArgumentError("body: a JSON object is required");
    return json::value(json::object{});
  }
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) return WithDetails(absl::InvalidArgumentError("invalid JSON"), ec.message());
  if (auto key = DuplicateKey(r.body))
    return WithDetails(absl::InvalidArgumentError(absl::StrCat(*key, ": duplicate key")),
                       "name each field once; the request was not changed");
  return v;
}

// Long requests (test, verify, repair): how many run, how many were
// refused, and one lock per migration so two for the same migration run one
// after the other. Shared by the handler and the deferred work it returns.
class LongRequests : public std::enable_shared_from_this<LongRequests> {
 public:
  explicit LongRequests(std::size_t max) : max_(max == 0 ? 1 : max) {}

  // A slot held until the work is done or dropped; nullptr at the limit.
  std::shared_ptr<void> TryAdmit() {
    std::lock_guard<std::mutex> l(mu_);
    if (in_flight_ >= max_) {
      ++refused_;
      return nullptr;
    }
    ++in_flight_;
    // The slot keeps this object alive: work may outlive the handler.
    return std::shared_ptr<void>(this, [self = shared_from_this()](LongRequests*) {
      std::lock_guard<std::mutex> release(self->mu_);
      --self->in_flight_;
    });
  }
  std::shared_ptr<std::mutex> OrderFor(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    auto& m = order_[id];
    if (!m) m = std::make_shared<std::mutex>();
    return m;
  }
  std::size_t max() const { return max_; }
  // Prometheus text of the two series.
  std::string MetricsText() {
    std::lock_guard<std::mutex> l(mu_);
    return absl::StrCat(
        "# HELP turnout_admin_long_requests_in_flight Admin requests that talk to backends (test, verify, repair) "
        "running now, off the thread that answers probes.\n"
        "# TYPE turnout_admin_long_requests_in_flight gauge\n"
        "turnout_admin_long_requests_in_flight ", in_flight_, "\n",
        "# HELP turnout_admin_long_requests_refused_total Long admin requests refused with 429 at the limit.\n"
        "# TYPE turnout_admin_long_requests_refused_total counter\n"
        "turnout_admin_long_requests_refused_total ", refused_, "\n");
  }

 private:
  const std::size_t max_;
  std::mutex mu_;
  std::size_t in_flight_ = 0;
  std::uint64_t refused_ = 0;
  // Bounded by the migrations that exist: a missing id is a 404 first.
  std::map<std::string, std::shared_ptr<std::mutex>> order_;
};

// POST …/repair's body (admin_api.h): whether the reply waits for the result.
absl::StatusOr<bool> RepairWaits(const HttpRequest& r) {
  auto body = ParseBody(r, false);
  if (!body.ok()) return body.status();
  if (!body->is_object()) return absl::InvalidArgumentError("body: expected a JSON object such as {\"wait\": false}");
  bool wait = true;
  for (const auto& [key, value] : body->as_object()) {
    if (key != "wait")
      return WithDetails(absl::InvalidArgumentError(absl::StrCat(std::string(key), ": unknown field")),
                         "the only field is \"wait\" (true: reply with the result; false: start the job and reply "
                         "202); nothing was started");
    if (!value.is_bool()) return absl::InvalidArgumentError("wait: expected true or false");
    wait = value.as_bool();
  }
  return wait;
}

}  // namespace

AdminHandler MakeAdminHandler(AdminApiDeps deps) {
  auto long_requests = std::make_shared<LongRequests>(deps.max_long_requests);
  // Repair jobs outlive the request that started one; the handler (and the
  // admin server with it) waits for them when it goes.
  std::shared_ptr<RepairJobs> repairs;
  if (deps.repair && deps.migrations) repairs = std::make_shared<RepairJobs>(deps.migrations, deps.repair);
  return [deps = std::move(deps), long_requests, repairs](const HttpRequest& r) -> HttpReply {
    const std::string path(absl::string_view(r.target).substr(0, r.target.find('?')));
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
    if (path == "/readyz") {
      auto st = deps.readiness ? deps.readiness() : absl::OkStatus();
      if (st.ok()) return {200, "text/plain", "ready\n"};
      return {503, "text/plain", absl::StrCat("not ready: ", st.message(), "\n")};
    }
    if (path == "/metrics") {
      std::string text = deps.metrics_text ? deps.metrics_text() : std::string();
      if (!text.empty() && text.back() != '\n') text += '\n';
      if (repairs) text += repairs->MetricsText();
      return {200, "text/plain; version=0.0.4; charset=utf-8", text + long_requests->MetricsText()};
    }

    std::vector<std::string> seg = absl::StrSplit(path, '/', absl::SkipEmpty());
    if (seg.size() < 3 || seg[0] != "api" || seg[1] != "v1" || seg[2] != "migrations")
      return Error(absl::NotFoundError(absl::StrCat("no endpoint ", path)));

    // The access table of DESIGN.md §5: listing needs read, everything else admin.
    const bool is_list = seg.size() == 3 && r.method == "GET";
    auto who = deps.auth->Authenticate(r.Header("authorization"), absl::Now());
    if (!who.ok()) return Error(who.status());
    if (!is_list && who->role != Role::kAdmin)
      return Error(absl::PermissionDeniedError(absl::StrCat("role ", RoleName(who->role), " may not ", r.method, " ", path)));
    const std::string& actor = who->subject;
    // Names from the path, before anything reads or changes state.
    if (seg.size() >= 4)
      if (auto st = CheckName("id", seg[3]); !st.ok()) return Error(st);
    if (seg.size() == 6 && (seg[4] == "interlay" || seg[4] == "api"))
      if (auto st = CheckName(seg[4] == "interlay" ? "route" : "scope", seg[5]); !st.ok()) return Error(st);
    auto& svc = *deps.migrations;
    auto method_not_allowed = [&](const char* allowed) {
      HttpReply rep = Error(absl::Status(absl::StatusCode::kUnimplemented, absl::StrCat(r.method, " is not allowed on ", path)));
      rep.status = 405;
      (void)allowed;
      return rep;
    };
    auto reply = [](absl::StatusOr<json::value> v, int ok_status = 200) {
      return v.ok() ? Success(ok_status, *std::move(v)) : Error(v.status());
    };
    // The one place a migration becomes the API's JSON: its summary, or
    // with `verbose` the whole record (MigrationToJson).
    auto migration = [](const absl::StatusOr<Migration>& m, bool verbose, int ok_status = 200) {
      return m.ok() ? Success(ok_status, MigrationToJson(*m, verbose)) : Error(m.status());
    };

    if (seg.size() == 3) {
      if (r.method == "GET") {
        json::array listed;
        for (const Migration& m : svc.List()) listed.push_back(MigrationToJson(m, false));
        return Success(200, std::move(listed));
      }
      if (r.method == "POST") {
        auto body = ParseBody(r, true);
        if (!body.ok()) return Error(body.status());
        auto cmd = ParseCreateMigration(*body);
        if (!cmd.ok()) return Error(cmd.status());
        return migration(svc.Create(*cmd, actor), false, 201);
      }
      return method_not_allowed("GET, POST");
    }
    const std::string& id = seg[3];
    if (seg.size() == 4) {
      if (r.method == "GET") {
        const bool verbose = Truthy(r.Header("x-verbose")) || Truthy(r.Header("x-eden-verbose"));
        return migration(svc.Snapshot(id), verbose);
      }
      if (r.method == "PATCH") {
        auto body = ParseBody(r, true);
        if (!body.ok()) return Error(body.status());
        auto cmd = ParsePatchMigration(*body);
        if (!cmd.ok()) return Error(cmd.status());
        return migration(svc.Patch(id, *cmd, actor), false);
      }
      if (r.method == "DELETE") return migration(svc.Delete(id, actor), false);
      return method_not_allowed("GET, PATCH, DELETE");
    }
    if (seg.size() == 6 && (seg[4] == "interlay" || seg[4] == "api")) {
      if (r.method != "POST") return method_not_allowed("POST");
      auto body = ParseBody(r, seg[4] == "interlay");
      if (!body.ok()) return Error(body.status());
      if (seg[4] == "interlay") {
        auto cmd = ParseAddInterlay(*body);
        if (!cmd.ok()) return Error(cmd.status());
        return migration(svc.AddInterlay(id, seg[5], *cmd, actor), true);
      }
      auto scope = ParseScope(seg[5], *body);
      if (!scope.ok()) return Error(scope.status());
      return migration(svc.AddScope(id, *scope, actor), true);
    }
    if (seg.size() == 5) {
      const std::string& action = seg[4];
      if (action == "journal" || action == "shadow") {
        if (r.method != "GET") return method_not_allowed("GET");
        auto m = svc.Snapshot(id);
        if (!m.ok()) return Error(m.status());
        const auto& fn = action == "journal" ? deps.journal : deps.shadow;
        if (!fn) return Error(absl::UnavailableError(absl::StrCat(action, " is not available in this process")));
        return reply(fn(*m));
      }
      if (r.method != "POST") return method_not_allowed("POST");
      if (action == "test" || action == "verify" || action == "repair") {
        if (auto m = svc.Snapshot(id); !m.ok()) return Error(m.status());
        const bool available = action == "test"     ? bool(deps.dry_run)
                               : action == "verify" ? bool(deps.verify)
                                                    : bool(repairs);
        if (!available) return Error(absl::UnavailableError(absl::StrCat(action, " is not available in this process")));
        // A bad body is refused before anything is admitted or started.
        bool wait = true;
        if (action == "repair") {
          auto w = RepairWaits(r);
          if (!w.ok()) return Error(w.status());
          wait = *w;
        }
        auto slot = long_requests->TryAdmit();
        if (!slot) {
          HttpReply busy = Error(WithDetails(
              absl::ResourceExhaustedError(absl::StrCat(long_requests->max(),
                                                        " long admin requests (test, verify, repair) are running")),
              "retry when one finishes; probes and other requests are answered meanwhile"));
          busy.status = 429;
          busy.headers.emplace_back("Retry-After", "1");
          return busy;
        }
        HttpReply deferred;
        if (action == "repair") {
          // On a worker too: taking the store's lock and saving the record
          // talk to the state store.
          deferred.deferred = [repairs, id, actor, wait, slot = std::move(slot),
                               order = long_requests->OrderFor(id)]() mutable -> HttpReply {
            // Released when this returns (a refusal too), unless a detached job takes it.
            auto held = std::move(slot);
            auto job = repairs->Begin(id, actor);
            if (!job.ok()) return Error(job.status());
            if (wait) {
              auto v = repairs->Run(*std::move(job), order);
              return v.ok() ? Success(200, *std::move(v)) : Error(v.status());
            }
            json::value started = (*job)->record;
            repairs->Detach(*std::move(job), std::move(order), std::move(held));
            HttpReply accepted = Success(202, json::object{{"migration", id}, {"repair", std::move(started)}});
            accepted.headers.emplace_back("Location", "/api/v1/migrations/" + id);
            return accepted;
          };
          return deferred;
        }
        const auto& fn = action == "test" ? deps.dry_run : deps.verify;
        // Runs on a worker thread (admin_server.h). The snapshot is taken
        // once the migration's previous long request is done, as it was
        // when they ran one after the other on the admin thread.
        deferred.deferred = [fn, svc_ptr = deps.migrations, id, slot = std::move(slot),
                             order = long_requests->OrderFor(id)]() mutable -> HttpReply {
          // The slot is released when the work returns, before the reply is
          // written: a client that has its answer sees the gauge back down.
          const auto held = std::move(slot);
          std::lock_guard<std::mutex> l(*order);
          auto m = svc_ptr->Snapshot(id);
          if (!m.ok()) return Error(m.status());
          auto v = fn(*m);
          return v.ok() ? Success(200, *std::move(v)) : Error(v.status());
        };
        return deferred;
      }
      if (action == "sync" || action == "migrate" || action == "pause" || action == "resume" || action == "rollback")
        return migration(svc.Transition(id, action, actor), false);
    }
    return Error(absl::NotFoundError(absl::StrCat("no endpoint ", r.method, " ", path)));
  };
}

}  // namespace turnout::control
