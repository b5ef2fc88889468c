#include "tests/support/allocation_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

// GCC 12 sees the replaced new/delete pair inlined and warns that free()
// gets a pointer from operator new: here that is exactly the pairing.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace turnout::testing {

std::size_t AllocationCount() { return g_allocations.load(std::memory_order_relaxed); }

}  // namespace turnout::testing
