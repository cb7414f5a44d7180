// Token bucket for client requests (WS_CLIENT_RATE per second, WS_CLIENT_BURST deep) and for the
// broker intake caps (broker/intake.hpp). One per session, so it stores only its own state (16
// bytes); the rate and burst are gateway-wide and are passed in on each call as a shared
// TokenBucketPolicy instead of being copied into every bucket. Refilled lazily from elapsed time,
// so an idle bucket costs nothing.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace odin::core {

struct TokenBucketPolicy {
  double rate = 10;    // tokens added per second (WS_CLIENT_RATE)
  double burst = 100;  // most tokens the bucket holds (WS_CLIENT_BURST)
};

// Pass the same policy to every call on a given bucket. `now_ns` is a monotonic clock; if it
// ever goes backwards the bucket neither gains nor loses tokens, and refilling resumes from the
// new reading (rather than stalling until the clock catches up with the old one).
//
// Tokens are counted in fixed point, in billionths of a token, so that `rate` tokens per second
// is `rate` units per nanosecond: with an integer rate, refills are exact however finely the
// time is sliced (a float would let a client sending at exactly the rate be refused now and
// then). With a fractional rate each refill rounds down to a billionth of a token, so a token
// may come a nanosecond late, never early. Bursts above ~9.2e9 tokens are treated as unlimited.
class TokenBucket {
 public:
  // Starts full, whatever the policy: the first refill clamps the tokens to the burst.
  TokenBucket() = default;

  // Refills by the time elapsed since the last call, then takes one token if there is one.
  bool try_take(const TokenBucketPolicy& policy, int64_t now_ns) {
    tokens_ = refilled(policy, now_ns);
    last_ns_ = now_ns;
    if (tokens_ < kOne) return false;
    tokens_ -= kOne;
    return true;
  }

  // Takes as many whole tokens as there are, up to `wanted` (intake pacing takes a batch's worth).
  uint64_t take_up_to(const TokenBucketPolicy& policy, int64_t now_ns, uint64_t wanted) {
    tokens_ = refilled(policy, now_ns);
    last_ns_ = now_ns;
    const uint64_t taken = std::min(wanted, static_cast<uint64_t>(tokens_ / kOne));
    tokens_ -= static_cast<int64_t>(taken) * kOne;
    return taken;
  }

  // Returns tokens taken but not used; the bucket never holds more than its burst.
  void give_back(const TokenBucketPolicy& policy, uint64_t count) {
    const int64_t cap = capacity(policy);
    const int64_t held = std::min(tokens_, cap);
    const uint64_t room = static_cast<uint64_t>(cap - held) / kOne;
    tokens_ = count >= room ? cap : held + static_cast<int64_t>(count) * kOne;
  }

  // Nanoseconds from `now_ns` until a whole token is there (0 when one is there now).
  int64_t ns_until_token(const TokenBucketPolicy& policy, int64_t now_ns) const {
    const int64_t held = refilled(policy, now_ns);
    if (held >= kOne) return 0;
    if (!(policy.rate > 0)) return std::numeric_limits<int64_t>::max();
    return static_cast<int64_t>(std::ceil(static_cast<double>(kOne - held) / policy.rate));
  }

  bool full(const TokenBucketPolicy& policy, int64_t now_ns) const {
    return refilled(policy, now_ns) >= capacity(policy);
  }

  // The tokens the bucket would hold at `now_ns` (for tests and diagnostics).
  double tokens(const TokenBucketPolicy& policy, int64_t now_ns) const {
    return static_cast<double>(refilled(policy, now_ns)) / static_cast<double>(kOne);
  }

 private:
  static constexpr int64_t kOne = 1'000'000'000;  // one token

  static int64_t capacity(const TokenBucketPolicy& policy) {
    const double units = policy.burst * static_cast<double>(kOne);
    if (!(units > 0)) return 0;  // also a NaN burst
    if (units >= 9.2e18) return std::numeric_limits<int64_t>::max();
    return static_cast<int64_t>(units);
  }

  int64_t refilled(const TokenBucketPolicy& policy, int64_t now_ns) const {
    const int64_t cap = capacity(policy);
    const int64_t held = std::min(tokens_, cap);
    if (now_ns <= last_ns_ || held == cap) return held;
    // Unsigned difference: exact even when the span exceeds INT64_MAX. The product is exact
    // below 2^53 units (9e6 tokens), far more than any bucket's room.
    const uint64_t elapsed = static_cast<uint64_t>(now_ns) - static_cast<uint64_t>(last_ns_);
    const double added = static_cast<double>(elapsed) * policy.rate;
    if (added >= static_cast<double>(cap - held)) return cap;
    // `added > 0` also drops a NaN or negative rate.
    return added > 0 ? held + static_cast<int64_t>(added) : held;
  }

  int64_t tokens_ = std::numeric_limits<int64_t>::max();  // in 1/kOne tokens; max = "full"
  int64_t last_ns_ = 0;
};

static_assert(sizeof(TokenBucket) <= 16);

}  // namespace odin::core
