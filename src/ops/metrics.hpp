// Counters kept per event-loop thread (each written by its own thread only, read by /stats and
// /metrics from any thread) and the process-wide ones. Single-writer counters use relaxed
// load+store: no locked instruction on the hot path.
#pragma once

#include <atomic>
#include <cstdint>

#include "ops/histogram.hpp"

namespace odin {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Reasons an upgrade is refused with 503; also the `reason` label of the metric.
enum class RejectReason : uint8_t { kAtCapacity, kMemory, kCpu, kDraining, kCount };
inline const char* reject_reason_name(RejectReason r) {
  switch (r) {
    case RejectReason::kAtCapacity:
      return "at_capacity";
    case RejectReason::kMemory:
      return "memory";
    case RejectReason::kCpu:
      return "cpu";
    case RejectReason::kDraining:
      return "draining";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

struct alignas(64) ThreadStats {
  Counter connections_accepted;  // upgrades completed
  Counter connections_rejected[static_cast<int>(RejectReason::kCount)];
  Counter connections_closed;
  Counter messages_out;          // data frames queued to clients (fan-out, replay, snapshot)
  Counter bytes_out;             // bytes written to client sockets
  Counter slow_consumer_closes;  // closed with 4008
  Counter heartbeat_timeouts;    // closed with 4000
  Counter protocol_errors;       // closed with 1002/1003/1007/1009
  Counter replay_requests;
  Counter resumes_ok;
  Counter resumes_failed;
  Counter rate_limited;       // requests refused with rate_limited
  Counter rate_limit_closes;  // closed with 1008
  Counter requests;           // client requests handled
  Counter http_requests;
  LatencyHistogram fanout_latency;  // ingest -> write to the last local recipient
};

}  // namespace odin
