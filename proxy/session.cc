#include "proxy/session.h"

#include <vector>

namespace turnout::proxy {

const char* RouteRuntime::DualWriteResultName(DualWriteResult r) {
  static constexpr const char* kNames[] = {"applied", "failed", "diverged", "dropped"};
  return kNames[static_cast<int>(r)];
}

const char* RouteRuntime::ShadowMismatchName(ShadowMismatch k) {
  static constexpr const char* kNames[] = {"row_description", "rows", "command_tag", "error", "type", "length", "value"};
  return kNames[static_cast<int>(k)];
}

const char* RouteRuntime::StreamWaitKindName(StreamWaitKind k) {
  static constexpr const char* kNames[] = {"commit", "read"};
  return kNames[static_cast<int>(k)];
}

const char* RouteRuntime::CommitTargetName(CommitTarget t) {
  static constexpr const char* kNames[] = {"xid", "xid_then_fence", "fence", "none"};
  return kNames[static_cast<int>(t)];
}

const char* RouteRuntime::StreamWaitResultName(StreamWaitResult r) {
  static constexpr const char* kNames[] = {"applied", "timeout", "not_live"};
  return kNames[static_cast<int>(r)];
}

void SessionSet::CloseAll() {
  // Close() may end a session synchronously and remove it from the set.
  std::vector<Session*> copy(sessions_.begin(), sessions_.end());
  for (Session* s : copy) s->Close();
}

void SessionSet::RequestDrainAll() {
  std::vector<Session*> copy(sessions_.begin(), sessions_.end());
  for (Session* s : copy) s->RequestDrain();
}

}  // namespace turnout::proxy
