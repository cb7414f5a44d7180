// One event-loop thread's subscription index: channel -> the sessions of this thread subscribed
// to it, and the channel's latest message (for snapshots). Owned and touched by one thread only,
// so no locks and no atomics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hub/message.hpp"
#include "session/replay_ring.hpp"

namespace odin {

class Session;

struct ChannelSubscribers {
  std::string name;
  std::vector<Session*> sessions;
  MessageRef latest;
  // JetStream: the channel's last messages, in stream order (WS_HISTORY_SIZE, WS_HISTORY_MAX_AGE),
  // so a client resuming from another instance can be sent what it missed. Sized on first use.
  ReplayRing<MessageRef> history{0};
  uint64_t history_evicted_through = 0;  // pos of the newest message dropped from `history`
};

class SubscriptionIndex {
 public:
  // The channel's entry, created when missing. References stay valid until erase_if_unused().
  ChannelSubscribers& entry(std::string_view channel);
  ChannelSubscribers* find(std::string_view channel);

  // Adds a subscriber; returns its position in entry.sessions (the caller keeps it for removal).
  static uint32_t add(ChannelSubscribers& channel, Session* session);
  // Removes the subscriber at `position` by moving the last one into its place; returns the
  // session that moved (nullptr if none did) so the caller can update its stored position.
  static Session* remove(ChannelSubscribers& channel, uint32_t position);

  // Drops an entry that has no subscribers, no latest message and no history.
  void erase_if_unused(ChannelSubscribers& channel);

  size_t channel_count() const { return channels_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<ChannelSubscribers>, Hash, std::equal_to<>>
      channels_;
};

}  // namespace odin
