// Unit tests of the latency histogram: bucket layout and error bound, quantiles of known
// distributions, merge, the single-writer/any-reader contract, and the Prometheus text (parsed
// back and checked against a brute-force count).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ops/histogram.hpp"

namespace odin {
namespace {

using HS = ops::HistogramSnapshot;

TEST(HistogramBuckets, AreContiguousAndOrdered) {
  EXPECT_EQ(HS::bucket_lower(0), 0u);
  for (size_t b = 0; b + 1 < ops::kHistogramBuckets; ++b) {
    ASSERT_LT(HS::bucket_lower(b), HS::bucket_lower(b + 1)) << b;
    ASSERT_EQ(HS::bucket_upper(b), HS::bucket_lower(b + 1)) << b;
    ASSERT_EQ(HS::bucket_of(HS::bucket_lower(b)), b) << b;
    ASSERT_EQ(HS::bucket_of(HS::bucket_upper(b) - 1), b) << b;
  }
  EXPECT_EQ(HS::bucket_upper(ops::kHistogramOverflowBucket), UINT64_MAX);
  EXPECT_EQ(HS::bucket_of(UINT64_MAX), ops::kHistogramOverflowBucket);
  EXPECT_EQ(HS::bucket_of(uint64_t{1} << 37), ops::kHistogramOverflowBucket);
  EXPECT_EQ(HS::bucket_of((uint64_t{1} << 37) - 1), ops::kHistogramOverflowBucket - 1);
  // Covers 100 s with fine buckets.
  EXPECT_LT(HS::bucket_of(100'000'000'000), ops::kHistogramOverflowBucket);
}

TEST(HistogramBuckets, RelativeWidthIsAtMostOneSixteenthFromOneMicrosecond) {
  for (size_t b = HS::bucket_of(1000); b < ops::kHistogramOverflowBucket; ++b) {
    const uint64_t lo = std::max<uint64_t>(HS::bucket_lower(b), 1000);
    const uint64_t width = HS::bucket_upper(b) - HS::bucket_lower(b);
    ASSERT_LE(static_cast<double>(width) / static_cast<double>(lo), 1.0 / 16) << b;
  }
}

TEST(HistogramBuckets, EveryValueLandsInsideItsBucket) {
  auto check = [](uint64_t v) {
    const size_t b = HS::bucket_of(v);
    ASSERT_LT(b, ops::kHistogramBuckets);
    ASSERT_LE(HS::bucket_lower(b), v) << v;
    if (b != ops::kHistogramOverflowBucket) {
      ASSERT_LT(v, HS::bucket_upper(b)) << v;
    }
  };
  for (uint64_t v = 0; v < 200'000; ++v)
    check(v);
  for (int k = 0; k < 64; ++k) {
    const uint64_t p = uint64_t{1} << k;
    check(p - 1);
    check(p);
    check(p + 1);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200'000; ++i)
    check(rng() >> (rng() % 64));
}

TEST(LatencyHistogram, RecordsCountSumAndMax) {
  ops::LatencyHistogram h;
  EXPECT_EQ(h.snapshot().count, 0u);
  EXPECT_EQ(h.snapshot().quantile_ns(0.5), 0u) << "empty";
  h.record(0);
  h.record(1500);
  h.record(7'000'000);
  h.record(1500);
  const HS s = h.snapshot();
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.sum_ns, 7'003'000u);
  EXPECT_EQ(s.max_ns, 7'000'000u);
  EXPECT_EQ(s.counts[HS::bucket_of(1500)], 2u);
  EXPECT_EQ(s.counts[0], 1u);
  uint64_t total = 0;
  for (uint64_t c : s.counts)
    total += c;
  EXPECT_EQ(total, 4u);
}

// The exact q-th value (same rank rule as quantile_ns) of sorted values.
uint64_t exact_quantile(const std::vector<uint64_t>& sorted, double q) {
  const auto n = static_cast<double>(sorted.size());
  const auto rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * n)));
  return sorted[std::min(rank, sorted.size()) - 1];
}

void expect_quantiles_within_error(std::vector<uint64_t> values, const char* what) {
  ops::LatencyHistogram h;
  for (uint64_t v : values)
    h.record(v);
  std::sort(values.begin(), values.end());
  const HS s = h.snapshot();
  for (double q : {0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0}) {
    const uint64_t want = exact_quantile(values, q);
    const uint64_t got = s.quantile_ns(q);
    EXPECT_GE(got, want) << what << " q=" << q << ": an upper bound";
    EXPECT_LE(static_cast<double>(got), static_cast<double>(want) * 1.0625 + 1)
        << what << " q=" << q << " want " << want;
  }
  EXPECT_EQ(s.quantile_ns(1.0), values.back()) << "the top quantile is capped at the max";
}

TEST(LatencyHistogram, QuantilesOfKnownDistributionsWithinTheStatedError) {
  std::vector<uint64_t> uniform;
  for (uint64_t i = 1; i <= 10'000; ++i)
    uniform.push_back(i * 1000);  // 1 us .. 10 ms
  expect_quantiles_within_error(uniform, "uniform");

  std::mt19937_64 rng(42);
  std::vector<uint64_t> log_uniform;  // 1 us .. 100 s, equal weight per decade
  std::uniform_real_distribution<double> exponent(3, 11);
  for (int i = 0; i < 50'000; ++i)
    log_uniform.push_back(static_cast<uint64_t>(std::pow(10.0, exponent(rng))));
  expect_quantiles_within_error(log_uniform, "log-uniform");

  std::vector<uint64_t> exponential;  // mean 2 ms
  std::exponential_distribution<double> exp_dist(1.0 / 2e6);
  for (int i = 0; i < 50'000; ++i)
    exponential.push_back(1000 + static_cast<uint64_t>(exp_dist(rng)));
  expect_quantiles_within_error(exponential, "exponential");

  // The median of uniform 1 us .. 10 ms, against the textbook value.
  ops::LatencyHistogram h;
  for (uint64_t v : uniform)
    h.record(v);
  const double p50 = static_cast<double>(h.snapshot().quantile_ns(0.5));
  EXPECT_GE(p50, 5e6);
  EXPECT_LE(p50, 5e6 * 1.0625);
}

TEST(LatencyHistogram, QuantileEdges) {
  ops::LatencyHistogram h;
  h.record(3'000'000);
  const HS one = h.snapshot();
  EXPECT_EQ(one.quantile_ns(0.0), 3'000'000u);  // capped at max
  EXPECT_EQ(one.quantile_ns(-1.0), 3'000'000u);
  EXPECT_EQ(one.quantile_ns(2.0), 3'000'000u);
  EXPECT_EQ(one.quantile_ns(std::nan("")), 3'000'000u);

  ops::LatencyHistogram overflow;
  overflow.record(1000);
  overflow.record(500'000'000'000);  // 500 s: past the fine buckets
  const HS s = overflow.snapshot();
  EXPECT_EQ(s.counts[ops::kHistogramOverflowBucket], 1u);
  EXPECT_EQ(s.quantile_ns(1.0), 500'000'000'000u);
  EXPECT_EQ(s.quantile_ns(0.5), HS::bucket_upper(HS::bucket_of(1000)));
}

TEST(HistogramSnapshot, MergeEqualsRecordingEverythingInOne) {
  ops::LatencyHistogram a, b, both;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20'000; ++i) {
    const uint64_t v = rng() % 5'000'000'000;
    (i % 3 == 0 ? a : b).record(v);
    both.record(v);
  }
  HS merged = a.snapshot();
  merged.merge(b.snapshot());
  const HS want = both.snapshot();
  EXPECT_EQ(merged.counts, want.counts);
  EXPECT_EQ(merged.count, want.count);
  EXPECT_EQ(merged.sum_ns, want.sum_ns);
  EXPECT_EQ(merged.max_ns, want.max_ns);
  for (double q : {0.5, 0.9, 0.99})
    EXPECT_EQ(merged.quantile_ns(q), want.quantile_ns(q));

  HS empty;
  empty.merge(want);
  EXPECT_EQ(empty.counts, want.counts);
  EXPECT_EQ(empty.max_ns, want.max_ns);
}

// One writer, one concurrent reader: every snapshot is a plausible state (counts only grow) and
// the last one is exact.
TEST(LatencyHistogram, SnapshotsWhileOneThreadRecords) {
  ops::LatencyHistogram h;
  std::atomic<bool> done{false};
  constexpr uint64_t kValues = 2'000'000;
  std::thread writer([&] {
    for (uint64_t i = 0; i < kValues; ++i)
      h.record((i % 1000) * 1000);
    done.store(true, std::memory_order_release);
  });
  HS previous;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  int snapshots = 0;
  while (!done.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline) {
    const HS s = h.snapshot();
    for (size_t i = 0; i < ops::kHistogramBuckets; ++i)
      ASSERT_GE(s.counts[i], previous.counts[i]);
    ASSERT_GE(s.count, previous.count);
    ASSERT_LE(s.count, kValues);
    previous = s;
    ++snapshots;
  }
  writer.join();
  const HS s = h.snapshot();
  EXPECT_EQ(s.count, kValues);
  EXPECT_EQ(s.sum_ns, (kValues / 1000) * (999 * 1000 / 2) * 1000);
  EXPECT_EQ(s.max_ns, 999'000u);
  EXPECT_GT(snapshots, 0);
}

// ---- Prometheus exposition ----

struct ParsedHistogram {
  std::vector<std::string> le;
  std::vector<uint64_t> cumulative;
  std::string sum;
  uint64_t count = 0;
  std::string help_line, type_line;
};

// Parses the text format back strictly: fails the test on any line it does not expect.
ParsedHistogram parse(const std::string& text, const std::string& name) {
  ParsedHistogram p;
  std::istringstream in(text);
  std::string line;
  int index = 0;
  while (std::getline(in, line)) {
    if (index == 0) {
      p.help_line = line;
    } else if (index == 1) {
      p.type_line = line;
    } else if (line.rfind(name + "_bucket{le=\"", 0) == 0) {
      const size_t start = name.size() + 12;
      const size_t close = line.find("\"} ", start);
      EXPECT_NE(close, std::string::npos) << line;
      p.le.push_back(line.substr(start, close - start));
      p.cumulative.push_back(std::stoull(line.substr(close + 3)));
    } else if (line.rfind(name + "_sum ", 0) == 0) {
      p.sum = line.substr(name.size() + 5);
    } else if (line.rfind(name + "_count ", 0) == 0) {
      p.count = std::stoull(line.substr(name.size() + 7));
    } else {
      ADD_FAILURE() << "unexpected line: " << line;
    }
    ++index;
  }
  EXPECT_EQ(text.back(), '\n');
  return p;
}

const std::vector<std::string> kLe = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                      "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                      "1",      "2.5",     "5",      "10",    "+Inf"};

TEST(PrometheusHistogram, ExactTextForASmallCase) {
  ops::LatencyHistogram h;
  h.record(50'000);         // 50 us
  h.record(2'000'000);      // 2 ms
  h.record(3'000'000'000);  // 3 s
  std::string out = "before\n";
  ops::append_prometheus_histogram(out, "x_seconds", "Some help.", h.snapshot());
  EXPECT_EQ(out,
            "before\n"
            "# HELP x_seconds Some help.\n"
            "# TYPE x_seconds histogram\n"
            "x_seconds_bucket{le=\"0.0001\"} 1\n"
            "x_seconds_bucket{le=\"0.00025\"} 1\n"
            "x_seconds_bucket{le=\"0.0005\"} 1\n"
            "x_seconds_bucket{le=\"0.001\"} 1\n"
            "x_seconds_bucket{le=\"0.0025\"} 2\n"
            "x_seconds_bucket{le=\"0.005\"} 2\n"
            "x_seconds_bucket{le=\"0.01\"} 2\n"
            "x_seconds_bucket{le=\"0.025\"} 2\n"
            "x_seconds_bucket{le=\"0.05\"} 2\n"
            "x_seconds_bucket{le=\"0.1\"} 2\n"
            "x_seconds_bucket{le=\"0.25\"} 2\n"
            "x_seconds_bucket{le=\"0.5\"} 2\n"
            "x_seconds_bucket{le=\"1\"} 2\n"
            "x_seconds_bucket{le=\"2.5\"} 2\n"
            "x_seconds_bucket{le=\"5\"} 3\n"
            "x_seconds_bucket{le=\"10\"} 3\n"
            "x_seconds_bucket{le=\"+Inf\"} 3\n"
            "x_seconds_sum 3.002050000\n"
            "x_seconds_count 3\n");
}

TEST(PrometheusHistogram, EmptyHistogramAndHelpEscaping) {
  std::string out;
  ops::append_prometheus_histogram(out, "e", "a\\b\nc", HS{});
  const ParsedHistogram p = parse(out, "e");
  EXPECT_EQ(p.help_line, "# HELP e a\\\\b\\nc");
  EXPECT_EQ(p.type_line, "# TYPE e histogram");
  EXPECT_EQ(p.le, kLe);
  for (uint64_t c : p.cumulative)
    EXPECT_EQ(c, 0u);
  EXPECT_EQ(p.sum, "0.000000000");
  EXPECT_EQ(p.count, 0u);
}

TEST(PrometheusHistogram, StraddlingBucketsCountUnderTheBound) {
  // le = 100 us falls inside the fine bucket [98304, 102400) ns.
  const size_t straddling = HS::bucket_of(100'000);
  ASSERT_LT(HS::bucket_lower(straddling), 100'000u);
  ASSERT_GT(HS::bucket_upper(straddling), 100'000u);
  ops::LatencyHistogram h;
  h.record(HS::bucket_lower(straddling) - 1);  // the bucket below: under
  h.record(100'000);                           // exactly le: under
  h.record(HS::bucket_upper(straddling) - 1);  // 102.399 us, same bucket: counted under too
  h.record(HS::bucket_upper(straddling));      // next bucket, lower bound >= le: above
  std::string out;
  ops::append_prometheus_histogram(out, "s", "h", h.snapshot());
  const ParsedHistogram p = parse(out, "s");
  ASSERT_EQ(p.le[0], "0.0001");
  EXPECT_EQ(p.cumulative[0], 3u);
  EXPECT_EQ(p.cumulative[1], 4u);
}

TEST(PrometheusHistogram, RandomDataMatchesABruteForceCount) {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> exponent(4, 10.5);  // 10 us .. ~30 s
  ops::LatencyHistogram a, b;
  std::vector<uint64_t> values;
  for (int i = 0; i < 30'000; ++i) {
    const auto v = static_cast<uint64_t>(std::pow(10.0, exponent(rng)));
    values.push_back(v);
    (i % 2 ? a : b).record(v);
  }
  values.push_back(200'000'000'000);  // 200 s: only in +Inf
  b.record(values.back());
  HS s = a.snapshot();
  s.merge(b.snapshot());

  std::string out;
  ops::append_prometheus_histogram(out, "ws_fanout_latency_seconds", "Fan-out latency.", s);
  const ParsedHistogram p = parse(out, "ws_fanout_latency_seconds");
  EXPECT_EQ(p.help_line, "# HELP ws_fanout_latency_seconds Fan-out latency.");
  EXPECT_EQ(p.type_line, "# TYPE ws_fanout_latency_seconds histogram");
  ASSERT_EQ(p.le, kLe);
  ASSERT_EQ(p.cumulative.size(), kLe.size());
  uint64_t sum = 0;
  for (uint64_t v : values)
    sum += v;
  for (size_t i = 0; i < kLe.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(p.cumulative[i], p.cumulative[i - 1]) << "not cumulative at " << kLe[i];
    }
    uint64_t want = 0;
    uint64_t strictly_below = 0;
    if (kLe[i] == "+Inf") {
      want = values.size();
      strictly_below = want;
    } else {
      const auto le_ns = static_cast<uint64_t>(std::llround(std::stod(kLe[i]) * 1e9));
      ASSERT_EQ(le_ns, ops::kPrometheusLeNanos[i]);
      for (uint64_t v : values) {
        // The documented rule: a value's fine bucket counts under le iff its lower bound < le.
        if (HS::bucket_lower(HS::bucket_of(v)) < le_ns) ++want;
        if (v <= le_ns) ++strictly_below;
      }
      // And what that means for the values: all those <= le, plus at most 6.25% above it.
      uint64_t within_error = 0;
      for (uint64_t v : values) {
        if (v <= le_ns || static_cast<double>(v) < static_cast<double>(le_ns) * 1.0625) {
          ++within_error;
        }
      }
      EXPECT_LE(p.cumulative[i], within_error) << kLe[i];
    }
    EXPECT_EQ(p.cumulative[i], want) << kLe[i];
    EXPECT_GE(p.cumulative[i], strictly_below) << kLe[i];
  }
  EXPECT_EQ(p.count, values.size());
  EXPECT_EQ(p.cumulative.back(), p.count);
  char sum_text[32];
  std::snprintf(sum_text, sizeof(sum_text), "%llu.%09llu",
                static_cast<unsigned long long>(sum / 1'000'000'000),
                static_cast<unsigned long long>(sum % 1'000'000'000));
  EXPECT_EQ(p.sum, sum_text);
}

}  // namespace
}  // namespace odin
