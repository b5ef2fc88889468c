#include "control/json_text.h"

#include <boost/json.hpp>

#include <charconv>
#include <cmath>

namespace turnout::control {
namespace {

void AppendString(std::string& out, boost::json::string_view s) {
  // Boost's serializer already escapes strings exactly as JSON requires.
  out += boost::json::serialize(boost::json::value(s));
}

void Append(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: out += std::to_string(v.get_int64()); break;
    case boost::json::kind::uint64: out += std::to_string(v.get_uint64()); break;
    case boost::json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";  // JSON has no NaN or infinity
        break;
      }
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
      out.append(buf, end);
      // Keep it a JSON number that reads back as a double: "1" → "1.0".
      if (std::string_view(buf, static_cast<std::size_t>(end - buf)).find_first_of(".e") == std::string_view::npos)
        out += ".0";
      break;
    }
    case boost::json::kind::string: AppendString(out, v.get_string()); break;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        Append(out, e);
      }
      out += ']';
      break;
    }
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        AppendString(out, kv.key());
        out += ':';
        Append(out, kv.value());
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string ToJsonText(const boost::json::value& v) {
  std::string out;
  Append(out, v);
  return out;
}

}  // namespace turnout::control
