// One client session: its seq numbering, replay ring, subscriptions and request budget. A session
// outlives its connection by WS_RESUME_TTL so a client can resume. Owned by one event-loop thread.
// Session::deliver is the hot path's second file: after hub/fanout.cpp, before
// net/out_batch.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/envelope.hpp"
#include "core/message.hpp"
#include "core/replay_ring.hpp"
#include "core/token_bucket.hpp"
#include "net/connection.hpp"
#include "net/out_batch.hpp"
#include "pubsub/subscription_index.hpp"
#include "session/session_id.hpp"

namespace odin::session {

class Client;

// A data frame to `conn`: the frame header and `{"seq":N,` (and `"conflated":K,` for a `latest`
// subscription's frame that skipped K messages; written here, ~20 bytes) in front of the
// message's shared envelope tail (referenced, not copied), or, for a connection that negotiated
// permessage-deflate, the same keys as a DEFLATE stored block in front of the shared compressed
// tail. Session::deliver and the re-sends of replay and resume write every data frame with this.
void append_compressed_data_frame(net::OutBatch& out, net::Connection& conn, uint64_t seq,
                                  const core::MessageRef& message, uint32_t conflated);
// Whether `conn` gets `message` compressed: it negotiated permessage-deflate, the message was
// compressed (ws::MessageDeflater::compress found it worth it), and every back-reference fits
// the client's window (each lies within the message's own tail).
inline bool sends_compressed(const net::Connection& conn, const core::Message& message) {
  const uint8_t window_bits = conn.deflate_window_bits();
  return window_bits != 0 && !message.deflated.empty() &&
         (window_bits >= 15 || message.tail.size() <= (size_t{1} << window_bits));
}

inline void append_data_frame(net::OutBatch& out, net::Connection& conn, uint64_t seq,
                              const core::MessageRef& message, uint32_t conflated = 0) {
  if (sends_compressed(conn, *message)) [[unlikely]] {
    return append_compressed_data_frame(out, conn, seq, message, conflated);
  }
  char prefix[core::kMaxDataPrefixBytes];
  const size_t size = core::encode_data_prefix(prefix, seq, conflated, message->tail.size());
  out.append_shared(conn, {prefix, size}, message, message->tail);
}

// Who opened a session, fixed at its creation.
struct SessionOwner {
  // The client's address (IPv4, host order; 0 unknown), for the per-address detached budget.
  uint32_t client_address = 0;
  // WS_AUTH=jwt: the `sub` of the token that opened the session; only a token with the same
  // subject may resume it.
  std::string subject;
};

// What the request budget says about one more request.
enum class RequestAdmission {
  kAdmitted,
  kRefused,          // over WS_CLIENT_RATE / WS_CLIENT_BURST: answer `rate_limited`
  kRefusedTooOften,  // refused `strikes` times since the budget was last full: close
};

// What became of a message offered to a `latest` subscription (Session::offer_latest).
enum class LatestOffer : uint8_t {
  kSent,
  kHeldForRate,        // held until the subscription's next slot: list the session on the timer
  kHeldForConnection,  // held until the backlog drains or a connection comes back
};

// Its channels are its pubsub::Subscriber side: SubscriptionIndex::subscribe / unsubscribe
// change them, together with the channel's side.
class Session : public pubsub::Subscriber {
 public:
  Session(SessionId id, uint32_t replay_size, SessionOwner owner = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const SessionId& id() const { return id_; }
  std::string id_text() const { return id_.text(); }
  uint32_t client_address() const { return owner_.client_address; }
  const std::string& subject() const { return owner_.subject; }

  // After a restore (docs/protocol.md, resume on any instance): marks the channels subscribed so
  // far as sent through `pos` on the instance the client came from.
  void skip_restored_through(uint64_t pos);
  // Whether `pos` on `channel` was already sent to the client by another instance. Cheap when
  // no skip is active (the fan-out asks for every recipient).
  bool already_sent(const pubsub::ChannelSubscribers* channel, uint64_t pos) const {
    return pos <= skip_through_pos_ && pos != 0 && already_sent_slow(channel, pos);
  }
  uint64_t skip_through_pos() const { return skip_through_pos_; }
  // The stream was made anew (positions start over): nothing is skipped any more.
  void forget_restored_skip() { skip_restored_through(0); }

  // The binding to a connection. Invariant: a session has at most one connection and a
  // connection at most one session; both sides are set and cleared only by
  // Client::bind_session / take_session / detach_session. A session is in transit while its
  // connection is being handed to another thread (resume, restore): nobody else may resume it then,
  // and it does not expire, until the connection comes back to it, or resumed another session (this
  // one is then discarded), or died on the way (end_transit).
  net::Connection* connection() const { return connection_; }  // the fan-out writes to it
  Client* client() const { return client_; }
  bool in_transit() const { return in_transit_; }
  bool detached() const { return connection_ == nullptr && !in_transit_; }
  int64_t detached_at_ms() const { return detached_at_ms_; }
  void begin_transit() { in_transit_ = true; }
  void end_transit(int64_t now_ms);

  // The one place a data frame gets a seq (the fan-out, a snapshot, a restore): numbers
  // `message` for this session, keeps it in the ring for replay and resume, and queues its frame
  // when the connection takes data. True when a frame was queued. Inline: the fan-out calls it
  // once per recipient.
  // `conflated`: what a `latest` subscription skipped before this message (0 for `all`); it is
  // kept for the frame's re-sends.
  bool deliver(const core::MessageRef& message, net::OutBatch& out, uint32_t conflated = 0) {
    const uint64_t seq = ++seq_;
    ring_.push(seq, message);
    if (conflated != 0 || conflated_by_slot_) [[unlikely]]
      remember_conflated(seq, conflated);
    if (connection_ == nullptr || !connection_->accepts_data()) return false;
    append_data_frame(out, *connection_, seq, message, conflated);
    return true;
  }
  // The `conflated` count frame `seq` (still in the ring) went out with.
  uint32_t conflated_of(uint64_t seq) const;

  // `latest` subscriptions (docs/protocol.md). The fan-out offers the newest message of the
  // channel in its turn, after `skipped_before` older ones of the turn this session was not sent:
  // it goes out now when the connection takes data, has no backlog and the subscription's rate
  // allows, else it replaces the slot's held message.
  LatestOffer offer_latest(pubsub::SubscriptionIndex& index, pubsub::LatestSlot& slot,
                           const core::MessageRef& message, uint32_t skipped_before, int64_t now_ns,
                           net::OutBatch& out);
  // How many of `positions` (messages of `channel`) this session was not already sent by
  // another instance (already_sent).
  uint32_t count_unsent(const pubsub::ChannelSubscribers* channel,
                        std::span<const uint64_t> positions) const {
    if (skip_through_pos_ == 0 || positions.empty() || positions.front() > skip_through_pos_)
        [[likely]]
      return static_cast<uint32_t>(positions.size());
    return count_unsent_slow(channel, positions);
  }
  // Sends the held messages that may go now (same rules); true while one still waits for its
  // subscription's rate only, so the caller's timer should come back. Sent frames are counted
  // in `sent`.
  bool send_held(pubsub::SubscriptionIndex& index, int64_t now_ns, net::OutBatch& out,
                 uint64_t& sent);
  // Sends the held message of `channel` now, whatever the rate (its subscription becomes `all`).
  void release_held(pubsub::SubscriptionIndex& index, std::string_view channel, net::OutBatch& out);
  // A restore's newest message of a `latest` channel, after `skipped` older ones it leaves out;
  // the subscription's rate counts from it.
  bool deliver_newest_of(pubsub::SubscriptionIndex& index, const core::MessageRef& message,
                         uint32_t skipped, net::OutBatch& out);
  // A `snapshot`'s message (its channel's newest): at once, whatever the rate. For a `latest`
  // subscription it replaces the held message and restarts the rate from now.
  bool deliver_snapshot(pubsub::SubscriptionIndex& index, const core::MessageRef& message,
                        int64_t now_ns, net::OutBatch& out);
  // Whether a message may be held (false: certainly none is).
  bool may_hold() const { return may_hold_; }
  // Warms what deliver() touches, a few recipients ahead (its ring slot, its connection).
  void prefetch_for_delivery() const {
    ring_.prefetch_push();
    if (connection_) connection_->prefetch_for_fanout();
  }
  uint64_t seq() const { return seq_; }  // the last seq assigned
  const core::ReplayRing<core::MessageRef>& ring() const { return ring_; }
  // A session restored from another instance numbers on from the client's last seq there.
  void continue_numbering_after(uint64_t last_seq) { seq_ = last_seq; }

  // Spends one request of the budget, which the session keeps across reconnects (a client does
  // not get a fresh budget by hanging up).
  RequestAdmission take_request(const core::TokenBucketPolicy& policy, int64_t now_ns,
                                uint32_t strikes);

 private:
  friend class Client;  // the binding's only writer
  void attach(Client& client, net::Connection& connection, bool returning_from_transit);
  void detach(int64_t now_ms, bool in_transit);
  bool already_sent_slow(const pubsub::ChannelSubscribers* channel, uint64_t pos) const;
  void remember_conflated(uint64_t seq, uint32_t conflated);
  uint32_t count_unsent_slow(const pubsub::ChannelSubscribers* channel,
                             std::span<const uint64_t> positions) const;
  // Whether a `latest` message would wait behind other frames: the connection has a backlog,
  // i.e. the kernel refused more, which it does past WS_CONFLATE_BYTES unsent on a connection
  // with a `latest` subscription (Connection::limit_unsent_in_kernel). Holding it then costs
  // one slot, and a newer message replaces it instead of queueing behind it.
  bool congested() const { return connection_->outbound().backlog_bytes() != 0; }
  // A `latest` message may go out now, rate aside: a connection that takes data, no backlog.
  bool latest_can_go_now() const {
    return connection_ != nullptr && connection_->accepts_data() && !congested();
  }
  // Sends `slot`'s held message if it may go now.
  bool send_from_slot(pubsub::LatestSlot& slot, const core::MessageRef& message, int64_t now_ns,
                      net::OutBatch& out);

  // What deliver() and already_sent() read come first, next to the Subscriber base: the
  // fan-out touches them for every recipient.
  uint64_t seq_ = 0;
  core::ReplayRing<core::MessageRef> ring_;
  net::Connection* connection_ = nullptr;
  uint64_t skip_through_pos_ = 0;  // the largest of the subscriptions' skip_through_pos
  SessionId id_;
  SessionOwner owner_;
  core::TokenBucket request_budget_;  // starts full; rate and burst come with each use
  uint32_t refused_since_full_ = 0;
  Client* client_ = nullptr;
  int64_t detached_at_ms_ = 0;  // mono_ms(): TTLs are durations, immune to wall-clock steps
  // The conflated count of each frame in the ring, by seq % capacity; made on the first frame
  // with one, so a session with only `all` subscriptions never has it.
  std::unique_ptr<uint32_t[]> conflated_by_slot_;
  uint32_t waiting_index_ = kNotWaiting;  // its place in SessionTable's waiting list
  static constexpr uint32_t kNotWaiting = UINT32_MAX;
  bool may_hold_ = false;
  bool in_transit_ = false;
  // Places in SessionTable's detached orders, while listed there.
  bool listed_detached_ = false;
  std::list<Session*>::iterator detached_order_;
  std::list<Session*>::iterator address_order_;
  friend class SessionTable;
};

// Every pubsub::Subscriber is a Session (the only kind there is): the fan-out walks a channel's
// subscribers as sessions.
inline Session& session_of(pubsub::Subscriber* subscriber) {
  return static_cast<Session&>(*subscriber);
}

// The sessions of one thread, attached or detached, by id.
class SessionTable {
 public:
  Session& create(SessionId id, uint32_t replay_size, SessionOwner owner = {});
  Session* find(const SessionId& id);
  void destroy(Session& session, pubsub::SubscriptionIndex& index);
  size_t size() const { return sessions_.size(); }
  size_t detached() const { return detached_order_.size(); }
  // Sessions with a `latest` message held for its rate, or whose connection's backlog drained
  // with messages held: the thread's timer (ClientThread) sends them. wait() lists a session
  // once; `on_first_waiting` (set by the timer's owner) runs when the list was empty.
  void wait_to_send(Session& session);
  void set_on_first_waiting(std::function<void()> hook) { on_first_waiting_ = std::move(hook); }
  size_t waiting() const { return waiting_.size(); }
  // Calls `f(session)` for each listed session; drops those for which it returns false.
  template <class F>
  void for_each_waiting(F&& f) {
    for (size_t i = 0; i < waiting_.size();) {
      if (f(*waiting_[i])) {
        ++i;
      } else {
        stop_waiting(*waiting_[i]);
      }
    }
  }
  // Bookkeeping of the detached orders; called by Client::bind_session / take_session /
  // detach_session and Session::end_transit's callers, right after the session changed state.
  void on_attached(Session& session);
  void on_detached(Session& session);
  // Destroys detached sessions older than `ttl_ms`; returns how many.
  size_t expire(int64_t now_ms, int64_t ttl_ms, pubsub::SubscriptionIndex& index);
  // The detached-session budget (a client can make the gateway keep a session per hang-up): while
  // more than `per_thread` sessions are detached on this thread, or more than `per_address` from
  // client `address` (per_address 0: no such limit), the oldest goes. Returns how many went.
  size_t evict_over_budget(uint32_t address, size_t per_thread, size_t per_address,
                           pubsub::SubscriptionIndex& index);
  template <class F>
  void for_each(F&& f) {
    for (auto& [id, s] : sessions_)
      f(*s);
  }

 private:
  void forget_detached(Session& session);
  void stop_waiting(Session& session);

  std::unordered_map<SessionId, std::unique_ptr<Session>, SessionIdHash> sessions_;
  std::vector<Session*> waiting_;
  std::function<void()> on_first_waiting_;
  // Detached sessions, oldest first (expiry and the budget walk from the front), overall and per
  // client address.
  std::list<Session*> detached_order_;
  std::unordered_map<uint32_t, std::list<Session*>> by_address_;
};

}  // namespace odin::session
