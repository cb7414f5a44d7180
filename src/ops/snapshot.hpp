// What /health, /stats and /metrics show, copied out of the running gateway at one moment
// (app/ fills it: Gateway::snapshot()) so that ops/render.cpp can render it without seeing
// the gateway, and a test can render one made by hand. Plain values only: nothing here points
// into a live object.
#pragma once

#include <cstdint>
#include <string>

#include "ops/histogram.hpp"
#include "ops/metrics.hpp"

namespace odin::ops {

// The broker's state and counters.
struct BrokerSnapshot {
  std::string name;    // "embedded", "nats", "jetstream", "redis"
  bool ready = false;  // connected and, for JetStream, the consumer bound
  BrokerCounts counts;
};

struct OpsSnapshot {
  // Every event-loop thread's counters and fan-out latencies, summed.
  ThreadCounts threads;
  HistogramSnapshot fanout_latency;
  HistogramSnapshot handshake_latency;  // WebSocket upgrades: request begun -> 101 queued
  uint64_t sessions = 0;                // attached and detached
  uint64_t detached_sessions = 0;       // waiting for a resume
  // `latest` subscriptions (docs/protocol.md): how many, messages held for them now, and
  // messages skipped for them since start.
  uint64_t latest_subscriptions = 0;
  uint64_t held_messages = 0;
  uint64_t conflated_messages = 0;
  // permessage-deflate (docs/protocol.md): connections reading compressed frames now; messages
  // compressed once (sent compressed, or not worth it and sent as they were); their bytes before
  // and after, and the time compressing took.
  uint64_t compressed_connections = 0;
  uint64_t compressed_messages = 0;
  uint64_t compression_not_worth = 0;
  uint64_t compression_input_bytes = 0;
  uint64_t compression_output_bytes = 0;
  uint64_t compression_nanoseconds = 0;
  uint64_t channels = 0;  // of the fullest thread (WS_MAX_CHANNELS applies per thread)
  uint64_t thread_count = 0;

  uint64_t websocket_connections = 0;
  uint64_t max_connections = 0;  // WS_MAX_CONNECTIONS
  bool draining = false;

  // The hub.
  uint64_t messages_in = 0;
  uint64_t fanout_backlog_bytes = 0;  // largest backlog of a thread's fan-out queue now
  uint64_t fanout_peak_backlog_bytes = 0;

  // Resources and the thresholds /health compares them with.
  double cpu_percent = 0.0;  // of WS_CPU_LIMIT
  double cpu_reject_threshold = 0.0;
  uint64_t rss_bytes = 0;
  uint64_t memory_limit_bytes = 0;  // 0: unknown
  double memory_reject_threshold = 0.0;

  double uptime_seconds = 0.0;
  BrokerSnapshot broker;
};

}  // namespace odin::ops
