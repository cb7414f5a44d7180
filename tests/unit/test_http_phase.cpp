// Unit tests of the HTTP phase (http/http_phase.hpp) as a connection's handler, with routes that
// record each request and answer 200 with its target: pipelined requests are answered in order,
// the header, body and chunk-line limits answer 431 / 413 / 400 and close, the request cap makes
// the last answer carry `Connection: close`, HEAD gets the headers only, and a request not
// complete within WS_HANDSHAKE_TIMEOUT gets 408 (the sweep is called with a later time). An
// EventLoop built alone and driven by hand; the client end is a real TCP socket over 127.0.0.1.
#include "http/http_phase.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/clock.hpp"
#include "loop_harness.hpp"
#include "ops/config.hpp"

namespace odin {
namespace {

using namespace odin::testing;

struct Seen {
  std::string method;
  std::string target;
  bool keep_alive;
};

// Answers every request 200 with its target as the body, keeping the connection as asked.
class RecordingRoutes final : public http::HttpRoutes {
 public:
  bool handle(http::HttpPhase& phase, http::HttpRequest& request) override {
    const bool keep_alive = request.keep_alive();
    seen.push_back(
        {std::string(request.method_string()), std::string(request.target()), keep_alive});
    phase.respond(200, "text/plain", request.target(), keep_alive);
    return keep_alive;
  }
  std::vector<Seen> seen;
};

// One HTTP connection on a loop of its own.
struct HttpConnection {
  explicit HttpConnection(const ops::Config& config)
      : loop(config, 0, test_loop_parts()), pair(make_tcp_pair()), end{pair.client.get()} {
    conn = adopt_server_end(loop, pair, [&](net::Connection& c) {
      return std::make_unique<http::HttpPhase>(c, config, routes);
    });
    server_fd = conn ? conn->fd() : -1;
  }
  RecordingRoutes routes;
  net::EventLoop loop;
  TcpPair pair;
  ClientEnd end;
  net::Connection* conn = nullptr;
  int server_fd = -1;
};

std::string ok(std::string_view target, bool keep_alive = true, bool head = false) {
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                    std::to_string(target.size()) + "\r\nCache-Control: no-store\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head) out += target;
  return out;
}

std::string refusal(unsigned status, std::string_view phrase, std::string_view reason) {
  const std::string body = "{\"error\":\"" + std::string(reason) + "\"}";
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(phrase) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + body;
}

std::string get(std::string_view target, std::string_view method = "GET") {
  return std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

uint64_t refused(net::EventLoop& loop, ops::RefuseReason reason) {
  return loop.stats().connections_refused[static_cast<int>(reason)].get();
}

TEST(HttpPhase, PipelinedRequestsAreAnsweredInOrder) {
  ops::Config config;
  HttpConnection h(config);
  send_all(h.end.fd, get("/a") + get("/b") + get("/c?x=1"));
  const std::string expected = ok("/a") + ok("/b") + ok("/c?x=1");
  ASSERT_TRUE(h.end.read_at_least({&h.loop}, expected.size()));
  run_ready({&h.loop});
  h.end.read_available();
  EXPECT_EQ(h.end.bytes, expected);
  EXPECT_FALSE(h.end.eof) << "keep-alive: the connection stays open";
  ASSERT_EQ(h.routes.seen.size(), 3u);
  EXPECT_EQ(h.routes.seen[0].target, "/a");
  EXPECT_EQ(h.routes.seen[1].target, "/b");
  EXPECT_EQ(h.routes.seen[2].target, "/c?x=1");
  EXPECT_EQ(h.loop.stats().http_requests.get(), 3u);
}

TEST(HttpPhase, AHeaderOverTheLimitGets431AndTheConnectionCloses) {
  ops::Config config;
  config.max_header_bytes = 1024;
  HttpConnection h(config);
  send_all(h.end.fd,
           "GET /big HTTP/1.1\r\nHost: test\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(h.end.read_until_eof({&h.loop}));
  EXPECT_EQ(h.end.bytes,
            refusal(431, "Request Header Fields Too Large", "request header too large"));
  EXPECT_FALSE(h.end.reset);
  EXPECT_TRUE(h.routes.seen.empty());
  EXPECT_EQ(refused(h.loop, ops::RefuseReason::kRequestTooLarge), 1u);
}

TEST(HttpPhase, AHeaderJustUnderTheLimitIsServed) {
  ops::Config config;
  config.max_header_bytes = 1024;
  HttpConnection h(config);
  const std::string head = "GET /fits HTTP/1.1\r\nHost: test\r\nX-Pad: ";
  const std::string request = head + std::string(900 - head.size(), 'a') + "\r\n\r\n";
  send_all(h.end.fd, request);
  ASSERT_TRUE(h.end.read_at_least({&h.loop}, ok("/fits").size()));
  EXPECT_EQ(h.end.bytes, ok("/fits"));
  EXPECT_EQ(refused(h.loop, ops::RefuseReason::kRequestTooLarge), 0u);
}

TEST(HttpPhase, ABodyOverTheLimitGets413) {
  ops::Config config;
  config.max_body_bytes = 100;
  HttpConnection h(config);
  send_all(h.end.fd,
           "POST /p HTTP/1.1\r\nHost: test\r\nContent-Length: 101\r\n\r\n" + std::string(101, 'b'));
  ASSERT_TRUE(h.end.read_until_eof({&h.loop}));
  EXPECT_EQ(h.end.bytes,
            refusal(413, "Payload Too Large", "request body too large (WS_MAX_BODY_BYTES)"));
  EXPECT_TRUE(h.routes.seen.empty());
  EXPECT_EQ(refused(h.loop, ops::RefuseReason::kRequestTooLarge), 1u);
}

TEST(HttpPhase, AnUnterminatedChunkExtensionLongerThanTheHeaderLimitGets400) {
  ops::Config config;
  config.max_header_bytes = 1024;
  HttpConnection h(config);
  // The chunk-size line never ends: a quoted extension that is never closed.
  send_all(h.end.fd,
           "POST /p HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"" +
               std::string(1100, 'e'));
  ASSERT_TRUE(h.end.read_until_eof({&h.loop}));
  EXPECT_EQ(h.end.bytes, refusal(400, "Bad Request",
                                 "a request or chunk header line longer than WS_MAX_HEADER_BYTES"));
  EXPECT_TRUE(h.routes.seen.empty());
  EXPECT_EQ(refused(h.loop, ops::RefuseReason::kRequestTooLarge), 1u);
}

TEST(HttpPhase, TheLastRequestAllowedPerConnectionIsAnsweredWithConnectionClose) {
  ops::Config config;
  config.max_requests_per_connection = 2;
  HttpConnection h(config);
  send_all(h.end.fd, get("/1") + get("/2") + get("/3"));
  ASSERT_TRUE(h.end.read_until_eof({&h.loop}));
  EXPECT_EQ(h.end.bytes, ok("/1") + ok("/2", /*keep_alive=*/false));
  ASSERT_EQ(h.routes.seen.size(), 2u) << "the third request is never handled";
  EXPECT_TRUE(h.routes.seen[0].keep_alive);
  EXPECT_FALSE(h.routes.seen[1].keep_alive);
}

TEST(HttpPhase, HeadGetsTheHeadersOnly) {
  ops::Config config;
  HttpConnection h(config);
  // A GET right behind it: its answer must follow the HEAD's headers directly.
  send_all(h.end.fd, get("/h", "HEAD") + get("/g"));
  const std::string expected = ok("/h", true, /*head=*/true) + ok("/g");
  ASSERT_TRUE(h.end.read_at_least({&h.loop}, expected.size()));
  run_ready({&h.loop});
  h.end.read_available();
  EXPECT_EQ(h.end.bytes, expected);
  ASSERT_EQ(h.routes.seen.size(), 2u);
  EXPECT_EQ(h.routes.seen[0].method, "HEAD");
  EXPECT_EQ(h.routes.seen[1].method, "GET");
}

TEST(HttpPhase, ARequestNotCompleteWithinTheHandshakeTimeoutGets408) {
  ops::Config config;
  config.handshake_timeout = ops::Millis(10'000);
  HttpConnection h(config);
  send_all(h.end.fd, "GET /slow HTTP/1.1\r\nHost: test\r\n");  // no blank line yet
  ASSERT_TRUE(pump_until({&h.loop}, [&] { return consumed_by_server(h.end.fd, h.server_fd); }));
  // Within the timeout the sweep does nothing.
  h.conn->on_sweep(core::mono_ms() + 5'000);
  run_ready({&h.loop});
  h.end.read_available();
  EXPECT_TRUE(h.end.bytes.empty());
  EXPECT_FALSE(h.end.eof);
  // Past it (the request began when the connection opened).
  h.conn->on_sweep(core::mono_ms() + config.handshake_timeout.count() + 1'000);
  ASSERT_TRUE(h.end.read_until_eof({&h.loop}));
  EXPECT_EQ(h.end.bytes, refusal(408, "Request Timeout", "request not complete in time"));
  EXPECT_TRUE(h.routes.seen.empty());
  EXPECT_EQ(refused(h.loop, ops::RefuseReason::kHandshakeTimeout), 1u);
}

TEST(HttpPhase, AnIdleKeepAliveConnectionClosesWithoutAnAnswerAfterTheTimeout) {
  ops::Config config;
  config.handshake_timeout = ops::Millis(10'000);
  HttpConnection h(config);
  send_all(h.end.fd, get("/once"));
  ASSERT_TRUE(h.end.read_at_least({&h.loop}, ok("/once").size()));
  EXPECT_EQ(h.end.take(ok("/once").size()), ok("/once"));
  h.conn->on_sweep(core::mono_ms() + config.handshake_timeout.count() + 1'000);
  ASSERT_TRUE(h.end.read_until_eof({&h.loop}));
  EXPECT_EQ(h.end.bytes, "");
  EXPECT_EQ(refused(h.loop, ops::RefuseReason::kHandshakeTimeout), 0u) << "no request was pending";
}

}  // namespace
}  // namespace odin
