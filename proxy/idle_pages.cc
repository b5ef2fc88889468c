#include "proxy/idle_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace turnout::proxy {

void ReleaseIdlePages(protocol::IoBuffer& buffer) noexcept {
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto free = buffer.FreeSpace();
  const auto begin = (reinterpret_cast<std::uintptr_t>(free.data()) + page - 1) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(free.data()) + free.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace turnout::proxy
