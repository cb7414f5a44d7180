// One client session: its seq numbering, replay ring, subscriptions and request budget. A session
// outlives its connection by WS_RESUME_TTL so a client can resume. Owned by one event-loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "hub/message.hpp"
#include "hub/subscription_index.hpp"
#include "session/replay_ring.hpp"
#include "session/token_bucket.hpp"

namespace odin {

class Connection;

class Session {
 public:
  struct Subscription {
    ChannelSubscribers* channel;
    uint32_t position;  // index in channel->sessions
  };

  Session(uint64_t id, uint32_t replay_size);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  uint64_t id() const { return id_; }
  // Owning thread, encoded in the id so any thread can route a resume to it.
  static unsigned thread_of(uint64_t id) { return static_cast<unsigned>(id & 0xff); }
  std::string id_text() const;
  static bool parse_id(std::string_view text, uint64_t& id);

  // Subscriptions (index maintenance included). Return false when already in that state.
  bool subscribe(SubscriptionIndex& index, std::string_view channel);
  bool unsubscribe(SubscriptionIndex& index, std::string_view channel);
  void unsubscribe_all(SubscriptionIndex& index);
  bool subscribed_to(std::string_view channel) const;
  size_t subscription_count() const { return subscriptions_.size(); }
  const std::vector<Subscription>& subscriptions() const { return subscriptions_; }
  // Called by the index owner when a swap-remove moved this session inside `channel`.
  void moved_within(const ChannelSubscribers* channel, uint32_t position);

  // The fan-out's per-recipient state (hub/fanout.cpp writes these directly).
  uint64_t seq = 0;  // the last seq assigned
  // Restored from another instance that was further along the stream: messages up to this pos
  // were already sent to the client there (docs/protocol.md, resume on any instance).
  uint64_t skip_through_pos = 0;
  ReplayRing<MessageRef> ring;
  Connection* connection = nullptr;
  int64_t detached_at_ms = 0;  // mono_ms(): TTLs are durations, immune to wall-clock steps

  // Request budget.
  TokenBucket bucket;
  uint32_t refused_since_full = 0;
  bool saw_first_request = false;
  // WS_AUTH=jwt: the `sub` of the token that opened the session; only a token with the same
  // subject may resume it.
  std::string subject;

 private:
  uint64_t id_;
  std::vector<Subscription> subscriptions_;
};

// The sessions of one thread, attached or detached, by id.
class SessionTable {
 public:
  Session& create(uint64_t id, uint32_t replay_size);
  Session* find(uint64_t id);
  void destroy(Session& session, SubscriptionIndex& index);
  size_t size() const { return sessions_.size(); }
  size_t detached() const;
  // Destroys detached sessions older than `ttl_ms`; returns how many.
  size_t expire(int64_t now_ms, int64_t ttl_ms, SubscriptionIndex& index);
  template <class F>
  void for_each(F&& f) {
    for (auto& [id, s] : sessions_)
      f(*s);
  }

 private:
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
};

}  // namespace odin
