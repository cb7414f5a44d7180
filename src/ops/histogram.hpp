// Latency histogram with HDR-style log-linear buckets (1 us to ~137 s, 16 sub-buckets per power
// of two: <= 6.25% relative error). Written by one thread, read by any (relaxed atomics; the
// writer uses load+store, no locked instruction).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace odin {

inline constexpr int kHistogramSubBits = 4;    // 16 sub-buckets
inline constexpr int kHistogramPowers = 28;    // 2^10 ns .. 2^37 ns
inline constexpr int kHistogramMinShift = 10;  // values below 1024 ns
inline constexpr size_t kHistogramBuckets = (kHistogramPowers + 1) << kHistogramSubBits;

struct HistogramSnapshot {
  std::array<uint64_t, kHistogramBuckets> counts{};
  uint64_t count = 0;
  uint64_t sum_ns = 0;
  uint64_t max_ns = 0;

  void merge(const HistogramSnapshot& other);
  // Upper bound (ns) of the bucket holding the q-th value (0 when empty).
  uint64_t quantile_ns(double q) const;
  static size_t bucket_of(uint64_t ns);
  static uint64_t bucket_lower(size_t bucket);
  static uint64_t bucket_upper(size_t bucket);  // exclusive
};

class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    bump(counts_[HistogramSnapshot::bucket_of(ns)], 1);
    bump(count_, 1);
    bump(sum_ns_, ns);
    if (ns > max_ns_.load(std::memory_order_relaxed)) max_ns_.store(ns, std::memory_order_relaxed);
  }
  HistogramSnapshot snapshot() const;

 private:
  static void bump(std::atomic<uint64_t>& a, uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kHistogramBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

// Prometheus exposition with fixed `le` bounds in seconds. A fine bucket counts under an `le`
// only when its whole range is below it (its exclusive upper bound <= le), so counts are never
// claimed under a bound they may exceed.
void append_prometheus_histogram(std::string& out, std::string_view name, std::string_view help,
                                 const HistogramSnapshot& snapshot);

}  // namespace odin
