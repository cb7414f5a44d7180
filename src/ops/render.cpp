// /health, /stats and /metrics from an OpsSnapshot (see render.hpp). /metrics and /stats come
// from one table, so a metric and its /stats field cannot drift apart; /health is a verdict with
// its own rules, written out below the table.
#include "ops/render.hpp"

#include <fmt/format.h>

#include <functional>
#include <iterator>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "core/json.hpp"

namespace odin::ops {

namespace {

// A value with a fixed number of decimals (the same in every scrape, for diffable output).
struct Fixed {
  double value = 0.0;
  int decimals = 0;
};

// A labelled family: one /metrics sample per label value. A sample with a stats key is also a
// /stats field of its own.
struct Sample {
  std::string label;
  uint64_t value = 0;
  std::string_view stats = {};
};
struct Family {
  std::string_view label;  // the label's name: reason, result
  std::vector<Sample> samples;
};

// What a table entry reads from the snapshot. bool is 1/0 in /metrics and true/false in /stats;
// a string is for /stats only; a histogram is the Prometheus histogram in /metrics and
// {"p50":..,"p99":..} in milliseconds in /stats; a family is summed under its /stats key.
using Value =
    std::variant<uint64_t, bool, Fixed, std::string_view, Family, const HistogramSnapshot*>;
using Read = std::function<Value(const OpsSnapshot&)>;

struct Field {
  std::string_view metric;  // Prometheus name; empty: a /stats field only
  std::string_view type;    // counter, gauge or histogram
  std::string_view help;
  Read read;
  std::string_view stats = {};  // /stats key; empty: not in /stats
};

Field stats_only(std::string_view key, Read read) {
  return Field{{}, {}, {}, std::move(read), key};
}

template <typename Reason, typename Counts>
Family by_reason(const Counts& counts, const char* (*name)(Reason)) {
  Family family{"reason", {}};
  for (size_t r = 0; r < std::size(counts); ++r)
    family.samples.push_back({name(static_cast<Reason>(r)), counts[r]});
  return family;
}

// Every metric of /metrics and every field of /stats, in the order of both outputs: /metrics
// lists the entries that have a metric name, /stats those that have a stats key.
//
// To add a metric, add one entry where it should appear: {name, type, help, how to read it from
// the snapshot, and optionally its /stats key}. If the value is not in OpsSnapshot yet, add it
// there and fill it in Gateway::snapshot() (app/snapshot.cpp). A counter declared in
// ThreadCountersOf or BrokerCountersOf (ops/metrics.hpp) is in the snapshot already: summed over
// the threads, or copied from the broker.
// The order is part of both outputs: scrapers diff them. A few /stats fields have always sat
// elsewhere than their metric (channels, rateLimited, threads, fanoutLatencyMs): they are
// /stats-only entries of their own, so that neither output changed when the table came.
const std::vector<Field>& fields() {
  using S = const OpsSnapshot&;
  static const std::vector<Field> kFields = {
      {"ws_connections_current", "gauge", "Open WebSocket connections.",
       [](S s) { return s.websocket_connections; }, "currentConnections"},
      {"ws_connections_max", "gauge", "WS_MAX_CONNECTIONS.", [](S s) { return s.max_connections; },
       "maxConnections"},
      {"ws_connections_accepted_total", "counter", "WebSocket upgrades accepted.",
       [](S s) { return s.threads.connections_accepted; }, "connectionsAccepted"},
      {"ws_connections_closed_total", "counter", "WebSocket connections closed.",
       [](S s) { return s.threads.connections_closed; }},
      {"ws_connections_rejected_total", "counter", "Upgrades refused with 503, by reason.",
       [](S s) { return by_reason(s.threads.connections_rejected, reject_reason_name); },
       "connectionsRejected"},
      {"ws_connections_refused_total", "counter",
       "Clients refused by the hostile-client guards, by reason.",
       [](S s) { return by_reason(s.threads.connections_refused, refuse_reason_name); },
       "connectionsRefused"},
      {"ws_flood_disconnects_total", "counter",
       "Clients closed with 1008 for sending more than WS_CLIENT_MAX_BYTES_PER_SEC.",
       [](S s) { return s.threads.flood_closes; }},
      {"ws_forbidden_total", "counter", "Subscriptions refused by the token's channels claim.",
       [](S s) { return s.threads.forbidden; }},
      {"ws_token_expired_disconnects_total", "counter", "Clients closed with 4001.",
       [](S s) { return s.threads.token_expired_closes; }},
      {"ws_token_refreshes_total", "counter", "Fresh tokens accepted on open connections.",
       [](S s) { return s.threads.tokens_refreshed; }},
      {"ws_sessions", "gauge", "Sessions (attached and detached).", [](S s) { return s.sessions; },
       "sessions"},
      {"ws_sessions_detached", "gauge", "Sessions waiting for a resume.",
       [](S s) { return s.detached_sessions; }, "detachedSessions"},
      {"ws_latest_subscriptions", "gauge", "Subscriptions with delivery latest (or max_hz).",
       [](S s) { return s.latest_subscriptions; }, "latestSubscriptions"},
      {"ws_held_messages", "gauge", "Messages held for latest subscriptions, to go out later.",
       [](S s) { return s.held_messages; }, "heldMessages"},
      {"ws_conflated_messages_total", "counter",
       "Messages skipped for latest subscriptions (conflated: a newer one went instead).",
       [](S s) { return s.conflated_messages; }, "conflatedMessages"},
      {"ws_compressed_connections", "gauge",
       "Connections that negotiated permessage-deflate (WS_COMPRESSION).",
       [](S s) { return s.compressed_connections; }, "compressedConnections"},
      {"ws_compressed_messages_total", "counter",
       "Messages compressed once for every compressed connection and sent compressed.",
       [](S s) { return s.compressed_messages; }, "compressedMessages"},
      {"ws_compression_not_worth_total", "counter",
       "Messages compressed but sent uncompressed: too small or too random to gain.",
       [](S s) { return s.compression_not_worth; }, "compressionNotWorth"},
      {"ws_compression_input_bytes_total", "counter",
       "Bytes of the messages sent compressed, before compression (once per message).",
       [](S s) { return s.compression_input_bytes; }, "compressionInputBytes"},
      {"ws_compression_output_bytes_total", "counter",
       "What those messages compressed to (each recipient adds its own prefix of ~15 bytes).",
       [](S s) { return s.compression_output_bytes; }, "compressionOutputBytes"},
      {"ws_compression_seconds_total", "counter",
       "CPU time spent compressing messages, once each (divide by the two message counters for "
       "the time per message).",
       [](S s) {
         return Fixed{static_cast<double>(s.compression_nanoseconds) / 1e9, 6};
       },
       "compressionSeconds"},
      {"ws_sessions_detached_evicted_total", "counter",
       "Detached sessions dropped by WS_MAX_DETACHED_SESSIONS / WS_MAX_DETACHED_PER_IP.",
       [](S s) { return s.threads.detached_evicted; }},
      stats_only("channels", [](S s) { return s.channels; }),
      stats_only("memoryMB",
                 [](S s) {
                   return Fixed{static_cast<double>(s.rss_bytes) / (1024.0 * 1024.0), 1};
                 }),
      stats_only("cpuPercent",
                 [](S s) {
                   return Fixed{s.cpu_percent, 1};
                 }),
      {"ws_messages_in_total", "counter", "Messages ingested from the broker.",
       [](S s) { return s.messages_in; }, "messagesIn"},
      {"ws_fanout_queue_bytes", "gauge",
       "Largest backlog of an event-loop thread's fan-out queue (WS_FANOUT_QUEUE_BYTES).",
       [](S s) { return s.fanout_backlog_bytes; }},
      {"ws_fanout_queue_peak_bytes", "gauge",
       "The largest backlog an event-loop thread's fan-out queue had since start.",
       [](S s) { return s.fanout_peak_backlog_bytes; }},
      {"ws_channels", "gauge",
       "Channel entries of the fullest event-loop thread (WS_MAX_CHANNELS).",
       [](S s) { return s.channels; }},
      {"ws_messages_out_total", "counter", "Data messages queued to clients.",
       [](S s) { return s.threads.messages_out; }, "messagesOut"},
      {"ws_bytes_out_total", "counter", "Bytes written to client sockets.",
       [](S s) { return s.threads.bytes_out; }, "bytesOut"},
      {"ws_slow_consumer_disconnects_total", "counter", "Clients closed with 4008.",
       [](S s) { return s.threads.slow_consumer_closes; }, "slowClientDisconnects"},
      {"ws_heartbeat_timeouts_total", "counter", "Clients closed with 4000.",
       [](S s) { return s.threads.heartbeat_timeouts; }, "heartbeatTimeouts"},
      {"ws_protocol_errors_total", "counter", "Clients closed for protocol errors.",
       [](S s) { return s.threads.protocol_errors; }},
      {"ws_requests_total", "counter", "Client requests handled.",
       [](S s) { return s.threads.requests; }},
      stats_only("rateLimited", [](S s) { return s.threads.rate_limited; }),
      {"ws_replay_requests_total", "counter", "Replay requests.",
       [](S s) { return s.threads.replay_requests; }, "replayRequests"},
      {"ws_resumes_total", "counter", "Resume requests, by result.",
       [](S s) {
         return Family{"result",
                       {{"ok", s.threads.resumes_ok, "resumesOk"},
                        {"failed", s.threads.resumes_failed, "resumesFailed"},
                        {"restored", s.threads.resumes_restored, "resumesRestored"}}};
       }},
      stats_only("fanoutLatencyMs", [](S s) { return &s.fanout_latency; }),
      stats_only("handshakeLatencyMs", [](S s) { return &s.handshake_latency; }),
      stats_only("threads", [](S s) { return s.thread_count; }),
      stats_only("broker", [](S s) { return std::string_view(s.broker.name); }),
      stats_only("brokerConnected", [](S s) { return s.broker.counts.connected; }),
      stats_only("brokerPaused", [](S s) { return s.broker.counts.paused; }),
      {"ws_rate_limited_total", "counter", "Client requests refused by the rate limit.",
       [](S s) { return s.threads.rate_limited; }},
      {"ws_rate_limit_disconnects_total", "counter", "Clients closed with 1008 for abuse.",
       [](S s) { return s.threads.rate_limit_closes; }},
      {"ws_http_requests_total", "counter", "HTTP requests handled.",
       [](S s) { return s.threads.http_requests; }},
      {"ws_cpu_percent", "gauge", "Process CPU as a percentage of WS_CPU_LIMIT.",
       [](S s) {
         return Fixed{s.cpu_percent, 2};
       }},
      {"ws_memory_rss_bytes", "gauge", "Resident set size.", [](S s) { return s.rss_bytes; }},
      {"ws_memory_limit_bytes", "gauge", "WS_MEMORY_LIMIT (or physical memory).",
       [](S s) { return s.memory_limit_bytes; }},
      {"ws_broker_connected", "gauge", "1 when the broker is connected.",
       [](S s) { return s.broker.counts.connected; }},
      {"ws_broker_paused", "gauge", "1 while intake is paused for CPU.",
       [](S s) { return s.broker.counts.paused; }},
      {"ws_broker_pauses_total", "counter", "Times intake paused for CPU.",
       [](S s) { return s.broker.counts.pauses; }},
      {"ws_broker_fanout_behind", "gauge",
       "1 while an event-loop thread's fan-out queue is above WS_FANOUT_QUEUE_BYTES.",
       [](S s) { return s.broker.counts.fanout_behind; }},
      {"ws_broker_fanout_behind_total", "counter",
       "Times a fan-out queue went above WS_FANOUT_QUEUE_BYTES (JetStream held its pulls, the "
       "others dropped).",
       [](S s) { return s.broker.counts.fanout_behind_episodes; }},
      {"ws_broker_disconnects_total", "counter", "Broker connections lost.",
       [](S s) { return s.broker.counts.disconnects; }},
      {"ws_broker_reconnects_total", "counter", "Broker connections regained.",
       [](S s) { return s.broker.counts.reconnects; }},
      {"ws_broker_gap_filled_total", "counter",
       "JetStream messages lost in flight and read back from the stream, in order.",
       [](S s) { return s.broker.counts.gap_filled; }},
      {"ws_broker_history_restarts_total", "counter",
       "JetStream gaps that could not be read back (resume from before them fails here).",
       [](S s) { return s.broker.counts.history_restarts; }},
      {"ws_broker_stream_resets_total", "counter",
       "JetStream: times the stream was found deleted and created again (intake started over).",
       [](S s) { return s.broker.counts.stream_resets; }},
      {"ws_broker_stream_reads_pending", "gauge",
       "JetStream: resumes waiting for a read-back of the stream (WS_MAX_STREAM_READS).",
       [](S s) { return uint64_t{s.broker.counts.stream_reads_pending}; }},
      {"ws_broker_stream_reads_refused_total", "counter",
       "JetStream: resumes answered resume_failed because WS_MAX_STREAM_READS were waiting.",
       [](S s) { return s.broker.counts.stream_reads_refused; }},
      {"ws_broker_stream_reads_abandoned_total", "counter",
       "JetStream: read-backs given up because the client hung up while waiting.",
       [](S s) { return s.broker.counts.stream_reads_abandoned; }},
      {"ws_broker_stream_reads_timed_out_total", "counter",
       "JetStream: read-backs stopped by WS_STREAM_READ_TIMEOUT.",
       [](S s) { return s.broker.counts.stream_reads_timed_out; }},
      {"ws_broker_messages_received_total", "counter", "Messages taken from the broker.",
       [](S s) { return s.broker.counts.received; }, "brokerReceived"},
      {"ws_broker_messages_delivered_total", "counter", "Broker messages handed to the fan-out.",
       [](S s) { return s.broker.counts.delivered; }},
      {"ws_broker_messages_dropped_total", "counter",
       "Core NATS messages the client library dropped because intake fell behind.",
       [](S s) { return s.broker.counts.dropped; }},
      {"ws_broker_messages_rejected_total", "counter", "Broker messages not delivered, by reason.",
       [](S s) { return by_reason(s.broker.counts.rejected, intake_reject_name); },
       "brokerRejected"},
      {"ws_publish_messages_total", "counter", "POST /publish messages the broker accepted.",
       [](S s) { return s.broker.counts.published; }},
      {"ws_publish_failures_total", "counter", "POST /publish requests the broker refused.",
       [](S s) { return s.broker.counts.publish_failures; }},
      {"ws_event_loop_threads", "gauge", "Event-loop threads.", [](S s) { return s.thread_count; }},
      {"ws_uptime_seconds", "gauge", "Seconds since start.",
       [](S s) {
         return Fixed{s.uptime_seconds, 1};
       },
       "uptimeSeconds"},
      {"ws_handshake_duration_seconds", "histogram",
       "WebSocket upgrades: time from the start of the request (the accept, for a connection's "
       "first; TLS included) to the 101 queued, at millisecond resolution.",
       [](S s) { return &s.handshake_latency; }},
      {"ws_fanout_latency_seconds", "histogram",
       "Time from ingest to the write to the last recipient on an event-loop thread.",
       [](S s) { return &s.fanout_latency; }},
  };
  return kFields;
}

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};

void append_metric(std::string& out, const Field& field, const Value& value) {
  const auto head = [&] {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", field.metric, field.help, field.metric,
                       field.type);
  };
  std::visit(Overloaded{
                 [&](uint64_t v) {
                   head();
                   out += fmt::format("{} {}\n", field.metric, v);
                 },
                 [&](bool v) {
                   head();
                   out += fmt::format("{} {}\n", field.metric, v ? 1 : 0);
                 },
                 [&](const Fixed& v) {
                   head();
                   out += fmt::format("{} {:.{}f}\n", field.metric, v.value, v.decimals);
                 },
                 [&](std::string_view) {},  // /stats only: Prometheus samples are numbers
                 [&](const Family& family) {
                   head();
                   for (const Sample& sample : family.samples) {
                     out += fmt::format("{}{{{}=\"{}\"}} {}\n", field.metric, family.label,
                                        sample.label, sample.value);
                   }
                 },
                 [&](const HistogramSnapshot* histogram) {
                   append_prometheus_histogram(out, field.metric, field.help, *histogram);
                 },
             },
             value);
}

void append_stats_fields(std::string& out, const Field& field, const Value& value) {
  const auto key = [&](std::string_view name) {
    if (out.size() > 1) out += ',';
    core::json::append_string(out, name);
    out += ':';
  };
  std::visit(Overloaded{
                 [&](uint64_t v) {
                   key(field.stats);
                   out += fmt::format("{}", v);
                 },
                 [&](bool v) {
                   key(field.stats);
                   out += v ? "true" : "false";
                 },
                 [&](const Fixed& v) {
                   key(field.stats);
                   out += fmt::format("{:.{}f}", v.value, v.decimals);
                 },
                 [&](std::string_view v) {
                   key(field.stats);
                   core::json::append_string(out, v);
                 },
                 [&](const Family& family) {
                   if (!field.stats.empty()) {
                     uint64_t sum = 0;
                     for (const Sample& sample : family.samples)
                       sum += sample.value;
                     key(field.stats);
                     out += fmt::format("{}", sum);
                   }
                   for (const Sample& sample : family.samples) {
                     if (sample.stats.empty()) continue;
                     key(sample.stats);
                     out += fmt::format("{}", sample.value);
                   }
                 },
                 [&](const HistogramSnapshot* histogram) {
                   key(field.stats);
                   out += fmt::format(R"({{"p50":{:.3f},"p99":{:.3f}}})",
                                      static_cast<double>(histogram->quantile_ns(0.5)) / 1e6,
                                      static_cast<double>(histogram->quantile_ns(0.99)) / 1e6);
                 },
             },
             value);
}

bool has_stats(const Field& field, const Value& value) {
  if (!field.stats.empty()) return true;
  const Family* family = std::get_if<Family>(&value);
  if (family == nullptr) return false;
  for (const Sample& sample : family->samples) {
    if (!sample.stats.empty()) return true;
  }
  return false;
}

const char* boolean(bool b) {
  return b ? "true" : "false";
}

// JetStream: the losses the intake could not avoid, reported rather than silent (the stream
// read from the start again, gaps that could not be read back).
std::string stream_losses(const BrokerSnapshot& broker) {
  if (broker.name != "jetstream") return {};
  return fmt::format(R"(,"history_restarts":{},"stream_resets":{})", broker.counts.history_restarts,
                     broker.counts.stream_resets);
}

}  // namespace

std::string render_metrics(const OpsSnapshot& snapshot) {
  std::string out;
  for (const Field& field : fields()) {
    if (!field.metric.empty()) append_metric(out, field, field.read(snapshot));
  }
  return out;
}

std::string render_stats(const OpsSnapshot& snapshot) {
  std::string out = "{";
  for (const Field& field : fields()) {
    const Value value = field.read(snapshot);
    if (has_stats(field, value)) append_stats_fields(out, field, value);
  }
  out += '}';
  return out;
}

HealthReport render_health(const OpsSnapshot& s) {
  const double memory =
      s.memory_limit_bytes ? 100.0 * static_cast<double>(s.rss_bytes) / s.memory_limit_bytes : 0.0;
  const double capacity =
      100.0 * static_cast<double>(s.websocket_connections) / static_cast<double>(s.max_connections);
  const bool cpu_ok = s.cpu_percent < s.cpu_reject_threshold;
  const bool memory_ok = memory < s.memory_reject_threshold;
  // Unhealthy: cannot serve (no broker, memory exhausted, draining): the balancer should stop
  // sending clients. Degraded: serving, but refusing new connections for a resource reason.
  const char* status = "healthy";
  unsigned http_status = 200;
  if (!s.broker.ready || memory >= 100.0 || s.draining) {
    status = "unhealthy";
    http_status = 503;
  } else if (!cpu_ok || !memory_ok || s.broker.counts.paused ||
             s.websocket_connections >= s.max_connections) {
    status = "degraded";
  }
  HealthReport report;
  report.status = http_status;
  report.body = fmt::format(
      R"({{"status":"{}","checks":{{"cpu":{{"percentage":{:.1f},"threshold":{:.1f},"healthy":{}}},)"
      R"("memory":{{"percentage":{:.1f},"limit_mb":{},"healthy":{}}},)"
      R"("capacity":{{"current":{},"max":{},"percentage":{:.1f}}},)"
      R"("broker":{{"connected":{},"ready":{},"type":"{}","paused":{}{}}}}}}})",
      status, s.cpu_percent, s.cpu_reject_threshold, boolean(cpu_ok), memory,
      s.memory_limit_bytes / (1024 * 1024), boolean(memory_ok), s.websocket_connections,
      s.max_connections, capacity, boolean(s.broker.counts.connected), boolean(s.broker.ready),
      s.broker.name, boolean(s.broker.counts.paused), stream_losses(s.broker));
  return report;
}

}  // namespace odin::ops
