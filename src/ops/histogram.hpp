// Latency histogram for the hot path (e.g. ingest -> write): HDR-style log-linear buckets from
// 0 to 2^37 ns (~137 s) plus an overflow bucket, recorded in O(1) with no allocation and no
// locked instruction, scraped by other threads as a plain snapshot, and exposed to Prometheus
// with fixed `le` bounds.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace odin::ops {

// Bucket layout (as in HdrHistogram): [0, 2^10 ns) is split linearly into 32 buckets of 32 ns;
// then every power of two [2^k, 2^(k+1)), k = 10..36, into 16 buckets of 2^(k-4) ns. A value in
// a bucket is at most one bucket width below the bucket's upper bound, and that width is at most
// 1/16 of the value (6.25%) from 1 us up (3.2% at 1 us itself). Values >= 2^37 ns go to one
// overflow bucket whose upper bound is reported as the largest value recorded.
inline constexpr int kHistogramSubBits = 4;  // 16 sub-buckets per power of two
inline constexpr int kHistogramLinearShift = 10;
inline constexpr int kHistogramTopShift = 37;  // 2^37 ns = 137.4 s
inline constexpr size_t kHistogramOverflowBucket =
    static_cast<size_t>(kHistogramTopShift - kHistogramLinearShift + 2) << kHistogramSubBits;
inline constexpr size_t kHistogramBuckets = kHistogramOverflowBucket + 1;  // 465

struct HistogramSnapshot {
  std::array<uint64_t, kHistogramBuckets> counts{};
  uint64_t count = 0;   // sum of counts
  uint64_t sum_ns = 0;  // sum of the recorded values
  uint64_t max_ns = 0;  // largest recorded value

  void merge(const HistogramSnapshot& other);

  // An upper bound (ns) of the q-th value, q in [0, 1] (clamped): the exclusive upper bound of
  // the bucket that holds the ceil(q * count)-th smallest value (at least the first), capped at
  // max_ns. So the true value v satisfies v <= result <= v * 1.0625 (+32 ns below 1 us).
  // 0 when empty.
  uint64_t quantile_ns(double q) const;

  // Index of the bucket holding `ns`. Branch-free: one clz, a shift, an add and a min.
  static constexpr size_t bucket_of(uint64_t ns) {
    // Values below 2^10 behave as if in [2^9, 2^10): `magnitude` 0, 32 buckets of 2^5 via
    // `ns >> 5`; above that, `ns >> (top - 4)` lies in [16, 32) and lands after the previous
    // power's 16 buckets.
    constexpr uint64_t kFloor = uint64_t{1} << (kHistogramLinearShift - 1);
    const int top = 63 - std::countl_zero(ns | kFloor);
    const int magnitude = top - (kHistogramLinearShift - 1);
    const size_t index = (static_cast<size_t>(magnitude) << kHistogramSubBits) +
                         static_cast<size_t>(ns >> (top - kHistogramSubBits));
    return std::min(index, kHistogramOverflowBucket);
  }
  // Smallest value held by `bucket`.
  static constexpr uint64_t bucket_lower(size_t bucket) {
    constexpr size_t kSub = size_t{1} << kHistogramSubBits;
    if (bucket < 2 * kSub)
      return uint64_t{bucket} << (kHistogramLinearShift - 1 - kHistogramSubBits);
    const size_t magnitude = bucket / kSub - 1;  // bucket in [(m + 1) * 16, (m + 2) * 16)
    const int top = static_cast<int>(magnitude) + kHistogramLinearShift - 1;
    return uint64_t{bucket - magnitude * kSub} << (top - kHistogramSubBits);
  }
  // Exclusive upper bound of `bucket`; UINT64_MAX for the overflow bucket.
  static constexpr uint64_t bucket_upper(size_t bucket) {
    return bucket >= kHistogramOverflowBucket ? UINT64_MAX : bucket_lower(bucket + 1);
  }
};

// Written by exactly one thread (record), read by any (snapshot). Each counter is a relaxed
// atomic that the writer updates with a load and a store, not a read-modify-write, so recording
// costs no locked instruction. A snapshot taken during recording may see a value's bucket count
// and not yet its sum (or the reverse); `count` is derived from the bucket counts so the
// Prometheus +Inf bucket and _count always agree.
class LatencyHistogram {
 public:
  void record(uint64_t ns) {
    bump(counts_[HistogramSnapshot::bucket_of(ns)], 1);
    bump(sum_ns_, ns);
    if (ns > max_ns_.load(std::memory_order_relaxed)) max_ns_.store(ns, std::memory_order_relaxed);
  }
  HistogramSnapshot snapshot() const;

 private:
  static void bump(std::atomic<uint64_t>& a, uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kHistogramBuckets> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

// The `le` bounds (seconds) of the Prometheus exposition, as printed, and in nanoseconds.
inline constexpr std::array<std::string_view, 16> kPrometheusLeLabels = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};
inline constexpr std::array<uint64_t, 16> kPrometheusLeNanos = {
    100'000,       250'000,       500'000,       1'000'000,     2'500'000,   5'000'000,
    10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000, 500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

// Appends a Prometheus text-format histogram: # HELP, # TYPE, cumulative `name_bucket{le=...}`
// for each kPrometheusLeLabels bound then +Inf, `name_sum` (seconds, exact to the ns) and
// `name_count`. Mapping the fine buckets onto an `le`: a bucket [lo, hi) counts under `le` when
// lo < le, so a bucket straddling `le` counts under it, and as above it only when lo >= le. The
// count under `le` therefore includes every value up to `le` and may include values up to one
// fine bucket (<= 6.25%) above it. (None of the 16 bounds is a fine-bucket boundary, so every one
// of them is straddled; exact ties cannot occur.) `name` must be a valid metric name; `help` is
// escaped as the format requires.
void append_prometheus_histogram(std::string& out, std::string_view name, std::string_view help,
                                 const HistogramSnapshot& snapshot);

}  // namespace odin::ops
