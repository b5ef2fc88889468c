#pragma once
// Structured logs: one event per line, key=value (logfmt) or JSON, over spdlog.
//   LogInfo("session closed", {{"route", name}, {"bytes_in", n}});
// Values are formatted once per event; callers on the hot path log only on
// state changes (open, close, error), never per message.

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace turnout::proxy {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  template <typename Int, typename = std::enable_if_t<std::is_arithmetic_v<Int>>>
  LogField(std::string_view k, Int v) : key(k), value(absl::StrCat(v)), quoted(false) {}
  std::string_view key;
  std::string value;
  bool quoted = true;
};

// Configures the process-wide logger. `format` is "text" or "json".
void InitLogging(std::string_view level, std::string_view format);
void SetLogLevel(std::string_view level);
bool LogEnabled(LogLevel level);

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});
inline void LogDebug(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kDebug, m, f); }
inline void LogInfo(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarn(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kWarn, m, f); }
inline void LogError(std::string_view m, std::initializer_list<LogField> f = {}) { Log(LogLevel::kError, m, f); }

}  // namespace turnout::proxy
