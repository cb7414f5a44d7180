// Process CPU and memory, sampled once a second from /proc, compared with WS_CPU_LIMIT and
// WS_MEMORY_LIMIT. Readers on any thread see the last sample (atomics).
#pragma once

#include <atomic>
#include <cstdint>

namespace odin::guard {

class ResourceMonitor {
 public:
  // `cpu_limit` in cores and `memory_limit` in bytes; 0 means "what this machine / cgroup has".
  void configure(double cpu_limit, uint64_t memory_limit);
  // Takes a sample (call about once a second from one thread).
  void sample();

  double cpu_limit() const { return cpu_limit_; }
  uint64_t memory_limit() const { return memory_limit_; }
  // Process CPU over the last interval, as a percentage of cpu_limit.
  double cpu_percent() const { return cpu_percent_.load(std::memory_order_relaxed); }
  uint64_t rss_bytes() const { return rss_bytes_.load(std::memory_order_relaxed); }
  double memory_percent() const {
    return memory_limit_ ? 100.0 * static_cast<double>(rss_bytes()) / memory_limit_ : 0.0;
  }

  // Reads this process's resident set size from /proc/self/statm.
  static uint64_t read_rss_bytes();
  // Process CPU time (user + system) in seconds from /proc/self/stat.
  static double read_cpu_seconds();
  // CPUs this process may run on (affinity, and the cgroup's cpu.max when it is lower).
  static double available_cpus();
  // Physical memory, or the cgroup's memory.max when it is lower.
  static uint64_t available_memory();

 private:
  double cpu_limit_ = 1.0;
  uint64_t memory_limit_ = 0;
  double last_cpu_seconds_ = 0.0;
  int64_t last_sample_ns_ = 0;
  std::atomic<double> cpu_percent_{0.0};
  std::atomic<uint64_t> rss_bytes_{0};
};

}  // namespace odin::guard
