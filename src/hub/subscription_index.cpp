// Per-thread subscription index (see subscription_index.hpp).
#include "hub/subscription_index.hpp"

namespace odin {

ChannelSubscribers& SubscriptionIndex::entry(std::string_view channel) {
  auto it = channels_.find(channel);
  if (it != channels_.end()) return *it->second;
  auto created = std::make_unique<ChannelSubscribers>();
  created->name = std::string(channel);
  ChannelSubscribers& ref = *created;
  channels_.emplace(ref.name, std::move(created));
  return ref;
}

ChannelSubscribers* SubscriptionIndex::find(std::string_view channel) {
  auto it = channels_.find(channel);
  return it == channels_.end() ? nullptr : it->second.get();
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

void SubscriptionIndex::erase_if_unused(ChannelSubscribers& channel) {
  if (!channel.sessions.empty() || channel.latest) return;
  auto it = channels_.find(std::string_view(channel.name));
  if (it != channels_.end()) channels_.erase(it);
}

}  // namespace odin
