// Session state and the per-thread session table (see session.hpp).
#include "session/session.hpp"

#include <openssl/rand.h>
#include <sys/random.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "spdlog/spdlog.h"

namespace odin {

namespace {

// 16 bytes from the CSPRNG. OpenSSL's DRBG costs no system call per id (the kernel is only asked
// to reseed it); getrandom() is the fallback. Neither failing means the process cannot issue
// safe ids at all, which is not a state to serve clients in.
void random_bytes(unsigned char (&out)[16]) {
  if (RAND_bytes(out, sizeof out) == 1) return;
  size_t got = 0;
  while (got < sizeof out) {
    const ssize_t n = ::getrandom(out + got, sizeof out - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      spdlog::critical("no source of random session ids: {}", std::strerror(errno));
      std::abort();
    }
  }
}

}  // namespace

SessionId SessionId::random(unsigned thread) {
  unsigned char bytes[16];
  random_bytes(bytes);
  SessionId id;
  std::memcpy(&id.hi, bytes, 8);
  std::memcpy(&id.lo, bytes + 8, 8);
  id.lo = (id.lo & ~uint64_t{0xff}) | (thread & 0xff);
  return id;
}

std::string SessionId::text() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kTextSize, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[i] = kHex[(hi >> (60 - 4 * i)) & 0xf];
    out[16 + i] = kHex[(lo >> (60 - 4 * i)) & 0xf];
  }
  return out;
}

std::optional<SessionId> SessionId::parse(std::string_view text) {
  if (text.size() != kTextSize) return std::nullopt;
  SessionId id;
  for (size_t i = 0; i < kTextSize; ++i) {
    const char c = text[i];
    uint64_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;  // upper case too: the gateway only ever writes lower case
    }
    uint64_t& half = i < 16 ? id.hi : id.lo;
    half = (half << 4) | digit;
  }
  return id;
}

Session::Session(SessionId id, uint32_t replay_size) : id_(id), ring_(replay_size) {}

Session::~Session() = default;

void Session::attach(Client& client, Connection& connection,
                     [[maybe_unused]] bool returning_from_transit) {
  assert(connection_ == nullptr && "a session has at most one connection");
  assert(in_transit_ == returning_from_transit &&
         "only its own connection takes a session in transit");
  client_ = &client;
  connection_ = &connection;
  in_transit_ = false;
}

void Session::detach(int64_t now_ms, bool in_transit) {
  connection_ = nullptr;
  client_ = nullptr;
  detached_at_ms_ = now_ms;
  in_transit_ = in_transit;
}

void Session::end_transit(int64_t now_ms) {
  assert(connection_ == nullptr);
  in_transit_ = false;
  detached_at_ms_ = now_ms;
}

void Session::skip_restored_through(uint64_t pos) {
  for (Subscription& s : subscriptions_)
    s.skip_through_pos = pos;
  skip_through_pos_ = subscriptions_.empty() ? 0 : pos;
}

bool Session::already_sent_slow(const ChannelSubscribers* channel, uint64_t pos) const {
  for (const Subscription& s : subscriptions_) {
    if (s.channel == channel) return pos <= s.skip_through_pos;
  }
  return false;
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

Session& SessionTable::create(SessionId id, uint32_t replay_size) {
  // The request budget (TokenBucket) starts full; its rate and burst come with each use.
  auto session = std::make_unique<Session>(id, replay_size);
  Session& ref = *session;
  auto [it, inserted] = sessions_.try_emplace(id, std::move(session));
  // 120 random bits: a collision is not a case to handle, but never silently replace a session.
  if (!inserted) {
    spdlog::critical("session id collision");
    std::abort();
  }
  return ref;
}

Session* SessionTable::find(const SessionId& id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void SessionTable::destroy(Session& session, SubscriptionIndex& index) {
  assert(session.connection() == nullptr && "destroying a session a connection still uses");
  forget_detached(session);
  session.unsubscribe_all(index);
  sessions_.erase(session.id());
}

void SessionTable::on_attached(Session& session) {
  forget_detached(session);
}

void SessionTable::on_detached(Session& session) {
  if (!session.detached() || session.listed_detached_) return;
  session.listed_detached_ = true;
  session.detached_order_ = detached_order_.insert(detached_order_.end(), &session);
  std::list<Session*>& same_address = by_address_[session.client_address];
  session.address_order_ = same_address.insert(same_address.end(), &session);
}

void SessionTable::forget_detached(Session& session) {
  if (!session.listed_detached_) return;
  session.listed_detached_ = false;
  detached_order_.erase(session.detached_order_);
  auto it = by_address_.find(session.client_address);
  it->second.erase(session.address_order_);
  if (it->second.empty()) by_address_.erase(it);
}

size_t SessionTable::expire(int64_t now_ms, int64_t ttl_ms, SubscriptionIndex& index) {
  size_t expired = 0;
  // Oldest first: stop at the first one still within its TTL.
  while (!detached_order_.empty() && now_ms - detached_order_.front()->detached_at_ms() >= ttl_ms) {
    destroy(*detached_order_.front(), index);
    ++expired;
  }
  return expired;
}

size_t SessionTable::evict_over_budget(uint32_t address, size_t per_thread, size_t per_address,
                                       SubscriptionIndex& index) {
  size_t evicted = 0;
  if (per_address > 0 && address != 0) {
    for (auto it = by_address_.find(address);
         it != by_address_.end() && it->second.size() > per_address;
         it = by_address_.find(address)) {
      destroy(*it->second.front(), index);
      ++evicted;
    }
  }
  while (detached_order_.size() > per_thread) {
    destroy(*detached_order_.front(), index);
    ++evicted;
  }
  return evicted;
}

}  // namespace odin
