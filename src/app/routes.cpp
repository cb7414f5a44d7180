// HTTP routing (see routes.hpp): /ws, /health, /stats, /metrics, /demo/channels, POST /publish,
// the page.
#include "app/routes.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <algorithm>
#include <array>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <vector>

#include "app/demo_feed.hpp"
#include "app/gateway.hpp"
#include "auth/jwt.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/publish.hpp"
#include "guard/origin_policy.hpp"
#include "http/http_phase.hpp"
#include "http/request_parts.hpp"
#include "net/connection.hpp"
#include "net/event_loop.hpp"
#include "ops/render.hpp"
#include "session/client.hpp"
#include "session/requests.hpp"
#include "session/session.hpp"
#include "ws/extensions.hpp"
#include "ws/handshake.hpp"

namespace odin::app {

namespace beast_http = boost::beast::http;

namespace {

// The upgrade's token: `?token=` (browsers cannot set headers on a WebSocket) or
// `Authorization: Bearer`. Null with `refusal` set when it is missing or invalid.
std::unique_ptr<auth::TokenClaims> authenticate(const auth::JwtVerifier& verifier,
                                                const http::HttpRequest& request,
                                                session::ClientThread& clients,
                                                std::string& refusal) {
  std::string_view token = http::query_param(request.target(), "token");
  if (token.empty()) {
    const std::string_view header = request[beast_http::field::authorization];
    if (header.size() > 7 && boost::beast::iequals(header.substr(0, 7), "Bearer ")) {
      token = header.substr(7);
    }
  }
  if (token.empty()) {
    refusal = "token missing";
    return nullptr;
  }
  auth::TokenCheck check = verifier.verify(token, core::wall_ms() / 1000, clients.json_parser());
  if (!check.claims) {
    refusal = check.error;
    return nullptr;
  }
  return std::make_unique<auth::TokenClaims>(std::move(*check.claims));
}

bool handle_upgrade(Gateway& gateway, http::HttpPhase& phase, http::HttpRequest& request) {
  net::Connection& conn = phase.connection();
  net::EventLoop& loop = conn.loop();
  session::ClientThread& clients = gateway.worker(loop.index()).clients();
  const bool keep_alive = request.keep_alive();
  const ws::UpgradeRequest up = http::upgrade_request_of(request);
  const ws::UpgradeVerdict verdict = ws::check_upgrade(up);
  if (verdict.status == 426) {
    phase.respond_error(426, verdict.error, keep_alive, "Sec-WebSocket-Version: 13\r\n");
    return keep_alive;
  }
  if (verdict.status != 101) {
    phase.respond_error(400, verdict.error, keep_alive);
    return keep_alive;
  }
  const std::string_view origin = request[beast_http::field::origin];
  if (!origin.empty() && !guard::origin_allowed(gateway.config().allowed_origins, origin)) {
    loop.stats().refused(ops::RefuseReason::kOrigin);
    phase.respond_error(403, "origin not allowed", keep_alive);
    return keep_alive;
  }
  std::vector<std::string_view> channels;
  const std::string_view target = request.target();
  if (!http::split_channels(http::query_param(target, "channels"), channels,
                            gateway.config().max_channels_per_conn)) {
    phase.respond_error(400, "invalid channel name in ?channels=", keep_alive);
    return keep_alive;
  }
  if (channels.size() > gateway.config().max_channels_per_conn) {
    phase.respond_error(400, "too many channels in ?channels=", keep_alive);
    return keep_alive;
  }
  std::unique_ptr<auth::TokenClaims> token;
  if (auto verifier = gateway.jwt_verifier()) {
    std::string refusal;
    token = authenticate(*verifier, request, clients, refusal);
    if (!token) {
      loop.stats().refused(ops::RefuseReason::kUnauthorized);
      phase.respond_error(401, refusal, keep_alive,
                          "WWW-Authenticate: Bearer realm=\"odin-ws\"\r\n");
      return keep_alive;
    }
    if (const std::string_view* refused = auth::first_forbidden(token.get(), channels)) {
      loop.stats().forbidden.add();
      phase.respond_error(403, fmt::format("channel {} is not allowed by the token", *refused),
                          keep_alive);
      return keep_alive;
    }
  }
  auto admitted = gateway.admission().admit();
  if (const ops::RejectReason* refused = std::get_if<ops::RejectReason>(&admitted)) {
    loop.stats().connections_rejected[static_cast<int>(*refused)].add();
    phase.respond_error(503, ops::reject_reason_name(*refused), keep_alive, "Retry-After: 1\r\n");
    return keep_alive;
  }
  // permessage-deflate (docs/protocol.md): a bad or unknown offer only means no compression.
  ws::DeflateAgreement deflate;
  std::array<char, ws::kDeflateResponseCapacity> deflate_response{};
  std::string extensions_line;
  if (gateway.config().compression) {
    std::array<std::string_view, ws::kMaxExtensionHeaderLines + 1> lines;
    deflate = ws::negotiate_deflate(
        std::span(lines.data(), http::extension_header_values(request, lines)));
    if (deflate.enabled) {
      extensions_line = fmt::format("Sec-WebSocket-Extensions: {}\r\n",
                                    ws::write_deflate_response(deflate, deflate_response));
    }
  }
  // The seeds' "connection latency" (ws_handshake_duration_seconds; docs/operations.md, Alerts).
  const int64_t started_ms = phase.request_started_ms();
  if (started_ms != 0) {
    const int64_t took_ms = std::max<int64_t>(0, core::mono_ms() - started_ms);
    loop.stats().handshake_latency.record(static_cast<uint64_t>(took_ms) * 1'000'000);
  }
  phase.send_raw(fmt::format(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: {}\r\n{}\r\n",
      ws::accept_key(up.key), extensions_line));
  const ops::Config& config = gateway.config();
  session::Session& session =
      clients.sessions().create(clients.new_session_id(), config.replay_size,
                                {conn.client_address(), token ? token->subject : ""});
  auto owned = std::make_unique<session::Client>(
      clients, conn, std::get<guard::Admission::Ticket>(std::move(admitted)));
  session::Client& client = *owned;
  if (token) client.set_token(std::move(token));
  if (deflate.enabled) client.enable_deflate(deflate.server_max_window_bits);
  conn.set_handler(std::move(owned));  // this phase ends with this request
  client.bind_session(session, false);
  loop.stats().connections_accepted.add();
  session::send_welcome(client, session);
  if (!channels.empty()) session::subscribe_at_connect(client, session, channels);
  return false;
}

bool handle_publish(Gateway& gateway, http::HttpPhase& phase, http::HttpRequest& request) {
  net::Connection& conn = phase.connection();
  net::EventLoop& loop = conn.loop();
  session::ClientThread& clients = gateway.worker(loop.index()).clients();
  const bool keep_alive = request.keep_alive();
  const ops::Config& config = gateway.config();
  // Loopback peers are trusted only when no token is required of them: a proxy or sidecar on
  // the same host is a loopback peer too (WS_PUBLISH_REQUIRE_TOKEN).
  if (config.publish_require_token || !conn.is_loopback()) {
    if (config.publish_token.empty()) {
      phase.respond_error(403, "publishing is allowed from loopback only", keep_alive);
      return keep_alive;
    }
    if (!core::bearer_token_matches(request[beast_http::field::authorization],
                                    config.publish_token)) {
      phase.respond_error(401, "missing or wrong bearer token", keep_alive,
                          "WWW-Authenticate: Bearer realm=\"odin-ws\"\r\n");
      return keep_alive;
    }
  }
  core::PublishBatch batch;
  if (auto error = core::parse_publish_body(request.body(), clients.json_parser(), batch,
                                            config.max_payload_bytes)) {
    std::string body = "{\"error\":";
    core::json::append_string(body, error->message);
    if (error->index >= 0) body += fmt::format(",\"index\":{}", error->index);
    body += "}";
    phase.respond(400, "application/json", body, keep_alive);
    return keep_alive;
  }
  // The answer comes once the broker has the messages (NATS: flushed; JetStream: stored), on
  // the broker's thread; it is carried back to this connection's thread.
  phase.begin_deferred_response();
  boost::asio::io_context* io = &loop.io();
  http::HttpPhase* target =
      &phase;  // alive: a phase waiting for an answer neither reads nor upgrades
  gateway.broker().publish(batch.items, [io, target, keep_alive](core::PublishOutcome outcome) {
    boost::asio::post(*io, [target, keep_alive, outcome = std::move(outcome)] {
      if (outcome.error.empty()) {
        target->finish_deferred_response(
            200, fmt::format("{{\"published\":{}}}", outcome.published), keep_alive);
        return;
      }
      std::string body = "{\"error\":";
      core::json::append_string(body, outcome.error);
      body += fmt::format(",\"published\":{}}}", outcome.published);
      target->finish_deferred_response(503, body, keep_alive);
    });
  });
  return keep_alive;
}

// The body of GET /demo/channels, or empty when the demo feed is off.
std::string demo_channels_body(const ops::Config& config) {
  if (!config.demo_feed) return {};
  std::string body = "{\"channels\":[";
  const char* separator = "";
  for (const std::string& name : DemoFeed::symbol_names(config.demo_symbols)) {
    body += separator;
    core::json::append_string(body, name);
    separator = ",";
  }
  body += "]}";
  return body;
}

}  // namespace

Routes::Routes(Gateway& gateway)
    : gateway_(gateway), demo_channels_(demo_channels_body(gateway.config())) {}

bool Routes::handle(http::HttpPhase& phase, http::HttpRequest& request) {
  const bool keep_alive = request.keep_alive();
  const std::string_view path = http::path_of(request.target());
  const bool wants_upgrade = !request[beast_http::field::upgrade].empty();

  if (path == "/ws") return handle_upgrade(gateway_, phase, request);
  if (wants_upgrade) {
    phase.respond_error(404, "WebSocket endpoint is /ws", keep_alive);
    return keep_alive;
  }
  if (path == "/publish") {
    if (request.method() != beast_http::verb::post) {
      phase.respond_error(405, "use POST", keep_alive, "Allow: POST\r\n");
      return keep_alive;
    }
    return handle_publish(gateway_, phase, request);
  }
  if (request.method() != beast_http::verb::get && request.method() != beast_http::verb::head) {
    phase.respond_error(405, "method not allowed", keep_alive, "Allow: GET\r\n");
    return keep_alive;
  }
  if (path == "/health") {
    ops::HealthReport health = ops::render_health(gateway_.snapshot());
    phase.respond(health.status, "application/json", health.body, keep_alive);
  } else if (path == "/stats") {
    phase.respond(200, "application/json", ops::render_stats(gateway_.snapshot()), keep_alive);
  } else if (path == "/demo/channels") {
    if (demo_channels_.empty()) {
      phase.respond_error(404, "the demo feed is off (WS_DEMO_FEED)", keep_alive);
    } else {
      phase.respond(200, "application/json", demo_channels_, keep_alive);
    }
  } else if (path == "/metrics") {
    phase.respond(200, "text/plain; version=0.0.4; charset=utf-8",
                  ops::render_metrics(gateway_.snapshot()), keep_alive);
  } else if (const http::StaticFiles::File* file = gateway_.web().find(path)) {
    phase.respond(200, file->content_type, file->body, keep_alive);
  } else {
    phase.respond_error(404, "not found", keep_alive);
  }
  return keep_alive;
}

}  // namespace odin::app
