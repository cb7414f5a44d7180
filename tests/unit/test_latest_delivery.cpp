// Unit tests of `latest` delivery to a connected client (docs/protocol.md, latest-value
// subscriptions): a drain turn offers a `latest` subscriber only its channel's newest message of
// the turn and counts the older ones in `conflated`, also for a session restored from an instance
// that already sent some of them; a connection with a backlog holds its `latest` messages (one
// per channel) and sends the newest with its count once the backlog has drained, while its `all`
// channel gets every frame in order. One Worker's parts built alone, its loop driven by hand; the
// client end is a real TCP socket over 127.0.0.1.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/clock.hpp"
#include "hub/fanout.hpp"
#include "loop_harness.hpp"
#include "ops/config.hpp"

namespace odin {
namespace {

using namespace odin::testing;

const pubsub::DeliveryOptions kLatest{true, 0};

struct LatestClient {
  explicit LatestClient(const ops::Config& settings, int client_rcvbuf = 0, int server_sndbuf = 0)
      : config(settings),
        worker(config),
        pair(make_tcp_pair(client_rcvbuf, server_sndbuf)),
        end{pair.client.get()} {
    attached = attach_client(worker, pair, session::SessionId{3, 0x300});
  }
  net::EventLoop& loop() { return worker.loop(); }
  pubsub::SubscriptionIndex& index() { return worker.clients().index(); }
  session::Session& session() { return *attached.session; }
  // Pumps the loop until the fan-out has taken everything queued.
  bool drained() {
    return pump_until({&loop()}, [&] { return worker.fanout().queued_bytes() == 0; });
  }

  ops::Config config;  // the worker keeps a reference: it must outlive it
  SoloWorker worker;
  hub::Hub hub{{&worker.fanout()}};
  TcpPair pair;
  ClientEnd end;
  AttachedClient attached;
};

core::IngestItem item(std::string_view channel, const std::string& data, uint64_t pos = 0) {
  core::IngestItem out{channel, "tick", data, true};
  out.pos = pos;
  return out;
}

// Data `{"n":N}` keeps each item's string alive for the ingest.
std::vector<std::string> numbered(int count) {
  std::vector<std::string> out;
  for (int i = 1; i <= count; ++i)
    out.push_back("{\"n\":" + std::to_string(i) + "}");
  return out;
}

TEST(LatestDelivery, ATurnOffersLatestSubscribersOnlyTheNewestMessageOfTheirChannel) {
  LatestClient c(ops::Config{});
  ASSERT_NE(c.attached.session, nullptr);
  ASSERT_TRUE(c.index().subscribe(c.session(), "L", kLatest));
  ASSERT_TRUE(c.index().subscribe(c.session(), "A"));
  // L1 A1 L2 A2 ... L5 A5, ingested before the loop runs: one drain turn.
  const std::vector<std::string> data = numbered(5);
  std::vector<core::IngestItem> items;
  for (const std::string& d : data) {
    items.push_back(item("L", d));
    items.push_back(item("A", d));
  }
  c.hub.ingest(items);
  ASSERT_TRUE(c.drained());

  const std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, 6);
  ASSERT_EQ(frames.size(), 6u);
  // In the turn's order: A1..A4, then L5 where L5 stood (before A5), counting L1..L4.
  const std::vector<std::pair<std::string, int>> expected = {{"A", 1}, {"A", 2}, {"A", 3},
                                                             {"A", 4}, {"L", 5}, {"A", 5}};
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(json_member(frames[i].payload, "seq"), std::to_string(i + 1));
    EXPECT_EQ(json_member(frames[i].payload, "channel"), expected[i].first);
    EXPECT_TRUE(frames[i].payload.ends_with("\"data\":" + data[expected[i].second - 1] + "}"));
    EXPECT_EQ(json_member(frames[i].payload, "conflated"), expected[i].first == "L" ? "4" : "");
  }
  EXPECT_EQ(c.session().conflated_of(5), 4u);
  EXPECT_EQ(c.index().conflated_total(), 4u);
  EXPECT_EQ(c.index().held_count(), 0u);
  EXPECT_TRUE(c.end.bytes.empty());
}

// A session restored from an instance that was further along the stream: of the turn's skipped
// messages, `conflated` counts only the ones that instance had not sent.
TEST(LatestDelivery, ARestoredSessionCountsOnlyWhatItWasNotSentElsewhere) {
  LatestClient c(ops::Config{});
  ASSERT_NE(c.attached.session, nullptr);
  ASSERT_TRUE(c.index().subscribe(c.session(), "L", kLatest));
  c.session().skip_restored_through(12);
  const std::vector<std::string> data = numbered(6);
  std::vector<core::IngestItem> items;
  for (size_t i = 0; i < data.size(); ++i)
    items.push_back(item("L", data[i], 10 + i));  // positions 10..15; 10..12 already sent
  c.hub.ingest(items);
  ASSERT_TRUE(c.drained());

  const std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, 1);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(json_member(frames[0].payload, "seq"), "1");
  EXPECT_TRUE(frames[0].payload.ends_with("\"data\":" + data[5] + "}"));
  EXPECT_EQ(json_member(frames[0].payload, "conflated"), "2");  // 13 and 14
  // Nothing else comes.
  run_ready({&c.loop()});
  c.end.read_available();
  EXPECT_TRUE(c.end.bytes.empty());
}

// A backlog well under WS_CONFLATE_BYTES already holds `latest` messages: queued behind it they
// would only be superseded.
TEST(LatestDelivery, ABackloggedConnectionHoldsTheNewestAndSendsItWhenTheBacklogDrains) {
  ops::Config config;
  config.client_queue_bytes = 4 << 20;
  config.conflate_bytes = 1 << 20;
  LatestClient c(config, /*client_rcvbuf=*/4096, /*server_sndbuf=*/4096);
  ASSERT_NE(c.attached.session, nullptr);
  c.attached.conn->limit_unsent_in_kernel(static_cast<uint32_t>(config.conflate_bytes));
  ASSERT_TRUE(c.index().subscribe(c.session(), "A"));
  ASSERT_TRUE(c.index().subscribe(c.session(), "L", kLatest));

  constexpr int kAll = 100;
  const std::string big = "\"" + std::string(1000, 'd') + "\"";
  c.hub.ingest(std::vector<core::IngestItem>(kAll, item("A", big)));
  ASSERT_TRUE(c.drained());
  const size_t backlog = c.attached.conn->outbound().backlog_bytes();
  EXPECT_GT(backlog, 0u) << "the client reads nothing yet";
  EXPECT_LT(backlog, config.conflate_bytes);

  // Three turns of L, one message each: held, each replacing the one before.
  const std::vector<std::string> data = numbered(3);
  for (const std::string& d : data) {
    c.hub.ingest(std::vector<core::IngestItem>{item("L", d)});
    ASSERT_TRUE(c.drained());
  }
  EXPECT_EQ(c.session().seq(), static_cast<uint64_t>(kAll));
  EXPECT_EQ(c.index().held_count(), 1u);
  EXPECT_EQ(c.index().conflated_total(), 2u);

  // The client reads: every A frame in order, then L3 counting L1 and L2.
  const std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, kAll + 1);
  ASSERT_EQ(frames.size(), static_cast<size_t>(kAll + 1));
  for (int i = 0; i < kAll; ++i) {
    ASSERT_EQ(json_member(frames[i].payload, "seq"), std::to_string(i + 1));
    ASSERT_EQ(json_member(frames[i].payload, "channel"), "A");
  }
  const std::string& last = frames[kAll].payload;
  EXPECT_EQ(json_member(last, "seq"), std::to_string(kAll + 1));
  EXPECT_EQ(json_member(last, "channel"), "L");
  EXPECT_EQ(json_member(last, "conflated"), "2");
  EXPECT_TRUE(last.ends_with("\"data\":" + data[2] + "}"));
  EXPECT_EQ(c.index().held_count(), 0u);
  EXPECT_EQ(c.loop().stats().slow_consumer_closes.get(), 0u);
}

// A snapshot on a `max_hz` subscription that holds a message for its rate: the snapshot's message
// (the channel's newest) goes at once and the held one is not sent after it; the rate counts from
// the snapshot.
TEST(LatestDelivery, ASnapshotReplacesTheHeldMessageAndRestartsTheRate) {
  LatestClient c(ops::Config{});
  ASSERT_NE(c.attached.session, nullptr);
  ASSERT_TRUE(c.index().subscribe(c.session(), "L", pubsub::DeliveryOptions{true, 2}));
  const std::vector<std::string> data = numbered(3);
  c.hub.ingest(std::vector<core::IngestItem>{item("L", data[0])});
  ASSERT_TRUE(c.drained());
  c.hub.ingest(std::vector<core::IngestItem>{item("L", data[1])});
  ASSERT_TRUE(c.drained());
  ASSERT_EQ(c.session().seq(), 1u);
  ASSERT_EQ(c.index().held_count(), 1u) << "L2 waits for the next slot, 500 ms after L1";

  const pubsub::ChannelSubscribers* channel = c.index().find("L");
  ASSERT_NE(channel, nullptr);
  const int64_t snapshot_ns = core::steady_ns();
  ASSERT_TRUE(
      c.session().deliver_snapshot(c.index(), channel->latest, snapshot_ns, c.loop().out()));
  c.loop().flush();
  EXPECT_EQ(c.index().held_count(), 0u);
  EXPECT_EQ(c.session().subscriptions()[0].latest->last_sent_ns, snapshot_ns);

  // L3 right after the snapshot waits for its slot, 500 ms after the snapshot.
  c.hub.ingest(std::vector<core::IngestItem>{item("L", data[2])});
  ASSERT_TRUE(c.drained());
  EXPECT_EQ(c.index().held_count(), 1u);
  const std::vector<Frame> frames = read_frames(c.end, {&c.loop()}, 3);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_GE(core::steady_ns() - snapshot_ns, 450'000'000);
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(json_member(frames[i].payload, "seq"), std::to_string(i + 1));
    EXPECT_TRUE(frames[i].payload.ends_with("\"data\":" + data[i] + "}"));
    EXPECT_EQ(json_member(frames[i].payload, "conflated"), "");
  }
  // Nothing else: the held L2 was the snapshot's message.
  EXPECT_FALSE(pump_until(
      {&c.loop()},
      [&] {
        c.end.read_available();
        return !c.end.bytes.empty();
      },
      std::chrono::milliseconds(700)));
}

}  // namespace
}  // namespace odin
