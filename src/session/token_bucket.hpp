// Token bucket for client requests (WS_CLIENT_RATE per second, WS_CLIENT_BURST deep). Refilled
// lazily from elapsed time, so an idle bucket costs nothing. 16 bytes.
#pragma once

#include <algorithm>
#include <cstdint>

namespace odin {

class TokenBucket {
 public:
  TokenBucket(double rate_per_s, double burst)
      : rate_per_ns_(static_cast<float>(rate_per_s / 1e9)),
        burst_(static_cast<float>(burst)),
        tokens_(static_cast<float>(burst)) {}

  // Takes one token if there is one. `now_ns` is a monotonic clock.
  bool try_take(int64_t now_ns) {
    refill(now_ns);
    if (tokens_ < 1.0f) return false;
    tokens_ -= 1.0f;
    return true;
  }

  bool full(int64_t now_ns) {
    refill(now_ns);
    return tokens_ >= burst_;
  }

  float tokens() const { return tokens_; }

 private:
  void refill(int64_t now_ns) {
    if (last_ns_ == 0) last_ns_ = now_ns;
    if (now_ns > last_ns_) {
      // Elapsed time in double: float alone loses nanoseconds after a few seconds.
      const double added = static_cast<double>(now_ns - last_ns_) * rate_per_ns_;
      tokens_ = static_cast<float>(std::min<double>(burst_, tokens_ + added));
    }
    last_ns_ = std::max(last_ns_, now_ns);  // a clock going backwards changes nothing
  }

  float rate_per_ns_;
  float burst_;
  float tokens_;
  int64_t last_ns_ = 0;
};

}  // namespace odin
