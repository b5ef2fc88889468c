#pragma once
// The answer of a policy for one request (DESIGN.md §2): the primary backend,
// whose reply goes to the client, and up to two pieces of secondary work.
// A Plan is a small value (12 bytes) with an inline array: deciding one never
// touches the heap.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace turnout::routing {

enum class Side : std::uint8_t { kOld, kNew };
std::string_view SideName(Side s) noexcept;
constexpr Side Other(Side s) noexcept { return s == Side::kOld ? Side::kNew : Side::kOld; }

// kDualWrite: must be applied; failures are journaled, never dropped.
// kShadow: the reply is compared with the primary's, then dropped; overflow
// of the shadow queue is counted and dropped.
enum class SecondaryRole : std::uint8_t { kDualWrite, kShadow };
std::string_view SecondaryRoleName(SecondaryRole r) noexcept;

// kSync: reply to the client after both sides applied (the primary's reply is
// returned). kAsync: reply after the primary; the secondary is applied in
// per-session order from a bounded queue. Shadow work is always kAsync.
enum class Apply : std::uint8_t { kSync, kAsync };
std::string_view ApplyName(Apply a) noexcept;

struct Secondary {
  Side side = Side::kNew;
  SecondaryRole role = SecondaryRole::kDualWrite;
  Apply apply = Apply::kSync;
  friend constexpr bool operator==(const Secondary&, const Secondary&) = default;
};

// Bits of Plan::flags().
enum PlanFlag : std::uint8_t {
  // HIGH-risk DDL on a migrating route whose migration does not allow it:
  // the session must refuse the statement with an error and send it nowhere.
  kPlanRefused = 1u << 0,
  // The request touched both migrated and unmigrated scopes (strangler_fig,
  // feature_flag) and was sent to old, which holds every table; for metrics.
  kPlanCrossScope = 1u << 1,
  // Dual-writes of this plan use two-phase commit (`atomic: true`, Postgres).
  kPlanAtomic = 1u << 2,
  // A read plan that a read-your-writes fence may redirect: fence_side() is
  // the authoritative side of an async dual-write.
  kPlanFenceable = 1u << 3,
  // The read-your-writes fence redirected this plan to fence_side().
  kPlanFenced = 1u << 4,
  // Postgres: the change stream carries this plan's dual-write to new
  // (PolicyInputs::writes_by_stream): nothing is sent there, and a commit
  // waits until new applied it (sync) or is remembered so that the
  // session's reads on new wait for it (async). See stream_positions.h.
  kPlanStreamSync = 1u << 5,
  kPlanStreamAsync = 1u << 6,
  // A cutover is moving write authority (PolicyInputs::hold_writes): a
  // write, DDL or BEGIN that would start a transaction waits at its start
  // until the next policy (the flip, or the abandoned cutover) arrives.
  kPlanHoldWrites = 1u << 7,
};

class Plan {
 public:
  static constexpr std::size_t kMaxSecondaries = 2;

  constexpr Plan() = default;
  constexpr explicit Plan(Side primary) : primary_(primary) {}

  constexpr Side primary() const noexcept { return primary_; }
  constexpr void set_primary(Side s) noexcept { primary_ = s; }

  std::span<const Secondary> secondaries() const noexcept {
    return {secondaries_.data(), count_};
  }
  constexpr bool has_secondaries() const noexcept { return count_ != 0; }
  // False (and no change) when the plan already holds kMaxSecondaries.
  constexpr bool AddSecondary(Secondary s) noexcept {
    if (count_ == kMaxSecondaries) return false;
    secondaries_[count_++] = s;
    return true;
  }
  constexpr void ClearSecondaries() noexcept { count_ = 0; }
  // Drops secondary work aimed at `s` (after the primary moved there).
  void RemoveSecondariesOn(Side s) noexcept;
  // Drops secondary work of role `r` on `s` (dual-write carried some other way).
  void RemoveSecondaries(Side s, SecondaryRole r) noexcept;

  constexpr std::uint8_t flags() const noexcept { return flags_; }
  constexpr bool has(PlanFlag f) const noexcept { return (flags_ & f) != 0; }
  constexpr void set(PlanFlag f) noexcept { flags_ |= f; }
  constexpr bool refused() const noexcept { return has(kPlanRefused); }

  // Meaningful when has(kPlanFenceable).
  constexpr Side fence_side() const noexcept { return fence_side_; }
  constexpr void set_fence_side(Side s) noexcept {
    fence_side_ = s;
    flags_ |= kPlanFenceable;
  }

  // "primary=new secondaries=[old dual_write sync] flags=..." for logs/tests.
  std::string DebugString() const;

  friend bool operator==(const Plan& a, const Plan& b) noexcept;

 private:
  Side primary_ = Side::kOld;
  std::uint8_t count_ = 0;
  std::uint8_t flags_ = 0;
  Side fence_side_ = Side::kOld;
  std::array<Secondary, kMaxSecondaries> secondaries_{};
};

// Read-your-writes fence (DESIGN.md §2): while a session has async dual-writes
// that are not yet applied (or journaled) on the other side, a read that the
// policy sent to the non-authoritative side goes to the authoritative side
// instead, so a canary read never misses the client's own write. Plans that
// are not fenceable, and sessions with nothing pending, pass through as they
// are.
Plan ApplyReadYourWritesFence(Plan plan, bool session_has_unapplied_writes) noexcept;

}  // namespace turnout::routing
