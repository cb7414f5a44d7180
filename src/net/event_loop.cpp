// One event-loop thread (see event_loop.hpp).
#include "net/event_loop.hpp"
#include "core/clock.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string_view>

#include "net/connection.hpp"
#include "spdlog/spdlog.h"

namespace odin::net {

namespace {

// Sweep often enough for the shortest configured timeout, never more than 20 times a second.
std::chrono::milliseconds sweep_period(const ops::Config& config) {
  const auto shortest = std::min({config.ping_interval, config.heartbeat_timeout,
                                  config.handshake_timeout, config.resume_ttl});
  return std::clamp(shortest / 4, ops::Millis(50), ops::Millis(1000));
}

}  // namespace

// Unknown or malformed parts are ignored.
EventLoop::TestFaults EventLoop::TestFaults::from_env() {
  TestFaults faults;
  const char* text = std::getenv("ODIN_TEST_FAULTS");
  if (!text) return faults;
  std::string_view rest(text);
  while (!rest.empty()) {
    const std::string_view part = rest.substr(0, rest.find(','));
    rest.remove_prefix(std::min(rest.size(), part.size() + 1));
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    uint32_t n = 0;
    const std::string_view digits = part.substr(eq + 1);
    if (std::from_chars(digits.data(), digits.data() + digits.size(), n).ec != std::errc())
      continue;
    if (part.substr(0, eq) == "accept") faults.accept = n;
    if (part.substr(0, eq) == "sweep") faults.sweep = n;
  }
  return faults;
}

EventLoop::EventLoop(const ops::Config& config, unsigned index, LoopParts parts)
    : config_(config),
      index_(index),
      parts_(std::move(parts)),
      io_(1),
      sweep_timer_(io_),
      accept_retry_timer_(io_),
      read_buffer_(std::make_unique<char[]>(kReadBufferBytes)) {}

void EventLoop::throw_fault(uint32_t& left) {
  --left;
  throw std::runtime_error("injected test fault (ODIN_TEST_FAULTS)");
}

EventLoop::~EventLoop() {
  stop();
  join();
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
        // The next accept is armed before this one is handled: should handling it throw (the
        // run loop logs and goes on), the listener still accepts.
        accept_next();
        take_fault(test_faults_.accept);
        on_accepted(std::move(socket));
      });
}

void EventLoop::on_accepted(boost::asio::ip::tcp::socket socket) {
  boost::system::error_code ignored;
  const auto remote = socket.remote_endpoint(ignored);
  const bool loopback = !ignored && remote.address().is_loopback();
  guard::AddressLimits::Slot slot;
  const uint32_t address = ignored ? 0 : remote.address().to_v4().to_uint();
  switch (parts_.address_limits->admit(address, slot)) {
    case guard::AddressLimits::Verdict::kAdmitted:
      add_connection(std::move(socket), loopback, std::move(slot));
      break;
    case guard::AddressLimits::Verdict::kAddressFull:
      refuse_at_accept(std::move(socket), ops::RefuseReason::kAddressLimit);
      break;
    case guard::AddressLimits::Verdict::kProcessFull:
      refuse_at_accept(std::move(socket), ops::RefuseReason::kSocketLimit);
      break;
  }
}

void EventLoop::refuse_at_accept(boost::asio::ip::tcp::socket socket, ops::RefuseReason reason) {
  stats_.refused(reason);
  // No request has been read, so the answer cannot be an HTTP response the client is sure to
  // see; a plain-text client gets one anyway (best effort), a TLS client only the close.
  if (!parts_.tls_context()) {
    static constexpr std::string_view kPerAddress =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        "Content-Length: 50\r\nConnection: close\r\n\r\n"
        "{\"error\":\"too many connections from this address\"}";
    static_assert(kPerAddress.size() - kPerAddress.find("\r\n\r\n") - 4 == 50);
    static constexpr std::string_view kProcess =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nContent-Length: 32\r\nConnection: close\r\n\r\n"
        "{\"error\":\"too many connections\"}";
    static_assert(kProcess.size() - kProcess.find("\r\n\r\n") - 4 == 32);
    const std::string_view answer =
        reason == ops::RefuseReason::kSocketLimit ? kProcess : kPerAddress;
    (void)!::send(socket.native_handle(), answer.data(), answer.size(),
                  MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  boost::system::error_code ignored;
  socket.close(ignored);
}

void EventLoop::add_connection(boost::asio::ip::tcp::socket socket, bool loopback,
                               guard::AddressLimits::Slot slot) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.set_option(boost::asio::ip::tcp::no_delay(true), ec);
  if (const uint32_t send_buffer = config().socket_send_buffer) {
    socket.set_option(boost::asio::socket_base::send_buffer_size(static_cast<int>(send_buffer)),
                      ec);
  }
  std::unique_ptr<TlsStream> tls;
  if (auto context = parts_.tls_context()) {
    tls = TlsStream::accept(*context, socket.native_handle());
    if (!tls) {
      stats_.refused(ops::RefuseReason::kTlsFailed);
      return;  // out of memory: the socket closes with this scope
    }
  }
  Connection& conn = own(std::make_unique<Connection>(*this, std::move(socket), loopback,
                                                      std::move(tls), std::move(slot)));
  conn.start(parts_.make_handler(conn));
}

Connection& EventLoop::own(std::unique_ptr<Connection> conn) {
  conn->loop_index_ = connections_.size();
  connections_.push_back(std::move(conn));
  return *connections_.back();
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

Connection* EventLoop::adopt(
    DetachedSocket moving,
    std::function<std::unique_ptr<ConnectionHandler>(Connection&)> make_handler) {
  boost::asio::ip::tcp::socket socket(io_);
  boost::system::error_code ec;
  socket.assign(boost::asio::ip::tcp::v4(), moving.fd, ec);
  if (ec) {
    spdlog::warn("could not adopt a connection from another thread: {}", ec.message());
    ::close(moving.fd);
    return nullptr;
  }
  Connection& conn =
      own(std::make_unique<Connection>(*this, std::move(socket), moving.loopback,
                                       std::move(moving.tls), std::move(moving.address_slot)));
  conn.start_adopted(make_handler(conn), std::move(moving.unsent));
  return &conn;
}

void EventLoop::retire(Connection* conn) {
  retired_.push_back(conn);
  if (reap_posted_) return;
  reap_posted_ = true;
  boost::asio::post(io_, [this] { reap(); });
}

void EventLoop::reap() {
  reap_posted_ = false;
  // Each connection knows its place: swap it with the last one (which takes its place), pop.
  for (Connection* dead : retired_) {
    const size_t i = dead->loop_index_;
    assert(i < connections_.size() && connections_[i].get() == dead);
    if (i + 1 != connections_.size()) {
      connections_[i].swap(connections_.back());
      connections_[i]->loop_index_ = i;
    }
    connections_.pop_back();
  }
  retired_.clear();
}

void EventLoop::arm_sweep() {
  sweep_timer_.expires_after(sweep_period(config()));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    // Re-armed before the work: should the sweep throw (the run loop logs and goes on), the
    // timeouts, pings and session expiry still run next period.
    arm_sweep();
    sweep();
  });
}

void EventLoop::sweep() {
  take_fault(test_faults_.sweep);
  const int64_t now = core::mono_ms();
  // Index loop: a sweep may close connections, which only retires them (reaped later).
  for (size_t i = 0; i < connections_.size(); ++i)
    connections_[i]->on_sweep(now);
  if (parts_.on_sweep) parts_.on_sweep(now);
  connection_count_.store(static_cast<uint32_t>(connections_.size()), std::memory_order_relaxed);
  flush();
}

void EventLoop::begin_drain() {
  draining_ = true;
  boost::system::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
  for (size_t i = 0; i < connections_.size(); ++i) {
    Connection& conn = *connections_[i];
    if (conn.state() == Connection::State::kOpen) conn.handler().on_drain();
  }
  flush();
}

}  // namespace odin::net
