// One event-loop thread's WebSocket side: its sessions, the JSON parser and scratch its requests
// use, and everything that moves a client between threads (resume on the session's thread,
// restores parked while the stream is read back). app/ builds one per loop and hands in what it
// needs; nothing here looks anything up.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/jwt.hpp"
#include "core/deflate_readers.hpp"
#include "core/stream.hpp"
#include "pubsub/subscription_index.hpp"
#include "session/client.hpp"
#include "session/session.hpp"
#include "ws/deflate.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin::net {
class EventLoop;
}  // namespace odin::net

namespace odin::session {

// What a ClientThread is given by app/. The callbacks may be called from any thread.
struct ClientThreadParts {
  // WS_AUTH=jwt: the verifier of upgrade and `auth` tokens (null when auth is off).
  std::function<std::shared_ptr<const auth::JwtVerifier>()> jwt_verifier;
  // Reads the stream back for a restore (a broker without a stream answers at once).
  core::StreamReader* stream_reader = nullptr;
  // WS_COMPRESSION: the count of connections reading compressed frames, which the hub reads
  // (null: compression off, nobody negotiates it).
  core::DeflateReaders* deflate_readers = nullptr;
};

// Every member runs on this thread's loop unless it says otherwise.
class ClientThread {
 public:
  ClientThread(net::EventLoop& loop, pubsub::SubscriptionIndex& index, ClientThreadParts parts);
  ~ClientThread();
  ClientThread(const ClientThread&) = delete;
  ClientThread& operator=(const ClientThread&) = delete;

  // Every thread's ClientThread, this one included, by thread index; set once before the loops
  // start.
  void set_peers(std::vector<ClientThread*> peers) { peers_ = std::move(peers); }
  unsigned thread_count() const { return static_cast<unsigned>(peers_.size()); }

  net::EventLoop& loop() { return loop_; }
  const ops::Config& config() const;
  SessionTable& sessions() { return sessions_; }
  pubsub::SubscriptionIndex& index() { return index_; }
  simdjson::dom::parser& json_parser() { return *json_parser_; }
  std::string& json_scratch() { return json_scratch_; }
  std::shared_ptr<const auth::JwtVerifier> jwt_verifier() const { return parts_.jwt_verifier(); }
  SessionId new_session_id() const;

  // Sends a client to another thread's adopt() (or parks it here while the stream is read).
  void hand_over(unsigned thread, MigratingConnection moving);
  // A client arrives from another thread.
  void adopt(MigratingConnection moving);
  // Destroys a session in transit on its owning thread (any thread may call this): the fresh
  // session of a client that resumed an older one elsewhere.
  void discard_session_elsewhere(const SessionId& session_id);
  // A client died on its way between threads: its fresh session, on its owning thread (any
  // thread may call this), becomes detached, resumable until WS_RESUME_TTL.
  void end_transit(const SessionId& session_id);
  // This thread's session was just detached from its client: it is kept for a resume within the
  // detached-session budget (WS_MAX_DETACHED_SESSIONS, WS_MAX_DETACHED_PER_IP), which evicts the
  // oldest detached sessions, this one included, at the end of this turn (never under the feet
  // of the handler that detached it).
  void on_session_detached(Session& session);
  // A WebSocket connection of this thread ended (counted; its admission ticket went with it).
  void on_websocket_closed();
  // `session`'s connection has no backlog left (or a connection came back to it): its held
  // `latest` messages go out on the next timer tick.
  void on_room_for_held(Session& session) {
    if (session.may_hold()) sessions_.wait_to_send(session);
  }
  // Periodic (the loop's sweep): session expiry and the counts below.
  void sweep(int64_t now_ms);

  // Counts maintained for /stats (read from other threads).
  uint32_t session_count() const { return session_count_.load(std::memory_order_relaxed); }
  uint32_t detached_count() const { return detached_count_.load(std::memory_order_relaxed); }
  uint32_t latest_subscription_count() const {
    return latest_subscriptions_.load(std::memory_order_relaxed);
  }
  uint32_t held_count() const { return held_messages_.load(std::memory_order_relaxed); }
  uint64_t conflated_total() const { return conflated_total_.load(std::memory_order_relaxed); }

  // permessage-deflate: this thread's inflater, and the count the hub compresses for (null when
  // WS_COMPRESSION is off).
  ws::MessageInflater& inflater();
  core::DeflateReaders* deflate_readers() { return parts_.deflate_readers; }

  // How often held `latest` messages are looked at (the granularity docs/protocol.md states).
  static constexpr std::chrono::milliseconds kHeldTick{5};

 private:
  // JetStream restores parked while the broker reads the stream back for them (hand_over).
  void park_for_fetch(ClientThread& target, std::shared_ptr<MigratingConnection> payload);
  void unpark(uint64_t id, std::shared_ptr<core::StreamFetch> fetched);
  void check_parked();
  void arm_parked_check();
  void enforce_detached_budget();
  // The held-message timer: runs while SessionTable lists sessions waiting to send.
  void arm_held_timer();
  void send_held();

  net::EventLoop& loop_;
  pubsub::SubscriptionIndex& index_;
  ClientThreadParts parts_;
  // Inflates every compressed client message of this thread, one at a time (no connection holds
  // zlib state: clients are asked for client_no_context_takeover). Made on first use.
  std::unique_ptr<ws::MessageInflater> inflater_;
  std::vector<ClientThread*> peers_;
  SessionTable sessions_;
  std::unique_ptr<simdjson::dom::parser> json_parser_;
  std::string json_scratch_;
  // A parked restore: the client's socket (watched for a hang-up) and the flag that tells the
  // broker nobody waits any more.
  struct Parked {
    ClientThread* target = nullptr;
    std::shared_ptr<MigratingConnection> moving;
    std::shared_ptr<std::atomic<bool>> abandoned;
  };
  std::unordered_map<uint64_t, Parked> parked_;
  uint64_t parked_counter_ = 0;
  boost::asio::steady_timer parked_timer_;
  bool parked_check_armed_ = false;
  std::vector<uint32_t> detached_addresses_;  // since the last budget check
  bool budget_check_posted_ = false;
  boost::asio::steady_timer held_timer_;
  std::atomic<uint32_t> session_count_{0};
  std::atomic<uint32_t> detached_count_{0};
  std::atomic<uint32_t> latest_subscriptions_{0};
  std::atomic<uint32_t> held_messages_{0};
  std::atomic<uint64_t> conflated_total_{0};
};

}  // namespace odin::session
