// One event-loop thread's subscription index: channel -> the subscribers (sessions) of this
// thread subscribed to it, and the channel's latest message (for snapshots). Both sides of
// membership live here: a channel's list of subscribers and each subscriber's list of channels
// change together, in SubscriptionIndex::subscribe / unsubscribe only. Owned and touched by one
// thread only, so no locks and no atomics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/message.hpp"
#include "core/replay_ring.hpp"

namespace odin::pubsub {

class Subscriber;
struct ChannelSubscribers;

// How a subscription is delivered (docs/protocol.md, latest-value subscriptions).
struct DeliveryOptions {
  bool latest = false;  // may skip messages, always ends on the newest
  double max_hz = 0;    // latest only: at most this many messages per second; 0: no cap
  bool operator==(const DeliveryOptions&) const = default;
};

// A `latest` subscription's state: the newest message not sent yet (one slot, replaced by newer
// ones) and how many of the channel's messages were skipped since the last one sent. Made when a
// subscription becomes `latest`, at a stable address until it ends; nothing per message.
struct LatestSlot {
  Subscriber* subscriber;
  ChannelSubscribers* channel;
  int64_t min_interval_ns = 0;  // 1 s / max_hz; 0: no cap
  int64_t last_sent_ns = 0;     // steady_ns of the last message sent; 0: none yet
  // Whether the rate lets a message go at `now_ns`: 1/max_hz after the previous one.
  bool due(int64_t now_ns) const {
    return min_interval_ns == 0 || last_sent_ns == 0 || now_ns - last_sent_ns >= min_interval_ns;
  }
  core::MessageRef held;  // change through SubscriptionIndex::hold / take_held
  uint32_t skipped = 0;   // skipped since the last message sent: its `conflated`
};

struct ChannelSubscribers {
  std::string name;
  // The channel's `all` subscribers (every message, in order) and its `latest` ones.
  std::vector<Subscriber*> subscribers;
  std::vector<LatestSlot*> latest_subscribers;
  core::MessageRef latest;
  // JetStream: the channel's last messages, in stream order (WS_HISTORY_SIZE, WS_HISTORY_MAX_AGE),
  // so a client resuming from another instance can be sent what it missed. Sized on first use.
  core::ReplayRing<core::MessageRef> history{0};
  uint64_t history_evicted_through = 0;  // pos of the newest message dropped from `history`
  // The fan-out's scratch for one drain turn (hub/fanout.cpp): the turn's newest message of the
  // channel is the only one its `latest` subscribers are offered; the older ones' positions wait
  // here to be counted as skipped. Empty between turns; its storage is reused.
  uint32_t newest_in_turn = 0;
  std::vector<uint64_t> skipped_in_turn;
};

// A subscriber's side of membership: the channels it is in, each with its place in that
// channel's list. session::Session is one (the only kind); only SubscriptionIndex changes the
// list, so the two sides cannot disagree.
class Subscriber {
 public:
  struct Subscription {
    ChannelSubscribers* channel;
    uint32_t position;  // index in channel->subscribers, or in latest_subscribers when `latest`
    DeliveryOptions options;
    std::unique_ptr<LatestSlot> latest;  // set when options.latest
    // Restored from another instance that was further along the stream: this channel's messages
    // up to here were already sent to the client there. 0 for a channel subscribed here.
    uint64_t skip_through_pos = 0;
  };

  Subscriber() = default;
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  bool subscribed_to(std::string_view channel) const;
  size_t subscription_count() const { return subscriptions_.size(); }
  std::span<const Subscription> subscriptions() const { return subscriptions_; }

 protected:
  ~Subscriber() = default;  // not deleted through this type
  // The per-subscription fields that are not membership (skip_through_pos) are the owner's.
  std::span<Subscription> mutable_subscriptions() { return subscriptions_; }

 private:
  friend class SubscriptionIndex;
  Subscription* find(std::string_view channel);
  Subscription* find_in(const ChannelSubscribers* channel);

  std::vector<Subscription> subscriptions_;
};

class SubscriptionIndex {
 public:
  // `max_channels` (WS_MAX_CHANNELS) bounds the entries the fan-out creates (try_entry) and
  // the ones subscribes create once they checked has_room_for().
  explicit SubscriptionIndex(size_t max_channels = std::numeric_limits<size_t>::max())
      : max_channels_(max_channels) {}

  // The channel's entry, created when missing. References stay valid until the entry is erased
  // (erase_if_unused, erase_idle), which never happens while it has subscribers.
  ChannelSubscribers& entry(std::string_view channel);
  // The same, but nullptr instead of creating an entry beyond the limit.
  ChannelSubscribers* try_entry(std::string_view channel);
  ChannelSubscribers* find(std::string_view channel);
  // Whether subscribing to `channels` stays within the limit (entries that exist cost nothing).
  bool has_room_for(std::span<const std::string_view> channels) const;
  size_t max_channels() const { return max_channels_; }

  // Membership, both sides at once. subscribe creates the channel's entry when missing (the
  // caller checked has_room_for); unsubscribe erases an entry left unused. Each returns false
  // when `subscriber` already was in that state. subscribe with `options` sets them, also on a
  // subscription that exists (`latest` to `all` drops a held message: send it first).
  bool subscribe(Subscriber& subscriber, std::string_view channel);
  bool subscribe(Subscriber& subscriber, std::string_view channel, const DeliveryOptions& options);
  bool unsubscribe(Subscriber& subscriber, std::string_view channel);
  void unsubscribe_all(Subscriber& subscriber);

  // Drops an entry that has no subscribers, no latest message and no history.
  void erase_if_unused(ChannelSubscribers& channel);
  // Drops every entry without subscribers for which `idle(entry)` is true (it may also trim the
  // entry it is shown); returns how many were dropped.
  template <class F>
  size_t erase_idle(F&& idle) {
    size_t erased = 0;
    for (auto it = channels_.begin(); it != channels_.end();) {
      ChannelSubscribers& channel = *it->second;
      if (idle(channel) && channel.subscribers.empty() && channel.latest_subscribers.empty()) {
        forget(channel);
        it = channels_.erase(it);
        ++erased;
      } else {
        ++it;
      }
    }
    return erased;
  }

  // JetStream: the newest stream position of a channel whose entry was dropped (or never made,
  // at the limit) with messages in it. The history of a channel without an entry, or of one
  // made since, holds every message only after this position.
  uint64_t forgotten_through() const { return forgotten_through_; }
  void forget_message(uint64_t pos) { forgotten_through_ = std::max(forgotten_through_, pos); }

  size_t channel_count() const { return channels_.size(); }

  // A `latest` slot's message: hold() keeps `message` as the newest not sent (a message it
  // replaces counts as skipped); take_held() empties the slot for sending. Counted here for
  // /metrics.
  void hold(LatestSlot& slot, core::MessageRef message) {
    if (slot.held) {
      ++slot.skipped;
      ++conflated_total_;
    } else {
      ++held_count_;
    }
    slot.held = std::move(message);
  }
  core::MessageRef take_held(LatestSlot& slot) {
    if (slot.held) --held_count_;
    return std::move(slot.held);
  }
  // A message of a `latest` channel that was not sent and not held (resume on any instance:
  // only the newest goes out).
  void count_conflated(LatestSlot& slot, uint32_t n) {
    slot.skipped += n;
    conflated_total_ += n;
  }
  size_t latest_subscription_count() const { return latest_count_; }
  size_t held_count() const { return held_count_; }
  uint64_t conflated_total() const { return conflated_total_; }

  // JetStream positions, as far as this thread's fan-out has delivered (the hub writes them, a
  // restore reads them): the newest message's pos (0 before the first), and the pos after which
  // `channel`'s history holds every message of the channel (nullopt while the broker has not
  // said from where this instance has every message).
  uint64_t last_pos() const { return last_pos_; }
  void saw_pos(uint64_t pos) { last_pos_ = std::max(last_pos_, pos); }
  // The broker's marker: every message after `pos` comes from here on; `stream_reset`: the
  // stream was made anew, old positions mean nothing.
  void mark_complete_after(uint64_t pos, bool stream_reset) {
    if (stream_reset) last_pos_ = 0;
    complete_after_ = coverage_ ? std::max(complete_after_, pos) : pos;
    coverage_ = true;
  }
  std::optional<uint64_t> history_complete_after(const ChannelSubscribers* channel) const {
    if (!coverage_) return std::nullopt;
    return std::max(complete_after_,
                    channel ? channel->history_evicted_through : forgotten_through_);
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  ChannelSubscribers& create(std::string_view channel);
  void forget(const ChannelSubscribers& channel);
  // Takes `subscriber`'s subscription at `index` out of both sides (a swap-remove in the
  // channel's list, whose moved subscriber learns its new position).
  void remove(Subscriber& subscriber, size_t index);
  // The channel-side half: adds `sub` to its channel's list for its options / takes it out.
  void link(Subscriber& subscriber, Subscriber::Subscription& sub);
  void unlink(Subscriber::Subscription& sub);

  std::unordered_map<std::string, std::unique_ptr<ChannelSubscribers>, Hash, std::equal_to<>>
      channels_;
  size_t max_channels_;
  uint64_t forgotten_through_ = 0;
  uint64_t last_pos_ = 0;
  uint64_t complete_after_ = 0;
  bool coverage_ = false;
  size_t latest_count_ = 0;
  size_t held_count_ = 0;
  uint64_t conflated_total_ = 0;
};

}  // namespace odin::pubsub
