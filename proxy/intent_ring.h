#pragma once
// The intent record (issue 14 item 2): which keys (Redis) or tables
// (Postgres statement dual-write) have a write on its way to the secondary,
// kept where a killed process leaves it.
//
// A dual-write is sent to the primary, then to the secondary. A process that
// dies in between has applied it on one side only, and its journal entry
// (if the secondary failed at all) was never written. So before the primary
// is asked, the session writes an intent into a slot of this ring; once the
// secondary applied the write the slot is cleared, and once the write was
// journaled the slot is cleared after the journal's next fsync (Journal::
// FlushedSeq passes it: JournalFlusher sweeps). On every start, before a
// listener accepts, ReconcileIntents turns every live slot into a journal
// entry (the same entry a failed dual-write makes, so `repair` copies those
// keys / tables) and clears the ring.
//
// Durability: the ring is a MAP_SHARED file mapping written with plain
// stores, never fsynced. The kernel owns those pages the moment the store
// retires, so they survive the process (kill -9, a crash, the OOM killer);
// they do NOT survive the machine (power loss, kernel panic) unless the
// kernel happened to write them back. After a machine crash the ring may be
// stale or torn (slots fail their checksum and are counted as unreadable):
// what was in flight then is found by verification (`verify`, continuous
// verification), not by the journal. Making each write fsync first would cost
// a disk flush per write; the journal already pays that in batches.
//
// Hot path: Record and Clear allocate nothing and take no lock. Slots are
// claimed with one compare-and-swap; each thread starts its search in a
// region of its own (a worker's sessions keep to one region), so workers do
// not contend on a cache line. Each slot is 512 bytes, 64-byte aligned.
// Many names spread over several slots (RecordSpread). A write whose names
// cannot be held, or that finds the ring full, gets kNoSlot: the caller
// records it in the journal before the primary is asked instead (never
// dropped; the entry stays, a later repair of equal data is harmless).
//
// File format (`<journal.path>.intents`, native byte order: it never leaves
// the machine that wrote it):
//   header, 4096 bytes: "TNTINTS1", u32 version (1), u32 slot size (512),
//                       u32 slot count, zeros
//   slots, slot size each:
//     u64 state        0 free; 1 being written (the primary not yet asked:
//                      ignored on recovery); else the intent's sequence number
//     u64 journal_seq  0, or the journal entry that now records it
//     u32 checksum     FNV-1a over the sequence number and the body
//     u16 body_len
//     u8  protocol     1 postgres, 2 redis
//     u8  reserved
//     u16 target_count
//     u16 reserved[3]
//     body             u16 length + bytes, for: migration id, route, backend
//                      (the secondary), database (Postgres; may be empty),
//                      then each target
// The size is fixed (kDefaultSlots slots, 8 MiB), so the file never grows.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace turnout::routing {
class Journal;
}  // namespace turnout::routing

namespace turnout::proxy {

enum class IntentProtocol : std::uint8_t { kPostgres = 1, kRedis = 2 };

// Where a write goes: what a journal entry of it names besides its targets.
struct IntentWhere {
  IntentProtocol protocol = IntentProtocol::kRedis;
  std::string_view migration_id;
  std::string_view route;
  std::string_view backend;   // the secondary, which may miss the write
  std::string_view database;  // Postgres: the database written in
};

// One live slot, read back (recovery, tests).
struct Intent {
  std::uint64_t seq = 0;
  std::uint64_t journal_seq = 0;
  IntentProtocol protocol = IntentProtocol::kRedis;
  std::string migration_id, route, backend, database;
  std::vector<std::string> targets;
};

namespace intent_format {
inline constexpr std::size_t kHeaderSize = 4096;
inline constexpr std::size_t kSlotSize = 512;
inline constexpr std::size_t kSlotHeaderSize = 32;
inline constexpr std::size_t kBodyCapacity = kSlotSize - kSlotHeaderSize;
inline constexpr std::uint64_t kFree = 0;
inline constexpr std::uint64_t kWriting = 1;

// Writes the body of `where` and `targets` into `body`; returns its length,
// 0 when it does not fit.
std::size_t EncodeBody(const IntentWhere& where, std::span<const std::string_view> targets,
                       std::span<std::byte> body) noexcept;
std::size_t EncodeBody(const IntentWhere& where, std::span<const std::string> targets,
                       std::span<std::byte> body) noexcept;
std::uint32_t Checksum(std::uint64_t seq, std::span<const std::byte> body) noexcept;
// Reads one slot (kSlotSize bytes). nullopt when it is free or being
// written; `unreadable` set when it claims to be live but its body does
// not parse or fails its checksum.
std::optional<Intent> ParseSlot(std::span<const std::byte> slot, bool* unreadable);
}  // namespace intent_format

class IntentRing {
 public:
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;
  static constexpr std::size_t kDefaultSlots = 16384;

  // Maps `path` (created at the right size when absent or of another
  // shape: an unreadable old ring is renamed aside, never silently reused).
  static absl::StatusOr<std::unique_ptr<IntentRing>> Open(const std::string& path,
                                                          std::size_t slots = kDefaultSlots);
  // Anonymous memory: no record survives (tests, tools).
  static std::unique_ptr<IntentRing> InMemory(std::size_t slots = kDefaultSlots);
  ~IntentRing();
  IntentRing(const IntentRing&) = delete;
  IntentRing& operator=(const IntentRing&) = delete;

  // ---- hot path (any thread)
  // Claims a slot and writes the intent; kNoSlot when the ring is full or
  // the names do not fit (the caller journals the write instead).
  std::uint32_t Record(const IntentWhere& where, std::span<const std::string_view> targets) noexcept;
  std::uint32_t Record(const IntentWhere& where, std::span<const std::string> targets) noexcept;
  // A write whose names need more than one slot (MSET, UNLINK of thousands
  // of keys): the targets spread over as many slots as they need, each slot
  // a complete intent naming some of them, appended to `out`. False, with
  // nothing kept, when the ring lacks the slots or one name alone does not
  // fit a slot. Allocates (`out`); for the rare large write only.
  bool RecordSpread(const IntentWhere& where, std::span<const std::string_view> targets,
                    std::vector<std::uint32_t>& out);
  bool RecordSpread(const IntentWhere& where, std::span<const std::string> targets, std::vector<std::uint32_t>& out);
  // The write was applied (or not applied anywhere): the slot is free.
  void Clear(std::uint32_t slot) noexcept;
  // The write is recorded by journal entry `journal_seq`; the slot stays
  // live until the journal is on disk past it (ClearFlushed).
  void Journaled(std::uint32_t slot, std::uint64_t journal_seq) noexcept;

  // ---- the journal flusher (one thread)
  // Frees the slots whose journal entry is durable; returns how many.
  std::size_t ClearFlushed(std::uint64_t flushed_seq) noexcept;

  // ---- start-up (no session runs)
  // Every live slot; `unreadable` counts slots that fail their checksum.
  std::vector<Intent> Live(std::size_t* unreadable = nullptr) const;
  void ClearAll() noexcept;

  std::size_t slots() const noexcept { return slots_; }
  const std::string& path() const noexcept { return path_; }
  // Writes journaled up front because no slot could hold them.
  std::uint64_t overflows() const noexcept;
  void CountOverflow() noexcept;
  // Intents the start-up reconcile turned into journal entries.
  std::uint64_t recovered() const noexcept { return recovered_; }
  void set_recovered(std::uint64_t n) noexcept { recovered_ = n; }

 private:
  IntentRing(std::string path, std::byte* base, std::size_t mapped, std::size_t slots)
      : path_(std::move(path)), base_(base), mapped_(mapped), slots_(slots) {}
  std::byte* Slot(std::uint32_t i) const noexcept {
    return base_ + intent_format::kHeaderSize + static_cast<std::size_t>(i) * intent_format::kSlotSize;
  }
  template <typename Targets>
  std::uint32_t RecordImpl(const IntentWhere& where, Targets targets) noexcept;
  template <typename T>
  bool RecordSpreadImpl(const IntentWhere& where, std::span<const T> targets, std::vector<std::uint32_t>& out);
  std::uint32_t Claim() noexcept;

  std::string path_;
  std::byte* base_;
  std::size_t mapped_;
  std::size_t slots_;
  alignas(64) std::uint64_t journaled_pending_ = 0;  // atomic_ref: slots waiting for a flush
  alignas(64) std::uint64_t overflows_ = 0;          // atomic_ref
  std::uint64_t recovered_ = 0;
};

// Start-up reconcile: every live intent becomes a journal entry (kDropped,
// naming its keys / tables), the journal is flushed, then the ring cleared.
// Returns how many were recovered. Call before any listener accepts.
absl::StatusOr<std::size_t> ReconcileIntents(IntentRing& ring, routing::Journal& journal);

}  // namespace turnout::proxy
