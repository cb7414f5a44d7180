// Unit tests of /health, /stats and /metrics rendered from a snapshot made by hand: exact lines
// and fields, the /health verdicts, and the per-thread sums a snapshot is made of.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ops/render.hpp"

namespace odin {
namespace {

ops::OpsSnapshot sample_snapshot() {
  ops::OpsSnapshot s;
  s.threads.connections_accepted = 7;
  s.threads.connections_closed = 4;
  s.threads.connections_rejected[static_cast<int>(ops::RejectReason::kAtCapacity)] = 2;
  s.threads.connections_rejected[static_cast<int>(ops::RejectReason::kDraining)] = 1;
  s.threads.connections_refused[static_cast<int>(ops::RefuseReason::kOrigin)] = 5;
  s.threads.messages_out = 120;
  s.threads.bytes_out = 9000;
  s.threads.rate_limited = 3;
  s.threads.replay_requests = 2;
  s.threads.resumes_ok = 11;
  s.threads.resumes_failed = 12;
  s.threads.resumes_restored = 13;
  s.fanout_latency.counts[ops::HistogramSnapshot::bucket_of(200'000)] = 1;
  s.fanout_latency.count = 1;
  s.fanout_latency.sum_ns = 200'000;
  s.fanout_latency.max_ns = 200'000;
  s.handshake_latency = s.fanout_latency;
  s.sessions = 6;
  s.latest_subscriptions = 4;
  s.held_messages = 2;
  s.conflated_messages = 9;
  s.compressed_connections = 2;
  s.compressed_messages = 30;
  s.compression_not_worth = 4;
  s.compression_input_bytes = 15000;
  s.compression_output_bytes = 6000;
  s.compression_nanoseconds = 204'000;
  s.detached_sessions = 1;
  s.channels = 8;
  s.thread_count = 2;
  s.websocket_connections = 3;
  s.max_connections = 100;
  s.messages_in = 40;
  s.fanout_backlog_bytes = 512;
  s.fanout_peak_backlog_bytes = 4096;
  s.cpu_percent = 12.3456;
  s.cpu_reject_threshold = 75.0;
  s.rss_bytes = 100 * 1024 * 1024;
  s.memory_limit_bytes = 1024 * 1024 * 1024;
  s.memory_reject_threshold = 90.0;
  s.uptime_seconds = 61.26;
  s.broker.name = "embedded";
  s.broker.ready = true;
  s.broker.counts.connected = true;
  s.broker.counts.received = 40;
  s.broker.counts.stream_reads_pending = 2;
  s.broker.counts.rejected[static_cast<size_t>(ops::IntakeReject::kBadSubject)] = 1;
  s.broker.counts.rejected[static_cast<size_t>(ops::IntakeReject::kOversized)] = 4;
  return s;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const std::string& l : lines(text)) {
    if (l == line) return true;
  }
  return false;
}

TEST(RenderMetrics, ScalarsCarryHelpTypeAndValue) {
  const std::string m = ops::render_metrics(sample_snapshot());
  EXPECT_EQ(m.find("# HELP ws_connections_current Open WebSocket connections.\n"
                   "# TYPE ws_connections_current gauge\n"
                   "ws_connections_current 3\n"),
            0u);
  EXPECT_NE(m.find("# HELP ws_connections_accepted_total WebSocket upgrades accepted.\n"
                   "# TYPE ws_connections_accepted_total counter\n"
                   "ws_connections_accepted_total 7\n"),
            std::string::npos);
  EXPECT_TRUE(has_line(m, "ws_connections_closed_total 4"));
  EXPECT_TRUE(has_line(m, "ws_messages_in_total 40"));
  EXPECT_TRUE(has_line(m, "ws_fanout_queue_bytes 512"));
  EXPECT_TRUE(has_line(m, "ws_fanout_queue_peak_bytes 4096"));
  EXPECT_TRUE(has_line(m, "ws_channels 8"));
  EXPECT_TRUE(has_line(m, "ws_sessions 6"));
  EXPECT_TRUE(has_line(m, "ws_rate_limited_total 3"));
  EXPECT_TRUE(has_line(m, "ws_memory_rss_bytes 104857600"));
  EXPECT_TRUE(has_line(m, "ws_event_loop_threads 2"));
  EXPECT_TRUE(has_line(m, "ws_broker_stream_reads_pending 2"));
  // Booleans are 1/0; fixed decimals as documented.
  EXPECT_TRUE(has_line(m, "ws_broker_connected 1"));
  EXPECT_TRUE(has_line(m, "ws_broker_paused 0"));
  EXPECT_TRUE(has_line(m, "ws_cpu_percent 12.35"));  // two decimals (/stats: one)
  EXPECT_TRUE(has_line(m, "ws_uptime_seconds 61.3"));
}

TEST(RenderMetrics, FamiliesHaveOneHeadAndOneLinePerLabel) {
  const std::string m = ops::render_metrics(sample_snapshot());
  EXPECT_NE(m.find("# HELP ws_connections_rejected_total Upgrades refused with 503, by reason.\n"
                   "# TYPE ws_connections_rejected_total counter\n"
                   "ws_connections_rejected_total{reason=\"at_capacity\"} 2\n"
                   "ws_connections_rejected_total{reason=\"memory\"} 0\n"
                   "ws_connections_rejected_total{reason=\"cpu\"} 0\n"
                   "ws_connections_rejected_total{reason=\"draining\"} 1\n"
                   "# HELP ws_connections_refused_total"),
            std::string::npos);
  EXPECT_TRUE(has_line(m, "ws_connections_refused_total{reason=\"origin\"} 5"));
  EXPECT_NE(m.find("# HELP ws_resumes_total Resume requests, by result.\n"
                   "# TYPE ws_resumes_total counter\n"
                   "ws_resumes_total{result=\"ok\"} 11\n"
                   "ws_resumes_total{result=\"failed\"} 12\n"
                   "ws_resumes_total{result=\"restored\"} 13\n"),
            std::string::npos);
  EXPECT_NE(m.find("# TYPE ws_broker_messages_rejected_total counter\n"
                   "ws_broker_messages_rejected_total{reason=\"bad_subject\"} 1\n"
                   "ws_broker_messages_rejected_total{reason=\"bad_type\"} 0\n"
                   "ws_broker_messages_rejected_total{reason=\"oversized\"} 4\n"),
            std::string::npos);
}

TEST(RenderMetrics, EndsWithTheLatencyHistogram) {
  const std::string m = ops::render_metrics(sample_snapshot());
  EXPECT_NE(m.find("# HELP ws_fanout_latency_seconds Time from ingest to the write to the last "
                   "recipient on an event-loop thread.\n"
                   "# TYPE ws_fanout_latency_seconds histogram\n"),
            std::string::npos);
  EXPECT_TRUE(has_line(m, "ws_fanout_latency_seconds_bucket{le=\"0.0001\"} 0"));
  EXPECT_TRUE(has_line(m, "ws_fanout_latency_seconds_bucket{le=\"0.00025\"} 1"));
  EXPECT_TRUE(has_line(m, "ws_fanout_latency_seconds_sum 0.000200000"));
  EXPECT_EQ(lines(m).back(), "ws_fanout_latency_seconds_count 1");
  EXPECT_TRUE(has_line(m, "ws_handshake_duration_seconds_bucket{le=\"0.00025\"} 1"));
  EXPECT_TRUE(has_line(m, "ws_handshake_duration_seconds_count 1"));
}

TEST(RenderMetrics, EveryNameHasOneHeadAndSamples) {
  const std::vector<std::string> all = lines(ops::render_metrics(sample_snapshot()));
  std::set<std::string> helped, typed;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& line = all[i];
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(helped.insert(name).second) << "HELP twice: " << name;
      ASSERT_LT(i + 2, all.size());
      EXPECT_EQ(all[i + 1].rfind("# TYPE " + name + " ", 0), 0u) << name;
      EXPECT_EQ(all[i + 2].rfind(name, 0), 0u) << name;  // a sample follows
      typed.insert(name);
    }
  }
  EXPECT_EQ(helped.size(), 64u);
  EXPECT_EQ(helped, typed);
}

TEST(RenderStats, IsTheExactDocument) {
  EXPECT_EQ(ops::render_stats(sample_snapshot()),
            R"({"currentConnections":3,"maxConnections":100,"connectionsAccepted":7,)"
            R"("connectionsRejected":3,"connectionsRefused":5,"sessions":6,"detachedSessions":1,)"
            R"("latestSubscriptions":4,"heldMessages":2,"conflatedMessages":9,)"
            R"("compressedConnections":2,"compressedMessages":30,"compressionNotWorth":4,)"
            R"("compressionInputBytes":15000,"compressionOutputBytes":6000,)"
            R"("compressionSeconds":0.000204,)"
            R"("channels":8,"memoryMB":100.0,"cpuPercent":12.3,"messagesIn":40,"messagesOut":120,)"
            R"("bytesOut":9000,"slowClientDisconnects":0,"heartbeatTimeouts":0,"rateLimited":3,)"
            R"("replayRequests":2,"resumesOk":11,"resumesFailed":12,"resumesRestored":13,)"
            R"("fanoutLatencyMs":{"p50":0.200,"p99":0.200},)"
            R"("handshakeLatencyMs":{"p50":0.200,"p99":0.200},"threads":2,"broker":"embedded",)"
            R"("brokerConnected":true,"brokerPaused":false,"brokerReceived":40,)"
            R"("brokerRejected":5,"uptimeSeconds":61.3})");
}

TEST(RenderHealth, HealthyWithEveryCheck) {
  const ops::HealthReport h = ops::render_health(sample_snapshot());
  EXPECT_EQ(h.status, 200u);
  EXPECT_EQ(h.body,
            R"({"status":"healthy","checks":{"cpu":{"percentage":12.3,"threshold":75.0,)"
            R"("healthy":true},"memory":{"percentage":9.8,"limit_mb":1024,"healthy":true},)"
            R"("capacity":{"current":3,"max":100,"percentage":3.0},)"
            R"("broker":{"connected":true,"ready":true,"type":"embedded","paused":false}}})");
}

TEST(RenderHealth, DegradedWhenRefusingForAResource) {
  ops::OpsSnapshot s = sample_snapshot();
  s.cpu_percent = 80.0;
  ops::HealthReport h = ops::render_health(s);
  EXPECT_EQ(h.status, 200u);
  EXPECT_EQ(h.body.rfind(R"({"status":"degraded","checks":{"cpu":{"percentage":80.0,)", 0), 0u);
  EXPECT_NE(h.body.find(R"("healthy":false)"), std::string::npos);

  s = sample_snapshot();
  s.websocket_connections = 100;
  EXPECT_EQ(ops::render_health(s).body.rfind(R"({"status":"degraded")", 0), 0u);
  s = sample_snapshot();
  s.broker.counts.paused = true;
  EXPECT_EQ(ops::render_health(s).body.rfind(R"({"status":"degraded")", 0), 0u);
}

TEST(RenderHealth, UnhealthyWhenItCannotServe) {
  ops::OpsSnapshot s = sample_snapshot();
  s.broker.ready = false;  // connected, JetStream consumer not bound yet
  ops::HealthReport h = ops::render_health(s);
  EXPECT_EQ(h.status, 503u);
  EXPECT_NE(h.body.find(R"("broker":{"connected":true,"ready":false,)"), std::string::npos);

  s = sample_snapshot();
  s.draining = true;
  EXPECT_EQ(ops::render_health(s).status, 503u);
  s = sample_snapshot();
  s.rss_bytes = s.memory_limit_bytes;
  EXPECT_EQ(ops::render_health(s).status, 503u);
}

TEST(RenderHealth, JetStreamReportsItsLosses) {
  ops::OpsSnapshot s = sample_snapshot();
  s.broker.name = "jetstream";
  s.broker.counts.history_restarts = 2;
  s.broker.counts.stream_resets = 1;
  const std::string body = ops::render_health(s).body;
  EXPECT_NE(body.find(R"("broker":{"connected":true,"ready":true,"type":"jetstream",)"
                      R"("paused":false,"history_restarts":2,"stream_resets":1}}})"),
            std::string::npos);
}

TEST(ThreadCounts, AddCountsSumsEveryField) {
  ops::ThreadStats a, b;
  a.connections_accepted.add(2);
  b.connections_accepted.add(3);
  a.tokens_refreshed.add();
  b.refused(ops::RefuseReason::kTlsFailed);
  b.refused(ops::RefuseReason::kTlsFailed);
  a.connections_rejected[static_cast<int>(ops::RejectReason::kCpu)].add(4);
  ops::ThreadCounts sums;
  ops::add_counts(sums, a);
  ops::add_counts(sums, b);
  EXPECT_EQ(sums.connections_accepted, 5u);
  EXPECT_EQ(sums.tokens_refreshed, 1u);
  EXPECT_EQ(sums.connections_refused[static_cast<int>(ops::RefuseReason::kTlsFailed)], 2u);
  EXPECT_EQ(sums.connections_rejected[static_cast<int>(ops::RejectReason::kCpu)], 4u);
  EXPECT_EQ(sums.messages_out, 0u);
}

TEST(BrokerCounts, CopyCountsCopiesEveryField) {
  ops::BrokerCounters live;
  live.connected = true;
  live.stream_reads_pending = 3;
  live.publish_failures = 2;
  live.fanout_behind_episodes = 5;
  live.reject(ops::IntakeReject::kDuplicate);
  ops::BrokerCounts copy;
  ops::copy_counts(copy, live);
  EXPECT_TRUE(copy.connected);
  EXPECT_TRUE(copy.intake_ready);
  EXPECT_EQ(copy.stream_reads_pending, 3u);
  EXPECT_EQ(copy.publish_failures, 2u);
  EXPECT_EQ(copy.fanout_behind_episodes, 5u);
  EXPECT_EQ(copy.rejected[static_cast<size_t>(ops::IntakeReject::kDuplicate)], 1u);
  EXPECT_EQ(copy.received, 0u);
}

}  // namespace
}  // namespace odin
