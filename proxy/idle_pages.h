#pragma once
// Memory an idle session does not need: the whole pages of its receive
// buffers' free space, handed back to the kernel (madvise MADV_DONTNEED)
// once the session has been quiet for kReleaseIdlePagesAfter. The buffer
// keeps its address space; the next read that reaches those pages faults
// in zeroed ones. A busy session never pays for it.
//
// Safe while a read is pending on the buffer: Asio's reactor performs the
// read itself, on the session's thread, once the socket is readable, never
// while the session's own code runs. (An io_uring backend, where the
// kernel writes into a pending read's buffer at any time, would not allow
// it.)

#include <chrono>

#include "protocol/io_buffer.h"

namespace turnout::proxy {

inline constexpr auto kReleaseIdlePagesAfter = std::chrono::seconds(5);

void ReleaseIdlePages(protocol::IoBuffer& buffer) noexcept;

}  // namespace turnout::proxy
