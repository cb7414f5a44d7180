// Latency histogram: snapshots, quantiles and the Prometheus exposition (see histogram.hpp).
#include "ops/histogram.hpp"

#include <cmath>

#include "core/json.hpp"

namespace odin::ops {

namespace {

// The fine bucket layout must make the documented `le` mapping exact: no bound may coincide
// with a fine-bucket lower bound (then "lo < le" and "lo <= le" would differ).
constexpr bool le_bounds_fall_inside_buckets() {
  for (uint64_t le : kPrometheusLeNanos) {
    if (HistogramSnapshot::bucket_lower(HistogramSnapshot::bucket_of(le)) == le) return false;
  }
  return true;
}
static_assert(le_bounds_fall_inside_buckets());
static_assert(HistogramSnapshot::bucket_of(1000) < HistogramSnapshot::bucket_of(1024));
static_assert(HistogramSnapshot::bucket_lower(kHistogramOverflowBucket) ==
              uint64_t{1} << kHistogramTopShift);

// Appends `ns` as seconds with all nine decimals: exact, no floating-point rounding.
void append_seconds(std::string& out, uint64_t ns) {
  core::json::append_uint(out, ns / 1'000'000'000);
  char frac[9];
  uint64_t rest = ns % 1'000'000'000;
  for (int i = 8; i >= 0; --i) {
    frac[i] = static_cast<char>('0' + rest % 10);
    rest /= 10;
  }
  out.push_back('.');
  out.append(frac, sizeof(frac));
}

// HELP text escaping of the text format: backslash and line feed.
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

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
  q = std::clamp(std::isnan(q) ? 0.0 : q, 0.0, 1.0);
  const auto rank = std::max<uint64_t>(
      1, std::min(total, static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return std::min(bucket_upper(i), max_ns);
  }
  return max_ns;  // not reached: seen ends at total >= rank
}

HistogramSnapshot LatencyHistogram::snapshot() const {
  HistogramSnapshot s;
  uint64_t total = 0;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    total += s.counts[i];
  }
  s.count = total;
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  s.max_ns = max_ns_.load(std::memory_order_relaxed);
  return s;
}

void append_prometheus_histogram(std::string& out, std::string_view name, std::string_view help,
                                 const HistogramSnapshot& snapshot) {
  out.append("# HELP ").append(name).push_back(' ');
  append_help(out, help);
  out.append("\n# TYPE ").append(name).append(" histogram\n");

  // One pass: fine buckets 0..bucket_of(le - 1) are exactly those with lower bound < le.
  uint64_t cumulative = 0;
  size_t next = 0;
  for (size_t b = 0; b < kPrometheusLeNanos.size(); ++b) {
    const size_t last = HistogramSnapshot::bucket_of(kPrometheusLeNanos[b] - 1);
    for (; next <= last; ++next)
      cumulative += snapshot.counts[next];
    out.append(name).append("_bucket{le=\"").append(kPrometheusLeLabels[b]).append("\"} ");
    core::json::append_uint(out, cumulative);
    out.push_back('\n');
  }
  for (; next < kHistogramBuckets; ++next)
    cumulative += snapshot.counts[next];
  out.append(name).append("_bucket{le=\"+Inf\"} ");
  core::json::append_uint(out, cumulative);
  out.push_back('\n');
  out.append(name).append("_sum ");
  append_seconds(out, snapshot.sum_ns);
  out.push_back('\n');
  out.append(name).append("_count ");
  core::json::append_uint(out, cumulative);
  out.push_back('\n');
}

}  // namespace odin::ops
