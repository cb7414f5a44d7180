// Unit tests of the replay ring, the token bucket, the JSON writers, channel names and the
// latency histogram.
#include <gtest/gtest.h>

#include <memory>

#include "hub/channel_name.hpp"
#include "ops/histogram.hpp"
#include "ops/json.hpp"
#include "session/replay_ring.hpp"
#include "session/token_bucket.hpp"

namespace odin {
namespace {

// A move-only handle that counts live instances.
struct Counted {
  static inline int live = 0;
  int value = -1;
  Counted() = default;
  explicit Counted(int v) : value(v) { ++live; }
  Counted(Counted&& o) noexcept : value(o.value) { o.value = -1; }
  Counted& operator=(Counted&& o) noexcept {
    if (value >= 0) --live;
    value = o.value;
    o.value = -1;
    return *this;
  }
  ~Counted() {
    if (value >= 0) --live;
  }
};

TEST(ReplayRing, KeepsTheLastCapacityInOrder) {
  Counted::live = 0;
  {
    ReplayRing<Counted> ring(5);
    EXPECT_TRUE(ring.empty());
    for (int seq = 1; seq <= 12; ++seq)
      ring.push(static_cast<uint64_t>(seq), Counted(seq));
    EXPECT_EQ(ring.size(), 5u);
    EXPECT_EQ(ring.first_seq(), 8u);
    EXPECT_EQ(ring.last_seq(), 12u);
    EXPECT_EQ(Counted::live, 5);  // evicted entries were destroyed
    std::vector<int> seen;
    EXPECT_EQ(ring.for_range(1, 100,
                             [&](uint64_t seq, const Counted& c) {
                               EXPECT_EQ(static_cast<int>(seq), c.value);
                               seen.push_back(c.value);
                             }),
              5u);
    EXPECT_EQ(seen, (std::vector<int>{8, 9, 10, 11, 12}));
    seen.clear();
    ring.for_range(9, 10, [&](uint64_t, const Counted& c) { seen.push_back(c.value); });
    EXPECT_EQ(seen, (std::vector<int>{9, 10}));
    EXPECT_EQ(ring.for_range(13, 20, [](uint64_t, const Counted&) {}), 0u);
    EXPECT_EQ(ring.for_range(1, 7, [](uint64_t, const Counted&) {}), 0u);
    ring.push(20, Counted(20));  // a jump starts over
    EXPECT_EQ(ring.size(), 1u);
    EXPECT_EQ(ring.first_seq(), 20u);
    EXPECT_EQ(Counted::live, 1);
    ring.clear();
    EXPECT_EQ(Counted::live, 0);
  }
  EXPECT_EQ(Counted::live, 0);
  ReplayRing<Counted> none(0);
  none.push(1, Counted(1));
  EXPECT_TRUE(none.empty());
  EXPECT_LE(sizeof(ReplayRing<void*>), 32u);
}

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(10, 100);
  int64_t t = 1'000'000'000;
  int taken = 0;
  while (b.try_take(t))
    ++taken;
  EXPECT_EQ(taken, 100);
  EXPECT_FALSE(b.try_take(t));
  t += 100'000'000;  // 0.1 s: one token
  EXPECT_TRUE(b.try_take(t));
  EXPECT_FALSE(b.try_take(t));
  t += 3'600'000'000'000;  // an hour: full, not more
  EXPECT_TRUE(b.full(t));
  taken = 0;
  while (b.try_take(t))
    ++taken;
  EXPECT_EQ(taken, 100);
  EXPECT_FALSE(b.try_take(t - 1'000'000'000));  // the clock going back adds nothing
  EXPECT_LE(sizeof(TokenBucket), 24u);
}

TEST(Json, StringsAndNumbers) {
  std::string out;
  json::append_string(out, "a\"b\\c\n\t\x01\x1f\xC3\xA9");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\xC3\xA9\"");
  for (uint64_t v : {uint64_t{0}, uint64_t{9}, uint64_t{10}, UINT64_MAX}) {
    std::string s;
    json::append_uint(s, v);
    EXPECT_EQ(s, std::to_string(v));
    EXPECT_EQ(json::uint_digits(v), s.size());
  }
  std::string neg;
  json::append_int(neg, -42);
  EXPECT_EQ(neg, "-42");
  std::string d;
  json::append_double(d, 1.5, 2);
  EXPECT_EQ(d, "1.50");
}

TEST(ChannelName, Rules) {
  EXPECT_FALSE(is_valid_channel_name(""));
  EXPECT_TRUE(is_valid_channel_name("a"));
  EXPECT_TRUE(is_valid_channel_name(std::string(128, 'x')));
  EXPECT_FALSE(is_valid_channel_name(std::string(129, 'x')));
  EXPECT_TRUE(is_valid_channel_name("AZaz09_-.:"));
  for (const char* bad : {"a b", "x/y", "a*", "a>", "\xC3\xA9", "tab\t"}) {
    EXPECT_FALSE(is_valid_channel_name(bad)) << bad;
  }
  EXPECT_FALSE(is_valid_channel_name(std::string_view("a\0b", 3)));
}

TEST(Histogram, QuantilesWithinBucketError) {
  LatencyHistogram h;
  for (uint64_t i = 1; i <= 10000; ++i)
    h.record(i * 1000);  // 1 us .. 10 ms uniform
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 10000u);
  auto near = [](double got, double want) { return std::abs(got - want) / want <= 0.07; };
  EXPECT_TRUE(near(static_cast<double>(s.quantile_ns(0.5)), 5e6)) << s.quantile_ns(0.5);
  EXPECT_TRUE(near(static_cast<double>(s.quantile_ns(0.99)), 9.9e6)) << s.quantile_ns(0.99);
  EXPECT_EQ(s.max_ns, 10'000'000u);
  for (size_t b = 1; b < kHistogramBuckets; ++b) {
    ASSERT_LT(HistogramSnapshot::bucket_lower(b - 1), HistogramSnapshot::bucket_lower(b));
    EXPECT_EQ(HistogramSnapshot::bucket_of(HistogramSnapshot::bucket_lower(b)), b);
  }
  HistogramSnapshot twice = s;
  twice.merge(s);
  EXPECT_EQ(twice.count, 20000u);
}

TEST(Histogram, PrometheusTextIsCumulative) {
  LatencyHistogram h;
  h.record(50'000);         // 50 us
  h.record(2'000'000);      // 2 ms
  h.record(3'000'000'000);  // 3 s
  std::string out;
  append_prometheus_histogram(out, "x_seconds", "help", h.snapshot());
  EXPECT_NE(out.find("# TYPE x_seconds histogram"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.0001\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.0025\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"2.5\"} 2\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"5\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("x_seconds_count 3\n"), std::string::npos);
}

}  // namespace
}  // namespace odin
