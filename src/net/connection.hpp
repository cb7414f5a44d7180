// One client socket: HTTP/1.1 until it upgrades, then a WebSocket bound to a Session. Reads go
// into the thread's scratch buffer; the connection keeps bytes only for a partial frame, an
// unfinished HTTP request or an unsent backlog. All writes go through the thread's OutBatch.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.hpp"
#include "core/token_bucket.hpp"
#include "guard/address_limits.hpp"
#include "net/out_batch.hpp"
#include "net/tls.hpp"
#include "ws/frame.hpp"

namespace odin {

class EventLoop;
class Session;
struct SessionId;
struct HttpReader;
struct StreamFetch;
struct ReplayInProgress;
enum class MigrationPurpose : uint8_t;

class Connection final : public ws::FrameHandler {
 public:
  enum class State : uint8_t { kHttp, kOpen, kClosing, kClosed };

  // `tls` is null for a plain connection; `address_slot` counts it against its client address.
  Connection(EventLoop& loop, boost::asio::ip::tcp::socket socket, bool loopback,
             std::unique_ptr<TlsStream> tls, AddressLimits::Slot address_slot);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Continues a connection that arrived from another thread (resume migration).
  void start_migrated(ws::MessageReader reader, std::string unsent);
  // What a connection takes along when it moves to another thread.
  std::unique_ptr<TlsStream> release_tls() { return std::move(tls_); }
  AddressLimits::Slot release_address_slot() { return std::move(address_slot_); }

  int fd() { return socket_.native_handle(); }
  EventLoop& loop() { return loop_; }
  Outbound& outbound() { return out_; }
  State state() const { return state_; }
  bool is_loopback() const { return loopback_; }
  // IPv4, host order (0 when unknown).
  uint32_t client_address() const { return address_slot_.address(); }
  TlsStream* tls() { return tls_.get(); }
  // WS_AUTH=jwt: the claims of the token this connection presented (null when auth is off).
  const auth::TokenClaims* token() const { return token_.get(); }
  void set_token(std::unique_ptr<auth::TokenClaims> token) { token_ = std::move(token); }
  std::unique_ptr<auth::TokenClaims> release_token() { return std::move(token_); }
  bool accepts_data() const { return state_ == State::kOpen; }
  // Warms what the fan-out reads and writes for this connection (its state and batch links).
  void prefetch_for_fanout() const {
    __builtin_prefetch(&state_, 0);
    __builtin_prefetch(&out_.batch_slot, 1);
  }
  Session* session() { return session_; }
  int64_t opened_at_ms() const { return opened_at_ms_; }

  // For a producer of much output in one turn (replay, resume): once this connection has more
  // than a little unsent output (batch and backlog), writes the thread's batch now, so what a
  // request produces is bounded by WS_CLIENT_QUEUE_BYTES while it is produced rather than after
  // the turn. False once the connection takes no more data (the slow-consumer rule closed it):
  // the producer stops.
  bool make_room_for_output();
  // Queues bytes (a whole HTTP response or a whole frame) and schedules the flush.
  void send_raw(std::string_view bytes);
  void send_text(std::string_view json);
  // Switches to WebSocket after a 101 response was queued.
  void upgrade(Session& session);
  // The binding to a session (the invariant is stated in session/session.hpp). bind_session is
  // the one place a connection takes a session: one that has none, or one in transit when this
  // connection comes back to it from another thread. take_session unbinds the current one
  // without keeping it for a resume: the caller destroys it (a resume replaced it).
  void bind_session(Session& session, bool returning_from_transit);
  Session* take_session();
  // Starts the close handshake (server side) with `code`; the socket closes once the frame is
  // out and the client answered, or after a deadline.
  void close(uint16_t code, std::string_view reason);
  // Closes the socket now (errors, timeouts, plain HTTP "Connection: close" after the response).
  void abort();
  // Closes after the queued bytes are written (HTTP responses with Connection: close).
  void close_after_flush();
  // Hands the socket to `thread` (a resume whose session lives there); this object retires.
  // Requests that arrive after the resume in the same read travel along, in order.
  // The fresh session (still bound, or already on its way back) is in transit from here on.
  void migrate(unsigned thread, MigrationPurpose purpose, std::string request,
               const SessionId& fresh_session, std::unique_ptr<StreamFetch> fetch = nullptr);
  void queue_while_migrating(std::string request) {
    waiting_requests_.push_back(std::move(request));
  }
  bool migrating() const { return migrating_; }
  // Reads and handles whatever is waiting, then waits for more.
  void resume_reading() { on_readable(); }
  // Keeps a replay that did not fit in one part (session/requests.cpp) and continues it each
  // time what was queued has been written. Meanwhile reading stops and requests already read
  // wait; when it ends they are answered in order. Loop thread of this connection.
  void hold_replay(std::unique_ptr<ReplayInProgress> replay);

  // For an HTTP response another thread produces (POST /publish through NATS): reading stops
  // (later pipelined requests wait their turn) and the connection stays alive until
  // finish_deferred_response, which must run on this connection's loop thread.
  void begin_deferred_response();
  void finish_deferred_response(unsigned status, std::string_view body, bool keep_alive);

  // Set once the connection has made its first request (resume is only allowed as the first).
  bool saw_request = false;
  // The HTTP request being answered is a HEAD: responses carry their headers only.
  bool answering_head = false;

  // From OutBatch::flush.
  void on_flushed(FlushResult result);
  // Periodic: pings, heartbeat timeout, handshake timeout, close deadline.
  void on_sweep(int64_t now_ms);

  // ws::FrameHandler
  bool on_text(std::string_view message) override;
  bool on_ping(std::string_view payload) override;
  bool on_pong(std::string_view payload) override;
  void on_close(uint16_t code, std::string_view reason) override;

 private:
  bool wants_input() const;
  void arm_read();
  void on_readable();
  void on_readable_tls();
  // Hands received (or decrypted) bytes to the current phase; false when reading must stop.
  bool take_input(std::span<char> bytes);
  void refuse_plaintext_on_tls();
  void send_tls_output();
  bool feed_http(std::span<char> bytes);
  bool feed_ws(std::span<char> bytes);
  void arm_write();
  // HTTP phase: bytes queued for this client and not yet taken by the kernel.
  size_t http_unsent() const { return http_unflushed_ + out_.backlog_bytes(); }
  // Continues reading pipelined requests once the answers paused for have drained.
  void resume_http();
  // Whether the backlog, not counting what is left of its oldest frame (up to one largest
  // message), is over WS_CLIENT_QUEUE_BYTES.
  bool over_queue_limit() const;
  void slow_consumer();
  // Unbinds the session and keeps it for a resume (in transit: for this connection only).
  void detach_session(bool in_transit = false);
  void finish_close();
  void release_if_done();
  // The held replay's next part, once the previous one was written; then the waiting requests.
  void continue_held_replay();
  void continue_replay_once_written();
  void post_replay_part();
  void answer_waiting_requests();
  // Closing: a replay in progress and the requests behind it are moot.
  void drop_replay();

  EventLoop& loop_;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<TlsStream> tls_;
  AddressLimits::Slot address_slot_;
  std::unique_ptr<auth::TokenClaims> token_;
  std::unique_ptr<HttpReader> http_;
  ws::MessageReader reader_;
  Session* session_ = nullptr;
  Outbound out_;
  // All on mono_ms(): they measure durations (timeouts, deadlines), never calendar time.
  int64_t opened_at_ms_;
  int64_t last_heard_ms_;
  int64_t last_ping_ms_;
  int64_t close_deadline_ms_ = 0;
  // When the HTTP request being received began (0: between requests); slowloris guard.
  int64_t request_started_ms_ = 0;
  TokenBucket input_bytes_;  // WS_CLIENT_MAX_BYTES_PER_SEC, WebSocket phase
  // HTTP phase: bytes appended to this turn's batch (reset once it is flushed), and requests read.
  size_t http_unflushed_ = 0;
  uint32_t http_requests_ = 0;
  uint16_t pending_ops_ = 0;
  State state_ = State::kHttp;
  bool loopback_;
  bool reading_ = false;
  bool writing_ = false;
  bool close_when_flushed_ = false;
  bool close_frame_sent_ = false;
  bool retired_ = false;
  bool migrating_ = false;
  bool awaiting_response_ = false;
  bool http_paused_ = false;  // HTTP phase: too much unsent, pipelined requests wait
  bool tls_hello_checked_ = false;
  // Requests read while the connection is migrating or replaying, answered in order after.
  std::vector<std::string> waiting_requests_;
  std::unique_ptr<ReplayInProgress> replay_;
  bool replay_part_queued_ = false;  // continue replay_ once this connection's output is written
  size_t loop_index_ = 0;  // its place in its EventLoop's connection list, kept by the loop

  friend class EventLoop;
};

}  // namespace odin
