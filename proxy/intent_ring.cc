#include "proxy/intent_ring.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proxy/logging.h"
#include "routing/journal.h"

namespace turnout::proxy {
namespace {

using namespace intent_format;

constexpr char kMagic[8] = {'T', 'N', 'T', 'I', 'N', 'T', 'S', '1'};
constexpr std::uint32_t kVersion = 1;
// Regions a thread starts its search in (a power of two).
constexpr std::size_t kRegions = 16;

struct FileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t slot_size;
  std::uint32_t slot_count;
  std::uint32_t reserved;
};

struct SlotHeader {
  std::uint64_t state;
  std::uint64_t journal_seq;
  std::uint32_t checksum;
  std::uint16_t body_len;
  std::uint8_t protocol;
  std::uint8_t reserved;
  std::uint16_t target_count;
  std::uint16_t reserved2[3];
};
static_assert(sizeof(SlotHeader) == kSlotHeaderSize);

using AtomicU64 = std::atomic_ref<std::uint64_t>;

SlotHeader* HeaderOf(std::byte* slot) { return reinterpret_cast<SlotHeader*>(slot); }

// Each thread: a region of its own to start in, a cursor, a sequence.
struct ThreadState {
  std::uint64_t index = 0;
  std::uint64_t cursor = 0;
  std::uint64_t next_seq = 0;
};
ThreadState& Mine() {
  static std::atomic<std::uint64_t> threads{0};
  thread_local ThreadState s = [] {
    ThreadState t;
    t.index = threads.fetch_add(1, std::memory_order_relaxed);
    return t;
  }();
  return s;
}

template <typename S>
bool Put(std::span<std::byte> body, std::size_t& at, const S& s) noexcept {
  const std::string_view v(s);
  if (v.size() > UINT16_MAX || at + 2 + v.size() > body.size()) return false;
  const auto n = static_cast<std::uint16_t>(v.size());
  std::memcpy(body.data() + at, &n, 2);
  if (!v.empty()) std::memcpy(body.data() + at + 2, v.data(), v.size());
  at += 2 + v.size();
  return true;
}

template <typename Targets>
std::size_t EncodeBodyImpl(const IntentWhere& w, Targets targets, std::span<std::byte> body) noexcept {
  std::size_t at = 0;
  if (!Put(body, at, w.migration_id) || !Put(body, at, w.route) || !Put(body, at, w.backend) ||
      !Put(body, at, w.database))
    return 0;
  for (const auto& t : targets)
    if (!Put(body, at, t)) return 0;
  return at;
}

bool Take(std::span<const std::byte> body, std::size_t& at, std::string& out) {
  if (at + 2 > body.size()) return false;
  std::uint16_t n;
  std::memcpy(&n, body.data() + at, 2);
  if (at + 2 + n > body.size()) return false;
  out.assign(reinterpret_cast<const char*>(body.data() + at + 2), n);
  at += 2 + n;
  return true;
}

}  // namespace

// ------------------------------------------------------------------ format

std::size_t intent_format::EncodeBody(const IntentWhere& where, std::span<const std::string_view> targets,
                                      std::span<std::byte> body) noexcept {
  return EncodeBodyImpl(where, targets, body);
}

std::size_t intent_format::EncodeBody(const IntentWhere& where, std::span<const std::string> targets,
                                      std::span<std::byte> body) noexcept {
  return EncodeBodyImpl(where, targets, body);
}

std::uint32_t intent_format::Checksum(std::uint64_t seq, std::span<const std::byte> body) noexcept {
  std::uint32_t h = 2166136261u;  // FNV-1a 32
  auto mix = [&h](std::byte b) {
    h ^= static_cast<std::uint8_t>(b);
    h *= 16777619u;
  };
  for (int i = 0; i < 8; ++i) mix(static_cast<std::byte>(seq >> (8 * i)));
  for (std::byte b : body) mix(b);
  return h;
}

std::optional<Intent> intent_format::ParseSlot(std::span<const std::byte> slot, bool* unreadable) {
  if (unreadable) *unreadable = false;
  if (slot.size() < kSlotSize) return std::nullopt;
  SlotHeader h;
  std::memcpy(&h, slot.data(), sizeof h);
  if (h.state == kFree || h.state == kWriting) return std::nullopt;
  auto bad = [&]() -> std::optional<Intent> {
    if (unreadable) *unreadable = true;
    return std::nullopt;
  };
  if (h.body_len > kBodyCapacity) return bad();
  const auto body = slot.subspan(kSlotHeaderSize, h.body_len);
  if (Checksum(h.state, body) != h.checksum) return bad();
  if (h.protocol != static_cast<std::uint8_t>(IntentProtocol::kPostgres) &&
      h.protocol != static_cast<std::uint8_t>(IntentProtocol::kRedis))
    return bad();
  Intent in;
  in.seq = h.state;
  in.journal_seq = h.journal_seq;
  in.protocol = static_cast<IntentProtocol>(h.protocol);
  std::size_t at = 0;
  if (!Take(body, at, in.migration_id) || !Take(body, at, in.route) || !Take(body, at, in.backend) ||
      !Take(body, at, in.database))
    return bad();
  in.targets.resize(h.target_count);
  for (auto& t : in.targets)
    if (!Take(body, at, t)) return bad();
  if (at != body.size()) return bad();
  return in;
}

// ------------------------------------------------------------------ the ring

absl::StatusOr<std::unique_ptr<IntentRing>> IntentRing::Open(const std::string& path, std::size_t slots) {
  if (slots == 0 || slots >= kNoSlot) return absl::InvalidArgumentError("intent ring: bad slot count");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("intent record ", path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("intent record ", path, ": ", std::strerror(e)));
  }
  // An existing ring keeps its own shape (what it holds must be read back).
  std::size_t count = slots;
  bool fresh = st.st_size == 0;
  if (!fresh) {
    FileHeader h{};
    const bool readable = st.st_size >= static_cast<off_t>(kHeaderSize) &&
                          ::pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) &&
                          std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.version == kVersion &&
                          h.slot_size == kSlotSize && h.slot_count > 0 && h.slot_count < kNoSlot &&
                          static_cast<std::size_t>(st.st_size) == kHeaderSize + std::size_t{h.slot_count} * kSlotSize;
    if (readable) {
      count = h.slot_count;
    } else {
      // Not ours, or torn by a machine crash: kept for a human, not reused.
      ::close(fd);
      const std::string aside = absl::StrCat(path, ".unreadable.", absl::ToUnixSeconds(absl::Now()));
      if (::rename(path.c_str(), aside.c_str()) != 0)
        return absl::InternalError(absl::StrCat("intent record ", path, ": unreadable and cannot be moved aside: ",
                                                std::strerror(errno)));
      LogError("intent record unreadable: moved aside; writes in flight at the last stop are not known "
               "(run verify on the migrating routes)",
               {{"path", path}, {"moved_to", aside}});
      return Open(path, slots);
    }
  }
  const std::size_t size = kHeaderSize + count * kSlotSize;
  if (fresh && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int e = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("intent record ", path, ": cannot size: ", std::strerror(e)));
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  ::close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) return absl::InternalError(absl::StrCat("intent record ", path, ": mmap: ", std::strerror(e)));
  auto* base = static_cast<std::byte*>(p);
  if (fresh) {
    FileHeader h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.version = kVersion;
    h.slot_size = kSlotSize;
    h.slot_count = static_cast<std::uint32_t>(count);
    std::memcpy(base, &h, sizeof h);
  }
  return std::unique_ptr<IntentRing>(new IntentRing(path, base, size, count));
}

std::unique_ptr<IntentRing> IntentRing::InMemory(std::size_t slots) {
  const std::size_t size = kHeaderSize + slots * kSlotSize;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return std::unique_ptr<IntentRing>(new IntentRing("", static_cast<std::byte*>(p), size, slots));
}

IntentRing::~IntentRing() { ::munmap(base_, mapped_); }

std::uint32_t IntentRing::Claim() noexcept {
  ThreadState& me = Mine();
  const std::size_t region = std::max<std::size_t>(slots_ / kRegions, 1);
  const std::size_t start = (me.index % kRegions) * region % slots_;
  // First this thread's region, from where it last succeeded; then the rest.
  for (std::size_t tried = 0; tried < slots_; ++tried) {
    std::size_t i;
    if (tried < region) {
      i = start + (me.cursor + tried) % region;
    } else {
      i = (start + tried) % slots_;
    }
    if (i >= slots_) continue;
    std::uint64_t expected = kFree;
    AtomicU64 state(HeaderOf(Slot(static_cast<std::uint32_t>(i)))->state);
    if (state.load(std::memory_order_relaxed) != kFree) continue;
    if (state.compare_exchange_strong(expected, kWriting, std::memory_order_acquire, std::memory_order_relaxed)) {
      if (tried < region) me.cursor = (me.cursor + tried + 1) % region;
      return static_cast<std::uint32_t>(i);
    }
  }
  return kNoSlot;
}

template <typename Targets>
std::uint32_t IntentRing::RecordImpl(const IntentWhere& where, Targets targets) noexcept {
  const std::uint32_t i = Claim();
  if (i == kNoSlot) return kNoSlot;
  std::byte* slot = Slot(i);
  SlotHeader* h = HeaderOf(slot);
  const std::span<std::byte> body(slot + kSlotHeaderSize, kBodyCapacity);
  const std::size_t len = intent_format::EncodeBody(where, targets, body);
  if (len == 0 || targets.size() > UINT16_MAX) {
    AtomicU64(h->state).store(kFree, std::memory_order_release);
    return kNoSlot;
  }
  ThreadState& me = Mine();
  // Never 0 or kWriting; distinct across threads of one process.
  const std::uint64_t seq = ((me.index + 1) << 40) | (++me.next_seq & ((std::uint64_t{1} << 40) - 1));
  AtomicU64(h->journal_seq).store(0, std::memory_order_relaxed);
  h->body_len = static_cast<std::uint16_t>(len);
  h->protocol = static_cast<std::uint8_t>(where.protocol);
  h->target_count = static_cast<std::uint16_t>(targets.size());
  h->checksum = intent_format::Checksum(seq, body.first(len));
  // Published last: a process killed before this line had not asked the
  // primary yet, and recovery skips a slot still marked kWriting.
  AtomicU64(h->state).store(seq, std::memory_order_release);
  return i;
}

std::uint32_t IntentRing::Record(const IntentWhere& where, std::span<const std::string_view> targets) noexcept {
  return RecordImpl(where, targets);
}

std::uint32_t IntentRing::Record(const IntentWhere& where, std::span<const std::string> targets) noexcept {
  return RecordImpl(where, targets);
}

template <typename T>
bool IntentRing::RecordSpreadImpl(const IntentWhere& where, std::span<const T> targets,
                                  std::vector<std::uint32_t>& out) {
  const std::size_t base = 8 + where.migration_id.size() + where.route.size() + where.backend.size() +
                           where.database.size();
  const std::size_t first = out.size();
  std::size_t i = 0;
  do {
    std::size_t used = base, j = i;
    while (j < targets.size() && used + 2 + std::string_view(targets[j]).size() <= kBodyCapacity) {
      used += 2 + std::string_view(targets[j]).size();
      ++j;
    }
    const std::uint32_t slot = j > i || targets.empty() ? Record(where, targets.subspan(i, j - i)) : kNoSlot;
    if (slot == kNoSlot) {
      for (std::size_t k = first; k < out.size(); ++k) Clear(out[k]);
      out.resize(first);
      return false;
    }
    out.push_back(slot);
    i = j;
  } while (i < targets.size());
  return true;
}

bool IntentRing::RecordSpread(const IntentWhere& where, std::span<const std::string_view> targets,
                              std::vector<std::uint32_t>& out) {
  return RecordSpreadImpl(where, targets, out);
}

bool IntentRing::RecordSpread(const IntentWhere& where, std::span<const std::string> targets,
                              std::vector<std::uint32_t>& out) {
  return RecordSpreadImpl(where, targets, out);
}

void IntentRing::Clear(std::uint32_t slot) noexcept {
  if (slot >= slots_) return;
  AtomicU64(HeaderOf(Slot(slot))->state).store(kFree, std::memory_order_release);
}

void IntentRing::Journaled(std::uint32_t slot, std::uint64_t journal_seq) noexcept {
  if (slot >= slots_) return;
  if (journal_seq == 0) {
    Clear(slot);
    return;
  }
  AtomicU64(HeaderOf(Slot(slot))->journal_seq).store(journal_seq, std::memory_order_release);
  AtomicU64(journaled_pending_).fetch_add(1, std::memory_order_release);
}

std::size_t IntentRing::ClearFlushed(std::uint64_t flushed_seq) noexcept {
  if (AtomicU64(journaled_pending_).load(std::memory_order_acquire) == 0) return 0;
  std::size_t cleared = 0;
  for (std::uint32_t i = 0; i < slots_; ++i) {
    SlotHeader* h = HeaderOf(Slot(i));
    AtomicU64 state(h->state);
    std::uint64_t s = state.load(std::memory_order_acquire);
    if (s == kFree || s == kWriting) continue;
    const std::uint64_t j = AtomicU64(h->journal_seq).load(std::memory_order_acquire);
    if (j == 0 || j > flushed_seq) continue;
    // Only this thread frees a journaled slot, so the CAS fails only if the
    // slot was never journaled under this sequence (a stale read).
    if (state.compare_exchange_strong(s, kFree, std::memory_order_release, std::memory_order_relaxed)) ++cleared;
  }
  if (cleared) AtomicU64(journaled_pending_).fetch_sub(cleared, std::memory_order_acq_rel);
  return cleared;
}

std::vector<Intent> IntentRing::Live(std::size_t* unreadable) const {
  std::vector<Intent> out;
  std::size_t bad_count = 0;
  for (std::uint32_t i = 0; i < slots_; ++i) {
    const std::byte* slot = Slot(i);
    // Copy the slot first: nothing writes during start-up, but a reader
    // never parses memory another thread may change under it.
    std::byte copy[kSlotSize];
    std::memcpy(copy, slot, kSlotSize);
    bool bad = false;
    if (auto in = intent_format::ParseSlot(std::span<const std::byte>(copy, kSlotSize), &bad)) out.push_back(*std::move(in));
    if (bad) ++bad_count;
  }
  if (unreadable) *unreadable = bad_count;
  return out;
}

void IntentRing::ClearAll() noexcept {
  for (std::uint32_t i = 0; i < slots_; ++i) {
    SlotHeader* h = HeaderOf(Slot(i));
    AtomicU64(h->journal_seq).store(0, std::memory_order_relaxed);
    AtomicU64(h->state).store(kFree, std::memory_order_release);
  }
  AtomicU64(journaled_pending_).store(0, std::memory_order_release);
}

std::uint64_t IntentRing::overflows() const noexcept {
  return AtomicU64(const_cast<std::uint64_t&>(overflows_)).load(std::memory_order_relaxed);
}

void IntentRing::CountOverflow() noexcept { AtomicU64(overflows_).fetch_add(1, std::memory_order_relaxed); }

// ------------------------------------------------------------------ start-up

absl::StatusOr<std::size_t> ReconcileIntents(IntentRing& ring, routing::Journal& journal) {
  std::size_t unreadable = 0;
  const std::vector<Intent> live = ring.Live(&unreadable);
  if (unreadable > 0)
    LogError("intent record: slots unreadable (a machine crash tears the unsynced ring); what they named is not "
             "known: run verify on the migrating routes",
             {{"path", ring.path()}, {"slots", static_cast<std::int64_t>(unreadable)}});
  for (const Intent& in : live) {
    routing::JournalEntry e;
    e.at = absl::Now();
    e.migration_id = in.migration_id;
    e.route = in.route;
    e.backend = in.backend;
    e.database = in.database;
    e.kind = routing::JournalKind::kDropped;
    e.statement = "(in flight when turnout stopped: recorded by the intent record)";
    e.targets = in.targets;
    e.primary_outcome = "unknown";
    e.secondary_outcome = in.journal_seq != 0
                              ? absl::StrCat("turnout stopped; journaled as entry ", in.journal_seq,
                                             ", possibly not on disk")
                              : "turnout stopped between the two sides; repair copies what it names";
    journal.Append(std::move(e));
  }
  // Durable in the journal before the ring forgets them.
  if (!live.empty()) {
    if (auto st = journal.Flush(); !st.ok()) return st;
  }
  ring.ClearAll();
  ring.set_recovered(live.size());
  return live.size();
}

}  // namespace turnout::proxy
