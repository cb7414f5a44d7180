// One client socket, transport only (see connection.hpp): reading into the handler, writing,
// closing, lifetime, and leaving for another thread.
#include "net/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/clock.hpp"
#include "net/event_loop.hpp"
#include "ops/config.hpp"
#include "spdlog/spdlog.h"
#include "ws/frame.hpp"

namespace odin::net {

namespace {
constexpr size_t kMaxReadsPerTurn = 4;  // fairness: at most 256 KB from one socket per turn
// TLS reads return at most one record (16 KB), so a turn allows more of them.
constexpr size_t kMaxTlsReadsPerTurn = 16;
// Room around a data message's `data` in its frame: envelope members, escaped type and channel,
// frame header.
constexpr size_t kFrameSlackBytes = 4096;
}  // namespace

Connection::Connection(EventLoop& loop, boost::asio::ip::tcp::socket socket, bool loopback,
                       std::unique_ptr<TlsStream> tls, guard::AddressLimits::Slot address_slot)
    : loop_(loop),
      socket_(std::move(socket)),
      tls_(std::move(tls)),
      address_slot_(std::move(address_slot)),
      opened_at_ms_(core::mono_ms()),
      loopback_(loopback) {}

Connection::~Connection() = default;

void Connection::start(std::unique_ptr<ConnectionHandler> handler) {
  handler_ = std::move(handler);
  on_readable();
}

void Connection::start_adopted(std::unique_ptr<ConnectionHandler> handler, std::string unsent) {
  handler_ = std::move(handler);
  tls_hello_checked_ = true;
  if (!unsent.empty()) {
    out_.backlog = std::move(unsent);
    // Whole frames only: the old thread wrote its partial frame into `unsent` as one piece.
    out_.backlog_frames.push_back(static_cast<uint32_t>(out_.backlog.size()));
    arm_write();
  }
}

void Connection::set_handler(std::unique_ptr<ConnectionHandler> handler) {
  previous_handler_ = std::exchange(handler_, std::move(handler));
  // The old handler may be running (it called this): it goes once the turn is over.
  post([this] { previous_handler_.reset(); });
}

bool Connection::wants_input() const {
  if (state_ == State::kClosed || (state_ == State::kClosing && !half_close_)) return false;
  return handler_->wants_input();
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

void Connection::on_readable() {
  if (!wants_input()) return;
  if (tls_) return on_readable_tls();
  std::span<char> buffer = loop_.read_buffer();
  for (size_t i = 0; i < kMaxReadsPerTurn; ++i) {
    ssize_t n = ::recv(fd(), buffer.data(), buffer.size(), 0);
    if (n > 0) {
      handler_->on_input(buffer.first(static_cast<size_t>(n)));
      if (!wants_input()) return;
      if (static_cast<size_t>(n) < buffer.size()) break;  // drained
      if (i + 1 == kMaxReadsPerTurn) {
        // More may be waiting, but the reactor is edge-triggered: come back after the others.
        return post([this] { on_readable(); });
      }
      continue;
    }
    if (n == 0) return abort();  // the peer closed its side (while closing: the close is done)
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
      case TlsStream::ReadStatus::kData:
        handler_->on_input(buffer.first(r.bytes));
        if (!wants_input()) return;
        continue;
      case TlsStream::ReadStatus::kWouldBlock:
        return arm_read();
      case TlsStream::ReadStatus::kClosed:
        return abort();
      case TlsStream::ReadStatus::kFailed:
        loop_.stats().refused(ops::RefuseReason::kTlsFailed);
        spdlog::debug("TLS connection failed: {}", tls_->last_error());
        return abort();
    }
  }
  // Records may be waiting in the socket or inside OpenSSL: come back after the others.
  post([this] { on_readable(); });
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
  loop_.out().append_copy(*this, bytes);
  loop_.schedule_flush();
}

void Connection::send_text(std::string_view payload) {
  if (state_ != State::kOpen) return;
  char* p =
      loop_.out().append_reserve(*this, ws::frame_header_size(payload.size()) + payload.size());
  const size_t header = ws::encode_frame_header(p, ws::Opcode::kText, payload.size());
  std::memcpy(p + header, payload.data(), payload.size());
  loop_.schedule_flush();
}

void Connection::close_after_flush(bool half_close) {
  if (state_ == State::kClosed) return;
  close_when_flushed_ = true;
  half_close_ = half_close;
  if (state_ == State::kOpen) {
    state_ = State::kClosing;
    close_deadline_ms_ = core::mono_ms() + kCloseDeadlineMs;
  }
}

void Connection::abort() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  handler_->on_closed();
  loop_.out().forget(*this);
  out_.release();
  boost::system::error_code ignored;
  socket_.close(ignored);
  release_if_done();
}

void Connection::limit_unsent_in_kernel(uint32_t bytes) {
  if (unsent_limited_ || bytes == 0) return;
  unsent_limited_ = true;
  const int value = static_cast<int>(bytes);
  // Failure only means the kernel buffers more than asked: conflation starts later.
  ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &value, sizeof value);
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

void Connection::drop_backlog() {
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
}

void Connection::post(std::function<void()> work) {
  ++pending_ops_;
  boost::asio::post(loop_.io(), [this, work = std::move(work)] {
    --pending_ops_;
    if (state_ == State::kClosed) return release_if_done();
    work();
  });
}

void Connection::unhold() {
  --pending_ops_;
  if (state_ == State::kClosed) release_if_done();
}

DetachedSocket Connection::detach(boost::system::error_code& error) {
  loop_.flush();  // everything queued for this client goes out from here, in order
  DetachedSocket moving;
  moving.loopback = loopback_;
  moving.tls = std::move(tls_);
  moving.address_slot = std::move(address_slot_);
  if (out_.backlog_bytes() > 0) {
    moving.unsent.assign(out_.backlog.data() + out_.backlog_offset, out_.backlog_bytes());
  }
  moving.fd = socket_.release(error);
  out_.release();
  state_ = State::kClosed;
  release_if_done();
  return moving;
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
  switch (result) {
    case FlushResult::kFailed:
      return abort();
    case FlushResult::kBacklogged:
      handler_->on_flushed(result);  // may decide the client is too slow and close it
      return arm_write();
    case FlushResult::kDone:
      if (!close_when_flushed_) return handler_->on_flushed(result);
      if (!half_close_) return abort();
      // Our last frame is out: let the client see EOF, and read until its own.
      if (tls_) {
        tls_->shutdown(loop_.out().tls_sink());  // close_notify, best effort
        uint64_t written = 0;
        (void)loop_.out().send_tls_output(*this, written);
      }
      ::shutdown(fd(), SHUT_WR);
      if (!reading_) arm_read();
      return;
  }
}

void Connection::on_sweep(int64_t now_ms) {
  switch (state_) {
    case State::kOpen:
      return handler_->on_sweep(now_ms);
    case State::kClosing:
      if (now_ms >= close_deadline_ms_) abort();
      return;
    case State::kClosed:
      return;
  }
}

void Connection::release_if_done() {
  if (state_ != State::kClosed || pending_ops_ > 0 || out_.in_batch() || retired_) return;
  retired_ = true;
  loop_.retire(this);
}

}  // namespace odin::net
