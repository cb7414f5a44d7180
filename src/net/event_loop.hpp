// One event-loop thread, transport only: its io_context, its listener (SO_REUSEPORT), the
// connections it owns, its output batch, its message references and its periodic sweep. What
// the connections' bytes mean, and what else the thread keeps (sessions, fan-out), belongs to the
// layers above, which app/ builds around it; the loop calls them through the handlers it is given.
// Nothing here is shared with other threads except through posts to io() and the read-only
// counts.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "core/message.hpp"
#include "guard/address_limits.hpp"
#include "net/out_batch.hpp"
#include "net/tls.hpp"
#include "ops/config.hpp"
#include "ops/metrics.hpp"

namespace odin::net {

class Connection;
class ConnectionHandler;
struct DetachedSocket;

// What the loop is given by whoever builds it (app/): every callback runs on the loop thread.
struct LoopParts {
  // The handler a freshly accepted connection starts with (the HTTP phase).
  std::function<std::unique_ptr<ConnectionHandler>(Connection&)> make_handler;
  // The TLS context new connections use (null: plain); any thread may reload it meanwhile.
  std::function<std::shared_ptr<const TlsContext>()> tls_context;
  // Per-address and process-wide socket caps, shared by all loops.
  guard::AddressLimits* address_limits = nullptr;
  // After each sweep of the connections (timeouts): the layers above sweep their own state.
  std::function<void(int64_t now_ms)> on_sweep;
};

class EventLoop {
 public:
  EventLoop(const ops::Config& config, unsigned index, LoopParts parts);
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
  const ops::Config& config() const { return config_; }
  OutBatch& out() { return out_; }
  ops::ThreadStats& stats() { return stats_; }
  const ops::ThreadStats& stats() const { return stats_; }
  // This thread's references to published messages (rings, histories and pending writes hold
  // them): it outlives everything on the thread that holds one.
  core::LocalMessagePool& pool() { return pool_; }
  std::span<char> read_buffer() { return {read_buffer_.get(), kReadBufferBytes}; }

  // Writes everything batched so far (one writev per touched connection).
  void flush();
  // Flush at the end of this turn of the loop, once, however many handlers append before it.
  void schedule_flush();

  // A socket that arrived from another thread: owned here from now on, started with `handler`
  // (see Connection::start_adopted). Null, with the socket closed, when it cannot be taken.
  Connection* adopt(DetachedSocket socket,
                    std::function<std::unique_ptr<ConnectionHandler>(Connection&)> make_handler);
  // Called by a connection once nothing refers to it any more; destroyed after this handler.
  void retire(Connection* conn);

  // Graceful shutdown: stop accepting, end every connection's conversation (on_drain).
  void begin_drain();
  bool draining() const { return draining_; }
  // Open connections, for /stats (read from other threads).
  uint32_t connection_count() const { return connection_count_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kReadBufferBytes = 64 * 1024;
  void accept_next();
  void on_accepted(boost::asio::ip::tcp::socket socket);
  void add_connection(boost::asio::ip::tcp::socket socket, bool loopback,
                      guard::AddressLimits::Slot slot);
  // Adds `conn` to this loop's connections (it records its place for reap).
  Connection& own(std::unique_ptr<Connection> conn);
  // WS_MAX_CONNECTIONS_PER_IP (429) or WS_MAX_SOCKETS (503), best effort, then closed.
  void refuse_at_accept(boost::asio::ip::tcp::socket socket, ops::RefuseReason reason);
  void sweep();
  void arm_sweep();
  void reap();

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

  const ops::Config& config_;
  unsigned index_;
  LoopParts parts_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  boost::asio::steady_timer sweep_timer_;
  boost::asio::steady_timer accept_retry_timer_;
  std::thread thread_;
  ops::ThreadStats stats_;
  // Declaration order is destruction order in reverse: everything holding message references
  // (pending writes, connections' replays) goes before the pool.
  core::LocalMessagePool pool_;
  OutBatch out_;
  bool flush_posted_ = false;
  std::unique_ptr<char[]> read_buffer_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> retired_;
  bool reap_posted_ = false;
  bool draining_ = false;
  std::atomic<uint32_t> connection_count_{0};
};

}  // namespace odin::net
