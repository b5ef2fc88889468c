#include "proxy/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

namespace turnout::proxy {
namespace {

std::atomic<bool> json_format{false};

spdlog::level::level_enum ToSpd(LogLevel l) {
  switch (l) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
    case LogLevel::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// Escapes for both logfmt quoted values and JSON strings: the two agree on
// backslash, quote and control characters.
void AppendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
}

}  // namespace

void InitLogging(std::string_view level, std::string_view format) {
  auto logger = spdlog::stderr_logger_mt("turnout");
  spdlog::set_default_logger(logger);
  json_format = (format == "json");
  if (json_format) {
    spdlog::set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,%v})", spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ level=%l thread=%t %v", spdlog::pattern_time_type::utc);
  }
  SetLogLevel(level);
  spdlog::flush_on(spdlog::level::info);
}

void SetLogLevel(std::string_view level) {
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

bool LogEnabled(LogLevel level) { return spdlog::should_log(ToSpd(level)); }

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  std::string line;
  line.reserve(128);
  if (json_format) {
    line += "\"msg\":\"";
    AppendEscaped(line, message);
    line += '"';
    for (const auto& f : fields) {
      line += ",\"";
      line += f.key;
      line += "\":";
      if (f.quoted) line += '"';
      AppendEscaped(line, f.value);
      if (f.quoted) line += '"';
    }
  } else {
    line += "msg=\"";
    AppendEscaped(line, message);
    line += '"';
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      const bool quote = f.quoted && (f.value.empty() || f.value.find_first_of(" \"=") != std::string::npos);
      if (quote) line += '"';
      AppendEscaped(line, f.value);
      if (quote) line += '"';
    }
  }
  spdlog::log(ToSpd(level), "{}", line);
}

}  // namespace turnout::proxy
