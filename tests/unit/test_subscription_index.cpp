// Unit tests of the per-thread subscription index and of Session's subscription bookkeeping.
#include <gtest/gtest.h>

#include <set>

#include "pubsub/subscription_index.hpp"
#include "session/session.hpp"

namespace odin {
namespace {

TEST(SubscriptionIndex, EntryIsCreatedOnceAndFound) {
  pubsub::SubscriptionIndex index;
  EXPECT_EQ(index.find("BTCUSD"), nullptr);
  pubsub::ChannelSubscribers& a = index.entry("BTCUSD");
  pubsub::ChannelSubscribers& b = index.entry("BTCUSD");
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(index.find("BTCUSD"), &a);
  EXPECT_EQ(a.name, "BTCUSD");
  EXPECT_EQ(index.channel_count(), 1u);
}

// A subscriber as pubsub sees it, with nothing of a session.
struct Plain : pubsub::Subscriber {};

// Unsubscribing swap-removes from the channel's list: the last subscriber moves into the freed
// slot, and its own record of its place follows, so it can still leave later.
TEST(SubscriptionIndex, SwapRemoveKeepsBothSidesInStep) {
  pubsub::SubscriptionIndex index;
  Plain s1, s2, s3;
  ASSERT_TRUE(index.subscribe(s1, "X"));
  ASSERT_TRUE(index.subscribe(s2, "X"));
  ASSERT_TRUE(index.subscribe(s3, "X"));
  ASSERT_TRUE(index.subscribe(s3, "Y"));
  pubsub::ChannelSubscribers& ch = *index.find("X");
  ASSERT_TRUE(index.unsubscribe(s1, "X"));  // s3 moves into slot 0
  ASSERT_EQ(ch.subscribers.size(), 2u);
  EXPECT_EQ(ch.subscribers[0], &s3);
  EXPECT_EQ(ch.subscribers[1], &s2);
  ASSERT_EQ(s3.subscription_count(), 2u);
  EXPECT_EQ(s3.subscriptions()[0].channel, &ch);
  EXPECT_EQ(s3.subscriptions()[0].position, 0u);
  EXPECT_EQ(s2.subscriptions()[0].position, 1u);
  EXPECT_EQ(s1.subscription_count(), 0u);
  ASSERT_TRUE(index.unsubscribe(s2, "X"));  // the last one: nothing moves
  ASSERT_EQ(ch.subscribers.size(), 1u);
  EXPECT_EQ(s3.subscriptions()[0].position, 0u);
  index.unsubscribe_all(s3);
  EXPECT_EQ(index.channel_count(), 0u);
}

// Options move a subscription between the channel's `all` and `latest` lists; both sides stay in
// step through swap-removes in either list, and a held message is let go with its slot.
TEST(SubscriptionIndex, DeliveryOptionsMoveASubscriptionBetweenLists) {
  core::LocalMessagePool pool;
  pubsub::SubscriptionIndex index;
  Plain a, b, c;
  const pubsub::DeliveryOptions latest{true, 4};
  ASSERT_TRUE(index.subscribe(a, "X", latest));
  ASSERT_TRUE(index.subscribe(b, "X", latest));
  ASSERT_TRUE(index.subscribe(c, "X"));
  pubsub::ChannelSubscribers& ch = *index.find("X");
  EXPECT_EQ(ch.subscribers.size(), 1u);
  ASSERT_EQ(ch.latest_subscribers.size(), 2u);
  EXPECT_EQ(a.subscriptions()[0].latest->min_interval_ns, 250'000'000);
  EXPECT_EQ(index.latest_subscription_count(), 2u);

  EXPECT_FALSE(index.subscribe(a, "X", latest));  // same options: nothing changes
  EXPECT_FALSE(index.subscribe(a, "X"));          // no options: the subscription's stay
  EXPECT_TRUE(a.subscriptions()[0].options.latest);

  index.hold(*a.subscriptions()[0].latest, pool.adopt(std::make_shared<core::Message>()));
  EXPECT_EQ(index.held_count(), 1u);
  EXPECT_FALSE(index.subscribe(a, "X", pubsub::DeliveryOptions{}));  // a becomes `all`
  EXPECT_EQ(index.held_count(), 0u);
  EXPECT_EQ(index.latest_subscription_count(), 1u);
  ASSERT_EQ(ch.latest_subscribers.size(), 1u);
  EXPECT_EQ(ch.latest_subscribers[0]->subscriber, &b);  // b moved into a's slot
  EXPECT_EQ(b.subscriptions()[0].position, 0u);
  ASSERT_EQ(ch.subscribers.size(), 2u);
  EXPECT_EQ(a.subscriptions()[0].position, 1u);
  EXPECT_EQ(ch.subscribers[1], &a);

  EXPECT_FALSE(index.subscribe(c, "X", latest));  // c becomes `latest`
  ASSERT_EQ(ch.subscribers.size(), 1u);
  EXPECT_EQ(ch.subscribers[0], &a);
  EXPECT_EQ(a.subscriptions()[0].position, 0u);
  index.unsubscribe_all(b);
  EXPECT_EQ(ch.latest_subscribers[0]->subscriber, &c);
  EXPECT_EQ(c.subscriptions()[0].position, 0u);
  index.unsubscribe_all(a);
  index.unsubscribe_all(c);
  EXPECT_EQ(index.latest_subscription_count(), 0u);
  EXPECT_EQ(index.channel_count(), 0u);
}

TEST(SubscriptionIndex, UnusedEntriesAreErasedButOnesWithALatestMessageStay) {
  core::LocalMessagePool pool;  // outlives the index, whose entries hold references into it
  pubsub::SubscriptionIndex index;
  index.erase_if_unused(index.entry("A"));
  EXPECT_EQ(index.find("A"), nullptr);
  auto message = std::make_shared<core::Message>();
  pubsub::ChannelSubscribers& b = index.entry("B");
  b.latest = pool.adopt(message);
  index.erase_if_unused(b);
  EXPECT_NE(index.find("B"), nullptr);
}

TEST(SessionSubscriptions, SubscribeUnsubscribeKeepTheIndexConsistent) {
  pubsub::SubscriptionIndex index;
  session::Session a(session::SessionId{0, 1}, 10), b(session::SessionId{0, 2}, 10),
      c(session::SessionId{0, 3}, 10);
  EXPECT_TRUE(index.subscribe(a, "X"));
  EXPECT_FALSE(index.subscribe(a, "X"));  // already subscribed
  EXPECT_TRUE(index.subscribe(b, "X"));
  EXPECT_TRUE(index.subscribe(c, "X"));
  EXPECT_TRUE(index.subscribe(c, "Y"));
  EXPECT_EQ(index.find("X")->subscribers.size(), 3u);

  // Removing `a` moves `c` into its slot; `c` must still be removable afterwards.
  EXPECT_TRUE(index.unsubscribe(a, "X"));
  EXPECT_FALSE(index.unsubscribe(a, "X"));
  EXPECT_TRUE(index.unsubscribe(c, "X"));
  ASSERT_EQ(index.find("X")->subscribers.size(), 1u);
  EXPECT_EQ(index.find("X")->subscribers[0], &b);
  EXPECT_TRUE(c.subscribed_to("Y"));
  EXPECT_FALSE(c.subscribed_to("X"));

  index.unsubscribe_all(b);
  index.unsubscribe_all(c);
  EXPECT_EQ(index.find("X"), nullptr);  // no subscribers, no message: gone
  EXPECT_EQ(index.find("Y"), nullptr);
  EXPECT_EQ(index.channel_count(), 0u);
}

TEST(SessionSubscriptions, ManySubscribersRemovedInAnyOrder) {
  pubsub::SubscriptionIndex index;
  std::vector<std::unique_ptr<session::Session>> sessions;
  for (uint64_t i = 0; i < 50; ++i) {
    sessions.push_back(std::make_unique<session::Session>(session::SessionId{0, i}, 4));
    ASSERT_TRUE(index.subscribe(*sessions.back(), "C"));
  }
  for (size_t i = 0; i < sessions.size(); i += 2)
    ASSERT_TRUE(index.unsubscribe(*sessions[i], "C"));
  const auto& subs = index.find("C")->subscribers;
  ASSERT_EQ(subs.size(), 25u);
  for (size_t i = 1; i < sessions.size(); i += 2) {
    EXPECT_NE(std::find(subs.begin(), subs.end(), sessions[i].get()), subs.end());
  }
  for (size_t i = 1; i < sessions.size(); i += 2)
    ASSERT_TRUE(index.unsubscribe(*sessions[i], "C"));
  EXPECT_EQ(index.find("C"), nullptr);
}

TEST(SessionId, TextRoundTripsAndCarriesTheThread) {
  const session::SessionId id{0x0123456789abcdefULL, 0xfedcba9876543205ULL};
  EXPECT_EQ(id.text(), "0123456789abcdeffedcba9876543205");
  ASSERT_TRUE(session::SessionId::parse(id.text()));
  EXPECT_EQ(*session::SessionId::parse(id.text()), id);
  EXPECT_EQ(id.thread(), 5u);
  EXPECT_FALSE(session::SessionId::parse("xyz"));
  EXPECT_FALSE(session::SessionId::parse("0123456789abcdeffedcba987654320g"));
  EXPECT_FALSE(session::SessionId::parse("0123456789abcdeffedcba98765432051"));
  EXPECT_FALSE(session::SessionId::parse("0123456789ABCDEFFEDCBA9876543205"));
}

// Ids must not be predictable from each other (a resume is authorised by the id alone): every
// bit other than the routing byte varies across ids, and no two are equal.
TEST(SessionId, RandomIdsKeepTheirThreadAndShareNoPattern) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  uint64_t hi_or = 0, hi_and = ~uint64_t{0}, lo_or = 0, lo_and = ~uint64_t{0};
  for (int i = 0; i < 2000; ++i) {
    const session::SessionId id = session::SessionId::random(7);
    EXPECT_EQ(id.thread(), 7u);
    EXPECT_TRUE(seen.insert({id.hi, id.lo}).second);
    hi_or |= id.hi, hi_and &= id.hi, lo_or |= id.lo, lo_and &= id.lo;
  }
  EXPECT_EQ(hi_or, ~uint64_t{0});
  EXPECT_EQ(hi_and, 0u);
  EXPECT_EQ(lo_or | 0xff, ~uint64_t{0});
  EXPECT_EQ(lo_and & ~uint64_t{0xff}, 0u);
  // Consecutive ids are not a counter: their differences are not all the same.
  const session::SessionId a = session::SessionId::random(0), b = session::SessionId::random(0),
                           c = session::SessionId::random(0);
  EXPECT_FALSE(b.hi - a.hi == c.hi - b.hi && b.lo - a.lo == c.lo - b.lo);
}

// The detached-session budget: oldest first, per address before per thread, and a detached
// session keeps no channel entry once it is gone.
TEST(SessionTable, DetachedBudgetEvictsTheOldestAndFreesItsChannels) {
  pubsub::SubscriptionIndex index;
  session::SessionTable table;
  auto detach_new = [&](uint64_t n, uint32_t address) -> session::Session& {
    session::Session& s = table.create(session::SessionId{n, n << 8}, 4, {address, ""});
    index.subscribe(s, "CH" + std::to_string(n));
    s.end_transit(static_cast<int64_t>(n));  // detached at time n, as a hang-up leaves it
    table.on_detached(s);
    return s;
  };
  for (uint64_t n = 1; n <= 3; ++n)
    table.evict_over_budget(detach_new(n, 0x7f000001).client_address(), 10, 2, index);
  // Address budget 2: the oldest of that address (1) went, with its channel entry.
  EXPECT_EQ(table.detached(), 2u);
  EXPECT_EQ(table.find(session::SessionId{1, 1 << 8}), nullptr);
  EXPECT_EQ(index.find("CH1"), nullptr);
  EXPECT_NE(index.find("CH2"), nullptr);
  // Another address does not push out the first one's sessions until the thread budget does.
  for (uint64_t n = 4; n <= 5; ++n)
    table.evict_over_budget(detach_new(n, 0x0a000001).client_address(), 3, 2, index);
  EXPECT_EQ(table.detached(), 3u);
  EXPECT_EQ(table.find(session::SessionId{2, 2 << 8}), nullptr);  // oldest overall
  EXPECT_NE(table.find(session::SessionId{3, 3 << 8}), nullptr);
  EXPECT_EQ(index.channel_count(), 3u);
  // Expiry walks the same order: everything detached at or before 4 is over a TTL of 1 at 5.
  EXPECT_EQ(table.expire(5, 1, index), 2u);
  EXPECT_EQ(table.detached(), 1u);
  EXPECT_NE(table.find(session::SessionId{5, 5 << 8}), nullptr);
  EXPECT_EQ(table.expire(6, 1, index), 1u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(index.channel_count(), 0u);
}

// A session in transit (its connection on its way to another thread) is neither expired nor
// evicted, and is not detached for a resume.
TEST(SessionTable, ASessionInTransitIsNeitherExpiredNorEvicted) {
  pubsub::SubscriptionIndex index;
  session::SessionTable table;
  session::Session& moving = table.create(session::SessionId{1, 0}, 4);
  moving.begin_transit();
  table.on_detached(moving);  // ignored: not detached
  EXPECT_FALSE(moving.detached());
  EXPECT_EQ(table.detached(), 0u);
  EXPECT_EQ(table.expire(1'000'000, 1, index), 0u);
  EXPECT_EQ(table.evict_over_budget(0, 0, 0, index), 0u);
  EXPECT_NE(table.find(session::SessionId{1, 0}), nullptr);
  moving.end_transit(10);  // its connection died on the way: resumable until the TTL
  table.on_detached(moving);
  EXPECT_TRUE(moving.detached());
  EXPECT_EQ(table.expire(10, 5, index), 0u);
  EXPECT_EQ(table.expire(15, 5, index), 1u);
}

// After a restore, only the restored channels skip what the other instance already sent.
TEST(Session, RestoredSkipAppliesOnlyToTheRestoredChannels) {
  pubsub::SubscriptionIndex index;
  session::Session s(session::SessionId{0, 1}, 4);
  index.subscribe(s, "A");
  s.skip_restored_through(100);
  index.subscribe(s, "B");
  const pubsub::ChannelSubscribers* a = index.find("A");
  const pubsub::ChannelSubscribers* b = index.find("B");
  EXPECT_TRUE(s.already_sent(a, 100));
  EXPECT_FALSE(s.already_sent(a, 101));
  EXPECT_FALSE(s.already_sent(b, 50));  // subscribed after the restore: nothing was sent
  EXPECT_FALSE(s.already_sent(a, 0));   // no position (not JetStream)
}

}  // namespace
}  // namespace odin
