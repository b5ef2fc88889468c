#include "control/admin_api.h"

#include <boost/json.hpp>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "control/api_status.h"
#include "control/json_text.h"

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
  return v;
}

}  // namespace

AdminHandler MakeAdminHandler(AdminApiDeps deps) {
  return [deps = std::move(deps)](const HttpRequest& r) -> HttpReply {
    const std::string path(absl::string_view(r.target).substr(0, r.target.find('?')));
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
    if (path == "/readyz") {
      auto st = deps.readiness ? deps.readiness() : absl::OkStatus();
      if (st.ok()) return {200, "text/plain", "ready\n"};
      return {503, "text/plain", absl::StrCat("not ready: ", st.message(), "\n")};
    }
    if (path == "/metrics") return {200, "text/plain; version=0.0.4; charset=utf-8", deps.metrics_text()};

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

    if (seg.size() == 3) {
      if (r.method == "GET") return reply(svc.List());
      if (r.method == "POST") {
        auto body = ParseBody(r, true);
        if (!body.ok()) return Error(body.status());
        return reply(svc.Create(*body, actor), 201);
      }
      return method_not_allowed("GET, POST");
    }
    const std::string& id = seg[3];
    if (seg.size() == 4) {
      if (r.method == "GET") {
        const bool verbose = Truthy(r.Header("x-verbose")) || Truthy(r.Header("x-eden-verbose"));
        return reply(svc.Get(id, verbose));
      }
      if (r.method == "PATCH") {
        auto body = ParseBody(r, true);
        if (!body.ok()) return Error(body.status());
        return reply(svc.Patch(id, *body, actor));
      }
      if (r.method == "DELETE") return reply(svc.Delete(id, actor));
      return method_not_allowed("GET, PATCH, DELETE");
    }
    if (seg.size() == 6 && (seg[4] == "interlay" || seg[4] == "api")) {
      if (r.method != "POST") return method_not_allowed("POST");
      auto body = ParseBody(r, seg[4] == "interlay");
      if (!body.ok()) return Error(body.status());
      return reply(seg[4] == "interlay" ? svc.AddInterlay(id, seg[5], *body, actor)
                                        : svc.AddScope(id, seg[5], *body, actor));
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
        auto m = svc.Snapshot(id);
        if (!m.ok()) return Error(m.status());
        const auto& fn = action == "test" ? deps.dry_run : action == "verify" ? deps.verify : deps.repair;
        if (!fn) return Error(absl::UnavailableError(absl::StrCat(action, " is not available in this process")));
        return reply(fn(*m));
      }
      if (action == "sync" || action == "migrate" || action == "pause" || action == "resume" || action == "rollback")
        return reply(svc.Transition(id, action, actor));
    }
    return Error(absl::NotFoundError(absl::StrCat("no endpoint ", r.method, " ", path)));
  };
}

}  // namespace turnout::control
