// The process-wide cap on JetStream read-backs (WS_MAX_STREAM_READS, broker/broker.hpp): places
// are taken on event-loop threads and given back on the broker's reader thread.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "broker/broker.hpp"

namespace odin {
namespace {

class NoStreamBroker final : public broker::Broker {
 public:
  std::string_view name() const override { return "test"; }
  void publish(std::span<const core::IngestItem>, core::PublishDone done) override {
    done(core::PublishOutcome{});
  }
};

TEST(StreamReads, TheCapRefusesAndCountsRefusals) {
  NoStreamBroker broker;
  EXPECT_TRUE(broker.reserve_stream_read(2));
  EXPECT_TRUE(broker.reserve_stream_read(2));
  EXPECT_FALSE(broker.reserve_stream_read(2));
  EXPECT_EQ(broker.counters().stream_reads_pending.load(), 2u);
  EXPECT_EQ(broker.counters().stream_reads_refused.load(), 1u);
  broker.release_stream_read();
  EXPECT_TRUE(broker.reserve_stream_read(2));
  EXPECT_FALSE(broker.reserve_stream_read(0));  // 0: no read-back at all
}

// Race test (run under TSan by scripts/test.sh): loop threads reserve while reader threads give
// places back. However they interleave, no more than the cap are ever held, every refusal is
// counted once, and the count returns to 0.
TEST(StreamReads, ConcurrentReservationsNeverExceedTheCap) {
  constexpr uint32_t kCap = 5;
  constexpr int kLoopThreads = 3;
  constexpr int kAttempts = 20'000;
  NoStreamBroker broker;
  std::atomic<int> held{0};
  std::atomic<int> held_peak{0};
  std::atomic<uint64_t> granted{0};
  std::atomic<bool> done_reserving{false};
  // Places granted and not yet handed to the reader (the "fetch" in flight).
  std::atomic<int> handed_over{0};
  std::vector<std::thread> loops;
  for (int t = 0; t < kLoopThreads; ++t) {
    loops.emplace_back([&, t] {
      std::mt19937 random(static_cast<uint32_t>(t) + 7);
      for (int i = 0; i < kAttempts; ++i) {
        if (!broker.reserve_stream_read(kCap)) {
          if (random() % 8 == 0) std::this_thread::yield();
          continue;
        }
        granted.fetch_add(1);
        const int now = held.fetch_add(1) + 1;
        int peak = held_peak.load();
        while (now > peak && !held_peak.compare_exchange_weak(peak, now)) {
        }
        handed_over.fetch_add(1);
      }
    });
  }
  std::thread reader([&] {
    for (;;) {
      int pending = handed_over.load();
      if (pending == 0) {
        if (done_reserving.load() && handed_over.load() == 0) return;
        std::this_thread::yield();
        continue;
      }
      if (!handed_over.compare_exchange_weak(pending, pending - 1)) continue;
      held.fetch_sub(1);  // before the place is given back: `held` never counts too few
      broker.release_stream_read();
    }
  });
  for (std::thread& loop : loops)
    loop.join();
  done_reserving = true;
  reader.join();
  EXPECT_LE(held_peak.load(), static_cast<int>(kCap));
  EXPECT_GT(granted.load(), 0u);
  EXPECT_EQ(granted.load() + broker.counters().stream_reads_refused.load(),
            static_cast<uint64_t>(kLoopThreads) * kAttempts);
  EXPECT_EQ(broker.counters().stream_reads_pending.load(), 0u);
}

}  // namespace
}  // namespace odin
