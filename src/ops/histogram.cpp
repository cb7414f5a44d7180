// Latency histogram (see histogram.hpp).
#include "ops/histogram.hpp"

#include <bit>
#include <cmath>

#include <fmt/format.h>

namespace odin {

size_t HistogramSnapshot::bucket_of(uint64_t ns) {
  // Bucket group 0 covers [0, 1024) linearly; group g >= 1 covers [2^(9+g), 2^(10+g)).
  if (ns < (uint64_t{1} << kHistogramMinShift)) {
    return static_cast<size_t>(ns >> (kHistogramMinShift - kHistogramSubBits));
  }
  const int top = 63 - std::countl_zero(ns);  // >= 10
  int group = top - kHistogramMinShift + 1;
  if (group > kHistogramPowers) return kHistogramBuckets - 1;
  const uint64_t sub = (ns >> (top - kHistogramSubBits)) & ((1u << kHistogramSubBits) - 1);
  return (static_cast<size_t>(group) << kHistogramSubBits) + sub;
}

uint64_t HistogramSnapshot::bucket_lower(size_t bucket) {
  const size_t group = bucket >> kHistogramSubBits;
  const uint64_t sub = bucket & ((1u << kHistogramSubBits) - 1);
  if (group == 0) return sub << (kHistogramMinShift - kHistogramSubBits);
  const int top = static_cast<int>(group) + kHistogramMinShift - 1;
  return (uint64_t{1} << top) + (sub << (top - kHistogramSubBits));
}

uint64_t HistogramSnapshot::bucket_upper(size_t bucket) {
  if (bucket + 1 >= kHistogramBuckets) return UINT64_MAX;
  return bucket_lower(bucket + 1);
}

void HistogramSnapshot::merge(const HistogramSnapshot& other) {
  for (size_t i = 0; i < kHistogramBuckets; ++i)
    counts[i] += other.counts[i];
  count += other.count;
  sum_ns += other.sum_ns;
  max_ns = std::max(max_ns, other.max_ns);
}

uint64_t HistogramSnapshot::quantile_ns(double q) const {
  uint64_t total = 0;
  for (uint64_t c : counts)
    total += c;
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    seen += counts[i];
    if (seen >= std::max<uint64_t>(rank, 1))
      return std::min(bucket_upper(i), max_ns ? max_ns : bucket_upper(i));
  }
  return max_ns;
}

HistogramSnapshot LatencyHistogram::snapshot() const {
  HistogramSnapshot s;
  for (size_t i = 0; i < kHistogramBuckets; ++i)
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  s.max_ns = max_ns_.load(std::memory_order_relaxed);
  return s;
}

void append_prometheus_histogram(std::string& out, std::string_view name, std::string_view help,
                                 const HistogramSnapshot& snapshot) {
  static constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t total = 0;
  for (uint64_t c : snapshot.counts)
    total += c;
  for (double le : kBounds) {
    const auto le_ns = static_cast<uint64_t>(std::llround(le * 1e9));
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kHistogramBuckets; ++i) {
      if (HistogramSnapshot::bucket_upper(i) <= le_ns) cumulative += snapshot.counts[i];
    }
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, le, cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, total);
  out += fmt::format("{}_sum {:.9f}\n", name, static_cast<double>(snapshot.sum_ns) / 1e9);
  out += fmt::format("{}_count {}\n", name, total);
}

}  // namespace odin
