// Small helpers the benchmark tools (loadclient, publisher, blaster) share: clocks, decimal
// formatting and the open-files limit. Header-only: each tool is one .cpp built on its own.
#pragma once

#include <sys/resource.h>
#include <time.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>

namespace bench {

inline constexpr int64_t kNsPerSec = 1'000'000'000;

// Wall clock: what payload timestamps ("t") and latencies are measured in across processes.
inline int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

// For pacing and durations within one process: never jumps.
inline int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

inline size_t decimal_digits(uint64_t v) {
  size_t d = 1;
  while (v >= 10) {
    v /= 10;
    ++d;
  }
  return d;
}

inline void append_decimal(std::string& s, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

// Raises the soft open-files limit to the hard one (20,000 on these machines; it cannot go
// further) and returns the limit in force.
inline long raise_nofile_limit(const char* tool) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      std::fprintf(stderr, "%s: cannot raise RLIMIT_NOFILE\n", tool);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(rl.rlim_cur);
}

}  // namespace bench
