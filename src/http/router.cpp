// HTTP routing (see router.hpp): /ws, /health, /stats, /metrics, POST /publish, the page.
#include "http/router.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <vector>

#include "app/gateway.hpp"
#include "auth/jwt.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "guard/origin_policy.hpp"
#include "http/ops_endpoints.hpp"
#include "http/publish.hpp"
#include "http/request_parts.hpp"
#include "net/connection.hpp"
#include "net/event_loop.hpp"
#include "session/requests.hpp"
#include "session/session.hpp"
#include "ws/handshake.hpp"

namespace odin {

namespace http = boost::beast::http;

namespace {

const char* reason_phrase(unsigned status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 426:
      return "Upgrade Required";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

// The upgrade's token: `?token=` (browsers cannot set headers on a WebSocket) or
// `Authorization: Bearer`. Null with `refusal` set when it is missing or invalid.
std::unique_ptr<auth::TokenClaims> authenticate(const auth::JwtVerifier& verifier,
                                                const HttpRequest& request, EventLoop& loop,
                                                std::string& refusal) {
  std::string_view token = query_param(request.target(), "token");
  if (token.empty()) {
    const std::string_view header = request[http::field::authorization];
    if (header.size() > 7 && boost::beast::iequals(header.substr(0, 7), "Bearer ")) {
      token = header.substr(7);
    }
  }
  if (token.empty()) {
    refusal = "token missing";
    return nullptr;
  }
  auth::TokenCheck check = verifier.verify(token, wall_ms() / 1000, loop.json_parser());
  if (!check.claims) {
    refusal = check.error;
    return nullptr;
  }
  return std::make_unique<auth::TokenClaims>(std::move(*check.claims));
}

bool handle_upgrade(Connection& conn, HttpRequest& request) {
  EventLoop& loop = conn.loop();
  Gateway& gateway = loop.gateway();
  const bool keep_alive = request.keep_alive();
  const ws::UpgradeRequest up = upgrade_request_of(request);
  const ws::UpgradeVerdict verdict = ws::check_upgrade(up);
  if (verdict.status == 426) {
    send_http_error(conn, 426, verdict.error, keep_alive, "Sec-WebSocket-Version: 13\r\n");
    return keep_alive;
  }
  if (verdict.status != 101) {
    send_http_error(conn, 400, verdict.error, keep_alive);
    return keep_alive;
  }
  const std::string_view origin = request[http::field::origin];
  if (!origin.empty() && !origin_allowed(gateway.config().allowed_origins, origin)) {
    loop.stats().refused(RefuseReason::kOrigin);
    send_http_error(conn, 403, "origin not allowed", keep_alive);
    return keep_alive;
  }
  std::vector<std::string_view> channels;
  const std::string_view target = request.target();
  if (!split_channels(query_param(target, "channels"), channels,
                      gateway.config().max_channels_per_conn)) {
    send_http_error(conn, 400, "invalid channel name in ?channels=", keep_alive);
    return keep_alive;
  }
  if (channels.size() > gateway.config().max_channels_per_conn) {
    send_http_error(conn, 400, "too many channels in ?channels=", keep_alive);
    return keep_alive;
  }
  std::unique_ptr<auth::TokenClaims> token;
  if (auto verifier = gateway.jwt_verifier()) {
    std::string refusal;
    token = authenticate(*verifier, request, loop, refusal);
    if (!token) {
      loop.stats().refused(RefuseReason::kUnauthorized);
      send_http_error(conn, 401, refusal, keep_alive,
                      "WWW-Authenticate: Bearer realm=\"odin-ws\"\r\n");
      return keep_alive;
    }
    for (std::string_view channel : channels) {
      if (!token->channels.allows(channel)) {
        loop.stats().forbidden.add();
        send_http_error(conn, 403, fmt::format("channel {} is not allowed by the token", channel),
                        keep_alive);
        return keep_alive;
      }
    }
  }
  if (auto refused = gateway.admit()) {
    loop.stats().connections_rejected[static_cast<int>(*refused)].add();
    send_http_error(conn, 503, reject_reason_name(*refused), keep_alive, "Retry-After: 1\r\n");
    return keep_alive;
  }
  const std::string accept = ws::accept_key(up.key);
  conn.send_raw(fmt::format(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: {}\r\n\r\n",
      accept));
  const Config& config = gateway.config();
  Session& session = loop.sessions().create(loop.new_session_id(), config.replay_size);
  session.client_address = conn.client_address();
  if (token) {
    session.subject = token->subject;
    conn.set_token(std::move(token));
  }
  conn.upgrade(session);
  loop.stats().connections_accepted.add();
  send_welcome(conn, session);
  if (!channels.empty()) subscribe_at_connect(conn, session, channels);
  return false;
}

bool handle_publish(Connection& conn, HttpRequest& request) {
  EventLoop& loop = conn.loop();
  Gateway& gateway = loop.gateway();
  const bool keep_alive = request.keep_alive();
  const Config& config = gateway.config();
  // Loopback peers are trusted only when no token is required of them: a proxy or sidecar on
  // the same host is a loopback peer too (WS_PUBLISH_REQUIRE_TOKEN).
  if (config.publish_require_token || !conn.is_loopback()) {
    if (config.publish_token.empty()) {
      send_http_error(conn, 403, "publishing is allowed from loopback only", keep_alive);
      return keep_alive;
    }
    if (!bearer_token_matches(request[http::field::authorization], config.publish_token)) {
      send_http_error(conn, 401, "missing or wrong bearer token", keep_alive,
                      "WWW-Authenticate: Bearer realm=\"odin-ws\"\r\n");
      return keep_alive;
    }
  }
  PublishBatch batch;
  if (auto error =
          parse_publish_body(request.body(), loop.json_parser(), batch, config.max_payload_bytes)) {
    std::string body = "{\"error\":";
    json::append_string(body, error->message);
    if (error->index >= 0) body += fmt::format(",\"index\":{}", error->index);
    body += "}";
    send_http_response(conn, 400, "application/json", body, keep_alive);
    return keep_alive;
  }
  // The answer comes once the broker has the messages (NATS: flushed; JetStream: stored), on
  // the broker's thread; it is carried back to this connection's thread.
  conn.begin_deferred_response();
  boost::asio::io_context* io = &loop.io();
  Connection* target = &conn;
  gateway.broker().publish(batch.items, [io, target, keep_alive](PublishOutcome outcome) {
    boost::asio::post(*io, [target, keep_alive, outcome = std::move(outcome)] {
      if (outcome.error.empty()) {
        target->finish_deferred_response(
            200, fmt::format("{{\"published\":{}}}", outcome.published), keep_alive);
        return;
      }
      std::string body = "{\"error\":";
      json::append_string(body, outcome.error);
      body += fmt::format(",\"published\":{}}}", outcome.published);
      target->finish_deferred_response(503, body, keep_alive);
    });
  });
  return keep_alive;
}

}  // namespace

void send_http_response(Connection& conn, unsigned status, std::string_view content_type,
                        std::string_view body, bool keep_alive, std::string_view extra_headers) {
  std::string head = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}"
      "{}\r\n",
      status, reason_phrase(status), content_type, body.size(), extra_headers,
      keep_alive ? "" : "Connection: close\r\n");
  // HEAD: the same headers (Content-Length of the GET), no body.
  if (!conn.answering_head) head.append(body);
  conn.send_raw(head);
  if (!keep_alive) conn.close_after_flush();
}

void send_http_error(Connection& conn, unsigned status, std::string_view reason, bool keep_alive,
                     std::string_view extra_headers) {
  std::string body = "{\"error\":";
  json::append_string(body, reason);
  body += "}";
  send_http_response(conn, status, "application/json", body, keep_alive, extra_headers);
}

bool handle_http_request(Connection& conn, HttpRequest& request) {
  Gateway& gateway = conn.loop().gateway();
  const bool keep_alive = request.keep_alive();
  const std::string_view path = path_of(request.target());
  const bool wants_upgrade = !request[http::field::upgrade].empty();

  if (path == "/ws") return handle_upgrade(conn, request);
  if (wants_upgrade) {
    send_http_error(conn, 404, "WebSocket endpoint is /ws", keep_alive);
    return keep_alive;
  }
  if (path == "/publish") {
    if (request.method() != http::verb::post) {
      send_http_error(conn, 405, "use POST", keep_alive, "Allow: POST\r\n");
      return keep_alive;
    }
    return handle_publish(conn, request);
  }
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    send_http_error(conn, 405, "method not allowed", keep_alive, "Allow: GET\r\n");
    return keep_alive;
  }
  if (path == "/health") {
    HealthReport health = render_health(gateway);
    send_http_response(conn, health.status, "application/json", health.body, keep_alive);
  } else if (path == "/stats") {
    send_http_response(conn, 200, "application/json", render_stats(gateway), keep_alive);
  } else if (path == "/metrics") {
    send_http_response(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
                       render_metrics(gateway), keep_alive);
  } else if (const StaticFiles::File* file = gateway.web().find(path)) {
    send_http_response(conn, 200, file->content_type, file->body, keep_alive);
  } else {
    send_http_error(conn, 404, "not found", keep_alive);
  }
  return keep_alive;
}

}  // namespace odin
