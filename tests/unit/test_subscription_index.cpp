// Unit tests of the per-thread subscription index and of Session's subscription bookkeeping.
#include <gtest/gtest.h>

#include "hub/subscription_index.hpp"
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
  Session a(1, 10), b(2, 10), c(3, 10);
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
    sessions.push_back(std::make_unique<Session>(i, 4));
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
  Session s(0x0123456789abcd05ULL, 1);
  EXPECT_EQ(s.id_text(), "0123456789abcd05");
  uint64_t parsed = 0;
  EXPECT_TRUE(Session::parse_id(s.id_text(), parsed));
  EXPECT_EQ(parsed, s.id());
  EXPECT_EQ(Session::thread_of(parsed), 5u);
  EXPECT_FALSE(Session::parse_id("xyz", parsed));
  EXPECT_FALSE(Session::parse_id("0123456789abcdeg", parsed));
  EXPECT_FALSE(Session::parse_id("0123456789abcd051", parsed));
}

}  // namespace
}  // namespace odin
