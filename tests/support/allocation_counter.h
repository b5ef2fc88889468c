#pragma once
// Heap allocations made by the test binary so far (all threads). Linking
// this in replaces the global operator new/delete with counting ones, so a
// test can assert that a hot path allocates nothing:
//
//   const std::size_t before = AllocationCount();
//   ... the work ...
//   EXPECT_EQ(AllocationCount() - before, 0u);

#include <cstddef>

namespace turnout::testing {

std::size_t AllocationCount();

}  // namespace turnout::testing
