// Gateway::snapshot(): what /health, /stats and /metrics show (ops/render.cpp), copied from the
// workers, the hub, the broker and the resource monitor while they run. Per-thread counters are
// summed without stopping the threads, so the totals are each exact but not from one instant.
#include <algorithm>

#include "app/gateway.hpp"
#include "core/clock.hpp"

namespace odin {

OpsSnapshot Gateway::snapshot() const {
  OpsSnapshot s;
  for (const auto& worker : workers_) {
    const ThreadStats& stats = worker->loop().stats();
    add_counts(s.threads, stats);
    s.fanout_latency.merge(stats.fanout_latency.snapshot());
    s.sessions += worker->clients().session_count();
    s.detached_sessions += worker->clients().detached_count();
    s.channels = std::max<uint64_t>(s.channels, worker->channel_count());
  }
  s.thread_count = thread_count();
  s.websocket_connections = websocket_connections();
  s.max_connections = config_.max_connections;
  s.draining = draining();

  s.messages_in = hub_->messages_in();
  s.fanout_backlog_bytes = hub_->backlog_bytes();
  s.fanout_peak_backlog_bytes = hub_->peak_backlog_bytes();

  s.cpu_percent = resources_.cpu_percent();
  s.cpu_reject_threshold = config_.cpu_reject_threshold;
  s.rss_bytes = resources_.rss_bytes();
  s.memory_limit_bytes = resources_.memory_limit();
  s.memory_reject_threshold = config_.memory_reject_threshold;
  s.uptime_seconds = static_cast<double>(mono_ms() - started_at_ms_) / 1000.0;

  const BrokerCounters& c = broker_->counters();
  BrokerSnapshot& b = s.broker;
  b.name = broker_->name();
  b.connected = broker_->connected();
  b.ready = broker_->ready();
  b.paused = broker_->paused();
  b.fanout_behind = c.fanout_behind.load();
  b.pauses = c.pauses.load();
  b.fanout_behind_episodes = c.fanout_behind_episodes.load();
  b.disconnects = c.disconnects.load();
  b.reconnects = c.reconnects.load();
  b.gap_filled = c.gap_filled.load();
  b.history_restarts = c.history_restarts.load();
  b.stream_resets = c.stream_resets.load();
  b.stream_reads_pending = c.stream_reads_pending.load();
  b.stream_reads_refused = c.stream_reads_refused.load();
  b.stream_reads_abandoned = c.stream_reads_abandoned.load();
  b.stream_reads_timed_out = c.stream_reads_timed_out.load();
  b.received = c.received.load();
  b.delivered = c.delivered.load();
  b.dropped = c.dropped.load();
  for (size_t r = 0; r < c.rejected.size(); ++r) {
    b.rejected.push_back({intake_reject_name(static_cast<IntakeReject>(r)), c.rejected[r].load()});
  }
  b.published = c.published.load();
  b.publish_failures = c.publish_failures.load();
  return s;
}

}  // namespace odin
