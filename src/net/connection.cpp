// One client socket (see connection.hpp): reading, the HTTP phase, the WebSocket phase, the
// close handshake, slow-consumer handling and lifetime.
#include "net/connection.hpp"
#include "core/clock.hpp"

#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/parser.hpp>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <utility>

#include "http/request_parser.hpp"
#include "http/router.hpp"
#include "net/event_loop.hpp"
#include "ops/config.hpp"
#include "session/requests.hpp"
#include "session/session.hpp"
#include "spdlog/spdlog.h"

namespace odin {

namespace beast_http = boost::beast::http;

namespace {
constexpr int64_t kCloseHandshakeMs = 5000;
constexpr size_t kMaxReadsPerTurn = 4;  // fairness: at most 256 KB from one socket per turn
// TLS reads return at most one record (16 KB), so a turn allows more of them.
constexpr size_t kMaxTlsReadsPerTurn = 16;
// HTTP phase: once this much of a client's answers is unsent, its further pipelined requests
// wait (unread, in the kernel) until the answers drain, so a client that sends requests and
// never reads holds this much plus one response, not one response per request.
constexpr size_t kHttpUnsentPause = 64 * 1024;
// Room around a data message's `data` in its frame: envelope members, escaped type and channel,
// frame header.
constexpr size_t kFrameSlackBytes = 4096;

}  // namespace

// The HTTP phase's state: allocated at accept, freed at the upgrade.
struct HttpReader {
  HttpReader(uint32_t header_limit, uint64_t body_limit)
      : header_limit(header_limit), body_limit(body_limit) {
    reset();
  }
  void reset() { start_request_parser(parser, header_limit, body_limit); }
  uint32_t header_limit;
  uint64_t body_limit;
  std::optional<HttpRequestParser> parser;
  std::string pending;  // bytes the parser has not consumed yet
};

Connection::Connection(EventLoop& loop, boost::asio::ip::tcp::socket socket, bool loopback,
                       std::unique_ptr<TlsStream> tls, AddressLimits::Slot address_slot)
    : loop_(loop),
      socket_(std::move(socket)),
      tls_(std::move(tls)),
      address_slot_(std::move(address_slot)),
      reader_(loop.config().max_message_bytes),
      opened_at_ms_(mono_ms()),
      last_heard_ms_(opened_at_ms_),
      last_ping_ms_(opened_at_ms_),
      request_started_ms_(opened_at_ms_),  // the first request (and TLS handshake) is due now
      loopback_(loopback) {}

Connection::~Connection() = default;

void Connection::start() {
  http_ =
      std::make_unique<HttpReader>(loop_.config().max_header_bytes, loop_.config().max_body_bytes);
  on_readable();  // data may have arrived before the socket joined the reactor
}

void Connection::start_migrated(ws::MessageReader reader, std::string unsent) {
  state_ = State::kOpen;
  request_started_ms_ = 0;
  tls_hello_checked_ = true;
  reader_ = std::move(reader);
  if (!unsent.empty()) {
    out_.backlog = std::move(unsent);
    // Whole frames only: the old thread wrote its partial frame into `unsent` as one piece.
    out_.backlog_frames.push_back(static_cast<uint32_t>(out_.backlog.size()));
    arm_write();
  }
}

bool Connection::wants_input() const {
  if (migrating_ || awaiting_response_ || replay_) return false;
  switch (state_) {
    case State::kHttp:
      return !http_paused_;
    case State::kOpen:
      return true;
    case State::kClosing:
      return close_frame_sent_;  // waiting for the client's close frame (or EOF)
    case State::kClosed:
      return false;
  }
  return false;
}

void Connection::arm_read() {
  if (reading_ || !wants_input()) return;
  reading_ = true;
  ++pending_ops_;
  socket_.async_wait(boost::asio::ip::tcp::socket::wait_read,
                     [this](const boost::system::error_code& ec) {
                       --pending_ops_;
                       reading_ = false;
                       if (ec || state_ == State::kClosed) {
                         release_if_done();
                         return;
                       }
                       on_readable();
                     });
}

bool Connection::take_input(std::span<char> bytes) {
  const int64_t now = mono_ms();
  last_heard_ms_ = now;
  if (state_ == State::kHttp) {
    if (request_started_ms_ == 0) request_started_ms_ = now;
    return feed_http(bytes);
  }
  const uint64_t byte_rate = loop_.config().client_max_bytes_per_sec;
  if (byte_rate > 0 && state_ == State::kOpen) {
    const TokenBucketPolicy policy{static_cast<double>(byte_rate), static_cast<double>(byte_rate)};
    if (input_bytes_.take_up_to(policy, steady_ns(), bytes.size()) < bytes.size()) {
      loop_.stats().flood_closes.add();
      close(ws::close_code::kPolicy, "sending too fast");
      return false;
    }
  }
  return feed_ws(bytes);
}

void Connection::on_readable() {
  if (tls_) return on_readable_tls();
  std::span<char> buffer = loop_.read_buffer();
  for (size_t i = 0; i < kMaxReadsPerTurn; ++i) {
    ssize_t n = ::recv(fd(), buffer.data(), buffer.size(), 0);
    if (n > 0) {
      // A false return only means "the rest of this read is not for us".
      const bool whole_read_used = take_input(buffer.first(static_cast<size_t>(n)));
      if (!wants_input()) return;
      if (!whole_read_used && state_ == State::kHttp) return;
      if (static_cast<size_t>(n) < buffer.size()) break;  // drained
      if (i + 1 == kMaxReadsPerTurn) {
        // More may be waiting, but the reactor is edge-triggered: come back after the others.
        ++pending_ops_;
        boost::asio::post(loop_.io(), [this] {
          --pending_ops_;
          if (!wants_input()) return release_if_done();
          on_readable();
        });
        return;
      }
      continue;
    }
    if (n == 0) {  // the peer closed its side
      if (state_ == State::kClosing) return finish_close();
      return abort();
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return abort();
  }
  arm_read();
}

void Connection::send_tls_output() {
  if (loop_.out().tls_sink().pending().empty()) return;
  uint64_t written = 0;
  const FlushResult result = loop_.out().send_tls_output(*this, written);
  loop_.stats().bytes_out.add(written);
  if (result == FlushResult::kFailed) return abort();
  if (result == FlushResult::kBacklogged) arm_write();
}

void Connection::refuse_plaintext_on_tls() {
  // Read what the client sent first, so closing does not reset the connection before it reads
  // the answer.
  std::span<char> buffer = loop_.read_buffer();
  while (::recv(fd(), buffer.data(), buffer.size(), 0) > 0) {
  }
  static constexpr std::string_view kAnswer =
      "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 56\r\n"
      "Connection: close\r\n\r\n{\"error\":\"this port speaks TLS: use https:// or wss://\"}";
  static_assert(kAnswer.size() - kAnswer.find("\r\n\r\n") - 4 == 56);
  (void)!::send(fd(), kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
  ::shutdown(fd(), SHUT_WR);
  abort();
}

void Connection::on_readable_tls() {
  if (!tls_hello_checked_) {
    // A TLS connection opens with a handshake record (0x16); anything else is most likely plain
    // HTTP sent to the TLS port, which deserves a readable answer rather than a TLS alert.
    char first = 0;
    const ssize_t n = ::recv(fd(), &first, 1, MSG_PEEK);
    if (n == 0) return abort();
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return arm_read();
      return abort();
    }
    tls_hello_checked_ = true;
    if (first != 0x16) return refuse_plaintext_on_tls();
  }
  std::span<char> buffer = loop_.read_buffer();
  for (size_t i = 0; i < kMaxTlsReadsPerTurn; ++i) {
    const TlsStream::ReadResult r = tls_->read(buffer, loop_.out().tls_sink());
    send_tls_output();  // handshake records, session tickets, alerts
    if (state_ == State::kClosed) return;
    switch (r.status) {
      case TlsStream::ReadStatus::kData: {
        const bool whole_read_used = take_input(buffer.first(r.bytes));
        if (!wants_input()) return;
        if (!whole_read_used && state_ == State::kHttp) return;
        continue;
      }
      case TlsStream::ReadStatus::kWouldBlock:
        return arm_read();
      case TlsStream::ReadStatus::kClosed:
        if (state_ == State::kClosing) return finish_close();
        return abort();
      case TlsStream::ReadStatus::kFailed:
        loop_.stats().refused(RefuseReason::kTlsFailed);
        spdlog::debug("TLS connection failed: {}", tls_->last_error());
        return abort();
    }
  }
  // Records may be waiting in the socket or inside OpenSSL: come back after the others.
  ++pending_ops_;
  boost::asio::post(loop_.io(), [this] {
    --pending_ops_;
    if (!wants_input()) return release_if_done();
    on_readable();
  });
}

bool Connection::feed_http(std::span<char> bytes) {
  HttpReader& http = *http_;
  http.pending.append(bytes.data(), bytes.size());
  size_t offset = 0;
  while (offset < http.pending.size()) {
    boost::beast::error_code ec;
    const size_t used = http.parser->put(
        boost::asio::buffer(http.pending.data() + offset, http.pending.size() - offset), ec);
    offset += used;
    if (ec == beast_http::error::need_more) {
      // Beast waits for a delimiter: the header's blank line (it bounds that by the header
      // limit) or a chunk header's line end, which nothing bounded: an unterminated quoted
      // chunk extension made it buffer everything the client sent. No legitimate line is that
      // long.
      if (http.pending.size() - offset > loop_.config().max_header_bytes) {
        loop_.stats().refused(RefuseReason::kRequestTooLarge);
        send_http_error(*this, 400,
                        "a request or chunk header line longer than WS_MAX_HEADER_BYTES", false);
        close_after_flush();
        return false;
      }
      break;
    }
    if (ec) {
      if (ec == beast_http::error::header_limit) {
        loop_.stats().refused(RefuseReason::kRequestTooLarge);
        send_http_error(*this, 431, "request header too large", false);
      } else if (ec == beast_http::error::body_limit) {
        loop_.stats().refused(RefuseReason::kRequestTooLarge);
        send_http_error(*this, 413, "request body too large (WS_MAX_BODY_BYTES)", false);
      } else {
        send_http_error(*this, 400, "malformed HTTP request", false);
      }
      close_after_flush();
      return false;
    }
    if (!http.parser->is_done()) continue;
    HttpRequest request = http.parser->release();
    http.reset();
    request_started_ms_ = 0;
    loop_.stats().http_requests.add();
    // WS_MAX_REQUESTS_PER_CONNECTION: the answer to the last one closes the connection.
    if (++http_requests_ >= loop_.config().max_requests_per_connection &&
        request[beast_http::field::upgrade].empty()) {
      request.keep_alive(false);
    }
    answering_head = request.method() == beast_http::verb::head;
    const bool keep_reading = handle_http_request(*this, request);
    answering_head = false;
    if (!keep_reading) {
      // Upgraded (the rest of the bytes are WebSocket frames) or closing.
      if (state_ == State::kOpen && offset < http.pending.size()) {
        std::string rest = http.pending.substr(offset);
        http_.reset();
        return feed_ws({rest.data(), rest.size()});
      }
      if (state_ == State::kOpen) http_.reset();
      return false;
    }
    if (awaiting_response_) {  // the rest waits until the deferred response is out
      http.pending.erase(0, offset);
      return false;
    }
    if (http_unsent() > kHttpUnsentPause) {  // the client is not reading its answers
      http_paused_ = true;
      http.pending.erase(0, offset);
      return false;
    }
  }
  http.pending.erase(0, offset);
  if (http.pending.empty()) std::string().swap(http.pending);
  // The next request has begun (its clock starts now) if any of it has arrived.
  if (request_started_ms_ == 0 && (!http.pending.empty() || http.parser->got_some())) {
    request_started_ms_ = mono_ms();
  }
  return true;
}

bool Connection::feed_ws(std::span<char> bytes) {
  if (state_ == State::kClosed) return false;
  if (auto error = reader_.feed(bytes, *this)) {
    loop_.stats().protocol_errors.add();
    close(error->close_code, error->reason);
    return false;
  }
  return state_ == State::kOpen || state_ == State::kClosing;
}

bool Connection::on_text(std::string_view message) {
  if (state_ != State::kOpen) return true;  // ignore data after our close frame
  if (migrating_ || replay_) {
    waiting_requests_.emplace_back(message);
    return true;
  }
  return handle_client_request(*this, *session_, message);
}

bool Connection::on_ping(std::string_view payload) {
  if (state_ != State::kOpen || migrating_) return true;
  std::string frame;
  ws::append_frame(frame, ws::Opcode::kPong, payload);
  send_raw(frame);
  return true;
}

bool Connection::on_pong(std::string_view) {
  return true;
}

void Connection::on_close(uint16_t code, std::string_view) {
  if (state_ == State::kClosing) {  // the answer to our close frame
    finish_close();
    return;
  }
  // The client started the handshake: echo its code (RFC 6455 5.5.1), then close TCP.
  std::string frame;
  ws::append_close_frame(frame, code == ws::close_code::kNoStatus ? ws::close_code::kNormal : code,
                         {});
  send_raw(frame);
  detach_session();
  state_ = State::kClosing;
  close_frame_sent_ = true;
  close_when_flushed_ = true;
  close_deadline_ms_ = mono_ms() + kCloseHandshakeMs;
}

bool Connection::make_room_for_output() {
  // The kernel usually takes this much at once; below it an early flush would only cost writes.
  constexpr uint64_t kEarlyFlushBytes = 64 * 1024;
  if (state_ != State::kOpen) return false;
  const uint64_t batched = out_.in_batch() ? out_.batched_bytes : 0;
  if (batched > kEarlyFlushBytes ||
      (batched > 0 && batched + out_.backlog_bytes() > loop_.config().client_queue_bytes)) {
    loop_.flush();  // what the kernel refuses joins the backlog, which the slow-consumer rule caps
  }
  return state_ == State::kOpen;
}

void Connection::send_raw(std::string_view bytes) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kHttp) http_unflushed_ += bytes.size();
  loop_.out().append_copy(*this, bytes);
  loop_.schedule_flush();
}

void Connection::send_text(std::string_view json) {
  if (state_ != State::kOpen) return;
  char* p = loop_.out().append_reserve(*this, ws::frame_header_size(json.size()) + json.size());
  const size_t header = ws::encode_frame_header(p, ws::Opcode::kText, json.size());
  std::memcpy(p + header, json.data(), json.size());
  loop_.schedule_flush();
}

void Connection::upgrade(Session& session) {
  state_ = State::kOpen;
  bind_session(session, false);
  last_heard_ms_ = last_ping_ms_ = mono_ms();
}

void Connection::bind_session(Session& session, bool returning_from_transit) {
  assert(session_ == nullptr && "a connection has at most one session");
  session.attach(*this, returning_from_transit);
  session_ = &session;
  loop_.sessions().on_attached(session);
}

Session* Connection::take_session() {
  Session* session = std::exchange(session_, nullptr);
  if (session) session->detach(mono_ms(), false);
  return session;
}

void Connection::detach_session(bool in_transit) {
  Session* session = std::exchange(session_, nullptr);
  if (!session) return;
  session->detach(mono_ms(), in_transit);
  if (!in_transit) loop_.on_session_detached(*session);
}

void Connection::close(uint16_t code, std::string_view reason) {
  if (state_ == State::kClosed || state_ == State::kClosing) return;
  if (state_ == State::kHttp) return abort();
  drop_replay();
  std::string frame;
  ws::append_close_frame(frame, code, reason);
  send_raw(frame);
  if (code == ws::close_code::kGoingAway && session_) {
    // A drain ends sessions: there is nothing left to resume them on.
    loop_.sessions().destroy(*take_session(), loop_.fanout().index());
  } else {
    detach_session();
  }
  state_ = State::kClosing;
  close_frame_sent_ = true;
  // Half-close once the frame is out: the client sees the close frame then EOF even if it never
  // answers; we keep reading for its close frame until the deadline.
  close_when_flushed_ = true;
  close_deadline_ms_ = mono_ms() + kCloseHandshakeMs;
}

void Connection::close_after_flush() {
  close_when_flushed_ = true;
  if (state_ == State::kHttp) {
    state_ = State::kClosing;
    close_deadline_ms_ = mono_ms() + kCloseHandshakeMs;
  }
}

void Connection::abort() {
  if (state_ == State::kClosed) return;
  drop_replay();
  detach_session();
  const bool was_websocket = state_ == State::kOpen || close_frame_sent_;
  state_ = State::kClosed;
  loop_.out().forget(*this);
  out_.release();
  reader_.release_buffers();
  http_.reset();
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (was_websocket) loop_.on_websocket_closed();
  release_if_done();
}

void Connection::finish_close() {
  abort();
}

void Connection::arm_write() {
  if (writing_ || state_ == State::kClosed) return;
  writing_ = true;
  ++pending_ops_;
  socket_.async_wait(boost::asio::ip::tcp::socket::wait_write,
                     [this](const boost::system::error_code& ec) {
                       --pending_ops_;
                       writing_ = false;
                       if (ec || state_ == State::kClosed) return release_if_done();
                       uint64_t written = 0;
                       FlushResult result = OutBatch::write_backlog(*this, written);
                       loop_.stats().bytes_out.add(written);
                       on_flushed(result);
                     });
}

void Connection::on_flushed(FlushResult result) {
  if (state_ == State::kClosed) return;
  if (!out_.in_batch()) http_unflushed_ = 0;  // what this turn appended went out or is backlog
  switch (result) {
    case FlushResult::kFailed:
      return abort();
    case FlushResult::kBacklogged:
      if ((state_ == State::kOpen || state_ == State::kHttp) && over_queue_limit()) {
        return slow_consumer();
      }
      arm_write();
      return resume_http();
    case FlushResult::kDone:
      if (replay_part_queued_) {
        replay_part_queued_ = false;
        post_replay_part();
      }
      if (close_when_flushed_) {
        if (state_ == State::kHttp || (state_ == State::kClosing && !close_frame_sent_)) {
          return abort();
        }
        // Our close frame (or the echo of the client's) is out: let the client see EOF.
        if (tls_) {
          tls_->shutdown(loop_.out().tls_sink());  // close_notify, best effort
          uint64_t written = 0;
          (void)loop_.out().send_tls_output(*this, written);
        }
        ::shutdown(fd(), SHUT_WR);
        if (state_ == State::kClosing && !reading_) arm_read();
        return;
      }
      return resume_http();
  }
}

void Connection::resume_http() {
  if (!http_paused_ || state_ != State::kHttp || http_unsent() > kHttpUnsentPause) return;
  http_paused_ = false;
  // The client took its answers: it is alive even though we did not read from it meanwhile.
  last_heard_ms_ = mono_ms();
  if (http_ && !http_->pending.empty()) feed_http({});  // requests read before the pause
  if (wants_input()) on_readable();
}

bool Connection::over_queue_limit() const {
  size_t queued = out_.backlog_bytes();
  if (!out_.backlog_frames.empty()) {
    // One message as large as WS_MAX_PAYLOAD_BYTES allows must get through even when the
    // kernel takes little of it at once: the rest of the oldest frame does not count.
    const size_t head_rest = out_.backlog_frames.front() - out_.head_frame_written;
    queued -= std::min({head_rest, queued, loop_.config().max_payload_bytes + kFrameSlackBytes});
  }
  return queued > loop_.config().client_queue_bytes;
}

void Connection::slow_consumer() {
  if (state_ == State::kHttp) {
    // Answers nobody reads (pipelined requests are paused at kHttpUnsentPause, so only a
    // response larger than WS_CLIENT_QUEUE_BYTES gets here).
    loop_.stats().slow_consumer_closes.add();
    spdlog::debug("slow HTTP client closed (backlog over {} bytes)",
                  loop_.config().client_queue_bytes);
    return abort();
  }
  if (tls_) {
    // Encrypted records cannot be dropped from the backlog (the client could not decrypt what
    // follows), and a close frame behind them would wait for the slow reader: end it now.
    loop_.stats().slow_consumer_closes.add();
    return abort();
  }
  // Keep only the rest of a frame already partly written, so the stream stays valid, then end
  // it with 4008. The backlog's memory goes back at once.
  std::string keep;
  if (out_.head_frame_written > 0 && !out_.backlog_frames.empty()) {
    const size_t rest = out_.backlog_frames.front() - out_.head_frame_written;
    keep.assign(out_.backlog.data() + out_.backlog_offset, rest);
  }
  out_.release();
  if (!keep.empty()) {
    out_.backlog = std::move(keep);
    out_.backlog_frames.push_back(static_cast<uint32_t>(out_.backlog.size()));
  }
  loop_.stats().slow_consumer_closes.add();
  spdlog::debug("slow consumer closed (backlog over {} bytes)", loop_.config().client_queue_bytes);
  close(ws::close_code::kSlowConsumer, "slow consumer");
  close_when_flushed_ = true;
}

void Connection::on_sweep(int64_t now_ms) {
  const Config& config = loop_.config();
  switch (state_) {
    case State::kHttp:
      // Not while we owe the client an answer. A request (with the TLS handshake, for the first)
      // must be complete within the timeout however slowly its bytes trickle in (slowloris); an
      // idle keep-alive connection may stay that long after its last byte.
      if (awaiting_response_) return;
      if (request_started_ms_ != 0) {
        if (now_ms - request_started_ms_ > config.handshake_timeout.count()) {
          loop_.stats().refused(RefuseReason::kHandshakeTimeout);
          // A client still in its TLS handshake cannot read an HTTP answer, and one that never
          // started a request is not waiting for one.
          const bool began = http_ && (!http_->pending.empty() || http_->parser->got_some());
          if (!began || (tls_ && !tls_->handshake_done())) return abort();
          send_http_error(*this, 408, "request not complete in time", false);
        }
      } else if (now_ms - last_heard_ms_ > config.handshake_timeout.count()) {
        abort();
      }
      return;
    case State::kOpen: {
      if (token_ && wall_ms() >= auth::expiry_ms(*token_, config.jwt_leeway_seconds)) {
        // The client did not send a fresh token (`auth`) in time.
        loop_.stats().token_expired_closes.add();
        close(ws::close_code::kTokenExpired, "token expired");
        return;
      }
      if (now_ms - last_heard_ms_ >= config.heartbeat_timeout.count()) {
        loop_.stats().heartbeat_timeouts.add();
        close(ws::close_code::kHeartbeatTimeout, "heartbeat timeout");
        return;
      }
      const int64_t quiet_since = std::max(last_heard_ms_, last_ping_ms_);
      if (now_ms - quiet_since >= config.ping_interval.count()) {
        last_ping_ms_ = now_ms;
        static constexpr char kPing[] = {static_cast<char>(0x89), 0};
        send_raw({kPing, 2});
      }
      return;
    }
    case State::kClosing:
      if (now_ms >= close_deadline_ms_) abort();
      return;
    case State::kClosed:
      return;
  }
}

void Connection::migrate(unsigned thread, MigrationPurpose purpose, std::string request,
                         const SessionId& fresh_session, std::unique_ptr<StreamFetch> fetch) {
  migrating_ = true;
  // From now on nobody else may resume the fresh session: the client may still come back to it.
  if (session_) session_->begin_transit();
  MigratingConnection moving;
  moving.purpose = purpose;
  moving.fetch = std::move(fetch);
  moving.loopback = loopback_;
  moving.request = std::move(request);
  moving.fresh_session = fresh_session;
  // Requests that followed the resume in this read are collected by on_text until we return;
  // the move happens after this handler, in a post, so they are complete.
  ++pending_ops_;
  boost::asio::post(loop_.io(), [this, thread, moving = std::move(moving)]() mutable {
    --pending_ops_;
    if (state_ == State::kClosed) return release_if_done();
    if (state_ != State::kOpen) {
      // Closed meanwhile (drain, slow consumer, replaced): the close handshake goes on here, and
      // the session (detached by close()) stays resumable.
      migrating_ = false;
      waiting_requests_.clear();
      return arm_read();
    }
    loop_.flush();  // everything queued for this client goes out from here, in order
    moving.queued = std::move(waiting_requests_);
    moving.saw_request = saw_request;
    moving.reader = std::move(reader_);
    moving.tls = std::move(tls_);
    moving.token = std::move(token_);
    moving.address_slot = std::move(address_slot_);
    if (out_.backlog_bytes() > 0) {
      moving.unsent.assign(out_.backlog.data() + out_.backlog_offset, out_.backlog_bytes());
    }
    detach_session(true);
    boost::system::error_code ec;
    moving.fd = socket_.release(ec);
    out_.release();
    state_ = State::kClosed;
    if (ec) {
      spdlog::warn("could not hand a connection to another thread: {}", ec.message());
      loop_.end_transit(moving.fresh_session);
      release_if_done();
      return;
    }
    loop_.hand_over(thread, std::move(moving));
    release_if_done();
  });
}

void Connection::begin_deferred_response() {
  awaiting_response_ = true;
  ++pending_ops_;
}

void Connection::finish_deferred_response(unsigned status, std::string_view body, bool keep_alive) {
  --pending_ops_;
  awaiting_response_ = false;
  if (state_ == State::kClosed) return release_if_done();
  last_heard_ms_ = mono_ms();  // the idle clock restarts once the client has its answer
  send_http_response(*this, status, "application/json", body, keep_alive);
  if (state_ != State::kHttp) return;
  if (http_ && !http_->pending.empty()) feed_http({});  // requests pipelined behind this one
  if (wants_input()) on_readable();
}

void Connection::hold_replay(std::unique_ptr<ReplayInProgress> replay) {
  replay_ = std::move(replay);
  continue_replay_once_written();
}

void Connection::continue_replay_once_written() {
  // A part may have been written already, by a flush while it was produced.
  if (out_.in_batch() || out_.backlog_bytes() > 0) {
    replay_part_queued_ = true;  // on_flushed(kDone) posts the next part
    return;
  }
  post_replay_part();
}

void Connection::post_replay_part() {
  // Never from inside a flush (on_flushed): the next part goes into a new batch.
  ++pending_ops_;
  boost::asio::post(loop_.io(), [this] {
    --pending_ops_;
    continue_held_replay();
  });
}

void Connection::continue_held_replay() {
  if (state_ != State::kOpen || !replay_) {
    replay_.reset();
    return release_if_done();
  }
  // The client takes what it asked for: it is alive although we do not read from it meanwhile.
  last_heard_ms_ = mono_ms();
  if (!continue_replay(*this, *replay_)) return continue_replay_once_written();
  replay_.reset();
  answer_waiting_requests();
}

void Connection::answer_waiting_requests() {
  size_t answered = 0;
  // One of them may be a replay again: the rest wait for it.
  while (answered < waiting_requests_.size() && !replay_ && state_ == State::kOpen && session_) {
    std::string request = std::move(waiting_requests_[answered++]);
    if (!handle_client_request(*this, *session_, request)) break;
  }
  if (state_ != State::kOpen) {
    waiting_requests_.clear();
    return;
  }
  waiting_requests_.erase(waiting_requests_.begin(),
                          waiting_requests_.begin() + static_cast<std::ptrdiff_t>(answered));
  if (wants_input()) on_readable();
}

void Connection::drop_replay() {
  replay_.reset();
  replay_part_queued_ = false;
  waiting_requests_.clear();
}

void Connection::release_if_done() {
  if (state_ != State::kClosed || pending_ops_ > 0 || out_.in_batch() || retired_) return;
  retired_ = true;
  loop_.retire(this);
}

}  // namespace odin
