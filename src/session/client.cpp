// A WebSocket client (see client.hpp): frames, the close handshake, timeouts, the slow-consumer
// decision, replays in parts and moving between threads.
#include "session/client.hpp"

#include <cassert>
#include <utility>

#include "core/clock.hpp"
#include "net/event_loop.hpp"
#include "ops/config.hpp"
#include "session/client_thread.hpp"
#include "session/requests.hpp"
#include "session/session.hpp"
#include "spdlog/spdlog.h"

namespace odin::session {

Client::Client(ClientThread& thread, net::Connection& conn, core::CountedPlace ticket)
    : Client(thread, conn, std::move(ticket),
             ws::MessageReader(conn.loop().config().max_message_bytes)) {}

Client::Client(ClientThread& thread, net::Connection& conn, core::CountedPlace ticket,
               ws::MessageReader reader)
    : thread_(thread),
      conn_(conn),
      ticket_(std::move(ticket)),
      reader_(std::move(reader)),
      last_heard_ms_(core::mono_ms()),
      last_ping_ms_(last_heard_ms_) {}

Client::~Client() {
  if (counted_as_deflate_reader_) thread_.deflate_readers()->remove();
}

void Client::enable_deflate(uint8_t window_bits) {
  core::DeflateReaders* readers = thread_.deflate_readers();
  if (!readers || counted_as_deflate_reader_) return;
  conn_.set_deflate_window_bits(window_bits);
  reader_.accept_compressed(&thread_.inflater());
  readers->add();
  counted_as_deflate_reader_ = true;
}

bool Client::wants_input() const {
  return !migrating_ && !replay_;
}

bool Client::charge_input(size_t bytes) {
  const uint64_t byte_rate = conn_.loop().config().client_max_bytes_per_sec;
  if (byte_rate == 0 || !open()) return true;
  const core::TokenBucketPolicy policy{static_cast<double>(byte_rate),
                                       static_cast<double>(byte_rate)};
  if (input_bytes_.take_up_to(policy, core::steady_ns(), bytes) == bytes) return true;
  loop().stats().flood_closes.add();
  close(ws::close_code::kPolicy, "sending too fast");
  return false;
}

bool Client::on_inflated(size_t bytes) {
  return charge_input(bytes);
}

void Client::on_input(std::span<char> bytes) {
  last_heard_ms_ = core::mono_ms();
  if (!charge_input(bytes.size())) return;
  if (auto error = reader_.feed(bytes, *this)) {
    loop().stats().protocol_errors.add();
    close(error->close_code, error->reason);
  }
}

bool Client::on_text(std::string_view message) {
  if (!open()) return true;  // ignore data after our close frame
  if (migrating_ || replay_) {
    waiting_requests_.emplace_back(message);
    return true;
  }
  return handle_client_request(*this, *session_, message);
}

bool Client::on_ping(std::string_view payload) {
  if (!open() || migrating_) return true;
  std::string frame;
  ws::append_frame(frame, ws::Opcode::kPong, payload);
  conn_.send_raw(frame);
  return true;
}

bool Client::on_pong(std::string_view) {
  return true;
}

void Client::on_close(uint16_t code, std::string_view) {
  if (closing_) return conn_.abort();  // the answer to our close frame
  // The client started the handshake: echo its code (RFC 6455 5.5.1), then close TCP.
  std::string frame;
  ws::append_close_frame(frame, code == ws::close_code::kNoStatus ? ws::close_code::kNormal : code,
                         {});
  conn_.send_raw(frame);
  detach_session();
  end_after_close_frame();
}

void Client::end_after_close_frame() {
  closing_ = true;
  // Our side ends once the frame is out: the client sees the close frame then EOF even if it
  // never answers; we keep reading for its close frame until the deadline.
  conn_.close_after_flush(true);
}

void Client::bind_session(Session& session, bool returning_from_transit) {
  assert(session_ == nullptr && "a client has at most one session");
  session.attach(*this, conn_, returning_from_transit);
  session_ = &session;
  thread_.sessions().on_attached(session);
  thread_.on_room_for_held(session);  // `latest` messages held while it had no connection
  for (const pubsub::Subscriber::Subscription& sub : session.subscriptions()) {
    if (sub.latest) {  // a resumed session's `latest` channels skip only what is not sent yet
      conn_.limit_unsent_in_kernel(static_cast<uint32_t>(loop().config().conflate_bytes));
      break;
    }
  }
}

Session* Client::take_session() {
  Session* session = std::exchange(session_, nullptr);
  if (session) session->detach(core::mono_ms(), false);
  return session;
}

void Client::detach_session(bool in_transit) {
  Session* session = std::exchange(session_, nullptr);
  if (!session) return;
  session->detach(core::mono_ms(), in_transit);
  if (!in_transit) thread_.on_session_detached(*session);
}

void Client::close(uint16_t code, std::string_view reason) {
  if (closing_ || !open()) return;
  drop_replay();
  std::string frame;
  ws::append_close_frame(frame, code, reason);
  conn_.send_raw(frame);
  if (code == ws::close_code::kGoingAway && session_) {
    // A drain ends sessions: there is nothing left to resume them on.
    thread_.sessions().destroy(*take_session(), thread_.index());
  } else {
    detach_session();
  }
  end_after_close_frame();
}

void Client::on_closed() {
  drop_replay();
  detach_session();
  ticket_.release();
  thread_.on_websocket_closed();
}

void Client::on_flushed(net::FlushResult result) {
  if (result == net::FlushResult::kBacklogged) {
    if (open() && conn_.over_queue_limit()) slow_consumer();
    return;
  }
  if (replay_part_queued_) {
    replay_part_queued_ = false;
    post_replay_part();
  }
  if (session_ && session_->may_hold()) thread_.on_room_for_held(*session_);
}

void Client::slow_consumer() {
  ops::ThreadStats& stats = loop().stats();
  stats.slow_consumer_closes.add();
  if (conn_.tls()) {
    // Encrypted records cannot be dropped from the backlog (the client could not decrypt what
    // follows), and a close frame behind them would wait for the slow reader: end it now.
    return conn_.abort();
  }
  // Keep only the rest of a frame already partly written, so the stream stays valid, then end
  // it with 4008. The backlog's memory goes back at once.
  conn_.drop_backlog();
  spdlog::debug("slow consumer closed (backlog over {} bytes)", loop().config().client_queue_bytes);
  close(ws::close_code::kSlowConsumer, "slow consumer");
}

void Client::on_sweep(int64_t now_ms) {
  if (closing_) return;
  const ops::Config& config = loop().config();
  if (token_ && core::wall_ms() >= auth::expiry_ms(*token_, config.jwt_leeway_seconds)) {
    // The client did not send a fresh token (`auth`) in time.
    loop().stats().token_expired_closes.add();
    return close(ws::close_code::kTokenExpired, "token expired");
  }
  if (now_ms - last_heard_ms_ >= config.heartbeat_timeout.count()) {
    loop().stats().heartbeat_timeouts.add();
    return close(ws::close_code::kHeartbeatTimeout, "heartbeat timeout");
  }
  const int64_t quiet_since = std::max(last_heard_ms_, last_ping_ms_);
  if (now_ms - quiet_since >= config.ping_interval.count()) {
    last_ping_ms_ = now_ms;
    static constexpr char kPing[] = {static_cast<char>(0x89), 0};
    conn_.send_raw({kPing, 2});
  }
}

void Client::migrate(unsigned thread, MigrationPurpose purpose, std::string request,
                     const SessionId& fresh_session, std::unique_ptr<core::StreamFetch> fetch) {
  migrating_ = true;
  // From now on nobody else may resume the fresh session: the client may still come back to it.
  if (session_) session_->begin_transit();
  MigratingConnection moving;
  moving.purpose = purpose;
  moving.fetch = std::move(fetch);
  moving.request = std::move(request);
  moving.fresh_session = fresh_session;
  // Requests that followed the resume in this read are collected by on_text until we return;
  // the move happens after this handler, in a post, so they are complete.
  conn_.post(
      [this, target = thread, moving = std::make_shared<MigratingConnection>(std::move(moving))] {
        if (!open()) {
          // Closing meanwhile (drain, slow consumer, replaced): the close handshake goes on here,
          // and the session (detached by close()) stays resumable.
          migrating_ = false;
          waiting_requests_.clear();
          return conn_.resume_reading();
        }
        moving->queued = std::move(waiting_requests_);
        moving->saw_request = saw_request;
        moving->reader = std::move(reader_);
        moving->token = std::move(token_);
        moving->deflate_window_bits = conn_.deflate_window_bits();
        moving->ticket = std::move(ticket_);
        ClientThread& home = thread_;
        boost::system::error_code ec;
        moving->socket = conn_.detach(ec);  // writes what is queued first; `this` retires
        detach_session(true);
        if (ec) {
          spdlog::warn("could not hand a connection to another thread: {}", ec.message());
          home.end_transit(moving->fresh_session);
          return;
        }
        home.hand_over(target, std::move(*moving));
      });
}

void Client::hold_replay(std::unique_ptr<ReplayInProgress> replay) {
  replay_ = std::move(replay);
  continue_replay_once_written();
}

void Client::continue_replay_once_written() {
  // A part may have been written already, by a flush while it was produced.
  const net::Outbound& out = conn_.outbound();
  if (out.in_batch() || out.backlog_bytes() > 0) {
    replay_part_queued_ = true;  // on_flushed(kDone) posts the next part
    return;
  }
  post_replay_part();
}

void Client::post_replay_part() {
  // Never from inside a flush (on_flushed): the next part goes into a new batch.
  conn_.post([this] { continue_held_replay(); });
}

void Client::continue_held_replay() {
  if (!open() || !replay_) {
    replay_.reset();
    return;
  }
  // The client takes what it asked for: it is alive although we do not read from it meanwhile.
  last_heard_ms_ = core::mono_ms();
  if (!continue_replay(*this, *replay_)) return continue_replay_once_written();
  replay_.reset();
  answer_waiting_requests();
}

void Client::answer_waiting_requests() {
  size_t answered = 0;
  // One of them may be a replay again: the rest wait for it.
  while (answered < waiting_requests_.size() && !replay_ && open() && session_) {
    std::string request = std::move(waiting_requests_[answered++]);
    if (!handle_client_request(*this, *session_, request)) break;
  }
  if (!open()) {
    waiting_requests_.clear();
    return;
  }
  waiting_requests_.erase(waiting_requests_.begin(),
                          waiting_requests_.begin() + static_cast<std::ptrdiff_t>(answered));
  if (wants_input()) conn_.resume_reading();
}

void Client::drop_replay() {
  replay_.reset();
  replay_part_queued_ = false;
  waiting_requests_.clear();
}

}  // namespace odin::session
