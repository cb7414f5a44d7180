// Unit tests of the WebSocket Client's state machine (session/client.hpp) against a connection
// whose client end the test drives with masked frames: the close handshake (echo, then EOF),
// ping/pong, the heartbeat timeout (4000) and the server's pings driven through the sweep with a
// fabricated later time, the input flood guard (1008), the slow consumer (4008, after whole
// frames only) and token expiry (4001). One Worker's parts built alone, its loop driven by hand
// (the sweep is called directly, never by a timer); the client end is a real TCP socket over
// 127.0.0.1.
#include "session/client.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "hub/fanout.hpp"
#include "loop_harness.hpp"
#include "ops/config.hpp"
#include "ws/frame.hpp"

namespace odin {
namespace {

using namespace odin::testing;

// A server close frame as the gateway writes it.
std::string server_close(uint16_t code, std::string_view reason = {}) {
  const std::string payload = close_payload(code, reason);
  std::string out;
  out += '\x88';
  out += static_cast<char>(payload.size());
  out += payload;
  return out;
}

// One Worker with one attached client; the session's id is `id`.
struct OneClient {
  explicit OneClient(const ops::Config& config, int client_rcvbuf = 0, int server_sndbuf = 0)
      : worker(config), pair(make_tcp_pair(client_rcvbuf, server_sndbuf)), end{pair.client.get()} {
    attached = attach_client(worker, pair, id);
  }
  net::EventLoop& loop() { return worker.loop(); }
  session::Session* session() { return worker.clients().sessions().find(id); }

  const session::SessionId id{7, 0x700};
  SoloWorker worker;
  TcpPair pair;
  ClientEnd end;
  AttachedClient attached;
};

TEST(Client, AClientCloseFrameIsEchoedWithItsCodeAndTheSocketCloses) {
  ops::Config config;
  OneClient c(config);
  ASSERT_NE(c.attached.client, nullptr);
  send_all(c.end.fd, masked_frame(0x8, close_payload(3008, "bye")));
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  EXPECT_EQ(c.end.bytes, server_close(3008)) << "same code, no reason; then our side ends";
  // The session stays, detached, for a resume.
  ASSERT_NE(c.session(), nullptr);
  EXPECT_TRUE(c.session()->detached());
  // Our answer to the echo is to close TCP as well: the connection ends.
  c.pair.client.reset();
  ASSERT_TRUE(
      pump_until({&c.loop()}, [&] { return c.loop().stats().connections_closed.get() == 1; }));
}

TEST(Client, ACloseFrameWithoutACodeIsAnsweredWith1000) {
  ops::Config config;
  OneClient c(config);
  send_all(c.end.fd, masked_frame(0x8, ""));
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  EXPECT_EQ(c.end.bytes, server_close(ws::close_code::kNormal));
}

TEST(Client, APingGetsAPongWithTheSamePayload) {
  ops::Config config;
  OneClient c(config);
  send_all(c.end.fd, masked_frame(0x9, "are you there?"));
  const std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, 1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_TRUE(frames[0].fin);
  EXPECT_EQ(frames[0].payload, "are you there?");
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty());
  EXPECT_FALSE(c.end.eof);
}

TEST(Client, NoInputForTheHeartbeatTimeoutClosesWith4000) {
  ops::Config config;
  config.ping_interval = ops::Millis(3'600'000);  // no server pings in the way
  config.heartbeat_timeout = ops::Millis(90'000);
  OneClient c(config);
  const int64_t start = core::mono_ms();
  c.attached.conn->on_sweep(start + 60'000);
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty()) << "within the timeout: nothing";
  c.attached.conn->on_sweep(start + 90'000 + 1'000);
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  EXPECT_EQ(c.end.bytes, server_close(ws::close_code::kHeartbeatTimeout, "heartbeat timeout"));
  EXPECT_EQ(ws::close_code::kHeartbeatTimeout, 4000);
  EXPECT_EQ(c.loop().stats().heartbeat_timeouts.get(), 1u);
  ASSERT_NE(c.session(), nullptr);
  EXPECT_TRUE(c.session()->detached());
}

TEST(Client, InputRestartsTheHeartbeatClock) {
  // The client's clock is real time (mono_ms at construction and on input); the sweep's is
  // fabricated. Real time passes first (a bounded wait, not an assertion), then a pong arrives:
  // a sweep soon after it, but well past the timeout counted from the construction, finds the
  // client alive.
  ops::Config config;
  config.ping_interval = ops::Millis(3'600'000);
  config.heartbeat_timeout = ops::Millis(1'000);
  OneClient c(config);
  const int64_t constructed_by = core::mono_ms();
  ASSERT_TRUE(pump_until({&c.loop()}, [&] { return core::mono_ms() >= constructed_by + 1'500; }));
  send_all(c.end.fd, masked_frame(0xA, ""));
  ASSERT_TRUE(
      pump_until({&c.loop()}, [&] { return consumed_by_server(c.end.fd, c.attached.conn->fd()); }));
  const int64_t heard_by = core::mono_ms();
  // Counted from the construction this is over 1,700 ms of silence; from the pong, at most
  // 200 ms plus the time between the read and heard_by.
  c.attached.conn->on_sweep(heard_by + 200);
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty());
  EXPECT_EQ(c.loop().stats().heartbeat_timeouts.get(), 0u);
  // And the timeout still counts from the pong.
  c.attached.conn->on_sweep(heard_by + 1'000);
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  EXPECT_EQ(c.end.bytes, server_close(ws::close_code::kHeartbeatTimeout, "heartbeat timeout"));
}

TEST(Client, ThePingIntervalMakesTheServerPing) {
  ops::Config config;
  config.ping_interval = ops::Millis(30'000);
  config.heartbeat_timeout = ops::Millis(3'600'000);
  OneClient c(config);
  const int64_t start = core::mono_ms();
  c.attached.conn->on_sweep(start + 20'000);
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty()) << "quiet for less than the interval: no ping";

  c.attached.conn->on_sweep(start + 31'000);
  c.attached.conn->on_sweep(start + 31'000);  // the same moment again: one ping
  ASSERT_TRUE(c.end.read_at_least({&c.loop()}, 2));
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_EQ(c.end.take(2), std::string("\x89\x00", 2));
  EXPECT_TRUE(c.end.bytes.empty());

  // The next one an interval after the last ping.
  c.attached.conn->on_sweep(start + 31'000 + 29'000);
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty());
  c.attached.conn->on_sweep(start + 31'000 + 30'000);
  ASSERT_TRUE(c.end.read_at_least({&c.loop()}, 2));
  EXPECT_EQ(c.end.take(2), std::string("\x89\x00", 2));
  EXPECT_FALSE(c.end.eof);
}

TEST(Client, SendingFasterThanTheByteRateClosesWithPolicy) {
  ops::Config config;
  config.client_max_bytes_per_sec = 1000;
  OneClient c(config);
  // Under the budget: a heartbeat request is answered.
  send_all(c.end.fd, masked_text("{\"type\":\"heartbeat\",\"id\":1}"));
  std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, 1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_TRUE(frames[0].payload.starts_with("{\"type\":\"pong\",\"ts\":")) << frames[0].payload;
  EXPECT_TRUE(frames[0].payload.ends_with(",\"id\":1}")) << frames[0].payload;
  // Then more than a second's worth at once.
  send_all(c.end.fd,
           masked_text("{\"type\":\"heartbeat\",\"pad\":\"" + std::string(1500, 'p') + "\"}"));
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  EXPECT_EQ(c.end.bytes, server_close(ws::close_code::kPolicy, "sending too fast"))
      << "closed before the request was read: no pong";
  EXPECT_EQ(c.loop().stats().flood_closes.get(), 1u);
}

TEST(Client, AClientThatNeverReadsIsClosedWith4008AfterWholeFrames) {
  ops::Config config;
  config.client_queue_bytes = 4096;
  // Small buffers both ways, so the kernel takes little of the flood.
  OneClient c(config, /*client_rcvbuf=*/4096, /*server_sndbuf=*/4096);
  ASSERT_NE(c.attached.session, nullptr);
  hub::Hub hub({&c.worker.fanout()});
  ASSERT_TRUE(c.worker.clients().index().subscribe(*c.attached.session, "A"));

  constexpr int kMessages = 400;
  const std::string data = "\"" + std::string(1000, 'd') + "\"";
  std::vector<core::IngestItem> items(kMessages, core::IngestItem{"A", "tick", data, true});
  hub.ingest(items);
  // One drain turn: everything is queued and flushed, the kernel takes a little, the rest is
  // the backlog, far over the limit.
  ASSERT_TRUE(
      pump_until({&c.loop()}, [&] { return c.loop().stats().slow_consumer_closes.get() == 1; }));
  EXPECT_EQ(c.attached.session->seq(), static_cast<uint64_t>(kMessages))
      << "every message numbered and kept for a resume";
  EXPECT_TRUE(c.attached.session->detached());

  // Now the client reads everything: data frames 1..K, whole and in order, then the close.
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  uint64_t expected_seq = 1;
  std::optional<Frame> close;
  while (std::optional<Frame> frame = pop_frame(c.end.bytes)) {
    ASSERT_FALSE(close) << "nothing after the close frame";
    if (frame->opcode == 0x8) {
      close = std::move(frame);
      continue;
    }
    ASSERT_EQ(frame->opcode, 0x1);
    ASSERT_EQ(json_member(frame->payload, "seq"), std::to_string(expected_seq));
    ASSERT_TRUE(frame->payload.ends_with(",\"data\":" + data + "}"));
    ++expected_seq;
  }
  EXPECT_TRUE(c.end.bytes.empty()) << "no partial frame left: " << c.end.bytes.size() << " bytes";
  ASSERT_TRUE(close);
  EXPECT_EQ(close->payload, close_payload(ws::close_code::kSlowConsumer, "slow consumer"));
  EXPECT_GT(expected_seq, 1u) << "the kernel took some frames before the close";
  EXPECT_LT(expected_seq - 1, static_cast<uint64_t>(kMessages)) << "the backlog was dropped";
}

TEST(Client, AClientBehindWithinTheQueueLimitGetsEveryFrameInOrderFromTheBacklog) {
  ops::Config config;
  config.client_queue_bytes = 4 << 20;
  OneClient c(config, /*client_rcvbuf=*/4096, /*server_sndbuf=*/4096);
  ASSERT_NE(c.attached.session, nullptr);
  hub::Hub hub({&c.worker.fanout()});
  ASSERT_TRUE(c.worker.clients().index().subscribe(*c.attached.session, "A"));

  constexpr int kMessages = 400;
  const std::string data = "\"" + std::string(1000, 'd') + "\"";
  std::vector<core::IngestItem> items(kMessages, core::IngestItem{"A", "tick", data, true});
  hub.ingest(items);
  ASSERT_TRUE(pump_until({&c.loop()}, [&] { return c.attached.session->seq() == kMessages; }));
  EXPECT_GT(c.attached.conn->outbound().backlog_bytes(), 300'000u) << "most of it waits";

  std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, kMessages);
  ASSERT_EQ(frames.size(), static_cast<size_t>(kMessages));
  for (size_t i = 0; i < frames.size(); ++i) {
    ASSERT_EQ(frames[i].opcode, 0x1) << i;
    ASSERT_EQ(json_member(frames[i].payload, "seq"), std::to_string(i + 1));
    ASSERT_TRUE(frames[i].payload.ends_with(",\"data\":" + data + "}"));
  }
  EXPECT_TRUE(c.end.bytes.empty());
  EXPECT_FALSE(c.end.eof);
  EXPECT_EQ(c.loop().stats().slow_consumer_closes.get(), 0u);
}

TEST(Client, AnExpiredTokenClosesWith4001AtTheSweep) {
  ops::Config config;
  OneClient c(config);
  auto token = std::make_unique<auth::TokenClaims>();
  token->subject = "alice";
  token->expires_at = core::wall_ms() / 1000 + 3600;  // valid for an hour
  c.attached.client->set_token(std::move(token));
  c.attached.conn->on_sweep(core::mono_ms());
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty());

  auto expired = std::make_unique<auth::TokenClaims>();
  expired->subject = "alice";
  expired->expires_at = core::wall_ms() / 1000 - 1;
  c.attached.client->set_token(std::move(expired));
  c.attached.conn->on_sweep(core::mono_ms());
  ASSERT_TRUE(c.end.read_until_eof({&c.loop()}));
  EXPECT_EQ(c.end.bytes, server_close(ws::close_code::kTokenExpired, "token expired"));
  EXPECT_EQ(c.loop().stats().token_expired_closes.get(), 1u);
}

}  // namespace
}  // namespace odin
