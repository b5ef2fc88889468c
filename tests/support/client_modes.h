#pragma once
// The routing modes the client-library suites (pg_clients_itest,
// redis_clients_itest) run under (issue 13, "What it must show"): direct (no
// migration), a Running canary that reads from old and dual-writes
// synchronously with old authoritative, and shadow traffic with shadow
// writes. One test per mode, so a mode's failure names the mode.

#include <ostream>
#include <string>

namespace turnout::testing {

enum class ClientMode {
  kDirect,           // no migration: everything to old
  kDualWrite,        // dual-write as statements (Postgres: no data movement)
  kDualWriteStream,  // Postgres: dual-write carried by the change stream
  kShadow,           // shadow_traffic, shadow_writes on
};

inline std::string ModeName(ClientMode m) {
  switch (m) {
    case ClientMode::kDirect: return "direct";
    case ClientMode::kDualWrite: return "dual_write";
    case ClientMode::kDualWriteStream: return "dual_write_stream";
    case ClientMode::kShadow: return "shadow";
  }
  return "unknown";
}

inline void PrintTo(ClientMode m, std::ostream* os) { *os << ModeName(m); }

inline bool IsDualWrite(ClientMode m) { return m == ClientMode::kDualWrite || m == ClientMode::kDualWriteStream; }

// The migration's `strategy` for a mode ("" for direct). `extra` is added to
// the strategy object (e.g. a "ddl" policy), `scratch_prefix` is shadow's
// scratch_key_prefix (Redis).
inline std::string ModeStrategy(ClientMode m, const std::string& extra = "", const std::string& scratch_prefix = "") {
  const std::string tail = extra.empty() ? "" : "," + extra;
  if (IsDualWrite(m))
    return R"({"type":"canary","read_percentage":0,)"
           R"("write_mode":{"mode":"dual_write","policy":"old_authoritative","apply":"sync"})" +
           tail + "}";
  if (m == ClientMode::kShadow) {
    std::string s = R"({"type":"shadow_traffic","shadow_writes":true)";
    if (!scratch_prefix.empty()) s += R"(,"scratch_key_prefix":")" + scratch_prefix + "\"";
    return s + tail + "}";
  }
  return "";
}

}  // namespace turnout::testing
