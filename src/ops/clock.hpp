// The two clocks the gateway reads: wall time in milliseconds (envelope `ts`, session and
// heartbeat bookkeeping) and a monotonic clock in nanoseconds (latency, rate limiting).
#pragma once

#include <chrono>
#include <cstdint>

namespace odin {

inline int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace odin
