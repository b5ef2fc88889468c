#pragma once
// JSON text for people: like boost::json::serialize, but doubles in their
// shortest round-trip decimal form ("0.05", not Boost 1.81's "5E-2"), since
// operators read these replies with curl.

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace turnout::control {

std::string ToJsonText(const boost::json::value& v);

// The first key that appears twice in one object of the JSON text `text`,
// with its path ("strategy.type", "routes[1].route"); nullopt when there is
// none or the text is not JSON. boost::json::parse keeps the last value of a
// duplicate (RFC 8259 §4 leaves it undefined), so a request that names a
// field twice would silently lose one: the admin API refuses it instead.
std::optional<std::string> DuplicateKey(std::string_view text);

}  // namespace turnout::control
