#include "control/json_text.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <charconv>
#include <cmath>
#include <unordered_set>
#include <vector>

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

// A boost::json::basic_parser handler that keeps, per open object, the keys
// seen so far, and stops at the first one seen twice.
class DuplicateKeyFinder {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  using ec_t = boost::system::error_code;
  using sv = boost::json::string_view;

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return Open(true); }
  bool on_object_end(std::size_t, ec_t&) { return Close(); }
  bool on_array_begin(ec_t&) { return Open(false); }
  bool on_array_end(std::size_t, ec_t&) { return Close(); }
  bool on_key_part(sv s, std::size_t, ec_t&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(sv s, std::size_t, ec_t& ec) {
    key_.append(s.data(), s.size());
    Frame& f = frames_.back();
    f.key = std::move(key_);
    key_.clear();
    if (f.keys.insert(f.key).second) return true;
    duplicate_ = Path();
    ec = boost::json::error::syntax;  // any error: it only stops the parser
    return false;
  }
  bool on_string_part(sv, std::size_t, ec_t&) { return true; }
  bool on_string(sv, std::size_t, ec_t&) { return Value(); }
  bool on_number_part(sv, ec_t&) { return true; }
  bool on_int64(std::int64_t, sv, ec_t&) { return Value(); }
  bool on_uint64(std::uint64_t, sv, ec_t&) { return Value(); }
  bool on_double(double, sv, ec_t&) { return Value(); }
  bool on_bool(bool, ec_t&) { return Value(); }
  bool on_null(ec_t&) { return Value(); }
  bool on_comment_part(sv, ec_t&) { return true; }
  bool on_comment(sv, ec_t&) { return true; }

  const std::optional<std::string>& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool object;
    std::unordered_set<std::string> keys;
    std::string key;        // object: the key of the value being read
    std::size_t index = 0;  // array: the index of the value being read
  };
  bool Open(bool object) {
    frames_.push_back(Frame{object, {}, {}, 0});
    return true;
  }
  bool Close() {
    frames_.pop_back();
    return Value();
  }
  // A value of the enclosing array (if any) is complete.
  bool Value() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
    return true;
  }
  std::string Path() const {
    std::string out;
    for (const Frame& f : frames_) {
      if (!f.object) {
        out += "[" + std::to_string(f.index) + "]";
        continue;
      }
      if (!out.empty()) out += '.';
      out += f.key;
    }
    return out;
  }

  std::vector<Frame> frames_;
  std::string key_;
  std::optional<std::string> duplicate_;
};

}  // namespace

std::optional<std::string> DuplicateKey(std::string_view text) {
  boost::json::basic_parser<DuplicateKeyFinder> p(boost::json::parse_options{});
  boost::system::error_code ec;
  p.write_some(false, text.data(), text.size(), ec);
  return p.handler().duplicate();
}

std::string ToJsonText(const boost::json::value& v) {
  std::string out;
  Append(out, v);
  return out;
}

}  // namespace turnout::control
