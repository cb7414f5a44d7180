// Unit tests of the fan-out's bounds: a drain turn delivers a bounded amount and continues in a
// later turn, the per-thread queues count their bytes, intake holds (JetStream) or drops (core
// NATS, Redis) while a thread is behind, the channel limit, and the sweep that ages histories and
// frees idle channels. A real Gateway's event loop, driven by hand (its thread never starts).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "app/gateway.hpp"
#include "broker/embedded_broker.hpp"
#include "broker/intake.hpp"
#include "hub/fanout.hpp"
#include "net/event_loop.hpp"
#include "session/session.hpp"
#include "ws/deflate.hpp"

namespace odin {
namespace {

ops::Config test_config() {
  ops::Config config;
  config.threads = 1;
  config.broker = ops::BrokerKind::kEmbedded;
  config.history_max_age = ops::Millis(60'000);
  return config;
}

// Ingests `count` messages of `payload_bytes` on `channel`, positions from `first_pos` (0: none).
void publish(hub::Hub& hub, std::string_view channel, size_t count, size_t payload_bytes = 16,
             uint64_t first_pos = 0) {
  const std::string payload = "\"" + std::string(payload_bytes, 'x') + "\"";
  std::vector<core::IngestItem> items;
  for (size_t i = 0; i < count; ++i) {
    core::IngestItem item{channel, "tick", payload, true};
    item.pos = first_pos == 0 ? 0 : first_pos + i;
    items.push_back(item);
  }
  hub.ingest(items);
}

// Runs the loop's ready handlers until none is left; returns how many ran.
size_t run_ready(net::EventLoop& loop) {
  size_t ran = 0;
  while (loop.io().poll_one() != 0)
    ++ran;
  return ran;
}

TEST(ThreadFanout, ADrainTurnIsBoundedAndTheRestFollowsInLaterTurns) {
  app::Gateway gateway(test_config());
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  hub::ThreadFanout& fanout = worker.fanout();
  constexpr size_t kSubscribers = 100;
  std::vector<session::Session*> sessions;
  for (size_t i = 0; i < kSubscribers; ++i) {
    session::Session& s =
        worker.clients().sessions().create(session::SessionId{0, static_cast<uint64_t>(i + 1)}, 10);
    index.subscribe(s, "A");
    sessions.push_back(&s);
  }
  // Five turns' worth of deliveries.
  const size_t messages = 5 * hub::ThreadFanout::kTurnRecipients / kSubscribers;
  publish(gateway.hub(), "A", messages);
  const uint64_t queued = fanout.queued_bytes();
  EXPECT_GT(queued, messages * 16);
  EXPECT_EQ(gateway.hub().backlog_bytes(), queued);
  EXPECT_EQ(gateway.hub().peak_backlog_bytes(), queued);

  ASSERT_EQ(loop.io().poll_one(), 1u);  // one drain turn
  const uint64_t after_one_turn = sessions[0]->seq();
  EXPECT_GT(after_one_turn, 0u);
  EXPECT_LE(after_one_turn * kSubscribers, hub::ThreadFanout::kTurnRecipients);
  EXPECT_LT(fanout.queued_bytes(), queued);
  EXPECT_GT(fanout.queued_bytes(), 0u);

  EXPECT_GE(run_ready(loop), 4u);  // the turns that follow, each posted by the one before
  for (const session::Session* s : sessions)
    EXPECT_EQ(s->seq(), messages);
  EXPECT_EQ(fanout.queued_bytes(), 0u);
}

TEST(ThreadFanout, AMessageWithMoreRecipientsThanATurnStillGoesOutWhole) {
  app::Gateway gateway(test_config());
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  std::vector<session::Session*> sessions;
  for (size_t i = 0; i < hub::ThreadFanout::kTurnRecipients + 10; ++i) {
    session::Session& s =
        worker.clients().sessions().create(session::SessionId{0, static_cast<uint64_t>(i + 1)}, 1);
    index.subscribe(s, "A");
    sessions.push_back(&s);
  }
  publish(gateway.hub(), "A", 2);
  ASSERT_EQ(loop.io().poll_one(), 1u);
  for (const session::Session* s : sessions)
    EXPECT_EQ(s->seq(), 1u);
  run_ready(loop);
  for (const session::Session* s : sessions)
    EXPECT_EQ(s->seq(), 2u);
}

struct GovernedIntake {
  explicit GovernedIntake(ops::BrokerKind broker) : gateway(config_for(broker)) {}
  static ops::Config config_for(ops::BrokerKind broker) {
    ops::Config config = test_config();
    config.broker = broker;
    config.fanout_queue_bytes = 64 << 10;
    return config;
  }
  std::vector<core::IngestItem> items(size_t count) {
    std::vector<core::IngestItem> out;
    for (size_t i = 0; i < count; ++i)
      out.push_back(core::IngestItem{"A", "tick", payload, true});
    return out;
  }
  app::Gateway gateway;
  ops::BrokerCounters counters;
  broker::IntakeGovernor governor{gateway.config(), gateway.resources(), counters, "test",
                                  &gateway.hub()};
  std::string payload = "\"" + std::string(1000, 'x') + "\"";
};

TEST(IntakeGovernor, CoreIntakeDropsAndCountsWhileAThreadIsBehind) {
  GovernedIntake intake(ops::BrokerKind::kNats);
  std::vector<core::IngestItem> batch = intake.items(100);  // ~116 KB: above the 64 KiB mark
  intake.governor.ingest(batch);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 100u);
  EXPECT_FALSE(intake.counters.fanout_behind);

  batch = intake.items(100);
  intake.governor.ingest(batch);
  EXPECT_TRUE(batch.empty());  // so the broker counts none of them as delivered
  EXPECT_EQ(intake.gateway.hub().messages_in(), 100u);
  EXPECT_EQ(intake.counters.rejected[static_cast<size_t>(ops::IntakeReject::kFanoutBehind)], 100u);
  EXPECT_TRUE(intake.counters.fanout_behind);
  EXPECT_EQ(intake.counters.fanout_behind_episodes, 1u);

  run_ready(intake.gateway.worker(0).loop());  // the thread catches up
  batch = intake.items(10);
  intake.governor.ingest(batch);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 110u);
  EXPECT_FALSE(intake.counters.fanout_behind);
}

TEST(IntakeGovernor, JetStreamIntakeStopsPullingWhileAThreadIsBehind) {
  GovernedIntake intake(ops::BrokerKind::kJetStream);
  int64_t wait_ms = 0;
  EXPECT_EQ(intake.governor.take(256, wait_ms), 256u);
  std::vector<core::IngestItem> batch = intake.items(100);
  intake.governor.ingest(batch);  // what was pulled is always delivered
  batch = intake.items(100);
  intake.governor.ingest(batch);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 200u);
  EXPECT_EQ(intake.counters.rejected[static_cast<size_t>(ops::IntakeReject::kFanoutBehind)], 0u);

  EXPECT_EQ(intake.governor.take(256, wait_ms), 0u);  // no new pull
  EXPECT_GT(wait_ms, 0);
  EXPECT_TRUE(intake.counters.fanout_behind);
  run_ready(intake.gateway.worker(0).loop());
  EXPECT_EQ(intake.governor.take(256, wait_ms), 256u);
  EXPECT_FALSE(intake.counters.fanout_behind);
}

TEST(ThreadFanout, TheFanOutKeepsNoStateForChannelsBeyondTheLimit) {
  ops::Config config = test_config();
  config.max_channels = 3;
  app::Gateway gateway(config);
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  gateway.hub().mark_complete_after(0);
  for (int i = 0; i < 10; ++i)
    publish(gateway.hub(), "C" + std::to_string(i), 1, 16, 100 + i);
  run_ready(loop);
  EXPECT_EQ(index.channel_count(), 3u);
  EXPECT_EQ(index.find("C9"), nullptr);
  // Nothing is kept for C9, so a restore from before its message must read the stream.
  EXPECT_EQ(index.history_complete_after(nullptr), 109u);
  EXPECT_EQ(index.last_pos(), 109u);

  const std::vector<std::string_view> existing = {"C0", "C1"};
  const std::vector<std::string_view> fresh = {"C0", "NEW"};
  EXPECT_TRUE(index.has_room_for(existing));
  EXPECT_FALSE(index.has_room_for(fresh));
}

TEST(ThreadFanout, WithoutHistoryARestoreFromBeforeTheNewestMessageMustReadTheStream) {
  ops::Config config = test_config();
  config.history_size = 0;
  app::Gateway gateway(config);
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  gateway.hub().mark_complete_after(0);
  publish(gateway.hub(), "A", 5, 16, 1);
  run_ready(loop);
  const pubsub::ChannelSubscribers* entry = index.find("A");
  ASSERT_NE(entry, nullptr);
  EXPECT_TRUE(entry->history.empty());
  EXPECT_EQ(index.history_complete_after(entry), 5u);
}

TEST(ThreadFanout, TheSweepAgesHistoriesAndFreesIdleChannels) {
  ops::Config config = test_config();
  config.history_max_age = ops::Millis(1);
  config.channel_idle_ttl = ops::Millis(1);
  app::Gateway gateway(config);
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  hub::ThreadFanout& fanout = worker.fanout();
  session::Session& subscriber =
      worker.clients().sessions().create(session::SessionId{0, static_cast<uint64_t>(1)}, 10);
  index.subscribe(subscriber, "KEPT");
  gateway.hub().mark_complete_after(0);
  publish(gateway.hub(), "KEPT", 3, 16, 1);
  for (int i = 0; i < 100; ++i)
    publish(gateway.hub(), "IDLE" + std::to_string(i), 1, 16, 10 + i);
  run_ready(loop);
  EXPECT_EQ(index.channel_count(), 101u);
  EXPECT_FALSE(index.find("KEPT")->history.empty());
  EXPECT_EQ(index.history_complete_after(nullptr), 0u);

  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // older than both ages
  fanout.sweep();
  EXPECT_EQ(index.channel_count(), 1u);  // only the subscribed one
  const pubsub::ChannelSubscribers* kept = index.find("KEPT");
  ASSERT_NE(kept, nullptr);
  EXPECT_TRUE(kept->history.empty());
  EXPECT_EQ(index.history_complete_after(kept), 3u);
  // The freed channels' messages are in no history any more.
  EXPECT_EQ(index.history_complete_after(nullptr), 109u);
  // A channel made again starts after what was forgotten.
  EXPECT_EQ(index.history_complete_after(&index.entry("IDLE5")), 109u);
}

// A session restored from an instance further along the stream skips what it already has. When
// the stream is deleted and made again, positions start over: the skip must go, or the new
// stream's first messages would be silently dropped for that session.
TEST(ThreadFanout, AStreamMadeAnewEndsRestoredSkips) {
  app::Gateway gateway(test_config());
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  session::Session& restored = worker.clients().sessions().create(session::SessionId{0, 1}, 10);
  index.subscribe(restored, "A");
  restored.skip_restored_through(500);
  publish(gateway.hub(), "A", 3, 16, 498);  // 498..500: already sent by the other instance
  run_ready(loop);
  EXPECT_EQ(restored.seq(), 0u);
  EXPECT_EQ(index.last_pos(), 500u);

  gateway.hub().mark_stream_reset(500);
  publish(gateway.hub(), "A", 5, 16, 1);  // the new stream's 1..5
  loop.io().restart();                    // it stopped when it ran out of work
  run_ready(loop);
  EXPECT_EQ(restored.seq(), 5u);
  EXPECT_EQ(restored.skip_through_pos(), 0u);
  EXPECT_EQ(index.last_pos(), 5u);
}

// Race test (run under TSan by scripts/test.sh): POST /publish runs on every loop thread and the
// demo feed on its own, all through the embedded broker's shared back-pressure state. However
// they interleave, every batch is either published whole or refused whole and counted, and the
// queue stops growing at the mark (plus what the publishers that passed the check at once add).
TEST(EmbeddedBroker, ConcurrentPublishersShareTheBackPressure) {
  ops::Config config = test_config();
  config.fanout_queue_bytes = 64 << 10;
  app::Gateway gateway(config);
  app::Worker& worker = gateway.worker(0);
  pubsub::SubscriptionIndex& index = worker.clients().index();
  session::Session& s = worker.clients().sessions().create(session::SessionId{0, 1}, 10);
  index.subscribe(s, "A");
  broker::EmbeddedBroker broker(config, gateway.hub(), gateway.resources());
  constexpr int kThreads = 4;
  constexpr int kBatches = 200;
  constexpr size_t kPerBatch = 10;
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<bool> partial{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      const std::string payload = "\"" + std::string(100, 'x') + "\"";
      std::vector<core::IngestItem> items(kPerBatch, core::IngestItem{"A", "tick", payload, true});
      for (int b = 0; b < kBatches; ++b) {
        broker.publish(items, [&](core::PublishOutcome outcome) {
          if (outcome.error.empty()) {
            accepted.fetch_add(outcome.published);
          } else {
            if (outcome.published != 0) partial = true;
            refused.fetch_add(kPerBatch);
          }
        });
      }
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  EXPECT_FALSE(partial.load());
  EXPECT_EQ(accepted.load() + refused.load(), uint64_t{kThreads} * kBatches * kPerBatch);
  EXPECT_GT(accepted.load(), 0u);
  EXPECT_GT(refused.load(), 0u);  // nothing drains here: the mark is reached
  const ops::BrokerCounters& counters = broker.counters();
  EXPECT_EQ(counters.published.load(), accepted.load());
  EXPECT_EQ(counters.rejected[static_cast<size_t>(ops::IntakeReject::kFanoutBehind)].load(),
            refused.load());
  const uint64_t one_batch = gateway.hub().backlog_bytes() / (accepted.load() / kPerBatch);
  EXPECT_LE(gateway.hub().backlog_bytes(), config.fanout_queue_bytes + kThreads * one_batch);
}

// A `latest` subscriber without a connection (detached, waiting for a resume) holds only the
// newest message of its channel, numbers nothing, and counts the rest as conflated; an `all`
// subscriber beside it numbers every message, as in v1.
TEST(ThreadFanout, LatestSubscribersHoldTheNewestWhileAllSubscribersGetEverything) {
  app::Gateway gateway(test_config());
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  session::Session& every = worker.clients().sessions().create(session::SessionId{0, 1}, 100);
  session::Session& newest = worker.clients().sessions().create(session::SessionId{0, 2}, 100);
  index.subscribe(every, "L");
  index.subscribe(newest, "L", pubsub::DeliveryOptions{true, 0});
  EXPECT_EQ(index.latest_subscription_count(), 1u);
  publish(gateway.hub(), "L", 10);
  run_ready(loop);
  EXPECT_EQ(every.seq(), 10u);
  EXPECT_EQ(newest.seq(), 0u);
  EXPECT_EQ(index.held_count(), 1u);
  EXPECT_EQ(index.conflated_total(), 9u);
  const pubsub::LatestSlot& slot = *newest.subscriptions()[0].latest;
  EXPECT_EQ(slot.skipped, 9u);
  ASSERT_TRUE(slot.held);

  // Becoming `all` sends the held message first, with its count, then every message.
  session::Session& fresh = newest;
  fresh.release_held(index, "L", loop.out());
  EXPECT_EQ(fresh.seq(), 1u);
  EXPECT_EQ(fresh.conflated_of(1), 9u);
  EXPECT_EQ(index.held_count(), 0u);
  index.subscribe(fresh, "L", pubsub::DeliveryOptions{});
  EXPECT_EQ(index.latest_subscription_count(), 0u);
  publish(gateway.hub(), "L", 3);
  loop.io().restart();  // it stopped when it ran out of work
  run_ready(loop);
  EXPECT_EQ(fresh.seq(), 4u);
  EXPECT_EQ(fresh.conflated_of(4), 0u);
  EXPECT_EQ(every.seq(), 13u);
}

// Race test (run under TSan by scripts/test.sh): publishers on several threads share the hub's one
// deflater. However they interleave, every message is compressed exactly once, its compressed
// bytes inflate back to its own envelope, and the counters add up.
TEST(Hub, ConcurrentPublishersShareTheDeflater) {
  app::Gateway gateway(test_config());
  app::Worker& worker = gateway.worker(0);
  net::EventLoop& loop = worker.loop();
  pubsub::SubscriptionIndex& index = worker.clients().index();
  constexpr int kThreads = 4;
  constexpr int kBatches = 25;
  constexpr size_t kPerBatch = 4;
  constexpr size_t kTotal = kThreads * kBatches * kPerBatch;
  session::Session& s = worker.clients().sessions().create(session::SessionId{0, 1}, kTotal);
  index.subscribe(s, "Z");
  core::DeflateReaders readers;
  readers.add();
  hub::Hub hub({&worker.fanout()}, &readers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&hub, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<std::string> data;
        for (size_t i = 0; i < kPerBatch; ++i)
          data.push_back("{\"thread\":" + std::to_string(t) + ",\"batch\":" + std::to_string(b) +
                         ",\"bids\":[[\"43251.17\",\"0.1250\"],[\"43250.80\",\"0.1560\"]],"
                         "\"asks\":[[\"43251.90\",\"0.2110\"],[\"43252.31\",\"0.2380\"]]}");
        std::vector<core::IngestItem> items;
        for (const std::string& d : data)
          items.push_back(core::IngestItem{"Z", "book", d, true});
        hub.ingest(items);
      }
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  run_ready(loop);
  ASSERT_EQ(s.seq(), kTotal);
  const hub::CompressionCounters& counters = hub.compression();
  EXPECT_EQ(counters.messages.load() + counters.not_worth.load(), kTotal);
  EXPECT_EQ(counters.messages.load(), kTotal) << "each of these shrinks";
  uint64_t input = 0;
  uint64_t output = 0;
  ws::MessageInflater inflater;
  s.ring().for_range(1, kTotal, [&](uint64_t, const core::MessageRef& m) {
    ASSERT_FALSE(m->deflated.empty());
    ASSERT_EQ(inflater.inflate(m->deflated, 1 << 20), ws::InflateResult::kOk);
    EXPECT_EQ(inflater.output(), m->tail);
    input += m->tail.size();
    output += m->deflated.size();
  });
  EXPECT_EQ(counters.input_bytes.load(), input);
  EXPECT_EQ(counters.output_bytes.load(), output);
}

}  // namespace
}  // namespace odin
