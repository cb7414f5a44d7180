// Unit tests of Session::deliver, the one place a data frame gets a seq: numbering is contiguous
// and per session, the replay ring keeps what was numbered, nothing is queued for a session
// without a connection or whose connection takes no more data, and a connected session's client
// reads exactly the frame header, `{"seq":N,` and the message's shared envelope tail. One
// Worker's parts, built alone; its loop is driven by hand (no thread) and the client end is a
// real TCP socket over 127.0.0.1.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/envelope.hpp"
#include "loop_harness.hpp"
#include "ops/config.hpp"

namespace odin {
namespace {

using namespace odin::testing;

constexpr int64_t kTs = 1700000000123;

// One message on channel `channel` whose data is `data` (JSON), numbered nowhere yet.
core::MessageRef make_message(net::EventLoop& loop, std::string_view channel,
                              std::string_view data) {
  return loop.pool().adopt(
      core::encode_message(core::IngestItem{channel, "tick", data, true}, kTs, 0));
}

// What the ring holds, as (seq, message) pairs in seq order.
std::vector<std::pair<uint64_t, core::MessageRef>> ring_of(const session::Session& session) {
  std::vector<std::pair<uint64_t, core::MessageRef>> out;
  session.ring().for_range(
      1, UINT64_MAX, [&](uint64_t seq, const core::MessageRef& m) { out.emplace_back(seq, m); });
  return out;
}

TEST(Deliver, NumbersContiguouslyPerSessionAndKeepsTheMessagesInTheRing) {
  ops::Config config;
  config.replay_size = 3;
  SoloWorker worker(config);
  net::EventLoop& loop = worker.loop();
  session::SessionTable& sessions = worker.clients().sessions();
  session::Session& a = sessions.create(session::SessionId{1, 0x100}, config.replay_size);
  session::Session& b = sessions.create(session::SessionId{2, 0x200}, config.replay_size);
  std::vector<core::MessageRef> messages;
  for (int i = 1; i <= 5; ++i)
    messages.push_back(make_message(loop, "A", "{\"n\":" + std::to_string(i) + "}"));

  for (const core::MessageRef& m : messages)
    EXPECT_FALSE(a.deliver(m, loop.out())) << "no connection: no frame";
  EXPECT_FALSE(b.deliver(messages[4], loop.out()));
  EXPECT_FALSE(b.deliver(messages[0], loop.out()));

  EXPECT_EQ(a.seq(), 5u);
  EXPECT_EQ(b.seq(), 2u) << "each session numbers on its own";
  EXPECT_TRUE(loop.out().empty());
  // The ring (3 slots) keeps the newest three, under the seqs they were given.
  const auto ring_a = ring_of(a);
  ASSERT_EQ(ring_a.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ring_a[i].first, 3 + i);
    EXPECT_TRUE(ring_a[i].second == messages[2 + i]) << "seq " << 3 + i;
  }
  EXPECT_EQ(a.ring().first_seq(), 3u);
  EXPECT_EQ(a.ring().last_seq(), 5u);
  const auto ring_b = ring_of(b);
  ASSERT_EQ(ring_b.size(), 2u);
  EXPECT_EQ(ring_b[0].first, 1u);
  EXPECT_TRUE(ring_b[0].second == messages[4]);
  EXPECT_EQ(ring_b[1].first, 2u);
  EXPECT_TRUE(ring_b[1].second == messages[0]);

  // A session restored from another instance numbers on from the client's last seq there.
  a.continue_numbering_after(41);
  EXPECT_FALSE(a.deliver(messages[0], loop.out()));
  EXPECT_EQ(a.seq(), 42u);
  EXPECT_EQ(a.ring().last_seq(), 42u);
  EXPECT_TRUE(a.ring().newest() == messages[0]);
}

TEST(Deliver, QueuesNoFrameWhenTheConnectionTakesNoMoreData) {
  ops::Config config;
  SoloWorker worker(config);
  net::EventLoop& loop = worker.loop();
  TcpPair pair = make_tcp_pair();
  ClientEnd end{pair.client.get()};
  AttachedClient attached = attach_client(worker, pair, session::SessionId{1, 0x100});
  ASSERT_NE(attached.session, nullptr);
  session::Session& session = *attached.session;
  ASSERT_EQ(session.connection(), attached.conn);
  const core::MessageRef m1 = make_message(loop, "A", "1");
  const core::MessageRef m2 = make_message(loop, "A", "2");

  ASSERT_TRUE(session.deliver(m1, loop.out()));
  loop.flush();
  ASSERT_TRUE(end.read_at_least({&loop}, 2));
  // The connection is closing (its last frame queued): it takes no more data frames, but the
  // session still numbers and keeps the message for a resume.
  attached.conn->close_after_flush(true);
  ASSERT_FALSE(attached.conn->accepts_data());
  EXPECT_FALSE(session.deliver(m2, loop.out()));
  EXPECT_TRUE(loop.out().empty());
  EXPECT_FALSE(attached.conn->outbound().in_batch());
  EXPECT_EQ(session.seq(), 2u);
  const auto ring = ring_of(session);
  ASSERT_EQ(ring.size(), 2u);
  EXPECT_TRUE(ring[1].second == m2);
}

TEST(Deliver, WritesExactlyTheFrameHeaderTheSeqAndTheEnvelopeTail) {
  ops::Config config;
  SoloWorker worker(config);
  net::EventLoop& loop = worker.loop();
  TcpPair pair = make_tcp_pair();
  ClientEnd end{pair.client.get()};
  AttachedClient attached = attach_client(worker, pair, session::SessionId{1, 0x100});
  ASSERT_NE(attached.session, nullptr);
  session::Session& session = *attached.session;

  const std::string big_data = "\"" + std::string(200, 'x') + "\"";
  const core::MessageRef small = make_message(loop, "A", "{\"n\":1}");
  const core::MessageRef big = make_message(loop, "prices.btc", big_data);
  ASSERT_TRUE(session.deliver(small, loop.out()));
  ASSERT_TRUE(session.deliver(big, loop.out()));
  session.continue_numbering_after(99);
  ASSERT_TRUE(session.deliver(small, loop.out()));
  loop.flush();
  EXPECT_TRUE(loop.out().empty());

  // Written by hand from the protocol (docs/protocol.md: seq, ts, type, channel, data).
  const std::string p1 =
      "{\"seq\":1,\"ts\":1700000000123,\"type\":\"tick\",\"channel\":\"A\","
      "\"data\":{\"n\":1}}";
  const std::string p2 =
      "{\"seq\":2,\"ts\":1700000000123,\"type\":\"tick\",\"channel\":"
      "\"prices.btc\",\"data\":" +
      big_data + "}";
  const std::string p3 =
      "{\"seq\":100,\"ts\":1700000000123,\"type\":\"tick\",\"channel\":\"A\","
      "\"data\":{\"n\":1}}";
  ASSERT_LT(p1.size(), 126u);
  ASSERT_GE(p2.size(), 126u);
  ASSERT_LT(p2.size(), 65536u);
  std::string expected;
  expected += '\x81';
  expected += static_cast<char>(p1.size());
  expected += p1;
  expected += '\x81';
  expected += static_cast<char>(126);
  expected += static_cast<char>(p2.size() >> 8);
  expected += static_cast<char>(p2.size() & 0xff);
  expected += p2;
  expected += '\x81';
  expected += static_cast<char>(p3.size());
  expected += p3;

  ASSERT_TRUE(end.read_at_least({&loop}, expected.size()));
  run_ready({&loop});
  end.read_available();
  EXPECT_EQ(end.bytes, expected);
  EXPECT_FALSE(end.eof);
  // The tail is the message's shared one: the session's frame only adds `{"seq":N,`.
  EXPECT_EQ(small->tail, p1.substr(p1.find("\"ts\"")));
}

}  // namespace
}  // namespace odin
