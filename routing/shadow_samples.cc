#include "routing/shadow_samples.h"

#include <algorithm>

namespace turnout::routing {

void ShadowSamples::Add(ShadowSample s) {
  for (std::string* f : {&s.request, &s.primary, &s.secondary})
    if (f->size() > max_field_bytes_) {
      f->resize(max_field_bytes_);
      *f += "…";
    }
  std::lock_guard<std::mutex> l(mu_);
  auto& ring = rings_[s.route];
  ring.push_back(std::move(s));
  while (ring.size() > per_route_) ring.pop_front();
}

std::vector<ShadowSample> ShadowSamples::Recent(const std::string& route) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<ShadowSample> out;
  for (const auto& [name, ring] : rings_)
    if (route.empty() || name == route) out.insert(out.end(), ring.begin(), ring.end());
  std::sort(out.begin(), out.end(), [](const ShadowSample& a, const ShadowSample& b) { return a.at < b.at; });
  return out;
}

}  // namespace turnout::routing
