// One event-loop thread: its io_context, its listener (SO_REUSEPORT), the connections it owns,
// its half of the fan-out, its sessions, its output batch and its periodic sweep (pings,
// heartbeat timeouts, handshake timeouts, session expiry). Nothing here is shared with other
// threads except through posts to io() and the read-only stats.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/jwt.hpp"
#include "broker/broker.hpp"
#include "guard/address_limits.hpp"
#include "hub/fanout.hpp"
#include "net/out_batch.hpp"
#include "net/tls.hpp"
#include "ops/config.hpp"
#include "ops/metrics.hpp"
#include "session/client.hpp"
#include "session/session.hpp"
#include "ws/frame.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin {

class Gateway;
class Connection;
class ConnectionHandler;

// Makes the handler a freshly accepted connection starts with (the HTTP phase). Loop thread.
using MakeConnectionHandler = std::function<std::unique_ptr<ConnectionHandler>(Connection&)>;

class EventLoop {
 public:
  EventLoop(Gateway& gateway, unsigned index, MakeConnectionHandler make_handler);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Binds this loop's listener (SO_REUSEPORT, so every loop accepts on the same port). Returns
  // the bound port.
  uint16_t listen(const boost::asio::ip::tcp::endpoint& endpoint);
  void start_thread();
  void join();
  void stop();

  boost::asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }
  Gateway& gateway() { return gateway_; }
  const Config& config() const;
  OutBatch& out() { return out_; }
  ThreadStats& stats() { return stats_; }
  const ThreadStats& stats() const { return stats_; }
  ThreadFanout& fanout() { return fanout_; }
  SessionTable& sessions() { return sessions_; }
  simdjson::dom::parser& json_parser() { return *json_parser_; }
  std::string& json_scratch() { return json_scratch_; }
  std::span<char> read_buffer() { return {read_buffer_.get(), kReadBufferBytes}; }

  // Writes everything batched so far (one writev per touched connection).
  void flush();
  // Flush at the end of this turn of the loop, once, however many handlers append before it.
  void schedule_flush();

  SessionId new_session_id() const { return SessionId::random(index_); }
  // Sends a connection to another thread's adopt().
  void hand_over(unsigned thread, MigratingConnection moving);
  // A connection arrives from another thread.
  void adopt(MigratingConnection moving);
  // Destroys a session in transit on its owning thread (any thread may call this): the fresh
  // session of a connection that resumed an older one elsewhere.
  void discard_session_elsewhere(const SessionId& session_id);
  // A connection died on its way between threads: its fresh session, on its owning thread (any
  // thread may call this), becomes detached, resumable until WS_RESUME_TTL.
  void end_transit(const SessionId& session_id);
  // This thread's session was just detached from its connection: it is kept for a resume within
  // the detached-session budget (WS_MAX_DETACHED_SESSIONS, WS_MAX_DETACHED_PER_IP), which evicts
  // the oldest detached sessions, this one included, at the end of this turn (never under the
  // feet of the handler that detached it).
  void on_session_detached(Session& session);
  unsigned gateway_thread_count() const;
  // Accounting of open WebSocket connections (the cap is process-wide).
  void on_websocket_closed();
  // Called by a connection once nothing refers to it any more; destroyed after this handler.
  void retire(Connection* conn);

  // Graceful shutdown: stop accepting, close every client with 1001.
  void begin_drain();
  // Counts maintained for /stats (read from other threads).
  uint32_t connection_count() const { return connection_count_.load(std::memory_order_relaxed); }
  uint32_t session_count() const { return session_count_.load(std::memory_order_relaxed); }
  uint32_t detached_count() const { return detached_count_.load(std::memory_order_relaxed); }
  uint32_t channel_count() const { return channel_count_.load(std::memory_order_relaxed); }
  size_t parked_count() const { return parked_.size(); }  // loop thread

 private:
  static constexpr size_t kReadBufferBytes = 64 * 1024;
  void accept_next();
  void on_accepted(boost::asio::ip::tcp::socket socket);
  void add_connection(boost::asio::ip::tcp::socket socket, bool loopback, AddressLimits::Slot slot);
  // Adds `conn` to this loop's connections (it records its place for reap).
  Connection& own(std::unique_ptr<Connection> conn);
  // WS_MAX_CONNECTIONS_PER_IP (429) or WS_MAX_SOCKETS (503), best effort, then closed.
  void refuse_at_accept(boost::asio::ip::tcp::socket socket, RefuseReason reason);
  void sweep();
  void arm_sweep();
  void reap();
  // JetStream restores parked while the broker reads the stream back for them (hand_over).
  void park_for_fetch(EventLoop& target, std::shared_ptr<MigratingConnection> payload);
  void unpark(uint64_t id, std::shared_ptr<StreamFetch> fetched);
  void check_parked();
  void arm_parked_check();

  // Test-only fault injection: ODIN_TEST_FAULTS="accept=N,sweep=N" makes the first N accepts /
  // sweeps of each loop throw, so the tests can show a handler that throws does not end its
  // chain. Read once at construction; one compare per accept and per sweep, none per message.
  struct TestFaults {
    uint32_t accept = 0;
    uint32_t sweep = 0;
    static TestFaults from_env();
  };
  static void take_fault(uint32_t& left) {
    if (left != 0) [[unlikely]]
      throw_fault(left);
  }
  [[noreturn]] static void throw_fault(uint32_t& left);
  TestFaults test_faults_ = TestFaults::from_env();

  Gateway& gateway_;
  unsigned index_;
  MakeConnectionHandler make_handler_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  boost::asio::steady_timer sweep_timer_;
  boost::asio::steady_timer accept_retry_timer_;
  std::thread thread_;
  ThreadStats stats_;
  // Declaration order is destruction order in reverse: everything holding message references
  // (pending writes, sessions' rings) goes before the fan-out that owns their pool.
  ThreadFanout fanout_;
  OutBatch out_;
  bool flush_posted_ = false;
  SessionTable sessions_;
  std::unique_ptr<simdjson::dom::parser> json_parser_;
  std::string json_scratch_;
  std::unique_ptr<char[]> read_buffer_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> retired_;
  bool reap_posted_ = false;
  // A parked restore: the connection (its socket watched for a hang-up) and the flag that tells
  // the broker nobody waits any more.
  struct Parked {
    EventLoop* target = nullptr;
    std::shared_ptr<MigratingConnection> moving;
    std::shared_ptr<std::atomic<bool>> abandoned;
  };
  std::unordered_map<uint64_t, Parked> parked_;
  uint64_t parked_counter_ = 0;
  boost::asio::steady_timer parked_timer_;
  bool parked_check_armed_ = false;
  bool draining_ = false;
  void enforce_detached_budget();
  std::vector<uint32_t> detached_addresses_;  // since the last budget check
  bool budget_check_posted_ = false;
  std::atomic<uint32_t> connection_count_{0};
  std::atomic<uint32_t> session_count_{0};
  std::atomic<uint32_t> detached_count_{0};
  std::atomic<uint32_t> channel_count_{0};
};

}  // namespace odin
