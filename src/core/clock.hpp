// The clocks the gateway reads. Wall time only for what is a point in calendar time: envelope
// `ts` fields and token times (`exp`, `nbf`). Every duration (timeouts, TTLs, deadlines, rate
// limits, latency, uptime) is measured on the monotonic clock, so a step of the wall clock (NTP,
// an operator, a VM resumed) neither closes every client nor disables every timeout.
#pragma once

#include <time.h>

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

// CPU time the calling thread has used, in ns: what a piece of work cost, unlike a steady_ns()
// difference, which also counts the time the thread waited for a core. A system call (the vDSO
// does not serve per-thread clocks): for work done once per message, never per delivery.
inline int64_t thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace odin::core
