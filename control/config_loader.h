#pragma once
// Reads turnout.yaml into routing::Config. Every error names the field path
// and the problem ("routes[1].listen: expected host:port, got \"abc\"") so an
// operator can fix the file without reading code. Secrets come from the file
// or from environment variables; they never appear in an error message.

#include <boost/json/value.hpp>

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "routing/config.h"

namespace turnout::control {

// Parses and validates YAML text. `source_path` is recorded in the result and
// relative file paths in the config are resolved against its folder.
absl::StatusOr<routing::Config> ParseConfig(absl::string_view yaml_text,
                                            absl::string_view source_path = {});

// Reads and parses a file.
absl::StatusOr<routing::Config> LoadConfigFile(const std::string& path);

// YAML text to JSON (plain scalars typed as JSON would type them; quoted
// scalars stay strings). Used for routes[].strategy and by `turnout ctl`.
absl::StatusOr<boost::json::value> YamlTextToJson(const std::string& text);

// Parses "host:port" or "[v6]:port".
absl::StatusOr<routing::HostPort> ParseHostPort(absl::string_view text);

}  // namespace turnout::control
