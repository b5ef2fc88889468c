#include "routing/policy_table.h"

#include <map>
#include <utility>

#include "routing/absl_view.h"

namespace turnout::routing {

const Policy* RouteTable::Find(std::string_view route) const noexcept {
  auto it = routes_.find(Av(route));
  return it == routes_.end() ? nullptr : it->second.get();
}

std::shared_ptr<const Policy> RouteTable::FindShared(std::string_view route) const {
  auto it = routes_.find(Av(route));
  return it == routes_.end() ? nullptr : it->second;
}

RouteTablePublisher::RouteTablePublisher() : table_(std::make_shared<const RouteTable>()) {}

std::shared_ptr<const RouteTable> RouteTablePublisher::Load() const noexcept {
  std::lock_guard<std::mutex> lock(table_mu_);
  return table_;
}

std::uint64_t RouteTablePublisher::PublishLocked(RouteTable::Map routes) {
  // Drop null entries so Find never returns a null policy from a live entry.
  absl::erase_if(routes, [](const auto& kv) { return kv.second == nullptr; });
  const std::uint64_t v = version_.load(std::memory_order_relaxed) + 1;
  std::shared_ptr<const RouteTable> next = std::make_shared<const RouteTable>(v, std::move(routes));
  {
    std::lock_guard<std::mutex> lock(table_mu_);
    table_.swap(next);
  }
  version_.store(v, std::memory_order_release);
  // `next` (the previous table) is released here, outside the lock; readers
  // that pinned it keep it alive.
  return v;
}

std::uint64_t RouteTablePublisher::Publish(RouteTable::Map routes) {
  std::lock_guard<std::mutex> lock(publish_mu_);
  return PublishLocked(std::move(routes));
}

std::uint64_t RouteTablePublisher::Update(const std::string& route,
                                          std::shared_ptr<const Policy> policy) {
  std::lock_guard<std::mutex> lock(publish_mu_);
  RouteTable::Map routes = Load()->routes();
  if (policy == nullptr) {
    routes.erase(route);
  } else {
    routes[route] = std::move(policy);
  }
  return PublishLocked(std::move(routes));
}

namespace {

// One passthrough policy per route for the sessions of a thread, while any
// holds it (it was 0.9 kB of every session). Per thread: no lock.
std::shared_ptr<const Policy> SharedPassthrough(const std::string& route, Protocol protocol) {
  thread_local std::map<std::pair<std::string, Protocol>, std::weak_ptr<const Policy>> held;
  std::weak_ptr<const Policy>& slot = held[{route, protocol}];
  if (auto p = slot.lock()) return p;
  auto p = Policy::Passthrough(route, protocol);
  slot = p;
  return p;
}

}  // namespace

RouteTableReader::RouteTableReader(const RouteTablePublisher& publisher, std::string route,
                                   Protocol protocol)
    : publisher_(&publisher),
      route_(std::move(route)),
      passthrough_(SharedPassthrough(route_, protocol)) {
  table_ = publisher_->Load();
  policy_ = table_->FindShared(route_);
  if (policy_ == nullptr) policy_ = passthrough_;
}

bool RouteTableReader::Refresh() noexcept {
  if (publisher_->version() == table_->version()) return false;
  table_ = publisher_->Load();
  std::shared_ptr<const Policy> next = table_->FindShared(route_);
  if (next == nullptr) next = passthrough_;
  if (next == policy_) return false;
  policy_ = std::move(next);
  return true;
}

}  // namespace turnout::routing
