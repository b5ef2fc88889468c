#pragma once
// A bounded ring of sampled shadow mismatches with both results (DESIGN.md §2
// "shadow comparison"), per route, for operators to read through the admin
// API. Sessions add (after a mismatch, rarely); the control plane reads.

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace turnout::routing {

struct ShadowSample {
  absl::Time at;
  std::string route;
  std::string kind;       // row_description, rows, command_tag, error, type, length, value
  std::string request;    // the SQL or the Redis command (truncated)
  std::string primary;    // the primary's result, rendered as text (truncated)
  std::string secondary;  // the shadow side's result (truncated)
  std::uint64_t primary_latency_us = 0;
  std::uint64_t secondary_latency_us = 0;
};

class ShadowSamples {
 public:
  explicit ShadowSamples(std::size_t per_route = 100, std::size_t max_field_bytes = 4096)
      : per_route_(per_route), max_field_bytes_(max_field_bytes) {}

  void Add(ShadowSample s);
  // Newest last; all routes when `route` is empty.
  std::vector<ShadowSample> Recent(const std::string& route = "") const;

 private:
  const std::size_t per_route_;
  const std::size_t max_field_bytes_;
  mutable std::mutex mu_;
  std::map<std::string, std::deque<ShadowSample>> rings_;
};

}  // namespace turnout::routing
