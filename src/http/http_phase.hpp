// The HTTP/1.1 phase of a connection, as its ConnectionHandler: parsing with the configured
// limits, keep-alive and pipelining (paused while answers go unread), the request timeout
// (slowloris), responses produced on another thread, and the switch to a WebSocket handler
// when a route upgrades. What a request means is the routes' business (app/ fills them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/request_parser.hpp"
#include "net/connection.hpp"
#include "net/connection_handler.hpp"

namespace odin::ops {
struct Config;
}  // namespace odin::ops

namespace odin::http {

class HttpPhase;

// Answers one complete request. Returns false when the connection must stop reading HTTP: it
// upgraded (the route switched its handler), or it closes after the response. Loop thread.
class HttpRoutes {
 public:
  virtual ~HttpRoutes() = default;
  virtual bool handle(HttpPhase& phase, HttpRequest& request) = 0;
};

// Every member runs on the connection's loop thread.
class HttpPhase final : public net::ConnectionHandler {
 public:
  HttpPhase(net::Connection& conn, const ops::Config& config, HttpRoutes& routes);
  ~HttpPhase() override;

  net::Connection& connection() { return conn_; }
  // When the request being answered began, on mono_ms(): the accept for a connection's first
  // request (so a TLS handshake counts), else its first byte.
  int64_t request_started_ms() const { return answering_started_ms_; }

  // Queues a complete response; `extra_headers` are full header lines ending in CRLF. Without
  // keep-alive the connection closes once it is written.
  void respond(unsigned status, std::string_view content_type, std::string_view body,
               bool keep_alive, std::string_view extra_headers = {});
  // A JSON error body: {"error":"<reason>"}.
  void respond_error(unsigned status, std::string_view reason, bool keep_alive,
                     std::string_view extra_headers = {});
  // Queues bytes that are not a response of ours (the 101 of an upgrade).
  void send_raw(std::string_view bytes);

  // For a response another thread produces (POST /publish through a broker): reading stops
  // (later pipelined requests wait their turn) and the connection stays alive until
  // finish_deferred_response.
  void begin_deferred_response();
  void finish_deferred_response(unsigned status, std::string_view body, bool keep_alive);

  // ConnectionHandler
  void on_input(std::span<char> bytes) override;
  bool wants_input() const override;
  void on_flushed(net::FlushResult result) override;
  void on_sweep(int64_t now_ms) override;
  void on_closed() override {}
  void on_drain() override;

 private:
  // False when reading must stop (upgraded, closing, paused, waiting for an answer).
  bool feed(std::span<char> bytes);
  // Bytes queued for this client and not yet taken by the kernel.
  size_t unsent() const { return unflushed_ + conn_.outbound().backlog_bytes(); }
  // Continues reading pipelined requests once the answers paused for have drained.
  void resume();

  net::Connection& conn_;
  const ops::Config& config_;
  HttpRoutes& routes_;
  std::optional<HttpRequestParser> parser_;
  std::string pending_;  // bytes the parser has not consumed yet
  // All on mono_ms(). When the request being received began (0: between requests): the
  // slowloris guard; and when the client was last heard from (keep-alive idle).
  int64_t request_started_ms_;
  int64_t answering_started_ms_ = 0;  // request_started_ms_ of the request being answered
  int64_t last_heard_ms_;
  size_t unflushed_ = 0;  // bytes appended to this turn's batch (reset once it is flushed)
  uint32_t requests_ = 0;
  bool awaiting_response_ = false;
  bool paused_ = false;          // too much unsent: pipelined requests wait
  bool answering_head_ = false;  // the request being answered is a HEAD: headers only
};

}  // namespace odin::http
