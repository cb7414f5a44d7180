// Unit tests of the per-thread subscription index and of Session's subscription bookkeeping.
#include <gtest/gtest.h>

#include <set>

#include "pubsub/subscription_index.hpp"
#include "session/session.hpp"

namespace odin {
namespace {

TEST(SubscriptionIndex, EntryIsCreatedOnceAndFound) {
  SubscriptionIndex index;
  EXPECT_EQ(index.find("BTCUSD"), nullptr);
  ChannelSubscribers& a = index.entry("BTCUSD");
  ChannelSubscribers& b = index.entry("BTCUSD");
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(index.find("BTCUSD"), &a);
  EXPECT_EQ(a.name, "BTCUSD");
  EXPECT_EQ(index.channel_count(), 1u);
}

TEST(SubscriptionIndex, SwapRemoveReportsTheMovedSubscriber) {
  SubscriptionIndex index;
  ChannelSubscribers& ch = index.entry("X");
  Session* s1 = reinterpret_cast<Session*>(0x10);
  Session* s2 = reinterpret_cast<Session*>(0x20);
  Session* s3 = reinterpret_cast<Session*>(0x30);
  EXPECT_EQ(SubscriptionIndex::add(ch, s1), 0u);
  EXPECT_EQ(SubscriptionIndex::add(ch, s2), 1u);
  EXPECT_EQ(SubscriptionIndex::add(ch, s3), 2u);
  EXPECT_EQ(SubscriptionIndex::remove(ch, 0), s3);  // s3 moved into slot 0
  ASSERT_EQ(ch.sessions.size(), 2u);
  EXPECT_EQ(ch.sessions[0], s3);
  EXPECT_EQ(ch.sessions[1], s2);
  EXPECT_EQ(SubscriptionIndex::remove(ch, 1), nullptr);  // the last one: nothing moves
  EXPECT_EQ(ch.sessions.size(), 1u);
}

TEST(SubscriptionIndex, UnusedEntriesAreErasedButOnesWithALatestMessageStay) {
  LocalMessagePool pool;  // outlives the index, whose entries hold references into it
  SubscriptionIndex index;
  index.erase_if_unused(index.entry("A"));
  EXPECT_EQ(index.find("A"), nullptr);
  auto message = std::make_shared<Message>();
  ChannelSubscribers& b = index.entry("B");
  b.latest = pool.adopt(message);
  index.erase_if_unused(b);
  EXPECT_NE(index.find("B"), nullptr);
}

TEST(SessionSubscriptions, SubscribeUnsubscribeKeepTheIndexConsistent) {
  SubscriptionIndex index;
  Session a(SessionId{0, 1}, 10), b(SessionId{0, 2}, 10), c(SessionId{0, 3}, 10);
  EXPECT_TRUE(a.subscribe(index, "X"));
  EXPECT_FALSE(a.subscribe(index, "X"));  // already subscribed
  EXPECT_TRUE(b.subscribe(index, "X"));
  EXPECT_TRUE(c.subscribe(index, "X"));
  EXPECT_TRUE(c.subscribe(index, "Y"));
  EXPECT_EQ(index.find("X")->sessions.size(), 3u);

  // Removing `a` moves `c` into its slot; `c` must still be removable afterwards.
  EXPECT_TRUE(a.unsubscribe(index, "X"));
  EXPECT_FALSE(a.unsubscribe(index, "X"));
  EXPECT_TRUE(c.unsubscribe(index, "X"));
  ASSERT_EQ(index.find("X")->sessions.size(), 1u);
  EXPECT_EQ(index.find("X")->sessions[0], &b);
  EXPECT_TRUE(c.subscribed_to("Y"));
  EXPECT_FALSE(c.subscribed_to("X"));

  b.unsubscribe_all(index);
  c.unsubscribe_all(index);
  EXPECT_EQ(index.find("X"), nullptr);  // no subscribers, no message: gone
  EXPECT_EQ(index.find("Y"), nullptr);
  EXPECT_EQ(index.channel_count(), 0u);
}

TEST(SessionSubscriptions, ManySubscribersRemovedInAnyOrder) {
  SubscriptionIndex index;
  std::vector<std::unique_ptr<Session>> sessions;
  for (uint64_t i = 0; i < 50; ++i) {
    sessions.push_back(std::make_unique<Session>(SessionId{0, i}, 4));
    ASSERT_TRUE(sessions.back()->subscribe(index, "C"));
  }
  for (size_t i = 0; i < sessions.size(); i += 2)
    ASSERT_TRUE(sessions[i]->unsubscribe(index, "C"));
  const auto& subs = index.find("C")->sessions;
  ASSERT_EQ(subs.size(), 25u);
  for (size_t i = 1; i < sessions.size(); i += 2) {
    EXPECT_NE(std::find(subs.begin(), subs.end(), sessions[i].get()), subs.end());
  }
  for (size_t i = 1; i < sessions.size(); i += 2)
    ASSERT_TRUE(sessions[i]->unsubscribe(index, "C"));
  EXPECT_EQ(index.find("C"), nullptr);
}

TEST(SessionId, TextRoundTripsAndCarriesTheThread) {
  const SessionId id{0x0123456789abcdefULL, 0xfedcba9876543205ULL};
  EXPECT_EQ(id.text(), "0123456789abcdeffedcba9876543205");
  ASSERT_TRUE(SessionId::parse(id.text()));
  EXPECT_EQ(*SessionId::parse(id.text()), id);
  EXPECT_EQ(id.thread(), 5u);
  EXPECT_FALSE(SessionId::parse("xyz"));
  EXPECT_FALSE(SessionId::parse("0123456789abcdeffedcba987654320g"));
  EXPECT_FALSE(SessionId::parse("0123456789abcdeffedcba98765432051"));
  EXPECT_FALSE(SessionId::parse("0123456789ABCDEFFEDCBA9876543205"));
}

// Ids must not be predictable from each other (a resume is authorised by the id alone): every
// bit other than the routing byte varies across ids, and no two are equal.
TEST(SessionId, RandomIdsKeepTheirThreadAndShareNoPattern) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  uint64_t hi_or = 0, hi_and = ~uint64_t{0}, lo_or = 0, lo_and = ~uint64_t{0};
  for (int i = 0; i < 2000; ++i) {
    const SessionId id = SessionId::random(7);
    EXPECT_EQ(id.thread(), 7u);
    EXPECT_TRUE(seen.insert({id.hi, id.lo}).second);
    hi_or |= id.hi, hi_and &= id.hi, lo_or |= id.lo, lo_and &= id.lo;
  }
  EXPECT_EQ(hi_or, ~uint64_t{0});
  EXPECT_EQ(hi_and, 0u);
  EXPECT_EQ(lo_or | 0xff, ~uint64_t{0});
  EXPECT_EQ(lo_and & ~uint64_t{0xff}, 0u);
  // Consecutive ids are not a counter: their differences are not all the same.
  const SessionId a = SessionId::random(0), b = SessionId::random(0), c = SessionId::random(0);
  EXPECT_FALSE(b.hi - a.hi == c.hi - b.hi && b.lo - a.lo == c.lo - b.lo);
}

// The detached-session budget: oldest first, per address before per thread, and a detached
// session keeps no channel entry once it is gone.
TEST(SessionTable, DetachedBudgetEvictsTheOldestAndFreesItsChannels) {
  SubscriptionIndex index;
  SessionTable table;
  auto detach_new = [&](uint64_t n, uint32_t address) -> Session& {
    Session& s = table.create(SessionId{n, n << 8}, 4);
    s.client_address = address;
    s.subscribe(index, "CH" + std::to_string(n));
    s.end_transit(static_cast<int64_t>(n));  // detached at time n, as a hang-up leaves it
    table.on_detached(s);
    return s;
  };
  for (uint64_t n = 1; n <= 3; ++n)
    table.evict_over_budget(detach_new(n, 0x7f000001).client_address, 10, 2, index);
  // Address budget 2: the oldest of that address (1) went, with its channel entry.
  EXPECT_EQ(table.detached(), 2u);
  EXPECT_EQ(table.find(SessionId{1, 1 << 8}), nullptr);
  EXPECT_EQ(index.find("CH1"), nullptr);
  EXPECT_NE(index.find("CH2"), nullptr);
  // Another address does not push out the first one's sessions until the thread budget does.
  for (uint64_t n = 4; n <= 5; ++n)
    table.evict_over_budget(detach_new(n, 0x0a000001).client_address, 3, 2, index);
  EXPECT_EQ(table.detached(), 3u);
  EXPECT_EQ(table.find(SessionId{2, 2 << 8}), nullptr);  // oldest overall
  EXPECT_NE(table.find(SessionId{3, 3 << 8}), nullptr);
  EXPECT_EQ(index.channel_count(), 3u);
  // Expiry walks the same order: everything detached at or before 4 is over a TTL of 1 at 5.
  EXPECT_EQ(table.expire(5, 1, index), 2u);
  EXPECT_EQ(table.detached(), 1u);
  EXPECT_NE(table.find(SessionId{5, 5 << 8}), nullptr);
  EXPECT_EQ(table.expire(6, 1, index), 1u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(index.channel_count(), 0u);
}

// A session in transit (its connection on its way to another thread) is neither expired nor
// evicted, and is not detached for a resume.
TEST(SessionTable, ASessionInTransitIsNeitherExpiredNorEvicted) {
  SubscriptionIndex index;
  SessionTable table;
  Session& moving = table.create(SessionId{1, 0}, 4);
  moving.begin_transit();
  table.on_detached(moving);  // ignored: not detached
  EXPECT_FALSE(moving.detached());
  EXPECT_EQ(table.detached(), 0u);
  EXPECT_EQ(table.expire(1'000'000, 1, index), 0u);
  EXPECT_EQ(table.evict_over_budget(0, 0, 0, index), 0u);
  EXPECT_NE(table.find(SessionId{1, 0}), nullptr);
  moving.end_transit(10);  // its connection died on the way: resumable until the TTL
  table.on_detached(moving);
  EXPECT_TRUE(moving.detached());
  EXPECT_EQ(table.expire(10, 5, index), 0u);
  EXPECT_EQ(table.expire(15, 5, index), 1u);
}

// After a restore, only the restored channels skip what the other instance already sent.
TEST(Session, RestoredSkipAppliesOnlyToTheRestoredChannels) {
  SubscriptionIndex index;
  Session s(SessionId{0, 1}, 4);
  s.subscribe(index, "A");
  s.skip_restored_through(100);
  s.subscribe(index, "B");
  const ChannelSubscribers* a = index.find("A");
  const ChannelSubscribers* b = index.find("B");
  EXPECT_TRUE(s.already_sent(a, 100));
  EXPECT_FALSE(s.already_sent(a, 101));
  EXPECT_FALSE(s.already_sent(b, 50));  // subscribed after the restore: nothing was sent
  EXPECT_FALSE(s.already_sent(a, 0));   // no position (not JetStream)
}

}  // namespace
}  // namespace odin
