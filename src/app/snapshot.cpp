// Gateway::snapshot(): what /health, /stats and /metrics show (ops/render.cpp), copied from the
// workers, the hub, the broker and the resource monitor while they run. Per-thread counters are
// summed without stopping the threads, so the totals are each exact but not from one instant.
#include <algorithm>

#include "app/gateway.hpp"
#include "core/clock.hpp"

namespace odin::app {

ops::OpsSnapshot Gateway::snapshot() const {
  ops::OpsSnapshot s;
  for (const auto& worker : workers_) {
    const ops::ThreadStats& stats = worker->loop().stats();
    ops::add_counts(s.threads, stats);
    s.fanout_latency.merge(stats.fanout_latency.snapshot());
    s.handshake_latency.merge(stats.handshake_latency.snapshot());
    s.sessions += worker->clients().session_count();
    s.detached_sessions += worker->clients().detached_count();
    s.latest_subscriptions += worker->clients().latest_subscription_count();
    s.held_messages += worker->clients().held_count();
    s.conflated_messages += worker->clients().conflated_total();
    s.channels = std::max<uint64_t>(s.channels, worker->channel_count());
  }
  s.thread_count = thread_count();
  s.websocket_connections = websocket_connections();
  s.max_connections = config_.max_connections;
  s.draining = draining();

  s.messages_in = hub_->messages_in();
  s.compressed_connections = deflate_readers_.count();
  const hub::CompressionCounters& compression = hub_->compression();
  s.compressed_messages = compression.messages.load(std::memory_order_relaxed);
  s.compression_not_worth = compression.not_worth.load(std::memory_order_relaxed);
  s.compression_input_bytes = compression.input_bytes.load(std::memory_order_relaxed);
  s.compression_output_bytes = compression.output_bytes.load(std::memory_order_relaxed);
  s.compression_nanoseconds = compression.nanoseconds.load(std::memory_order_relaxed);
  s.fanout_backlog_bytes = hub_->backlog_bytes();
  s.fanout_peak_backlog_bytes = hub_->peak_backlog_bytes();

  s.cpu_percent = resources_.cpu_percent();
  s.cpu_reject_threshold = config_.cpu_reject_threshold;
  s.rss_bytes = resources_.rss_bytes();
  s.memory_limit_bytes = resources_.memory_limit();
  s.memory_reject_threshold = config_.memory_reject_threshold;
  s.uptime_seconds = static_cast<double>(core::mono_ms() - started_at_ms_) / 1000.0;

  s.broker.name = broker_->name();
  s.broker.ready = broker_->ready();
  ops::copy_counts(s.broker.counts, broker_->counters());
  return s;
}

}  // namespace odin::app
