// Per-thread subscription index (see subscription_index.hpp).
#include "pubsub/subscription_index.hpp"

namespace odin {

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

uint32_t SubscriptionIndex::add(ChannelSubscribers& channel, Session* session) {
  channel.sessions.push_back(session);
  return static_cast<uint32_t>(channel.sessions.size() - 1);
}

Session* SubscriptionIndex::remove(ChannelSubscribers& channel, uint32_t position) {
  auto& sessions = channel.sessions;
  Session* moved = nullptr;
  if (position + 1 < sessions.size()) {
    sessions[position] = sessions.back();
    moved = sessions[position];
  }
  sessions.pop_back();
  if (sessions.empty()) std::vector<Session*>().swap(sessions);
  return moved;
}

void SubscriptionIndex::forget(const ChannelSubscribers& channel) {
  forget_message(channel.history_evicted_through);
  if (channel.latest) forget_message(channel.latest->pos);
  if (!channel.history.empty()) forget_message(channel.history.newest()->pos);
}

void SubscriptionIndex::erase_if_unused(ChannelSubscribers& channel) {
  if (!channel.sessions.empty() || channel.latest || !channel.history.empty()) return;
  auto it = channels_.find(std::string_view(channel.name));
  if (it != channels_.end()) {
    forget(channel);
    channels_.erase(it);
  }
}

}  // namespace odin
