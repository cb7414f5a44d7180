// Session state and the per-thread session table (see session.hpp).
#include "session/session.hpp"

#include <algorithm>
#include <charconv>

namespace odin {

Session::Session(uint64_t id, uint32_t replay_size) : ring(replay_size), id_(id) {}

Session::~Session() = default;

std::string Session::id_text() const {
  char buf[16];
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i)
    buf[i] = kHex[(id_ >> (60 - 4 * i)) & 0xf];
  return std::string(buf, 16);
}

bool Session::parse_id(std::string_view text, uint64_t& id) {
  if (text.size() != 16) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id, 16);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool Session::subscribed_to(std::string_view channel) const {
  return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                     [&](const Subscription& s) { return s.channel->name == channel; });
}

bool Session::subscribe(SubscriptionIndex& index, std::string_view channel) {
  if (subscribed_to(channel)) return false;
  ChannelSubscribers& entry = index.entry(channel);
  subscriptions_.push_back({&entry, SubscriptionIndex::add(entry, this)});
  return true;
}

void Session::moved_within(const ChannelSubscribers* channel, uint32_t position) {
  for (Subscription& s : subscriptions_) {
    if (s.channel == channel) {
      s.position = position;
      return;
    }
  }
}

bool Session::unsubscribe(SubscriptionIndex& index, std::string_view channel) {
  auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                         [&](const Subscription& s) { return s.channel->name == channel; });
  if (it == subscriptions_.end()) return false;
  ChannelSubscribers* entry = it->channel;
  if (Session* moved = SubscriptionIndex::remove(*entry, it->position)) {
    moved->moved_within(entry, it->position);
  }
  subscriptions_.erase(it);
  index.erase_if_unused(*entry);
  if (subscriptions_.empty()) std::vector<Subscription>().swap(subscriptions_);
  return true;
}

void Session::unsubscribe_all(SubscriptionIndex& index) {
  while (!subscriptions_.empty()) {
    std::string name = subscriptions_.back().channel->name;
    unsubscribe(index, name);
  }
}

Session& SessionTable::create(uint64_t id, uint32_t replay_size) {
  // The request budget (TokenBucket) starts full; its rate and burst come with each use.
  auto session = std::make_unique<Session>(id, replay_size);
  Session& ref = *session;
  sessions_[id] = std::move(session);
  return ref;
}

Session* SessionTable::find(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void SessionTable::destroy(Session& session, SubscriptionIndex& index) {
  session.unsubscribe_all(index);
  sessions_.erase(session.id());
}

size_t SessionTable::detached() const {
  size_t n = 0;
  for (const auto& [id, s] : sessions_)
    n += s->connection == nullptr;
  return n;
}

size_t SessionTable::expire(int64_t now_ms, int64_t ttl_ms, SubscriptionIndex& index) {
  std::vector<Session*> expired;
  for (auto& [id, s] : sessions_) {
    if (!s->connection && now_ms - s->detached_at_ms >= ttl_ms) expired.push_back(s.get());
  }
  for (Session* s : expired)
    destroy(*s, index);
  return expired.size();
}

}  // namespace odin
