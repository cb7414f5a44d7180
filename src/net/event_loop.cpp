// One event-loop thread (see event_loop.hpp).
#include "net/event_loop.hpp"
#include "core/clock.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <simdjson.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string_view>

#include "app/gateway.hpp"
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

// How soon a client that hangs up while its restore waits for the stream gives back its socket.
constexpr auto kParkedCheckPeriod = std::chrono::milliseconds(100);
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

EventLoop::EventLoop(Gateway& gateway, unsigned index, MakeConnectionHandler make_handler)
    : gateway_(gateway),
      index_(index),
      make_handler_(std::move(make_handler)),
      io_(1),
      sweep_timer_(io_),
      accept_retry_timer_(io_),
      fanout_(*this),
      json_parser_(std::make_unique<simdjson::dom::parser>()),
      read_buffer_(std::make_unique<char[]>(kReadBufferBytes)),
      parked_timer_(io_) {}

void EventLoop::throw_fault(uint32_t& left) {
  --left;
  throw std::runtime_error("injected test fault (ODIN_TEST_FAULTS)");
}

EventLoop::~EventLoop() {
  stop();
  join();
  for (auto& [id, parked] : parked_) {
    if (parked.moving->socket.fd >= 0) ::close(parked.moving->socket.fd);
  }
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
  AddressLimits::Slot slot;
  const uint32_t address = ignored ? 0 : remote.address().to_v4().to_uint();
  switch (gateway_.address_limits().admit(address, slot)) {
    case AddressLimits::Verdict::kAdmitted:
      add_connection(std::move(socket), loopback, std::move(slot));
      break;
    case AddressLimits::Verdict::kAddressFull:
      refuse_at_accept(std::move(socket), RefuseReason::kAddressLimit);
      break;
    case AddressLimits::Verdict::kProcessFull:
      refuse_at_accept(std::move(socket), RefuseReason::kSocketLimit);
      break;
  }
}

void EventLoop::refuse_at_accept(boost::asio::ip::tcp::socket socket, RefuseReason reason) {
  stats_.refused(reason);
  // No request has been read, so the answer cannot be an HTTP response the client is sure to
  // see; a plain-text client gets one anyway (best effort), a TLS client only the close.
  if (!gateway_.tls_context()) {
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
    const std::string_view answer = reason == RefuseReason::kSocketLimit ? kProcess : kPerAddress;
    (void)!::send(socket.native_handle(), answer.data(), answer.size(),
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
  if (const uint32_t send_buffer = config().socket_send_buffer) {
    socket.set_option(boost::asio::socket_base::send_buffer_size(static_cast<int>(send_buffer)),
                      ec);
  }
  std::unique_ptr<TlsStream> tls;
  if (auto context = gateway_.tls_context()) {
    tls = TlsStream::accept(*context, socket.native_handle());
    if (!tls) {
      stats_.refused(RefuseReason::kTlsFailed);
      return;  // out of memory: the socket closes with this scope
    }
  }
  Connection& conn = own(std::make_unique<Connection>(*this, std::move(socket), loopback,
                                                      std::move(tls), std::move(slot)));
  conn.start(make_handler_(conn));
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

void EventLoop::hand_over(unsigned thread, MigratingConnection moving) {
  EventLoop& target = gateway_.loop(thread);
  // The move-only payload travels in a shared_ptr because asio handlers must be copyable here.
  auto payload = std::make_shared<MigratingConnection>(std::move(moving));
  // A restore that needs the stream waits here for the broker to read it, when there is room;
  // otherwise it goes on at once with nothing read (incomplete: answered resume_failed).
  if (payload->fetch && gateway_.broker().reserve_stream_read(config().max_stream_reads)) {
    return park_for_fetch(target, std::move(payload));
  }
  boost::asio::post(target.io(), [&target, payload] { target.adopt(std::move(*payload)); });
}

// Loop thread. The connection waits without a Connection: only its socket is watched (for a
// hang-up, every kParkedCheckPeriod), so its wait costs no CPU and a client that leaves gives back
// its socket and its connection slot at once, and the broker skips or stops its read.
void EventLoop::park_for_fetch(EventLoop& target, std::shared_ptr<MigratingConnection> payload) {
  const uint64_t id = ++parked_counter_;
  auto abandoned = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<StreamFetch> fetch = std::move(payload->fetch);
  fetch->abandoned = abandoned;
  parked_.emplace(id, Parked{&target, std::move(payload), std::move(abandoned)});
  arm_parked_check();
  // The callback runs once, on the broker's reader thread (or here, when it cannot read).
  gateway_.broker().fetch(std::move(fetch), config().replay_size,
                          [this, id](std::unique_ptr<StreamFetch> done) {
                            std::shared_ptr<StreamFetch> fetched(std::move(done));
                            boost::asio::post(io_, [this, id, fetched] { unpark(id, fetched); });
                          });
}

// Loop thread: the read is over; the connection goes on (unless it hung up meanwhile).
void EventLoop::unpark(uint64_t id, std::shared_ptr<StreamFetch> fetched) {
  gateway_.broker().release_stream_read();
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  EventLoop& target = *it->second.target;
  std::shared_ptr<MigratingConnection> payload = std::move(it->second.moving);
  parked_.erase(it);
  payload->fetch = std::make_unique<StreamFetch>(std::move(*fetched));
  if (&target == this) return adopt(std::move(*payload));
  boost::asio::post(target.io(), [&target, payload] { target.adopt(std::move(*payload)); });
}

void EventLoop::arm_parked_check() {
  if (parked_check_armed_ || parked_.empty()) return;
  parked_check_armed_ = true;
  parked_timer_.expires_after(kParkedCheckPeriod);
  parked_timer_.async_wait([this](const boost::system::error_code& ec) {
    parked_check_armed_ = false;
    if (ec) return;
    check_parked();
    arm_parked_check();
  });
}

// Loop thread: closes the parked connections whose client hung up (POLLRDHUP sees the FIN even
// behind unread requests).
void EventLoop::check_parked() {
  std::vector<pollfd> fds;
  std::vector<uint64_t> ids;
  fds.reserve(parked_.size());
  ids.reserve(parked_.size());
  for (const auto& [id, parked] : parked_) {
    fds.push_back(pollfd{parked.moving->socket.fd, POLLRDHUP, 0});
    ids.push_back(id);
  }
  if (::poll(fds.data(), fds.size(), 0) <= 0) return;
  for (size_t i = 0; i < fds.size(); ++i) {
    if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) == 0) continue;
    auto it = parked_.find(ids[i]);
    it->second.abandoned->store(true, std::memory_order_relaxed);
    ::close(it->second.moving->socket.fd);
    end_transit(it->second.moving->fresh_session);  // resumable again, until WS_RESUME_TTL
    parked_.erase(it);  // its TLS state and its place under the per-address cap go with it
    gateway_.broker().count_abandoned_stream_read();
    on_websocket_closed();
  }
}

void EventLoop::adopt(MigratingConnection moving) {
  boost::asio::ip::tcp::socket socket(io_);
  boost::system::error_code ec;
  socket.assign(boost::asio::ip::tcp::v4(), moving.socket.fd, ec);
  if (ec) {
    spdlog::warn("could not adopt a connection from another thread: {}", ec.message());
    ::close(moving.socket.fd);
    gateway_.release_connection();
    end_transit(moving.fresh_session);
    return;
  }
  Connection& conn = own(std::make_unique<Connection>(*this, std::move(socket),
                                                      moving.socket.loopback,
                                                      std::move(moving.socket.tls),
                                                      std::move(moving.socket.address_slot)));
  auto owned = std::make_unique<Client>(conn, std::move(moving.reader));
  Client& client = *owned;
  client.saw_request = moving.saw_request;
  client.set_token(std::move(moving.token));
  conn.start_adopted(std::move(owned), std::move(moving.socket.unsent));
  continue_migrated(client, moving);
  // It left its thread before this one began draining (begin_drain did not see it): it is
  // answered as usual, then told to go like everyone else.
  if (draining_ && !client.migrating() && client.open()) client.on_drain();
  if (!client.migrating() && conn.state() != Connection::State::kClosed) conn.resume_reading();
}

void EventLoop::discard_session_elsewhere(const SessionId& session_id) {
  const unsigned thread = session_id.thread();
  if (thread >= gateway_.thread_count()) return;
  EventLoop& owner = gateway_.loop(thread);
  boost::asio::post(owner.io(), [&owner, session_id] {
    Session* s = owner.sessions_.find(session_id);
    if (s && s->in_transit()) owner.sessions_.destroy(*s, owner.fanout_.index());
  });
}

void EventLoop::end_transit(const SessionId& session_id) {
  const unsigned thread = session_id.thread();
  if (thread >= gateway_.thread_count()) return;
  EventLoop& owner = gateway_.loop(thread);
  boost::asio::post(owner.io(), [&owner, session_id] {
    Session* s = owner.sessions_.find(session_id);
    if (!s || !s->in_transit()) return;
    s->end_transit(mono_ms());
    owner.on_session_detached(*s);
  });
}

void EventLoop::on_session_detached(Session& session) {
  sessions_.on_detached(session);
  detached_addresses_.push_back(session.client_address);
  if (budget_check_posted_) return;
  budget_check_posted_ = true;
  boost::asio::post(io_, [this] { enforce_detached_budget(); });
}

void EventLoop::enforce_detached_budget() {
  budget_check_posted_ = false;
  const Config& config = this->config();
  const size_t threads = gateway_.thread_count();
  // Both budgets are process-wide, split evenly over the threads (each thread keeps its own).
  const size_t per_ip =
      config.max_detached_per_ip != 0 ? config.max_detached_per_ip : config.max_connections_per_ip;
  const size_t per_thread = (config.max_detached_sessions + threads - 1) / threads;
  const size_t per_address = (per_ip + threads - 1) / threads;
  size_t evicted = 0;
  for (uint32_t address : detached_addresses_)
    evicted += sessions_.evict_over_budget(address, per_thread, per_address, fanout_.index());
  detached_addresses_.clear();
  if (evicted > 0) stats_.detached_evicted.add(evicted);
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
  const int64_t now = mono_ms();
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
    if (conn.state() == Connection::State::kOpen) conn.handler().on_drain();
  }
  flush();
}

}  // namespace odin
