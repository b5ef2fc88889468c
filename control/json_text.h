#pragma once
// JSON text for people: like boost::json::serialize, but doubles in their
// shortest round-trip decimal form ("0.05", not Boost 1.81's "5E-2"), since
// operators read these replies with curl.

#include <boost/json/value.hpp>

#include <string>

namespace turnout::control {

std::string ToJsonText(const boost::json::value& v);

}  // namespace turnout::control
