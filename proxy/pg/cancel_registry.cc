#include "proxy/pg/cancel_registry.h"

#include "proxy/pg/scram.h"

namespace turnout::proxy::pg {

void CancelSlots::Set(int side, CancelTarget target) {
  std::lock_guard lock(mu_);
  slots_[side] = std::move(target);
}

void CancelSlots::Clear(int side) {
  std::lock_guard lock(mu_);
  slots_[side].reset();
  busy_[side].store(false, std::memory_order_relaxed);
}

std::vector<CancelTarget> CancelSlots::Targets() const {
  std::lock_guard lock(mu_);
  std::vector<CancelTarget> busy, open;
  for (int i = 0; i < 2; ++i) {
    if (!slots_[i]) continue;
    open.push_back(*slots_[i]);
    if (busy_[i].load(std::memory_order_relaxed)) busy.push_back(*slots_[i]);
  }
  return busy.empty() ? open : busy;
}

CancelRegistry::Key CancelRegistry::Register(std::shared_ptr<CancelSlots> slots) {
  Key key;
  // A random secret makes keys unguessable; the process id only has to be
  // unique among live sessions. Positive, like a real pid, because some
  // drivers print or parse it as one.
  std::uint8_t raw[4];
  RandomBytes(raw, sizeof raw);
  key.secret_key = static_cast<std::int32_t>((std::uint32_t{raw[0]} << 24) | (std::uint32_t{raw[1]} << 16) |
                                             (std::uint32_t{raw[2]} << 8) | raw[3]);
  std::lock_guard lock(mu_);
  do {
    next_pid_ = next_pid_ >= 0x7ffffff0 ? 1 : next_pid_ + 1;
  } while (entries_.count(next_pid_) != 0);
  key.process_id = next_pid_;
  entries_.emplace(key.process_id, Entry{key.secret_key, std::move(slots)});
  return key;
}

void CancelRegistry::Unregister(std::int32_t process_id) {
  std::lock_guard lock(mu_);
  entries_.erase(process_id);
}

std::shared_ptr<CancelSlots> CancelRegistry::Find(std::int32_t process_id, std::int32_t secret_key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(process_id);
  if (it == entries_.end() || it->second.secret_key != secret_key) return nullptr;
  return it->second.slots;
}

std::size_t CancelRegistry::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace turnout::proxy::pg
