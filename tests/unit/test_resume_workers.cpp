// Unit test of resume across two in-process workers: two Workers (each one thread's loop, index,
// clients and fan-out, their threads never started) that know each other as peers, a Hub over
// both fan-outs, and routes that upgrade like app/routes.cpp does (101, a session on the
// connection's thread, a Client, welcome). A client upgraded on worker 0 subscribes, receives,
// hangs up (its session detaches and goes on being numbered); it comes back on worker 1 and
// resumes: its connection moves to worker 0 and gets exactly the missed messages with contiguous
// seq, then `resumed`, and the fresh session on worker 1 is discarded. Both loops are driven by
// hand in turns; the client ends are real TCP sockets over 127.0.0.1.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/http_phase.hpp"
#include "http/request_parts.hpp"
#include "hub/fanout.hpp"
#include "loop_harness.hpp"
#include "ops/config.hpp"
#include "session/requests.hpp"
#include "ws/handshake.hpp"

namespace odin {
namespace {

using namespace odin::testing;

// The upgrade of app/routes.cpp (handle_upgrade) without the gateway's admission, origin,
// token and `?channels=` checks.
class UpgradeRoutes final : public http::HttpRoutes {
 public:
  explicit UpgradeRoutes(std::vector<app::Worker*> workers) : workers_(std::move(workers)) {}
  bool handle(http::HttpPhase& phase, http::HttpRequest& request) override {
    net::Connection& conn = phase.connection();
    const ws::UpgradeRequest up = http::upgrade_request_of(request);
    const ws::UpgradeVerdict verdict = ws::check_upgrade(up);
    if (verdict.status != 101) {
      phase.respond_error(400, verdict.error, false);
      return false;
    }
    session::ClientThread& clients = workers_.at(conn.loop().index())->clients();
    phase.send_raw(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " +
        ws::accept_key(up.key) + "\r\n\r\n");
    session::Session& session = clients.sessions().create(
        clients.new_session_id(), clients.config().replay_size, {conn.client_address(), ""});
    auto owned = std::make_unique<session::Client>(clients, conn, core::CountedPlace());
    session::Client& client = *owned;
    conn.set_handler(std::move(owned));
    client.bind_session(session, false);
    session::send_welcome(client, session);
    return false;
  }

 private:
  std::vector<app::Worker*> workers_;
};

// RFC 6455 1.3's example key and its accept value.
constexpr std::string_view kUpgradeRequest =
    "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
constexpr std::string_view kSwitching =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

struct TwoWorkers {
  TwoWorkers()
      : config(make_config()),
        w0(config, 0, test_loop_parts(), test_client_parts()),
        w1(config, 1, test_loop_parts(), test_client_parts()),
        hub({&w0.fanout(), &w1.fanout()}),
        routes({&w0, &w1}) {
    const std::vector<session::ClientThread*> peers = {&w0.clients(), &w1.clients()};
    w0.clients().set_peers(peers);
    w1.clients().set_peers(peers);
  }
  static ops::Config make_config() {
    ops::Config config;
    config.threads = 2;
    config.history_max_age = ops::Millis(60'000);
    return config;
  }
  // A new client connection on `worker`, in its HTTP phase.
  net::Connection* connect(app::Worker& worker, TcpPair& pair) {
    return adopt_server_end(worker.loop(), pair, [this](net::Connection& c) {
      return std::make_unique<http::HttpPhase>(c, config, routes);
    });
  }
  // Upgrades and reads the welcome; returns the session it announces.
  std::string upgrade(ClientEnd& end) {
    send_all(end.fd, kUpgradeRequest);
    EXPECT_TRUE(end.read_at_least({&w0.loop(), &w1.loop()}, kSwitching.size()));
    EXPECT_EQ(end.take(kSwitching.size()), kSwitching);
    const std::vector<Frame> welcome = read_frames(end, {&w0.loop(), &w1.loop()}, 1);
    EXPECT_EQ(welcome.size(), 1u);
    if (welcome.empty()) return {};
    EXPECT_TRUE(welcome[0].payload.starts_with("{\"type\":\"welcome\",")) << welcome[0].payload;
    return json_member(welcome[0].payload, "session");
  }
  std::vector<Frame> read(ClientEnd& end, size_t count) {
    return read_frames(end, {&w0.loop(), &w1.loop()}, count);
  }
  bool pump(const std::function<bool()>& done) {
    return pump_until({&w0.loop(), &w1.loop()}, done);
  }
  void publish(int first, int count) {
    std::vector<std::string> data;
    for (int i = 0; i < count; ++i)
      data.push_back("{\"n\":" + std::to_string(first + i) + "}");
    std::vector<core::IngestItem> items;
    for (const std::string& d : data)
      items.push_back(core::IngestItem{"A", "tick", d, true});
    hub.ingest(items);
  }

  const ops::Config config;
  app::Worker w0;
  app::Worker w1;
  hub::Hub hub;
  UpgradeRoutes routes;
};

// Checks `frame` is data frame `seq` carrying {"n":n} on channel A.
void expect_data(const Frame& frame, uint64_t seq, int n) {
  EXPECT_EQ(frame.opcode, 0x1);
  EXPECT_TRUE(frame.payload.starts_with("{\"seq\":" + std::to_string(seq) + ",\"ts\":"))
      << frame.payload;
  EXPECT_TRUE(frame.payload.ends_with(
      ",\"type\":\"tick\",\"channel\":\"A\",\"data\":{\"n\":" + std::to_string(n) + "}}"))
      << frame.payload;
}

TEST(ResumeWorkers, AClientResumingOnAnotherWorkerMovesToItsSessionAndGetsWhatItMissed) {
  TwoWorkers t;
  net::EventLoop& loop0 = t.w0.loop();
  net::EventLoop& loop1 = t.w1.loop();

  // First connection, on worker 0.
  TcpPair first = make_tcp_pair();
  ClientEnd end_a{first.client.get()};
  ASSERT_NE(t.connect(t.w0, first), nullptr);
  const std::string session_text = t.upgrade(end_a);
  const std::optional<session::SessionId> session_id = session::SessionId::parse(session_text);
  ASSERT_TRUE(session_id) << session_text;
  EXPECT_EQ(session_id->thread(), 0u);
  send_all(end_a.fd, masked_text("{\"type\":\"subscribe\",\"data\":{\"channels\":[\"A\"]}}"));
  std::vector<Frame> frames = t.read(end_a, 1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, "{\"type\":\"subscribed\",\"data\":{\"channels\":[\"A\"]}}");

  t.publish(1, 3);
  frames = t.read(end_a, 3);
  ASSERT_EQ(frames.size(), 3u);
  for (int i = 0; i < 3; ++i)
    expect_data(frames[static_cast<size_t>(i)], static_cast<uint64_t>(i + 1), i + 1);

  // It hangs up without a close frame: the session detaches and keeps being numbered.
  first.client.reset();
  session::Session* session = t.w0.clients().sessions().find(*session_id);
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(t.pump([&] { return session->detached(); }));
  t.publish(4, 4);
  ASSERT_TRUE(t.pump([&] { return session->seq() == 7; }));

  // Back, on worker 1: a fresh session there, then the resume of the old one.
  TcpPair second = make_tcp_pair();
  ClientEnd end_b{second.client.get()};
  ASSERT_NE(t.connect(t.w1, second), nullptr);
  const std::string fresh_text = t.upgrade(end_b);
  const std::optional<session::SessionId> fresh_id = session::SessionId::parse(fresh_text);
  ASSERT_TRUE(fresh_id) << fresh_text;
  EXPECT_EQ(fresh_id->thread(), 1u);
  ASSERT_NE(t.w1.clients().sessions().find(*fresh_id), nullptr);
  send_all(end_b.fd, masked_text("{\"type\":\"resume\",\"data\":{\"session\":\"" + session_text +
                                 "\",\"last_seq\":3},\"id\":9}"));

  frames = t.read(end_b, 5);
  ASSERT_EQ(frames.size(), 5u);
  for (int i = 0; i < 4; ++i) {
    const uint64_t seq = static_cast<uint64_t>(4 + i);
    expect_data(frames[static_cast<size_t>(i)], seq, 4 + i);
    // The very bytes the session's ring holds for that seq.
    std::string tail;
    session->ring().for_range(seq, seq,
                              [&](uint64_t, const core::MessageRef& m) { tail = m->tail; });
    EXPECT_EQ(frames[static_cast<size_t>(i)].payload,
              "{\"seq\":" + std::to_string(seq) + "," + tail);
  }
  EXPECT_EQ(frames[4].payload, "{\"type\":\"resumed\",\"data\":{\"session\":\"" + session_text +
                                   "\",\"replayed\":4},\"id\":9}");

  // The connection lives on worker 0 now, bound to the old session; the fresh one is gone.
  ASSERT_TRUE(t.pump([&] { return t.w1.clients().sessions().find(*fresh_id) == nullptr; }));
  ASSERT_NE(session->connection(), nullptr);
  EXPECT_EQ(&session->connection()->loop(), &loop0);
  EXPECT_FALSE(session->detached());
  EXPECT_EQ(t.w1.clients().sessions().size(), 0u);
  EXPECT_EQ(loop0.stats().resumes_ok.get(), 1u);
  EXPECT_EQ(loop1.stats().resumes_ok.get(), 0u);

  // And it goes on receiving there, numbered on.
  t.publish(8, 1);
  frames = t.read(end_b, 1);
  ASSERT_EQ(frames.size(), 1u);
  expect_data(frames[0], 8, 8);
  run_ready({&loop0, &loop1});
  end_b.read_available();
  EXPECT_TRUE(end_b.bytes.empty());
  EXPECT_FALSE(end_b.eof);
}

TEST(ResumeWorkers, AResumeFromBeyondTheRingFailsAndTheClientKeepsItsFreshSession) {
  TwoWorkers t;
  TcpPair first = make_tcp_pair();
  ClientEnd end_a{first.client.get()};
  ASSERT_NE(t.connect(t.w0, first), nullptr);
  const std::string session_text = t.upgrade(end_a);
  const std::optional<session::SessionId> session_id = session::SessionId::parse(session_text);
  ASSERT_TRUE(session_id);
  send_all(end_a.fd, masked_text("{\"type\":\"subscribe\",\"data\":{\"channels\":[\"A\"]}}"));
  ASSERT_EQ(t.read(end_a, 1).size(), 1u);
  first.client.reset();
  session::Session* session = t.w0.clients().sessions().find(*session_id);
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(t.pump([&] { return session->detached(); }));
  // More than the ring holds (replay_size) goes by.
  const int missed = static_cast<int>(t.config.replay_size) + 5;
  t.publish(1, missed);
  ASSERT_TRUE(t.pump([&] { return session->seq() == static_cast<uint64_t>(missed); }));

  TcpPair second = make_tcp_pair();
  ClientEnd end_b{second.client.get()};
  ASSERT_NE(t.connect(t.w1, second), nullptr);
  const std::string fresh_text = t.upgrade(end_b);
  const std::optional<session::SessionId> fresh_id = session::SessionId::parse(fresh_text);
  ASSERT_TRUE(fresh_id);
  send_all(end_b.fd, masked_text("{\"type\":\"resume\",\"data\":{\"session\":\"" + session_text +
                                 "\",\"last_seq\":0}}"));
  const std::vector<Frame> frames = t.read(end_b, 1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload,
            "{\"type\":\"error\",\"data\":{\"code\":\"resume_failed\",\"message\":\"session "
            "unknown, expired, or missed more than its replay buffer holds\"}}");
  // Back on worker 1 with its fresh session; the old one still detached on worker 0.
  session::Session* fresh = t.w1.clients().sessions().find(*fresh_id);
  ASSERT_NE(fresh, nullptr);
  ASSERT_NE(fresh->connection(), nullptr);
  EXPECT_EQ(&fresh->connection()->loop(), &t.w1.loop());
  EXPECT_TRUE(session->detached());
  EXPECT_EQ(t.w1.loop().stats().resumes_failed.get(), 1u);
}

}  // namespace
}  // namespace odin
