#include "protocol/resp/reply_writer.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace turnout::protocol::resp {
namespace {

void AppendHeader(std::string& out, char type, std::int64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
  (void)ec;  // 24 bytes hold any int64
  out += type;
  out.append(buf, static_cast<std::size_t>(end - buf));
  out += "\r\n";
}

void AppendLine(std::string& out, char type, std::string_view s) {
  out += type;
  std::size_t start = out.size();
  out.append(s);
  for (std::size_t i = start; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out += "\r\n";
}

}  // namespace

void AppendSimpleString(std::string& out, std::string_view s) { AppendLine(out, '+', s); }

void AppendError(std::string& out, std::string_view message) { AppendLine(out, '-', message); }

void AppendInteger(std::string& out, std::int64_t v) { AppendHeader(out, ':', v); }

void AppendBulkString(std::string& out, std::string_view s) {
  AppendHeader(out, '$', static_cast<std::int64_t>(s.size()));
  out.append(s);
  out += "\r\n";
}

void AppendNull(std::string& out, bool resp3, bool array) {
  if (resp3) {
    out += "_\r\n";
  } else {
    out += array ? "*-1\r\n" : "$-1\r\n";
  }
}

void AppendArrayHeader(std::string& out, std::size_t count) {
  AppendHeader(out, '*', static_cast<std::int64_t>(count));
}

void AppendSetHeader(std::string& out, std::size_t count, bool resp3) {
  AppendHeader(out, resp3 ? '~' : '*', static_cast<std::int64_t>(count));
}

void AppendMapHeader(std::string& out, std::size_t pairs, bool resp3) {
  if (resp3) {
    AppendHeader(out, '%', static_cast<std::int64_t>(pairs));
  } else {
    AppendHeader(out, '*', static_cast<std::int64_t>(pairs * 2));
  }
}

void AppendPushHeader(std::string& out, std::size_t count, bool resp3) {
  AppendHeader(out, resp3 ? '>' : '*', static_cast<std::int64_t>(count));
}

void AppendBoolean(std::string& out, bool v, bool resp3) {
  if (resp3) {
    out += v ? "#t\r\n" : "#f\r\n";
  } else {
    out += v ? ":1\r\n" : ":0\r\n";
  }
}

void AppendDouble(std::string& out, double v, bool resp3) {
  // networking.c addReplyDouble: "inf"/"-inf", otherwise %.17g.
  char buf[64];
  int n = 0;
  if (std::isinf(v)) {
    n = std::snprintf(buf, sizeof(buf), "%s", v > 0 ? "inf" : "-inf");
  } else if (std::isnan(v)) {
    n = std::snprintf(buf, sizeof(buf), "nan");
  } else {
    n = std::snprintf(buf, sizeof(buf), "%.17g", v);
  }
  std::string_view text(buf, static_cast<std::size_t>(n));
  if (resp3) {
    out += ',';
    out.append(text);
    out += "\r\n";
  } else {
    AppendBulkString(out, text);
  }
}

void AppendCommand(std::string& out, std::span<const std::string_view> args) {
  std::size_t total = 16;
  for (std::string_view a : args) total += a.size() + 16;
  out.reserve(out.size() + total);
  AppendArrayHeader(out, args.size());
  for (std::string_view a : args) AppendBulkString(out, a);
}

void AppendCommand(std::string& out, std::initializer_list<std::string_view> args) {
  AppendCommand(out, std::span<const std::string_view>(args.begin(), args.size()));
}

}  // namespace turnout::protocol::resp
