// A WebSocket client, as its connection's ConnectionHandler: frames in (ws::MessageReader), the
// requests they carry, pings and the heartbeat, token expiry, the flood guard, the close
// handshake, the slow-consumer decision, a replay sent in parts, and moving to another thread
// for a resume. Bound to at most one Session (session.hpp states the binding invariant).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.hpp"
#include "core/counted_place.hpp"
#include "core/token_bucket.hpp"
#include "net/connection.hpp"
#include "net/connection_handler.hpp"
#include "net/event_loop.hpp"
#include "session/session_id.hpp"
#include "ws/frame.hpp"

namespace odin::core {
struct StreamFetch;
}  // namespace odin::core

namespace odin::session {

class ClientThread;
class Session;
struct ReplayInProgress;

// Why a client moves between threads. A resume goes to the thread that owns the session; if
// that thread cannot resume it, the client goes back to its fresh session's thread with the
// request, to be restored from the stream position it carries or answered `resume_failed`
// there. A restore whose histories do not reach back far enough goes through the broker first
// (`fetch`), back to the same thread.
enum class MigrationPurpose : uint8_t { kResume, kResumeFailed, kRestore };

// A client handed from one thread to another.
struct MigratingConnection {
  MigrationPurpose purpose = MigrationPurpose::kResume;
  net::DetachedSocket socket;
  core::CountedPlace ticket;        // its place among the admitted connections
  ws::MessageReader reader{0};      // partial frame / fragmented message state
  std::string request;              // the resume request, answered by the new thread
  std::vector<std::string> queued;  // requests received after it, in order
  SessionId fresh_session;          // the session `welcome` announced (in transit meanwhile)
  bool saw_request = false;
  std::unique_ptr<auth::TokenClaims> token;  // WS_AUTH=jwt: what the client may read, until when
  std::unique_ptr<core::StreamFetch> fetch;  // kRestore: what to read from the stream, then read
  uint8_t deflate_window_bits = 0;  // permessage-deflate, as negotiated at the upgrade (0: none)
};

// Every member runs on the loop thread that owns the connection.
class Client final : public net::ConnectionHandler, private ws::FrameHandler {
 public:
  // A client that just upgraded (its 101 is queued), on `thread`'s loop, holding its place
  // among the admitted connections until it closes.
  Client(ClientThread& thread, net::Connection& conn, core::CountedPlace ticket);
  // A client that arrived from another thread, with its frame reader's state.
  Client(ClientThread& thread, net::Connection& conn, core::CountedPlace ticket,
         ws::MessageReader reader);
  ~Client() override;

  net::Connection& connection() { return conn_; }
  net::EventLoop& loop() { return conn_.loop(); }
  ClientThread& thread() { return thread_; }
  bool open() const { return conn_.state() == net::Connection::State::kOpen; }
  uint32_t client_address() const { return conn_.client_address(); }
  // WS_AUTH=jwt: the claims of the token this client presented (null when auth is off).
  const auth::TokenClaims* token() const { return token_.get(); }
  void set_token(std::unique_ptr<auth::TokenClaims> token) { token_ = std::move(token); }
  // permessage-deflate was negotiated (at the upgrade, or on the thread it came from): data
  // frames go out compressed when that gains (session::append_data_frame), compressed client
  // messages are inflated with this thread's inflater, and the hub counts this reader.
  // `window_bits` is the client's window for what the gateway sends (8..15).
  void enable_deflate(uint8_t window_bits);

  // Set once the client has made its first request (resume is only allowed as the first).
  bool saw_request = false;

  // The binding to a session (the invariant is stated in session/session.hpp). bind_session is
  // the one place a client takes a session: one that has none, or one in transit when this client
  // comes back to it from another thread. take_session unbinds the current one without keeping
  // it for a resume: the caller destroys it (a resume replaced it).
  void bind_session(Session& session, bool returning_from_transit);
  Session* take_session();
  Session* session() { return session_; }

  // Queues one text frame (a reply).
  void send_text(std::string_view json) { conn_.send_text(json); }
  // See Connection::make_room_for_output.
  bool make_room_for_output() { return conn_.make_room_for_output(); }
  // Starts the close handshake with `code`; the socket closes once the frame is out and the
  // client answered, or after a deadline.
  void close(uint16_t code, std::string_view reason);

  // Hands the socket to `thread` (a resume whose session lives there); this client retires.
  // Requests that arrive after the resume in the same read travel along, in order. The fresh
  // session (still bound, or already on its way back) is in transit from here on.
  void migrate(unsigned thread, MigrationPurpose purpose, std::string request,
               const SessionId& fresh_session, std::unique_ptr<core::StreamFetch> fetch = nullptr);
  void queue_while_migrating(std::string request) {
    waiting_requests_.push_back(std::move(request));
  }
  bool migrating() const { return migrating_; }
  // Keeps a replay that did not fit in one part (session/requests.cpp) and continues it each
  // time what was queued has been written. Meanwhile reading stops and requests already read
  // wait; when it ends they are answered in order.
  void hold_replay(std::unique_ptr<ReplayInProgress> replay);

  // ConnectionHandler
  void on_input(std::span<char> bytes) override;
  bool wants_input() const override;
  void on_flushed(net::FlushResult result) override;
  void on_sweep(int64_t now_ms) override;
  void on_closed() override;
  void on_drain() override { close(ws::close_code::kGoingAway, "server shutting down"); }

 private:
  // ws::FrameHandler
  bool on_inflated(size_t bytes) override;
  // WS_CLIENT_MAX_BYTES_PER_SEC: spends `bytes` (read, or inflated); false when that closed the
  // connection with 1008.
  bool charge_input(size_t bytes);
  bool on_text(std::string_view message) override;
  bool on_ping(std::string_view payload) override;
  bool on_pong(std::string_view payload) override;
  void on_close(uint16_t code, std::string_view reason) override;

  void slow_consumer();
  // Unbinds the session and keeps it for a resume (in transit: for this client only).
  void detach_session(bool in_transit = false);
  // The held replay's next part, once the previous one was written; then the waiting requests.
  void continue_held_replay();
  void continue_replay_once_written();
  void post_replay_part();
  void answer_waiting_requests();
  // Closing: a replay in progress and the requests behind it are moot.
  void drop_replay();
  // Our close frame (or the echo of the client's) is queued: the connection ends once it is out.
  void end_after_close_frame();

  ClientThread& thread_;
  net::Connection& conn_;
  core::CountedPlace ticket_;
  ws::MessageReader reader_;
  std::unique_ptr<auth::TokenClaims> token_;
  Session* session_ = nullptr;
  // On mono_ms(): they measure durations, never calendar time.
  int64_t last_heard_ms_;
  int64_t last_ping_ms_;
  core::TokenBucket input_bytes_;  // WS_CLIENT_MAX_BYTES_PER_SEC
  bool migrating_ = false;
  bool counted_as_deflate_reader_ = false;
  bool closing_ = false;  // our close frame (or the echo of the client's) is queued
  // Requests read while the client is migrating or replaying, answered in order after.
  std::vector<std::string> waiting_requests_;
  std::unique_ptr<ReplayInProgress> replay_;
  bool replay_part_queued_ = false;  // continue replay_ once this connection's output is written
};

}  // namespace odin::session
