// One event-loop thread (see event_loop.hpp).
#include "net/event_loop.hpp"
#include "ops/clock.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <simdjson.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <random>

#include "gateway.hpp"
#include "net/connection.hpp"
#include "session/requests.hpp"
#include "spdlog/spdlog.h"

namespace odin {

namespace {

// Sweep often enough for the shortest configured timeout, never more than 20 times a second.
std::chrono::milliseconds sweep_period(const Config& config) {
  const auto shortest = std::min({config.ping_interval, config.heartbeat_timeout,
                                  config.handshake_timeout, config.resume_ttl});
  return std::clamp(shortest / 4, Millis(50), Millis(1000));
}
}  // namespace

EventLoop::EventLoop(Gateway& gateway, unsigned index)
    : gateway_(gateway),
      index_(index),
      io_(1),
      sweep_timer_(io_),
      accept_retry_timer_(io_),
      fanout_(*this),
      json_parser_(std::make_unique<simdjson::dom::parser>()),
      read_buffer_(std::make_unique<char[]>(kReadBufferBytes)) {
  std::random_device seed;
  session_counter_ = (uint64_t{seed()} << 32) ^ seed();
}

EventLoop::~EventLoop() {
  stop();
  join();
}

const Config& EventLoop::config() const {
  return gateway_.config();
}
unsigned EventLoop::gateway_thread_count() const {
  return gateway_.thread_count();
}

uint16_t EventLoop::listen(const boost::asio::ip::tcp::endpoint& endpoint) {
  acceptor_ = std::make_unique<boost::asio::ip::tcp::acceptor>(io_);
  acceptor_->open(endpoint.protocol());
  acceptor_->set_option(boost::asio::socket_base::reuse_address(true));
  int one = 1;
  ::setsockopt(acceptor_->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  acceptor_->bind(endpoint);
  acceptor_->listen(4096);
  accept_next();
  return acceptor_->local_endpoint().port();
}

void EventLoop::start_thread() {
  arm_sweep();
  thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(io_);
    // A handler that throws is a bug; log it and keep serving everyone else rather than let
    // one connection take the process down.
    while (true) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("event loop {}: unexpected exception: {}", index_, e.what());
      }
    }
  });
}

void EventLoop::join() {
  if (thread_.joinable()) thread_.join();
}

void EventLoop::stop() {
  io_.stop();
}

void EventLoop::accept_next() {
  if (!acceptor_ || draining_) return;
  acceptor_->async_accept(
      [this](const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket) {
        if (draining_) return;
        if (ec) {
          if (ec == boost::asio::error::operation_aborted) return;
          // Out of descriptors (or a transient error): wait instead of spinning.
          spdlog::warn("accept failed: {}", ec.message());
          accept_retry_timer_.expires_after(std::chrono::milliseconds(100));
          accept_retry_timer_.async_wait([this](const boost::system::error_code& e) {
            if (!e) accept_next();
          });
          return;
        }
        boost::system::error_code ignored;
        const auto remote = socket.remote_endpoint(ignored);
        const bool loopback = !ignored && remote.address().is_loopback();
        AddressLimits::Slot slot;
        const uint32_t address = ignored ? 0 : remote.address().to_v4().to_uint();
        if (!gateway_.address_limits().acquire(address, slot)) {
          refuse_over_address_limit(std::move(socket));
        } else {
          add_connection(std::move(socket), loopback, std::move(slot));
        }
        accept_next();
      });
}

void EventLoop::refuse_over_address_limit(boost::asio::ip::tcp::socket socket) {
  stats_.refused(RefuseReason::kAddressLimit);
  // No request has been read, so the answer cannot be an HTTP response the client is sure to
  // see; a plain-text client gets one anyway (best effort), a TLS client only the close.
  if (!gateway_.tls_context()) {
    static constexpr std::string_view kAnswer =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        "Content-Length: 50\r\nConnection: close\r\n\r\n"
        "{\"error\":\"too many connections from this address\"}";
    static_assert(kAnswer.size() - kAnswer.find("\r\n\r\n") - 4 == 50);
    (void)!::send(socket.native_handle(), kAnswer.data(), kAnswer.size(),
                  MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  boost::system::error_code ignored;
  socket.close(ignored);
}

void EventLoop::add_connection(boost::asio::ip::tcp::socket socket, bool loopback,
                               AddressLimits::Slot slot) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.set_option(boost::asio::ip::tcp::no_delay(true), ec);
  std::unique_ptr<TlsStream> tls;
  if (auto context = gateway_.tls_context()) {
    tls = TlsStream::accept(*context, socket.native_handle());
    if (!tls) {
      stats_.refused(RefuseReason::kTlsFailed);
      return;  // out of memory: the socket closes with this scope
    }
  }
  auto conn = std::make_unique<Connection>(*this, std::move(socket), loopback, std::move(tls),
                                           std::move(slot));
  Connection* raw = conn.get();
  connections_.push_back(std::move(conn));
  raw->start();
}

void EventLoop::flush() {
  if (out_.empty()) return;
  stats_.bytes_out.add(out_.flush());
}

void EventLoop::schedule_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this] {
    flush_posted_ = false;
    flush();
  });
}

uint64_t EventLoop::new_session_id() {
  // splitmix64 over a random start: unguessable enough for a resume token within one process,
  // with the owning thread in the low byte so any thread can route a resume.
  uint64_t z = (session_counter_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (z & ~uint64_t{0xff}) | index_;
}

void EventLoop::hand_over(unsigned thread, MigratingConnection moving) {
  EventLoop& target = gateway_.loop(thread);
  // The move-only payload travels in a shared_ptr because asio handlers must be copyable here.
  auto payload = std::make_shared<MigratingConnection>(std::move(moving));
  if (payload->fetch) {  // a restore that needs the stream: the broker reads it, then on
    std::unique_ptr<StreamFetch> fetch = std::move(payload->fetch);
    gateway_.broker().fetch(
        std::move(fetch), config().replay_size,
        [&target, payload](std::unique_ptr<StreamFetch> done) {
          payload->fetch = std::move(done);
          boost::asio::post(target.io(), [&target, payload] { target.adopt(std::move(*payload)); });
        });
    return;
  }
  boost::asio::post(target.io(), [&target, payload] { target.adopt(std::move(*payload)); });
}

void EventLoop::adopt(MigratingConnection moving) {
  boost::asio::ip::tcp::socket socket(io_);
  boost::system::error_code ec;
  socket.assign(boost::asio::ip::tcp::v4(), moving.fd, ec);
  if (ec) {
    spdlog::warn("could not adopt a connection from another thread: {}", ec.message());
    ::close(moving.fd);
    gateway_.release_connection();
    return;
  }
  auto conn = std::make_unique<Connection>(*this, std::move(socket), moving.loopback,
                                           std::move(moving.tls), std::move(moving.address_slot));
  Connection* raw = conn.get();
  connections_.push_back(std::move(conn));
  raw->saw_request = moving.saw_request;
  raw->set_token(std::move(moving.token));
  raw->start_migrated(std::move(moving.reader), std::move(moving.unsent));
  continue_migrated(*raw, moving);
  if (!raw->migrating() && raw->state() != Connection::State::kClosed) raw->resume_reading();
}

void EventLoop::discard_session_elsewhere(uint64_t session_id) {
  const unsigned thread = Session::thread_of(session_id);
  if (thread >= gateway_.thread_count()) return;
  EventLoop& owner = gateway_.loop(thread);
  boost::asio::post(owner.io(), [&owner, session_id] {
    Session* s = owner.sessions_.find(session_id);
    if (s && !s->connection) owner.sessions_.destroy(*s, owner.fanout_.index());
  });
}

void EventLoop::on_websocket_closed() {
  stats_.connections_closed.add();
  gateway_.release_connection();
}

void EventLoop::retire(Connection* conn) {
  retired_.push_back(conn);
  if (reap_posted_) return;
  reap_posted_ = true;
  boost::asio::post(io_, [this] { reap(); });
}

void EventLoop::reap() {
  reap_posted_ = false;
  for (Connection* dead : retired_) {
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (connections_[i].get() == dead) {
        connections_[i].swap(connections_.back());
        connections_.pop_back();
        break;
      }
    }
  }
  retired_.clear();
}

void EventLoop::arm_sweep() {
  sweep_timer_.expires_after(sweep_period(config()));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    sweep();
    arm_sweep();
  });
}

void EventLoop::sweep() {
  const int64_t now = wall_ms();
  // Index loop: a sweep may close connections, which only retires them (reaped later).
  for (size_t i = 0; i < connections_.size(); ++i)
    connections_[i]->on_sweep(now);
  sessions_.expire(now, config().resume_ttl.count(), fanout_.index());
  fanout_.sweep();
  session_count_.store(static_cast<uint32_t>(sessions_.size()), std::memory_order_relaxed);
  detached_count_.store(static_cast<uint32_t>(sessions_.detached()), std::memory_order_relaxed);
  channel_count_.store(static_cast<uint32_t>(fanout_.index().channel_count()),
                       std::memory_order_relaxed);
  connection_count_.store(static_cast<uint32_t>(connections_.size()), std::memory_order_relaxed);
  flush();
}

void EventLoop::begin_drain() {
  draining_ = true;
  boost::system::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
  for (size_t i = 0; i < connections_.size(); ++i) {
    Connection& conn = *connections_[i];
    if (conn.state() == Connection::State::kOpen) {
      conn.close(ws::close_code::kGoingAway, "server shutting down");
    } else if (conn.state() == Connection::State::kHttp) {
      conn.close_after_flush();
      if (conn.outbound().backlog_bytes() == 0 && !conn.outbound().in_batch()) conn.abort();
    }
  }
  flush();
}

}  // namespace odin
