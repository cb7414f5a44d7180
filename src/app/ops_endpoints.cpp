// /health, /stats and /metrics (see ops_endpoints.hpp). Totals are sums of the per-thread
// counters, read without stopping the threads.
#include "app/ops_endpoints.hpp"

#include <fmt/format.h>

#include <chrono>
#include <numeric>

#include "app/gateway.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "net/event_loop.hpp"

namespace odin {

namespace {

struct Totals {
  uint64_t accepted = 0, closed = 0, messages_out = 0, bytes_out = 0, slow = 0, heartbeat = 0,
           protocol = 0, replays = 0, resumes_ok = 0, resumes_failed = 0, resumes_restored = 0,
           rate_limited = 0, rate_limit_closes = 0, requests = 0, http = 0;
  uint64_t rejected[static_cast<int>(RejectReason::kCount)] = {};
  uint64_t refused[static_cast<int>(RefuseReason::kCount)] = {};
  uint64_t flood_closes = 0, forbidden = 0, token_expired = 0, tokens_refreshed = 0;
  uint64_t sessions = 0, detached = 0, channels = 0, detached_evicted = 0;
  HistogramSnapshot latency;
};

Totals sum(const Gateway& gateway) {
  Totals t;
  for (unsigned i = 0; i < gateway.thread_count(); ++i) {
    const Worker& worker = gateway.worker(i);
    const ThreadStats& s = worker.loop().stats();
    t.accepted += s.connections_accepted.get();
    t.closed += s.connections_closed.get();
    t.messages_out += s.messages_out.get();
    t.bytes_out += s.bytes_out.get();
    t.slow += s.slow_consumer_closes.get();
    t.heartbeat += s.heartbeat_timeouts.get();
    t.protocol += s.protocol_errors.get();
    t.replays += s.replay_requests.get();
    t.resumes_ok += s.resumes_ok.get();
    t.resumes_failed += s.resumes_failed.get();
    t.resumes_restored += s.resumes_restored.get();
    t.rate_limited += s.rate_limited.get();
    t.rate_limit_closes += s.rate_limit_closes.get();
    t.requests += s.requests.get();
    t.http += s.http_requests.get();
    for (int r = 0; r < static_cast<int>(RejectReason::kCount); ++r) {
      t.rejected[r] += s.connections_rejected[r].get();
    }
    for (int r = 0; r < static_cast<int>(RefuseReason::kCount); ++r) {
      t.refused[r] += s.connections_refused[r].get();
    }
    t.flood_closes += s.flood_closes.get();
    t.forbidden += s.forbidden.get();
    t.token_expired += s.token_expired_closes.get();
    t.tokens_refreshed += s.tokens_refreshed.get();
    t.sessions += worker.clients().session_count();
    t.detached += worker.clients().detached_count();
    t.detached_evicted += s.detached_evicted.get();
    t.channels = std::max<uint64_t>(t.channels, worker.channel_count());
    t.latency.merge(s.fanout_latency.snapshot());
  }
  return t;
}

double uptime_seconds(const Gateway& gateway) {
  return static_cast<double>(mono_ms() - gateway.started_at_ms()) / 1000.0;
}

const char* boolean(bool b) {
  return b ? "true" : "false";
}

template <typename Metric>
void append_broker_metrics(std::string& out, const Broker& broker, Metric& metric) {
  const BrokerCounters& c = broker.counters();
  metric("ws_broker_connected", "gauge", "1 when the broker is connected.", c.connected ? 1 : 0);
  metric("ws_broker_paused", "gauge", "1 while intake is paused for CPU.", c.paused ? 1 : 0);
  metric("ws_broker_pauses_total", "counter", "Times intake paused for CPU.", c.pauses.load());
  metric("ws_broker_fanout_behind", "gauge",
         "1 while an event-loop thread's fan-out queue is above WS_FANOUT_QUEUE_BYTES.",
         c.fanout_behind ? 1 : 0);
  metric("ws_broker_fanout_behind_total", "counter",
         "Times a fan-out queue went above WS_FANOUT_QUEUE_BYTES (JetStream held its pulls, "
         "the others dropped).",
         c.fanout_behind_episodes.load());
  metric("ws_broker_disconnects_total", "counter", "Broker connections lost.",
         c.disconnects.load());
  metric("ws_broker_reconnects_total", "counter", "Broker connections regained.",
         c.reconnects.load());
  metric("ws_broker_gap_filled_total", "counter",
         "JetStream messages lost in flight and read back from the stream, in order.",
         c.gap_filled.load());
  metric("ws_broker_history_restarts_total", "counter",
         "JetStream gaps that could not be read back (resume from before them fails here).",
         c.history_restarts.load());
  metric("ws_broker_stream_resets_total", "counter",
         "JetStream: times the stream was found deleted and created again (intake started over).",
         c.stream_resets.load());
  metric("ws_broker_stream_reads_pending", "gauge",
         "JetStream: resumes waiting for a read-back of the stream (WS_MAX_STREAM_READS).",
         c.stream_reads_pending.load());
  metric("ws_broker_stream_reads_refused_total", "counter",
         "JetStream: resumes answered resume_failed because WS_MAX_STREAM_READS were waiting.",
         c.stream_reads_refused.load());
  metric("ws_broker_stream_reads_abandoned_total", "counter",
         "JetStream: read-backs given up because the client hung up while waiting.",
         c.stream_reads_abandoned.load());
  metric("ws_broker_stream_reads_timed_out_total", "counter",
         "JetStream: read-backs stopped by WS_STREAM_READ_TIMEOUT.",
         c.stream_reads_timed_out.load());
  metric("ws_broker_messages_received_total", "counter", "Messages taken from the broker.",
         c.received.load());
  metric("ws_broker_messages_delivered_total", "counter", "Broker messages handed to the fan-out.",
         c.delivered.load());
  metric("ws_broker_messages_dropped_total", "counter",
         "Core NATS messages the client library dropped because intake fell behind.",
         c.dropped.load());
  out +=
      "# HELP ws_broker_messages_rejected_total Broker messages not delivered, by reason.\n"
      "# TYPE ws_broker_messages_rejected_total counter\n";
  for (size_t r = 0; r < c.rejected.size(); ++r) {
    out += fmt::format("ws_broker_messages_rejected_total{{reason=\"{}\"}} {}\n",
                       intake_reject_name(static_cast<IntakeReject>(r)), c.rejected[r].load());
  }
  metric("ws_publish_messages_total", "counter", "POST /publish messages the broker accepted.",
         c.published.load());
  metric("ws_publish_failures_total", "counter", "POST /publish requests the broker refused.",
         c.publish_failures.load());
}

}  // namespace

namespace {
// JetStream: the losses the intake could not avoid, reported rather than silent (the stream
// read from the start again, gaps that could not be read back).
std::string stream_losses(const Broker& broker) {
  if (broker.name() != "jetstream") return {};
  return fmt::format(R"(,"history_restarts":{},"stream_resets":{})",
                     broker.counters().history_restarts.load(),
                     broker.counters().stream_resets.load());
}
}  // namespace

HealthReport render_health(const Gateway& gateway) {
  const Config& config = gateway.config();
  const ResourceMonitor& res = gateway.resources();
  const double cpu = res.cpu_percent();
  const double memory = res.memory_percent();
  const uint32_t current = gateway.websocket_connections();
  const double capacity = 100.0 * current / config.max_connections;
  const bool cpu_ok = cpu < config.cpu_reject_threshold;
  const bool memory_ok = memory < config.memory_reject_threshold;
  const Broker& broker = gateway.broker();
  const bool broker_ok = broker.ready();
  const bool intake_paused = broker.paused();
  // Unhealthy: cannot serve (no broker, memory exhausted, draining): the balancer should stop
  // sending clients. Degraded: serving, but refusing new connections for a resource reason.
  const char* status = "healthy";
  unsigned http_status = 200;
  if (!broker_ok || memory >= 100.0 || gateway.draining()) {
    status = "unhealthy";
    http_status = 503;
  } else if (!cpu_ok || !memory_ok || intake_paused || current >= config.max_connections) {
    status = "degraded";
  }
  HealthReport report;
  report.status = http_status;
  report.body = fmt::format(
      R"({{"status":"{}","checks":{{"cpu":{{"percentage":{:.1f},"threshold":{:.1f},"healthy":{}}},)"
      R"("memory":{{"percentage":{:.1f},"limit_mb":{},"healthy":{}}},)"
      R"("capacity":{{"current":{},"max":{},"percentage":{:.1f}}},)"
      R"("broker":{{"connected":{},"ready":{},"type":"{}","paused":{}{}}}}}}})",
      status, cpu, config.cpu_reject_threshold, boolean(cpu_ok), memory,
      res.memory_limit() / (1024 * 1024), boolean(memory_ok), current, config.max_connections,
      capacity, boolean(broker.connected()), boolean(broker_ok), broker.name(),
      boolean(intake_paused), stream_losses(broker));
  return report;
}

std::string render_stats(const Gateway& gateway) {
  const Totals t = sum(gateway);
  const BrokerCounters& counters = gateway.broker().counters();
  uint64_t rejected = 0;
  for (const auto& count : counters.rejected)
    rejected += count.load();
  const ResourceMonitor& res = gateway.resources();
  return fmt::format(
      R"({{"currentConnections":{},"maxConnections":{},"connectionsAccepted":{},)"
      R"("connectionsRejected":{},"connectionsRefused":{},"sessions":{},"detachedSessions":{},"channels":{},)"
      R"("memoryMB":{:.1f},"cpuPercent":{:.1f},"messagesIn":{},"messagesOut":{},"bytesOut":{},)"
      R"("slowClientDisconnects":{},"heartbeatTimeouts":{},"rateLimited":{},"replayRequests":{},)"
      R"("resumesOk":{},"resumesFailed":{},"resumesRestored":{},"fanoutLatencyMs":{{"p50":{:.3f},"p99":{:.3f}}},)"
      R"("threads":{},"broker":"{}","brokerConnected":{},"brokerPaused":{},)"
      R"("brokerReceived":{},"brokerRejected":{},"uptimeSeconds":{:.1f}}})",
      gateway.websocket_connections(), gateway.config().max_connections, t.accepted,
      t.rejected[0] + t.rejected[1] + t.rejected[2] + t.rejected[3],
      std::accumulate(std::begin(t.refused), std::end(t.refused), uint64_t{0}), t.sessions,
      t.detached, t.channels, static_cast<double>(res.rss_bytes()) / (1024.0 * 1024.0),
      res.cpu_percent(), gateway.hub().messages_in(), t.messages_out, t.bytes_out, t.slow,
      t.heartbeat, t.rate_limited, t.replays, t.resumes_ok, t.resumes_failed, t.resumes_restored,
      static_cast<double>(t.latency.quantile_ns(0.5)) / 1e6,
      static_cast<double>(t.latency.quantile_ns(0.99)) / 1e6, gateway.thread_count(),
      gateway.broker().name(), boolean(gateway.broker().connected()),
      boolean(gateway.broker().paused()), counters.received.load(), rejected,
      uptime_seconds(gateway));
}

std::string render_metrics(const Gateway& gateway) {
  const Totals t = sum(gateway);
  const ResourceMonitor& res = gateway.resources();
  std::string out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  metric("ws_connections_current", "gauge", "Open WebSocket connections.",
         gateway.websocket_connections());
  metric("ws_connections_max", "gauge", "WS_MAX_CONNECTIONS.", gateway.config().max_connections);
  metric("ws_connections_accepted_total", "counter", "WebSocket upgrades accepted.", t.accepted);
  metric("ws_connections_closed_total", "counter", "WebSocket connections closed.", t.closed);
  out +=
      "# HELP ws_connections_rejected_total Upgrades refused with 503, by reason.\n"
      "# TYPE ws_connections_rejected_total counter\n";
  for (int r = 0; r < static_cast<int>(RejectReason::kCount); ++r) {
    out += fmt::format("ws_connections_rejected_total{{reason=\"{}\"}} {}\n",
                       reject_reason_name(static_cast<RejectReason>(r)), t.rejected[r]);
  }
  out +=
      "# HELP ws_connections_refused_total Clients refused by the hostile-client guards, by "
      "reason.\n# TYPE ws_connections_refused_total counter\n";
  for (int r = 0; r < static_cast<int>(RefuseReason::kCount); ++r) {
    out += fmt::format("ws_connections_refused_total{{reason=\"{}\"}} {}\n",
                       refuse_reason_name(static_cast<RefuseReason>(r)), t.refused[r]);
  }
  metric("ws_flood_disconnects_total", "counter",
         "Clients closed with 1008 for sending more than WS_CLIENT_MAX_BYTES_PER_SEC.",
         t.flood_closes);
  metric("ws_forbidden_total", "counter", "Subscriptions refused by the token's channels claim.",
         t.forbidden);
  metric("ws_token_expired_disconnects_total", "counter", "Clients closed with 4001.",
         t.token_expired);
  metric("ws_token_refreshes_total", "counter", "Fresh tokens accepted on open connections.",
         t.tokens_refreshed);
  metric("ws_sessions", "gauge", "Sessions (attached and detached).", t.sessions);
  metric("ws_sessions_detached", "gauge", "Sessions waiting for a resume.", t.detached);
  metric("ws_sessions_detached_evicted_total", "counter",
         "Detached sessions dropped by WS_MAX_DETACHED_SESSIONS / WS_MAX_DETACHED_PER_IP.",
         t.detached_evicted);
  metric("ws_messages_in_total", "counter", "Messages ingested from the broker.",
         gateway.hub().messages_in());
  metric("ws_fanout_queue_bytes", "gauge",
         "Largest backlog of an event-loop thread's fan-out queue (WS_FANOUT_QUEUE_BYTES).",
         gateway.hub().backlog_bytes());
  metric("ws_fanout_queue_peak_bytes", "gauge",
         "The largest backlog an event-loop thread's fan-out queue had since start.",
         gateway.hub().peak_backlog_bytes());
  metric("ws_channels", "gauge",
         "Channel entries of the fullest event-loop thread (WS_MAX_CHANNELS).", t.channels);
  metric("ws_messages_out_total", "counter", "Data messages queued to clients.", t.messages_out);
  metric("ws_bytes_out_total", "counter", "Bytes written to client sockets.", t.bytes_out);
  metric("ws_slow_consumer_disconnects_total", "counter", "Clients closed with 4008.", t.slow);
  metric("ws_heartbeat_timeouts_total", "counter", "Clients closed with 4000.", t.heartbeat);
  metric("ws_protocol_errors_total", "counter", "Clients closed for protocol errors.", t.protocol);
  metric("ws_requests_total", "counter", "Client requests handled.", t.requests);
  metric("ws_replay_requests_total", "counter", "Replay requests.", t.replays);
  out += "# HELP ws_resumes_total Resume requests, by result.\n# TYPE ws_resumes_total counter\n";
  out += fmt::format(
      "ws_resumes_total{{result=\"ok\"}} {}\nws_resumes_total{{result=\"failed\"}} {}\n"
      "ws_resumes_total{{result=\"restored\"}} {}\n",
      t.resumes_ok, t.resumes_failed, t.resumes_restored);
  metric("ws_rate_limited_total", "counter", "Client requests refused by the rate limit.",
         t.rate_limited);
  metric("ws_rate_limit_disconnects_total", "counter", "Clients closed with 1008 for abuse.",
         t.rate_limit_closes);
  metric("ws_http_requests_total", "counter", "HTTP requests handled.", t.http);
  metric("ws_cpu_percent", "gauge", "Process CPU as a percentage of WS_CPU_LIMIT.",
         fmt::format("{:.2f}", res.cpu_percent()));
  metric("ws_memory_rss_bytes", "gauge", "Resident set size.", res.rss_bytes());
  metric("ws_memory_limit_bytes", "gauge", "WS_MEMORY_LIMIT (or physical memory).",
         res.memory_limit());
  append_broker_metrics(out, gateway.broker(), metric);
  metric("ws_event_loop_threads", "gauge", "Event-loop threads.", gateway.thread_count());
  metric("ws_uptime_seconds", "gauge", "Seconds since start.",
         fmt::format("{:.1f}", uptime_seconds(gateway)));
  append_prometheus_histogram(
      out, "ws_fanout_latency_seconds",
      "Time from ingest to the write to the last recipient on an event-loop thread.", t.latency);
  return out;
}

}  // namespace odin
