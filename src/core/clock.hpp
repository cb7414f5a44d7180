// The clocks the gateway reads. Wall time only for what is a point in calendar time: envelope
// `ts` fields and token times (`exp`, `nbf`). Every duration (timeouts, TTLs, deadlines, rate
// limits, latency, uptime) is measured on the monotonic clock, so a step of the wall clock (NTP,
// an operator, a VM resumed) neither closes every client nor disables every timeout.
#pragma once

#include <chrono>
#include <cstdint>

namespace odin::core {

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

// Monotonic milliseconds (an arbitrary origin, never 0 once the system is up): for durations.
inline int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace odin::core
