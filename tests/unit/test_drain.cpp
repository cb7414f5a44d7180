// Unit tests of ThreadFanout::drain over real sessions and a socket-backed batch: a Hub over one
// Worker's fan-out, sessions subscribed in its index, some with a WebSocket client on a real TCP
// socket. After a publish and a turn of the loop, each connected client reads exactly its frames
// in order with seq 1..N, a detached session is numbered and keeps them in its ring, and a
// session restored from another instance skips what it was sent there. The loop is driven by
// hand (no thread).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hub/fanout.hpp"
#include "loop_harness.hpp"
#include "ops/config.hpp"

namespace odin {
namespace {

using namespace odin::testing;

ops::Config drain_config() {
  ops::Config config;
  config.history_max_age = ops::Millis(60'000);
  return config;
}

// Publishes `count` messages on `channel` whose data is {"n":i}, i from `first`; positions
// from `first_pos` (0: none).
void publish(hub::Hub& hub, std::string_view channel, int first, int count,
             uint64_t first_pos = 0) {
  std::vector<std::string> data;
  for (int i = 0; i < count; ++i)
    data.push_back("{\"n\":" + std::to_string(first + i) + "}");
  std::vector<core::IngestItem> items;
  for (int i = 0; i < count; ++i) {
    core::IngestItem item{channel, "tick", data[static_cast<size_t>(i)], true};
    item.pos = first_pos == 0 ? 0 : first_pos + static_cast<uint64_t>(i);
    items.push_back(item);
  }
  hub.ingest(items);
}

// The frame payload a session with `seq` gets for `message`.
std::string payload_for(uint64_t seq, const core::MessageRef& message) {
  return "{\"seq\":" + std::to_string(seq) + "," + message->tail;
}

// The message a session's ring holds under `seq` (null when none).
core::MessageRef ring_at(const session::Session& session, uint64_t seq) {
  core::MessageRef found;
  session.ring().for_range(seq, seq, [&](uint64_t, const core::MessageRef& m) { found = m; });
  return found;
}

TEST(Drain, ConnectedSessionsReadTheirFramesInOrderAndADetachedOneIsNumbered) {
  const ops::Config config = drain_config();
  SoloWorker worker(config);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  hub::Hub hub({&worker.fanout()});

  TcpPair pair1 = make_tcp_pair();
  TcpPair pair2 = make_tcp_pair();
  ClientEnd end1{pair1.client.get()};
  ClientEnd end2{pair2.client.get()};
  AttachedClient c1 = attach_client(worker, pair1, session::SessionId{1, 0x100});
  AttachedClient c2 = attach_client(worker, pair2, session::SessionId{2, 0x100});
  ASSERT_NE(c1.session, nullptr);
  ASSERT_NE(c2.session, nullptr);
  session::Session& detached =
      worker.clients().sessions().create(session::SessionId{3, 0x100}, config.replay_size);
  session::Session& elsewhere =
      worker.clients().sessions().create(session::SessionId{4, 0x100}, config.replay_size);
  for (session::Session* s : {c1.session, c2.session, &detached})
    ASSERT_TRUE(index.subscribe(*s, "A"));
  ASSERT_TRUE(index.subscribe(elsewhere, "B"));
  // c2 also on B: its frames of both channels come in publish order.
  ASSERT_TRUE(index.subscribe(*c2.session, "B"));

  constexpr int kCount = 5;
  publish(hub, "A", 1, 3);
  publish(hub, "B", 100, 1);
  publish(hub, "A", 4, 2);
  EXPECT_GT(worker.fanout().queued_bytes(), 0u);

  // c1 gets the five A messages, c2 the five A and the B one between them.
  const std::vector<Frame> frames1 = read_frames(end1, {&loop}, kCount);
  const std::vector<Frame> frames2 = read_frames(end2, {&loop}, kCount + 1);
  ASSERT_EQ(frames1.size(), static_cast<size_t>(kCount));
  ASSERT_EQ(frames2.size(), static_cast<size_t>(kCount + 1));
  EXPECT_EQ(worker.fanout().queued_bytes(), 0u);

  const std::vector<int> c2_data = {1, 2, 3, 100, 4, 5};
  for (size_t i = 0; i < frames1.size(); ++i) {
    const uint64_t seq = i + 1;
    const core::MessageRef m = ring_at(*c1.session, seq);
    ASSERT_TRUE(m) << seq;
    EXPECT_EQ(frames1[i].opcode, 0x1);
    EXPECT_TRUE(frames1[i].fin);
    EXPECT_EQ(frames1[i].payload, payload_for(seq, m));
    EXPECT_EQ(json_member(frames1[i].payload, "seq"), std::to_string(seq));
    EXPECT_TRUE(frames1[i].payload.ends_with(
        ",\"type\":\"tick\",\"channel\":\"A\",\"data\":{\"n\":" + std::to_string(seq) + "}}"))
        << frames1[i].payload;
  }
  for (size_t i = 0; i < frames2.size(); ++i) {
    const uint64_t seq = i + 1;
    const std::string channel = c2_data[i] == 100 ? "B" : "A";
    EXPECT_EQ(frames2[i].opcode, 0x1);
    EXPECT_EQ(frames2[i].payload, payload_for(seq, ring_at(*c2.session, seq)));
    EXPECT_TRUE(frames2[i].payload.ends_with(
        ",\"channel\":\"" + channel + "\",\"data\":{\"n\":" + std::to_string(c2_data[i]) + "}}"))
        << frames2[i].payload;
  }
  // Nothing more was written to either client.
  run_ready({&loop});
  end1.read_available();
  end2.read_available();
  EXPECT_TRUE(end1.bytes.empty());
  EXPECT_TRUE(end2.bytes.empty());

  EXPECT_EQ(c1.session->seq(), 5u);
  EXPECT_EQ(c2.session->seq(), 6u);
  // The detached session: numbered like the others, every message in its ring, none written.
  EXPECT_EQ(detached.seq(), 5u);
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    const core::MessageRef m = ring_at(detached, seq);
    ASSERT_TRUE(m) << seq;
    EXPECT_TRUE(m == ring_at(*c1.session, seq)) << "the same shared message, seq " << seq;
  }
  EXPECT_EQ(elsewhere.seq(), 1u);
  EXPECT_EQ(loop.stats().messages_out.get(), 11u) << "frames queued: c1 5, c2 6";
}

TEST(Drain, ARestoredSessionSkipsWhatAnotherInstanceSentThrough) {
  const ops::Config config = drain_config();
  SoloWorker worker(config);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  hub::Hub hub({&worker.fanout()});

  TcpPair pair = make_tcp_pair();
  ClientEnd end{pair.client.get()};
  AttachedClient restored = attach_client(worker, pair, session::SessionId{1, 0x100});
  ASSERT_NE(restored.session, nullptr);
  session::Session& fresh =
      worker.clients().sessions().create(session::SessionId{2, 0x100}, config.replay_size);
  ASSERT_TRUE(index.subscribe(*restored.session, "A"));
  ASSERT_TRUE(index.subscribe(fresh, "A"));
  // The client came from an instance that had sent it A through stream position 12, as its
  // seq 40.
  restored.session->skip_restored_through(12);
  restored.session->continue_numbering_after(40);

  publish(hub, "A", 1, 5, /*first_pos=*/10);  // positions 10..14, data n 1..5
  const std::vector<Frame> frames = read_frames(end, {&loop}, 2);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(json_member(frames[0].payload, "seq"), "41");
  EXPECT_EQ(json_member(frames[0].payload, "pos"), "13");
  EXPECT_TRUE(frames[0].payload.ends_with("\"data\":{\"n\":4}}")) << frames[0].payload;
  EXPECT_EQ(json_member(frames[1].payload, "seq"), "42");
  EXPECT_EQ(json_member(frames[1].payload, "pos"), "14");
  EXPECT_TRUE(frames[1].payload.ends_with("\"data\":{\"n\":5}}")) << frames[1].payload;
  run_ready({&loop});
  end.read_available();
  EXPECT_TRUE(end.bytes.empty()) << "positions 10..12 were not sent again";
  EXPECT_EQ(restored.session->seq(), 42u);
  EXPECT_EQ(restored.session->ring().first_seq(), 41u);
  // A session subscribed here skips nothing.
  EXPECT_EQ(fresh.seq(), 5u);
  EXPECT_EQ(json_member(ring_at(fresh, 1)->tail, "pos"), "10");
}

}  // namespace
}  // namespace odin
