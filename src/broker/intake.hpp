// What the NATS intake decides about each message, kept free of NATS so it can be unit-tested:
// whether a message may reach the fan-out (subject -> channel, Type header, size, UTF-8, JSON),
// JetStream redelivery dedupe, the CPU pause switch with hysteresis, and the intake rate pacer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "broker/broker.hpp"
#include "core/token_bucket.hpp"
#include "hub/fanout.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin::guard {
class ResourceMonitor;
}  // namespace odin::guard

namespace odin::ops {
struct Config;
}  // namespace odin::ops

namespace odin::broker {

class IntakeFilter {
 public:
  IntakeFilter(std::string subject_prefix, size_t max_payload_bytes);
  ~IntakeFilter();
  IntakeFilter(const IntakeFilter&) = delete;
  IntakeFilter& operator=(const IntakeFilter&) = delete;

  // Fills `item` with views into `subject`, `type` and `payload`, or says why the message must
  // not be delivered. `type` is null when the message has no Type header ("message" is used).
  // A payload that is valid JSON is delivered verbatim, anything else as a JSON string.
  std::optional<ops::IntakeReject> check(std::string_view subject, const std::string_view* type,
                                         std::string_view payload, core::IngestItem& item);

 private:
  std::string prefix_;
  size_t max_payload_bytes_;
  std::unique_ptr<simdjson::dom::parser> parser_;
};

// JetStream may deliver a message again: its ack was lost (e.g. across a NATS restart), or it
// reached us after its ack wait. The intake hands messages over in stream order, reading a gap
// back from the stream before the message after it, so "already handed over" is exact without a
// window: every sequence up to the newest one handed over, except the gaps that could not be read
// back. Those are kept as ranges (at most kMaxOpenGaps, the oldest forgotten first: its loss was
// reported when it was opened); a message of one of them still goes out, late, once.
// Intake thread only.
class StreamDedupe {
 public:
  static constexpr size_t kMaxOpenGaps = 4096;

  // The newest stream sequence handed over (or accounted for: see reset), 0 before any.
  uint64_t last() const { return last_; }
  // True when `stream_sequence` must go out: after last() (which then moves to it; a gap between
  // is for the caller to read back first) or in an open gap (taken out of it). False for a
  // repeat.
  bool first_delivery(uint64_t stream_sequence);
  // [from, to] (at most last()) could not be read back: not handed over.
  void not_handed_over(uint64_t from, uint64_t to);
  // Starts over (a new stream, or the first bind): everything through `last` counts as handed
  // over, no gap is open.
  void reset(uint64_t last);
  size_t open_gaps() const { return open_.size(); }

 private:
  uint64_t last_ = 0;
  std::map<uint64_t, uint64_t> open_;  // first -> last sequence of each gap not handed over
};

// WS_CPU_PAUSE_THRESHOLD: pause above the threshold, resume only once CPU is clearly below it
// (threshold minus 20% of itself, at most 10 points), so intake does not flap around the line.
class PauseSwitch {
 public:
  explicit PauseSwitch(double threshold_percent);
  // Feeds a CPU sample; returns true when the state changed.
  bool update(double cpu_percent);
  bool paused() const { return paused_; }
  double resume_below() const { return resume_below_; }

 private:
  double pause_above_;
  double resume_below_;
  bool paused_ = false;
};

// Messages per second for intake (WS_MAX_NATS_RATE, WS_MAX_BROADCAST_RATE); 0 = unlimited. A
// token bucket holding a tenth of a second's worth (at least one message), so the rate holds over
// any window longer than that.
class RatePacer {
 public:
  explicit RatePacer(double per_second) : policy_{per_second, std::max(1.0, per_second / 10.0)} {}
  bool unlimited() const { return policy_.rate <= 0; }
  // How many of `wanted` messages may be taken at `now_ns` (monotonic); takes them.
  size_t take(size_t wanted, int64_t now_ns) {
    return unlimited() ? wanted : bucket_.take_up_to(policy_, now_ns, wanted);
  }
  // Gives back messages taken but not used (e.g. a pull request brought fewer).
  void give_back(size_t count) {
    if (!unlimited()) bucket_.give_back(policy_, count);
  }
  // Nanoseconds from `now_ns` until one message may be taken (0 when one may be taken now).
  int64_t wait_ns(int64_t now_ns) const {
    return unlimited() ? 0 : bucket_.ns_until_token(policy_, now_ns);
  }

 private:
  core::TokenBucketPolicy policy_;
  core::TokenBucket bucket_;
};

// What every broker's intake thread shares: the CPU pause with its counter and log lines, both
// intake rate caps, back-pressure from the fan-out, and the rate-limited log of refused
// messages. Intake thread only.
class IntakeGovernor {
 public:
  // `hub` (may be null in tests): whose queues the back-pressure watches and where ingest() hands
  // messages.
  IntakeGovernor(const ops::Config& config, const guard::ResourceMonitor& resources,
                 ops::BrokerCounters& counters, std::string_view broker_name,
                 hub::Hub* hub = nullptr);
  // Feeds the current CPU to the pause switch (logging and counting a change); true while paused.
  bool paused_for_cpu();
  // How many of `wanted` messages both caps allow now (takes them). When none, `wait_ms` says
  // how long to wait before asking again. JetStream: none while the fan-out is behind, so no
  // pull goes out and the messages wait in the stream.
  size_t take(size_t wanted, int64_t& wait_ms);
  // Hands `items` to the hub. While the fan-out is behind, a broker that cannot hold messages
  // back (core NATS, Redis) drops them instead (counted as fanout_behind, logged) and `items`
  // is left empty.
  void ingest(std::vector<core::IngestItem>& items);
  // Whether an event-loop thread's fan-out queue is above WS_FANOUT_QUEUE_BYTES (and has not yet
  // come back below half of it); logs and counts the changes.
  bool fanout_behind();
  // Gives back messages taken but not used.
  void refund(size_t unused) {
    intake_rate_.give_back(unused);
    broadcast_rate_.give_back(unused);
  }
  // Counts a refused message and logs it, at most every 10 s per reason (expected redeliveries
  // are only counted). `source` names where it came from (subject, channel).
  void reject(ops::IntakeReject reason, std::string_view source);

 private:
  struct RejectLog {
    uint64_t since_last = 0;
    int64_t last_ms = 0;
  };
  const guard::ResourceMonitor& resources_;
  ops::BrokerCounters& counters_;
  std::string broker_name_;
  hub::Hub* hub_;
  uint64_t fanout_high_water_;
  bool holds_for_fanout_;      // JetStream: stop pulling rather than drop
  const char* behind_action_;  // what intake does while behind, for the log line
  bool fanout_behind_ = false;
  uint64_t behind_since_log_ = 0;
  int64_t last_behind_log_ns_ = 0;
  double pause_threshold_;
  PauseSwitch pause_;
  RatePacer intake_rate_;     // WS_MAX_NATS_RATE
  RatePacer broadcast_rate_;  // WS_MAX_BROADCAST_RATE
  RejectLog reject_log_[static_cast<size_t>(ops::IntakeReject::kCount)];
};

// Reconnect backoff: 100 ms doubling to 5 s, with up to 20% jitter so a fleet does not
// reconnect in step.
int64_t reconnect_delay_ms(int attempts);

}  // namespace odin::broker
