// Unit tests of TokenBucket with explicit times: burst, refill rate, the cap, large jumps and a
// clock that goes backwards.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "core/token_bucket.hpp"

namespace odin {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;

int take_all(core::TokenBucket& b, const core::TokenBucketPolicy& p, int64_t now,
             int limit = 1'000'000) {
  int taken = 0;
  while (taken < limit && b.try_take(p, now))
    ++taken;
  return taken;
}

TEST(TokenBucket, IsSmall) {
  EXPECT_LE(sizeof(core::TokenBucket), 16u);
}

TEST(TokenBucket, StartsFull) {
  const core::TokenBucketPolicy p{10, 100};
  const core::TokenBucket b;
  EXPECT_TRUE(b.full(p, 0));
  EXPECT_TRUE(b.full(p, 5 * kSecond));
  EXPECT_DOUBLE_EQ(b.tokens(p, 0), 100.0);
}

TEST(TokenBucket, BurstAllowsExactlyBurstImmediateTakes) {
  struct Case {
    double burst;
    int takes;
  };
  for (const Case c : {Case{1, 1}, Case{2, 2}, Case{100, 100}, Case{2.5, 2}, Case{0.5, 0},
                       Case{0, 0}, Case{1000, 1000}}) {
    const core::TokenBucketPolicy p{10, c.burst};
    core::TokenBucket b;
    const int64_t t = 7 * kSecond;
    EXPECT_EQ(take_all(b, p, t), c.takes) << "burst " << c.burst;
    EXPECT_FALSE(b.try_take(p, t));
    EXPECT_EQ(b.full(p, t), c.takes == 0) << "burst " << c.burst;
  }
}

TEST(TokenBucket, RefillsAtTheRate) {
  const core::TokenBucketPolicy p{10, 100};  // one token per 100 ms
  core::TokenBucket b;
  int64_t t = 1 * kSecond;
  ASSERT_EQ(take_all(b, p, t), 100);
  EXPECT_FALSE(b.try_take(p, t + 100 * kMs - 1)) << "a token before its time";
  EXPECT_TRUE(b.try_take(p, t + 100 * kMs));
  EXPECT_FALSE(b.try_take(p, t + 100 * kMs));
  t += 100 * kMs;
  EXPECT_EQ(take_all(b, p, t + 1 * kSecond), 10);  // one second: ten tokens
  t += 1 * kSecond;
  EXPECT_EQ(take_all(b, p, t + 250 * kMs), 2);  // the half token left over stays
  EXPECT_EQ(take_all(b, p, t + 300 * kMs), 1);
}

TEST(TokenBucket, FineTimeSlicesAddUpExactly) {
  const core::TokenBucketPolicy p{10, 100};
  core::TokenBucket b;
  int64_t t = 0;
  ASSERT_EQ(take_all(b, p, t), 100);
  // A busy client trying every millisecond for 10 s gets a token exactly every 100th try: no
  // drift from summing 0.01 token ten thousand times.
  for (int i = 1; i <= 10'000; ++i) {
    t += kMs;
    ASSERT_EQ(b.try_take(p, t), i % 100 == 0) << "try " << i;
  }
  EXPECT_EQ(b.tokens(p, t), 0.0);
}

TEST(TokenBucket, SustainedRateIsBurstPlusRateTimesTime) {
  const core::TokenBucketPolicy p{10, 100};
  core::TokenBucket b;
  int taken = 0;
  for (int64_t t = 0; t <= 10 * kSecond; t += kMs) {
    if (b.try_take(p, t)) ++taken;
  }
  EXPECT_EQ(taken, 100 + 10 * 10);
}

TEST(TokenBucket, FractionalRate) {
  const core::TokenBucketPolicy p{0.5, 3};  // one token per 2 s
  core::TokenBucket b;
  ASSERT_EQ(take_all(b, p, 0), 3);
  EXPECT_FALSE(b.try_take(p, 2 * kSecond - kMs));
  EXPECT_TRUE(b.try_take(p, 2 * kSecond));
  EXPECT_EQ(take_all(b, p, 8 * kSecond), 3);
}

TEST(TokenBucket, NeverExceedsTheBurst) {
  const core::TokenBucketPolicy p{10, 100};
  core::TokenBucket b;
  int64_t t = 0;
  ASSERT_TRUE(b.try_take(p, t));
  t += 3600 * kSecond;  // an hour: full, not more
  EXPECT_TRUE(b.full(p, t));
  EXPECT_DOUBLE_EQ(b.tokens(p, t), 100.0);
  EXPECT_EQ(take_all(b, p, t), 100);
  // Full and idle: the time spent full is not banked.
  core::TokenBucket idle;
  EXPECT_EQ(take_all(idle, p, 1000 * kSecond), 100);
}

TEST(TokenBucket, LargeTimeJumpsAreSafe) {
  const core::TokenBucketPolicy p{10, 100};
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  core::TokenBucket b;
  ASSERT_EQ(take_all(b, p, kMin), 100);  // the whole int64 range as elapsed time
  EXPECT_TRUE(b.full(p, kMax));
  EXPECT_EQ(take_all(b, p, kMax), 100);
  EXPECT_FALSE(b.try_take(p, kMax));

  const core::TokenBucketPolicy fast{1e9, 1e6};  // a token every ns: products beyond 2^53
  core::TokenBucket f;
  ASSERT_EQ(take_all(f, fast, 0, 2'000'000), 1'000'000);
  EXPECT_TRUE(f.full(fast, kMax));
  EXPECT_DOUBLE_EQ(f.tokens(fast, kMax), 1e6);
}

TEST(TokenBucket, ClockGoingBackwardsNeitherAddsNorRemoves) {
  const core::TokenBucketPolicy p{10, 100};
  core::TokenBucket b;
  const int64_t t = 1000 * kSecond;
  ASSERT_EQ(take_all(b, p, t), 100);
  ASSERT_TRUE(b.try_take(p, t + 150 * kMs));  // 1.5 refilled, one taken: 0.5 left
  // An hour back: nothing gained, the half token kept.
  const int64_t back = t - 3600 * kSecond;
  EXPECT_FALSE(b.try_take(p, back));
  EXPECT_DOUBLE_EQ(b.tokens(p, back), 0.5);
  EXPECT_FALSE(b.full(p, back));
  // Refilling continues from the new reading, without waiting an hour for the old one.
  EXPECT_FALSE(b.try_take(p, back + 50 * kMs - 1));
  EXPECT_TRUE(b.try_take(p, back + 50 * kMs));
  EXPECT_FALSE(b.try_take(p, back + 50 * kMs));
  // A small step back gives nothing; the forward movement after it refills as usual.
  EXPECT_FALSE(b.try_take(p, back + 40 * kMs));
  EXPECT_DOUBLE_EQ(b.tokens(p, back + 40 * kMs), 0.0);
  EXPECT_FALSE(b.try_take(p, back + 50 * kMs));
  EXPECT_DOUBLE_EQ(b.tokens(p, back + 50 * kMs), 0.1);
}

TEST(TokenBucket, QueriesDoNotChangeTheBucket) {
  const core::TokenBucketPolicy p{10, 100};
  core::TokenBucket b;
  ASSERT_EQ(take_all(b, p, 0), 100);
  // Reading at later times must not move the refill point.
  EXPECT_TRUE(b.full(p, 100 * kSecond));
  EXPECT_DOUBLE_EQ(b.tokens(p, 50 * kSecond), 100.0);
  EXPECT_DOUBLE_EQ(b.tokens(p, 100 * kMs), 1.0);
  EXPECT_FALSE(b.try_take(p, 0));
  EXPECT_TRUE(b.try_take(p, 100 * kMs));
}

TEST(TokenBucket, ZeroRateNeverRefills) {
  const core::TokenBucketPolicy p{0, 3};
  core::TokenBucket b;
  ASSERT_EQ(take_all(b, p, 0), 3);
  EXPECT_FALSE(b.try_take(p, 1'000'000 * kSecond));
  EXPECT_DOUBLE_EQ(b.tokens(p, 1'000'000 * kSecond), 0.0);
}

TEST(TokenBucket, BucketsSharingAPolicyAreIndependent) {
  const core::TokenBucketPolicy p{1, 2};
  core::TokenBucket a, b;
  EXPECT_EQ(take_all(a, p, 0), 2);
  EXPECT_TRUE(b.full(p, 0));
  EXPECT_EQ(take_all(b, p, 0), 2);
  EXPECT_EQ(take_all(a, p, kSecond), 1);
  EXPECT_EQ(take_all(b, p, 2 * kSecond), 2);
}

TEST(TokenBucket, HugeBurstActsAsUnlimited) {
  const core::TokenBucketPolicy p{10, std::numeric_limits<double>::infinity()};
  core::TokenBucket b;
  EXPECT_EQ(take_all(b, p, 0, 100'000), 100'000);
  EXPECT_TRUE(b.try_take(p, 0));
}

}  // namespace
}  // namespace odin
