// The HTTP/1.1 phase of a connection (see http_phase.hpp).
#include "http/http_phase.hpp"

#include <fmt/format.h>

#include <boost/beast/http/parser.hpp>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "net/event_loop.hpp"
#include "ops/config.hpp"
#include "spdlog/spdlog.h"

namespace odin::http {

namespace beast_http = boost::beast::http;

namespace {

// Once this much of a client's answers is unsent, its further pipelined requests wait (unread,
// in the kernel) until the answers drain, so a client that sends requests and never reads holds
// this much plus one response, not one response per request.
constexpr size_t kUnsentPause = 64 * 1024;

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

}  // namespace

HttpPhase::HttpPhase(net::Connection& conn, const ops::Config& config, HttpRoutes& routes)
    : conn_(conn),
      config_(config),
      routes_(routes),
      // The first request (and the TLS handshake) is due from the accept on.
      request_started_ms_(conn.opened_at_ms()),
      last_heard_ms_(conn.opened_at_ms()) {
  start_request_parser(parser_, config.max_header_bytes, config.max_body_bytes);
}

HttpPhase::~HttpPhase() = default;

void HttpPhase::send_raw(std::string_view bytes) {
  if (conn_.state() == net::Connection::State::kClosed) return;
  unflushed_ += bytes.size();
  conn_.send_raw(bytes);
}

void HttpPhase::respond(unsigned status, std::string_view content_type, std::string_view body,
                        bool keep_alive, std::string_view extra_headers) {
  std::string head = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}"
      "{}\r\n",
      status, reason_phrase(status), content_type, body.size(), extra_headers,
      keep_alive ? "" : "Connection: close\r\n");
  // HEAD: the same headers (Content-Length of the GET), no body.
  if (!answering_head_) head.append(body);
  send_raw(head);
  if (!keep_alive) conn_.close_after_flush(false);
}

void HttpPhase::respond_error(unsigned status, std::string_view reason, bool keep_alive,
                              std::string_view extra_headers) {
  std::string body = "{\"error\":";
  core::json::append_string(body, reason);
  body += "}";
  respond(status, "application/json", body, keep_alive, extra_headers);
}

bool HttpPhase::wants_input() const {
  return !awaiting_response_ && !paused_;
}

void HttpPhase::on_input(std::span<char> bytes) {
  const int64_t now = core::mono_ms();
  last_heard_ms_ = now;
  if (request_started_ms_ == 0) request_started_ms_ = now;
  feed(bytes);
}

bool HttpPhase::feed(std::span<char> bytes) {
  pending_.append(bytes.data(), bytes.size());
  ops::ThreadStats& stats = conn_.loop().stats();
  size_t offset = 0;
  while (offset < pending_.size()) {
    boost::beast::error_code ec;
    const size_t used =
        parser_->put(boost::asio::buffer(pending_.data() + offset, pending_.size() - offset), ec);
    offset += used;
    if (ec == beast_http::error::need_more) {
      // Beast waits for a delimiter: the header's blank line (it bounds that by the header
      // limit) or a chunk header's line end, which nothing bounded: an unterminated quoted
      // chunk extension made it buffer everything the client sent. No legitimate line is that
      // long.
      if (pending_.size() - offset > config_.max_header_bytes) {
        stats.refused(ops::RefuseReason::kRequestTooLarge);
        respond_error(400, "a request or chunk header line longer than WS_MAX_HEADER_BYTES", false);
        return false;
      }
      break;
    }
    if (ec) {
      if (ec == beast_http::error::header_limit) {
        stats.refused(ops::RefuseReason::kRequestTooLarge);
        respond_error(431, "request header too large", false);
      } else if (ec == beast_http::error::body_limit) {
        stats.refused(ops::RefuseReason::kRequestTooLarge);
        respond_error(413, "request body too large (WS_MAX_BODY_BYTES)", false);
      } else {
        respond_error(400, "malformed HTTP request", false);
      }
      return false;
    }
    if (!parser_->is_done()) continue;
    HttpRequest request = parser_->release();
    start_request_parser(parser_, config_.max_header_bytes, config_.max_body_bytes);
    answering_started_ms_ = request_started_ms_;
    request_started_ms_ = 0;
    stats.http_requests.add();
    // WS_MAX_REQUESTS_PER_CONNECTION: the answer to the last one closes the connection.
    if (++requests_ >= config_.max_requests_per_connection &&
        request[beast_http::field::upgrade].empty()) {
      request.keep_alive(false);
    }
    answering_head_ = request.method() == beast_http::verb::head;
    const bool keep_reading = routes_.handle(*this, request);
    answering_head_ = false;
    if (!keep_reading) {
      // Upgraded: the rest of the bytes are WebSocket frames, for the new handler. This phase
      // is over (the connection frees it after this turn).
      if (&conn_.handler() != this && offset < pending_.size()) {
        std::string rest = pending_.substr(offset);
        conn_.handler().on_input({rest.data(), rest.size()});
      }
      return false;
    }
    if (awaiting_response_) {  // the rest waits until the deferred response is out
      pending_.erase(0, offset);
      return false;
    }
    if (unsent() > kUnsentPause) {  // the client is not reading its answers
      paused_ = true;
      pending_.erase(0, offset);
      return false;
    }
  }
  pending_.erase(0, offset);
  if (pending_.empty()) std::string().swap(pending_);
  // The next request has begun (its clock starts now) if any of it has arrived.
  if (request_started_ms_ == 0 && (!pending_.empty() || parser_->got_some())) {
    request_started_ms_ = core::mono_ms();
  }
  return true;
}

void HttpPhase::on_flushed(net::FlushResult result) {
  if (!conn_.outbound().in_batch()) unflushed_ = 0;  // this turn's output went out or is backlog
  if (result == net::FlushResult::kBacklogged && conn_.over_queue_limit()) {
    // Answers nobody reads (pipelined requests pause at kUnsentPause, so only a response
    // larger than WS_CLIENT_QUEUE_BYTES gets here).
    conn_.loop().stats().slow_consumer_closes.add();
    spdlog::debug("slow HTTP client closed (backlog over {} bytes)", config_.client_queue_bytes);
    return conn_.abort();
  }
  resume();
}

void HttpPhase::resume() {
  if (!paused_ || conn_.state() != net::Connection::State::kOpen || unsent() > kUnsentPause) return;
  paused_ = false;
  // The client took its answers: it is alive even though we did not read from it meanwhile.
  last_heard_ms_ = core::mono_ms();
  if (!pending_.empty()) feed({});  // requests read before the pause
  if (wants_input()) conn_.resume_reading();
}

void HttpPhase::on_sweep(int64_t now_ms) {
  // Not while we owe the client an answer. A request (with the TLS handshake, for the first)
  // must be complete within the timeout however slowly its bytes trickle in (slowloris); an
  // idle keep-alive connection may stay that long after its last byte.
  if (awaiting_response_) return;
  const int64_t timeout = config_.handshake_timeout.count();
  if (request_started_ms_ != 0) {
    if (now_ms - request_started_ms_ > timeout) {
      conn_.loop().stats().refused(ops::RefuseReason::kHandshakeTimeout);
      // A client still in its TLS handshake cannot read an HTTP answer, and one that never
      // started a request is not waiting for one.
      const bool began = !pending_.empty() || parser_->got_some();
      if (!began || (conn_.tls() && !conn_.tls()->handshake_done())) return conn_.abort();
      respond_error(408, "request not complete in time", false);
    }
  } else if (now_ms - last_heard_ms_ > timeout) {
    conn_.abort();
  }
}

void HttpPhase::on_drain() {
  // The answer being written goes out; nothing more is read.
  conn_.close_after_flush(false);
  if (conn_.outbound().backlog_bytes() == 0 && !conn_.outbound().in_batch()) conn_.abort();
}

void HttpPhase::begin_deferred_response() {
  awaiting_response_ = true;
  conn_.hold();
}

void HttpPhase::finish_deferred_response(unsigned status, std::string_view body, bool keep_alive) {
  conn_.unhold();
  awaiting_response_ = false;
  if (conn_.state() == net::Connection::State::kClosed) return;
  last_heard_ms_ = core::mono_ms();  // the idle clock restarts once the client has its answer
  respond(status, "application/json", body, keep_alive);
  if (conn_.state() != net::Connection::State::kOpen) return;
  if (!pending_.empty()) feed({});  // requests pipelined behind this one
  if (wants_input()) conn_.resume_reading();
}

}  // namespace odin::http
