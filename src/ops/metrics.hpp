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

// Why a client was refused before it became a WebSocket (hostile-client guards); the `reason`
// label of ws_connections_refused_total.
enum class RefuseReason : uint8_t {
  kUnauthorized,      // 401: WS_AUTH=jwt and the token is missing or invalid
  kOrigin,            // 403: Origin not in WS_ALLOWED_ORIGINS
  kAddressLimit,      // closed at accept: WS_MAX_CONNECTIONS_PER_IP
  kRequestTooLarge,   // 431 / 413: WS_MAX_HEADER_BYTES / WS_MAX_BODY_BYTES
  kHandshakeTimeout,  // 408: request (or TLS handshake) not complete within WS_HANDSHAKE_TIMEOUT
  kTlsFailed,         // TLS handshake or record error
  kSocketLimit,       // closed at accept: WS_MAX_SOCKETS (every socket of the process)
  kCount
};
inline const char* refuse_reason_name(RefuseReason r) {
  switch (r) {
    case RefuseReason::kUnauthorized:
      return "unauthorized";
    case RefuseReason::kOrigin:
      return "origin";
    case RefuseReason::kAddressLimit:
      return "address_limit";
    case RefuseReason::kRequestTooLarge:
      return "request_too_large";
    case RefuseReason::kHandshakeTimeout:
      return "handshake_timeout";
    case RefuseReason::kSocketLimit:
      return "socket_limit";
    case RefuseReason::kTlsFailed:
      return "tls_failed";
    case RefuseReason::kCount:
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
  Counter resumes_restored;   // resumed from a stream position (session of another instance)
  Counter detached_evicted;   // detached sessions dropped by the detached-session budget
  Counter rate_limited;       // requests refused with rate_limited
  Counter rate_limit_closes;  // closed with 1008
  Counter requests;           // client requests handled
  Counter http_requests;
  Counter connections_refused[static_cast<int>(RefuseReason::kCount)];
  Counter flood_closes;          // closed with 1008 for exceeding WS_CLIENT_MAX_BYTES_PER_SEC
  Counter forbidden;             // subscriptions refused by the token's channels claim
  Counter token_expired_closes;  // closed with 4001
  Counter tokens_refreshed;      // `auth` requests accepted
  void refused(RefuseReason r) { connections_refused[static_cast<int>(r)].add(); }
  LatencyHistogram fanout_latency;  // ingest -> write to the last local recipient
};

}  // namespace odin
