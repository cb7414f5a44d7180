// Session state and the per-thread session table (see session.hpp).
#include "session/session.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/clock.hpp"
#include "spdlog/spdlog.h"
#include "ws/deflate.hpp"

namespace odin::session {

void append_compressed_data_frame(net::OutBatch& out, net::Connection& conn, uint64_t seq,
                                  const core::MessageRef& message, uint32_t conflated) {
  char keys[core::kMaxDataKeysBytes];
  const size_t keys_size = core::encode_data_keys(keys, seq, conflated);
  char head[ws::kMaxCompressedDataHeadBytes];
  const size_t head_size =
      ws::encode_compressed_data_head(head, {keys, keys_size}, message->deflated.size());
  out.append_shared(conn, {head, head_size}, message, message->deflated);
}

Session::Session(SessionId id, uint32_t replay_size, SessionOwner owner)
    : ring_(replay_size), id_(id), owner_(std::move(owner)) {}

void Session::remember_conflated(uint64_t seq, uint32_t conflated) {
  const uint32_t capacity = ring_.capacity();
  if (capacity == 0) return;
  if (!conflated_by_slot_) conflated_by_slot_ = std::make_unique<uint32_t[]>(capacity);
  conflated_by_slot_[seq % capacity] = conflated;
}

uint32_t Session::conflated_of(uint64_t seq) const {
  if (!conflated_by_slot_) return 0;
  return conflated_by_slot_[seq % ring_.capacity()];
}

bool Session::send_from_slot(pubsub::LatestSlot& slot, const core::MessageRef& message,
                             int64_t now_ns, net::OutBatch& out) {
  const uint32_t conflated = std::exchange(slot.skipped, 0);
  slot.last_sent_ns = now_ns;
  return deliver(message, out, conflated);
}

LatestOffer Session::offer_latest(pubsub::SubscriptionIndex& index, pubsub::LatestSlot& slot,
                                  const core::MessageRef& message, uint32_t skipped_before,
                                  int64_t now_ns, net::OutBatch& out) {
  if (skipped_before != 0) index.count_conflated(slot, skipped_before);
  const bool can_go = latest_can_go_now();
  if (can_go && slot.due(now_ns)) {
    if (slot.held) {  // a timer tick had not come yet: the newer one goes instead
      index.take_held(slot);
      index.count_conflated(slot, 1);
    }
    send_from_slot(slot, message, now_ns, out);
    return LatestOffer::kSent;
  }
  index.hold(slot, message);
  may_hold_ = true;
  return can_go ? LatestOffer::kHeldForRate : LatestOffer::kHeldForConnection;
}

uint32_t Session::count_unsent_slow(const pubsub::ChannelSubscribers* channel,
                                    std::span<const uint64_t> positions) const {
  uint32_t unsent = 0;
  for (uint64_t pos : positions)
    unsent += !already_sent(channel, pos);
  return unsent;
}

bool Session::send_held(pubsub::SubscriptionIndex& index, int64_t now_ns, net::OutBatch& out,
                        uint64_t& sent) {
  if (!may_hold_) return false;
  bool held_for_rate = false;
  bool any_held = false;
  for (Subscription& sub : mutable_subscriptions()) {
    pubsub::LatestSlot* slot = sub.latest.get();
    if (!slot || !slot->held) continue;
    if (!latest_can_go_now()) {
      any_held = true;  // the connection's turn: on_flushed or a resume lists it again
      continue;
    }
    if (!slot->due(now_ns)) {
      held_for_rate = any_held = true;
      continue;
    }
    sent += send_from_slot(*slot, index.take_held(*slot), now_ns, out);
  }
  may_hold_ = any_held;
  return held_for_rate && latest_can_go_now();
}

void Session::release_held(pubsub::SubscriptionIndex& index, std::string_view channel,
                           net::OutBatch& out) {
  for (Subscription& sub : mutable_subscriptions()) {
    if (sub.channel->name != channel || !sub.latest || !sub.latest->held) continue;
    pubsub::LatestSlot& slot = *sub.latest;
    const uint32_t conflated = std::exchange(slot.skipped, 0);
    deliver(index.take_held(slot), out, conflated);
    return;
  }
}

bool Session::deliver_newest_of(pubsub::SubscriptionIndex& index, const core::MessageRef& message,
                                uint32_t skipped, net::OutBatch& out) {
  for (Subscription& sub : mutable_subscriptions()) {
    if (sub.channel->name != message->channel || !sub.latest) continue;
    index.count_conflated(*sub.latest, skipped);
    return send_from_slot(*sub.latest, message, core::steady_ns(), out);
  }
  return deliver(message, out);
}

bool Session::deliver_snapshot(pubsub::SubscriptionIndex& index, const core::MessageRef& message,
                               int64_t now_ns, net::OutBatch& out) {
  for (Subscription& sub : mutable_subscriptions()) {
    if (sub.channel->name != message->channel || !sub.latest) continue;
    pubsub::LatestSlot& slot = *sub.latest;
    // The held message is the snapshot's message or an older one (the fan-out updates the
    // channel's latest before it offers): sent now either way, never again after it.
    if (slot.held) {
      const bool superseded = !(slot.held == message);
      index.take_held(slot);
      if (superseded) index.count_conflated(slot, 1);
    }
    return send_from_slot(slot, message, now_ns, out);
  }
  return deliver(message, out);
}

RequestAdmission Session::take_request(const core::TokenBucketPolicy& policy, int64_t now_ns,
                                       uint32_t strikes) {
  if (request_budget_.full(policy, now_ns)) refused_since_full_ = 0;
  if (request_budget_.try_take(policy, now_ns)) return RequestAdmission::kAdmitted;
  return ++refused_since_full_ >= strikes ? RequestAdmission::kRefusedTooOften
                                          : RequestAdmission::kRefused;
}

Session::~Session() = default;

void Session::attach(Client& client, net::Connection& connection,
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
  for (Subscription& s : mutable_subscriptions())
    s.skip_through_pos = pos;
  skip_through_pos_ = subscription_count() == 0 ? 0 : pos;
}

bool Session::already_sent_slow(const pubsub::ChannelSubscribers* channel, uint64_t pos) const {
  for (const Subscription& s : subscriptions()) {
    if (s.channel == channel) return pos <= s.skip_through_pos;
  }
  return false;
}

Session& SessionTable::create(SessionId id, uint32_t replay_size, SessionOwner owner) {
  auto session = std::make_unique<Session>(id, replay_size, std::move(owner));
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

void SessionTable::destroy(Session& session, pubsub::SubscriptionIndex& index) {
  assert(session.connection() == nullptr && "destroying a session a connection still uses");
  forget_detached(session);
  if (session.waiting_index_ != Session::kNotWaiting) stop_waiting(session);
  index.unsubscribe_all(session);
  sessions_.erase(session.id());
}

void SessionTable::wait_to_send(Session& session) {
  if (session.waiting_index_ != Session::kNotWaiting) return;
  session.waiting_index_ = static_cast<uint32_t>(waiting_.size());
  waiting_.push_back(&session);
  if (waiting_.size() == 1 && on_first_waiting_) on_first_waiting_();
}

void SessionTable::stop_waiting(Session& session) {
  const uint32_t i = session.waiting_index_;
  Session* last = waiting_.back();
  waiting_[i] = last;
  last->waiting_index_ = i;
  waiting_.pop_back();
  session.waiting_index_ = Session::kNotWaiting;
}

void SessionTable::on_attached(Session& session) {
  forget_detached(session);
}

void SessionTable::on_detached(Session& session) {
  if (!session.detached() || session.listed_detached_) return;
  session.listed_detached_ = true;
  session.detached_order_ = detached_order_.insert(detached_order_.end(), &session);
  std::list<Session*>& same_address = by_address_[session.client_address()];
  session.address_order_ = same_address.insert(same_address.end(), &session);
}

void SessionTable::forget_detached(Session& session) {
  if (!session.listed_detached_) return;
  session.listed_detached_ = false;
  detached_order_.erase(session.detached_order_);
  auto it = by_address_.find(session.client_address());
  it->second.erase(session.address_order_);
  if (it->second.empty()) by_address_.erase(it);
}

size_t SessionTable::expire(int64_t now_ms, int64_t ttl_ms, pubsub::SubscriptionIndex& index) {
  size_t expired = 0;
  // Oldest first: stop at the first one still within its TTL.
  while (!detached_order_.empty() && now_ms - detached_order_.front()->detached_at_ms() >= ttl_ms) {
    destroy(*detached_order_.front(), index);
    ++expired;
  }
  return expired;
}

size_t SessionTable::evict_over_budget(uint32_t address, size_t per_thread, size_t per_address,
                                       pubsub::SubscriptionIndex& index) {
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

}  // namespace odin::session
