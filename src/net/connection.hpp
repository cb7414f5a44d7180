// One client socket, transport only: reading into the thread's scratch buffer and handing the
// bytes to its ConnectionHandler (the HTTP phase, then a WebSocket client), writing through the
// thread's OutBatch, closing, and leaving for another thread. What the bytes mean is the
// handler's business; the connection keeps bytes only for an unsent backlog.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "guard/address_limits.hpp"
#include "net/connection_handler.hpp"
#include "net/out_batch.hpp"
#include "net/tls.hpp"

namespace odin::net {

class EventLoop;

// A socket on its way to another thread, with what travels along with it.
struct DetachedSocket {
  int fd = -1;
  bool loopback = false;
  std::string unsent;              // bytes the old thread could not write yet (whole frames)
  std::unique_ptr<TlsStream> tls;  // a TLS connection's state, buffered records included
  guard::AddressLimits::Slot address_slot;  // its place under WS_MAX_CONNECTIONS_PER_IP
};

// Every member runs on the loop thread that owns the connection.
class Connection final {
 public:
  // kOpen: reading and writing. kClosing: only what is queued still goes out (then the socket
  // closes, or our side ends and we read until the peer's EOF), until a deadline. kClosed: the
  // socket is gone; the object retires once nothing refers to it.
  enum class State : uint8_t { kOpen, kClosing, kClosed };

  // `tls` is null for a plain connection; `address_slot` counts it against its client address.
  Connection(EventLoop& loop, boost::asio::ip::tcp::socket socket, bool loopback,
             std::unique_ptr<TlsStream> tls, guard::AddressLimits::Slot address_slot);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading into `handler` (data may have arrived before the socket joined the reactor).
  void start(std::unique_ptr<ConnectionHandler> handler);
  // A connection that arrived from another thread: `unsent` goes out first. The caller reads on
  // with resume_reading() once the handler is ready for input.
  void start_adopted(std::unique_ptr<ConnectionHandler> handler, std::string unsent);
  // Switches to another handler (the upgrade). The old one lives until the end of this turn, so
  // it may call this from inside its own on_input.
  void set_handler(std::unique_ptr<ConnectionHandler> handler);
  ConnectionHandler& handler() { return *handler_; }

  int fd() { return socket_.native_handle(); }
  EventLoop& loop() { return loop_; }
  Outbound& outbound() { return out_; }
  const Outbound& outbound() const { return out_; }
  State state() const { return state_; }
  bool is_loopback() const { return loopback_; }
  // IPv4, host order (0 when unknown).
  uint32_t client_address() const { return address_slot_.address(); }
  TlsStream* tls() { return tls_.get(); }
  bool accepts_data() const { return state_ == State::kOpen; }
  // Warms what the fan-out reads and writes for this connection (its state and batch links).
  void prefetch_for_fanout() const {
    __builtin_prefetch(&state_, 0);
    __builtin_prefetch(&out_.batch_slot, 1);
  }
  int64_t opened_at_ms() const { return opened_at_ms_; }
  // permessage-deflate (docs/protocol.md): the window, in bits, of the client's inflater for
  // what the gateway sends (8..15) when the client negotiated compression, else 0. The WebSocket
  // handler sets it at the upgrade and when the connection arrives from another thread; the
  // fan-out reads it per data frame, next to state_.
  uint8_t deflate_window_bits() const { return deflate_window_bits_; }
  void set_deflate_window_bits(uint8_t bits) { deflate_window_bits_ = bits; }

  // For a producer of much output in one turn (replay, resume): once this connection has more
  // than a little unsent output (batch and backlog), writes the thread's batch now, so what a
  // request produces is bounded by WS_CLIENT_QUEUE_BYTES while it is produced rather than after
  // the turn. False once the connection takes no more data (its handler closed it): the producer
  // stops.
  bool make_room_for_output();
  // Keeps at most about `bytes` not yet sent in the kernel (TCP_NOTSENT_LOWAT): the rest waits
  // in this connection's backlog, where the handler can see it and drop what is superseded
  // (latest-value subscriptions). Once per connection; 0 leaves the kernel's default.
  void limit_unsent_in_kernel(uint32_t bytes);
  // Queues bytes (a whole HTTP response or a whole frame) and schedules the flush.
  void send_raw(std::string_view bytes);
  // Queues one text frame.
  void send_text(std::string_view payload);
  // Closes the socket now (errors, timeouts, after an HTTP response with Connection: close).
  void abort();
  // Closes once what is queued is written: the socket at once (`half_close` false), or our side
  // only (TLS close_notify, SHUT_WR), reading on until the peer's EOF (a WebSocket close
  // handshake). Either way within kCloseDeadlineMs.
  void close_after_flush(bool half_close);
  // Whether the backlog, not counting what is left of its oldest frame (up to one largest
  // message), is over WS_CLIENT_QUEUE_BYTES: what the slow-consumer rules act on.
  bool over_queue_limit() const;
  // Slow consumer: drops the backlog but the rest of a frame already partly written, so the
  // stream stays valid for what is queued after it.
  void drop_backlog();
  // Runs `work` in a later turn of this thread unless the connection closed meanwhile; the
  // connection lives until then. For rare events (a move, a replay part), not per message.
  void post(std::function<void()> work);
  // Keeps the connection alive while an answer another thread produces is pending; unhold()
  // on this thread when it arrived (then check state(): it may have closed meanwhile).
  void hold() { ++pending_ops_; }
  void unhold();
  // Reads and hands over whatever is waiting, then waits for more.
  void resume_reading() { on_readable(); }
  // Hands the socket, its TLS state, address slot and unsent bytes over for another thread,
  // after writing what this turn queued. The connection is closed from here on (its handler is
  // not told: it moves too) and retires. `error` is set when the socket could not be released.
  DetachedSocket detach(boost::system::error_code& error);

  // From OutBatch::flush and the backlog writer.
  void on_flushed(FlushResult result);
  // Periodic, from the loop's sweep: the close deadline, then the handler's timeouts.
  void on_sweep(int64_t now_ms);

  // How long a close may take once started (our close frame or the last response out, the
  // peer's answer in).
  static constexpr int64_t kCloseDeadlineMs = 5000;

 private:
  bool wants_input() const;
  void arm_read();
  void on_readable();
  void on_readable_tls();
  void refuse_plaintext_on_tls();
  void send_tls_output();
  void arm_write();
  void release_if_done();

  EventLoop& loop_;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<TlsStream> tls_;
  guard::AddressLimits::Slot address_slot_;
  std::unique_ptr<ConnectionHandler> handler_;
  std::unique_ptr<ConnectionHandler> previous_handler_;  // until the end of the turn it switched
  Outbound out_;
  int64_t opened_at_ms_;           // mono_ms()
  int64_t close_deadline_ms_ = 0;  // mono_ms()
  uint16_t pending_ops_ = 0;
  State state_ = State::kOpen;
  uint8_t deflate_window_bits_ = 0;
  bool loopback_;
  bool reading_ = false;
  bool writing_ = false;
  bool close_when_flushed_ = false;
  bool half_close_ = false;  // with close_when_flushed_: end our side and read until EOF
  bool retired_ = false;
  bool tls_hello_checked_ = false;
  bool unsent_limited_ = false;
  size_t loop_index_ = 0;  // its place in its EventLoop's connection list, kept by the loop

  friend class EventLoop;
};

}  // namespace odin::net
