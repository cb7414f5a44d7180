// Per-thread subscription index (see subscription_index.hpp).
#include "pubsub/subscription_index.hpp"

#include <algorithm>
#include <cstddef>

namespace odin::pubsub {

ChannelSubscribers& SubscriptionIndex::create(std::string_view channel) {
  auto created = std::make_unique<ChannelSubscribers>();
  created->name = std::string(channel);
  // Whatever an earlier entry of this name held is gone: its history starts from scratch.
  created->history_evicted_through = forgotten_through_;
  ChannelSubscribers& ref = *created;
  channels_.emplace(ref.name, std::move(created));
  return ref;
}

ChannelSubscribers& SubscriptionIndex::entry(std::string_view channel) {
  auto it = channels_.find(channel);
  if (it != channels_.end()) return *it->second;
  return create(channel);
}

ChannelSubscribers* SubscriptionIndex::try_entry(std::string_view channel) {
  auto it = channels_.find(channel);
  if (it != channels_.end()) return it->second.get();
  if (channels_.size() >= max_channels_) return nullptr;
  return &create(channel);
}

ChannelSubscribers* SubscriptionIndex::find(std::string_view channel) {
  auto it = channels_.find(channel);
  return it == channels_.end() ? nullptr : it->second.get();
}

bool SubscriptionIndex::has_room_for(std::span<const std::string_view> channels) const {
  size_t missing = 0;
  for (std::string_view channel : channels) {
    if (channels_.find(channel) == channels_.end()) ++missing;
  }
  return missing == 0 || channels_.size() + missing <= max_channels_;
}

bool Subscriber::subscribed_to(std::string_view channel) const {
  return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                     [&](const Subscription& s) { return s.channel->name == channel; });
}

Subscriber::Subscription* Subscriber::find(std::string_view channel) {
  for (Subscription& s : subscriptions_) {
    if (s.channel->name == channel) return &s;
  }
  return nullptr;
}

Subscriber::Subscription* Subscriber::find_in(const ChannelSubscribers* channel) {
  for (Subscription& s : subscriptions_) {
    if (s.channel == channel) return &s;
  }
  return nullptr;
}

bool SubscriptionIndex::subscribe(Subscriber& subscriber, std::string_view channel) {
  if (subscriber.find(channel)) return false;
  return subscribe(subscriber, channel, DeliveryOptions{});
}

bool SubscriptionIndex::subscribe(Subscriber& subscriber, std::string_view channel,
                                  const DeliveryOptions& options) {
  if (Subscriber::Subscription* existing = subscriber.find(channel)) {
    if (existing->options == options) return false;
    unlink(*existing);
    existing->options = options;
    link(subscriber, *existing);
    return false;
  }
  ChannelSubscribers& entry = this->entry(channel);
  Subscriber::Subscription& sub = subscriber.subscriptions_.emplace_back();
  sub.channel = &entry;
  sub.options = options;
  link(subscriber, sub);
  return true;
}

void SubscriptionIndex::link(Subscriber& subscriber, Subscriber::Subscription& sub) {
  ChannelSubscribers& channel = *sub.channel;
  if (!sub.options.latest) {
    channel.subscribers.push_back(&subscriber);
    sub.position = static_cast<uint32_t>(channel.subscribers.size() - 1);
    return;
  }
  sub.latest = std::make_unique<LatestSlot>();
  sub.latest->subscriber = &subscriber;
  sub.latest->channel = &channel;
  if (sub.options.max_hz > 0) {
    sub.latest->min_interval_ns = static_cast<int64_t>(1e9 / sub.options.max_hz);
  }
  channel.latest_subscribers.push_back(sub.latest.get());
  sub.position = static_cast<uint32_t>(channel.latest_subscribers.size() - 1);
  ++latest_count_;
}

namespace {

// Swap-removes `list[position]`; the element moved into its place (if any) is returned.
template <class T>
T* swap_remove(std::vector<T*>& list, uint32_t position) {
  T* moved = nullptr;
  if (position + 1 < list.size()) {
    moved = list.back();
    list[position] = moved;
  }
  list.pop_back();
  if (list.empty()) std::vector<T*>().swap(list);
  return moved;
}

}  // namespace

void SubscriptionIndex::unlink(Subscriber::Subscription& sub) {
  ChannelSubscribers& channel = *sub.channel;
  const uint32_t position = sub.position;
  if (sub.latest) {
    take_held(*sub.latest);
    if (LatestSlot* moved = swap_remove(channel.latest_subscribers, position)) {
      moved->subscriber->find_in(&channel)->position = position;
    }
    sub.latest.reset();
    --latest_count_;
    return;
  }
  if (Subscriber* moved = swap_remove(channel.subscribers, position)) {
    moved->find_in(&channel)->position = position;
  }
}

bool SubscriptionIndex::unsubscribe(Subscriber& subscriber, std::string_view channel) {
  Subscriber::Subscription* found = subscriber.find(channel);
  if (!found) return false;
  remove(subscriber, static_cast<size_t>(found - subscriber.subscriptions_.data()));
  return true;
}

void SubscriptionIndex::unsubscribe_all(Subscriber& subscriber) {
  while (!subscriber.subscriptions_.empty())
    remove(subscriber, subscriber.subscriptions_.size() - 1);
}

void SubscriptionIndex::remove(Subscriber& subscriber, size_t index) {
  auto& mine = subscriber.subscriptions_;
  ChannelSubscribers& channel = *mine[index].channel;
  unlink(mine[index]);
  mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(index));
  if (mine.empty()) std::vector<Subscriber::Subscription>().swap(mine);
  erase_if_unused(channel);
}

void SubscriptionIndex::forget(const ChannelSubscribers& channel) {
  forget_message(channel.history_evicted_through);
  if (channel.latest) forget_message(channel.latest->pos);
  if (!channel.history.empty()) forget_message(channel.history.newest()->pos);
}

void SubscriptionIndex::erase_if_unused(ChannelSubscribers& channel) {
  if (!channel.subscribers.empty() || !channel.latest_subscribers.empty() || channel.latest ||
      !channel.history.empty())
    return;
  auto it = channels_.find(std::string_view(channel.name));
  if (it != channels_.end()) {
    forget(channel);
    channels_.erase(it);
  }
}

}  // namespace odin::pubsub
