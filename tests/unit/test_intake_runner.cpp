// Unit tests of the intake runner every network broker shares (broker/intake_runner.hpp), driven
// by a fake source with no network: batches reach a real Hub in order and are settled (acked)
// only after, setup failures back off and count from 1 again once ready, intake holds (JetStream)
// or drops (core NATS, Redis) while the fan-out is behind and resumes after, the CPU pause, rate
// pacing and refunds, the reject log, and a prompt stop. The Hub is a real Gateway's, whose one
// event loop the test drains by hand (its thread never starts).
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/gateway.hpp"
#include "broker/intake_runner.hpp"
#include "hub/fanout.hpp"
#include "net/event_loop.hpp"

namespace odin {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct FakeMessage {
  std::string subject;
  std::string payload;
};

// What one settle() saw: the batch's size and, at that moment, what the hub had been given.
struct Settled {
  size_t size;
  uint64_t hub_messages_in;
};

// A source scripted by the test thread. Its IntakeSource members run on the intake thread; the
// test thread reads what they recorded through the accessors, all under one mutex.
class FakeSource final : public broker::IntakeSource {
 public:
  explicit FakeSource(hub::Hub& hub) : hub_(hub) {}

  // Test thread.
  void offer(std::vector<FakeMessage> messages) {
    std::lock_guard lock(mutex_);
    for (FakeMessage& m : messages)
      pending_.push_back(std::move(m));
  }
  void script(std::vector<Readiness> outcomes) {
    std::lock_guard lock(mutex_);
    for (Readiness r : outcomes)
      script_.push_back(r);
  }
  void set_max_per_collect(size_t n) { max_per_collect_ = n; }  // before start
  void set_long_poll_ms(int64_t ms) { long_poll_ms_ = ms; }     // before start
  void set_retry_unit_ms(int64_t ms) { retry_unit_ms_ = ms; }   // before start

  template <class T>
  T read(T FakeSource::*member) {
    std::lock_guard lock(mutex_);
    return this->*member;
  }

  // Intake thread.
  Readiness prepare(broker::IntakeRunner&) override {
    std::lock_guard lock(mutex_);
    intake_thread_ = std::this_thread::get_id();
    prepare_times_.push_back(Clock::now());
    if (script_.empty()) return Readiness::kReady;
    const Readiness r = script_.front();
    script_.pop_front();
    return r;
  }
  int64_t retry_delay_ms(int failures) const override {
    std::lock_guard lock(mutex_);
    failures_seen_.push_back(failures);
    return retry_unit_ms_ * failures;
  }
  size_t collect(broker::IntakeRunner& runner) override {
    const size_t allowed = runner.take_allowance();
    {
      std::lock_guard lock(mutex_);
      ++collects_;
      if (allowed == 0) {
        ++empty_allowances_;
        return 0;
      }
      largest_allowance_ = std::max(largest_allowance_, allowed);
      while (!pending_.empty() && batch_.size() < std::min(allowed, max_per_collect_)) {
        batch_.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    runner.refund(allowed - batch_.size());
    if (batch_.empty()) runner.sleep_ms(long_poll_ms_);  // the long poll that found nothing
    return batch_.size();
  }
  void convert(broker::IntakeRunner& runner) override {
    for (const FakeMessage& m : batch_)
      runner.add(m.subject, nullptr, m.payload, ++pos_);
  }
  void settle(broker::IntakeRunner&) override {
    if (batch_.empty()) return;
    std::lock_guard lock(mutex_);
    settled_.push_back(Settled{batch_.size(), hub_.messages_in()});
    batch_.clear();
  }
  void idled() override {
    std::lock_guard lock(mutex_);
    ++idles_;
  }
  void close() override {
    std::lock_guard lock(mutex_);
    ++closes_;
    close_thread_ = std::this_thread::get_id();
  }

  std::vector<Clock::time_point> prepare_times_;
  mutable std::vector<int> failures_seen_;
  std::vector<Settled> settled_;
  size_t collects_ = 0;
  size_t empty_allowances_ = 0;
  size_t largest_allowance_ = 0;
  size_t idles_ = 0;
  size_t closes_ = 0;
  std::thread::id intake_thread_;
  std::thread::id close_thread_;

 private:
  hub::Hub& hub_;
  mutable std::mutex mutex_;
  std::deque<FakeMessage> pending_;
  std::deque<Readiness> script_;
  std::vector<FakeMessage> batch_;  // intake thread only
  uint64_t pos_ = 0;                // intake thread only
  size_t max_per_collect_ = std::numeric_limits<size_t>::max();
  int64_t long_poll_ms_ = 2;
  int64_t retry_unit_ms_ = 30;
};

ops::Config test_config(ops::BrokerKind broker) {
  ops::Config config;
  config.threads = 1;
  config.broker = broker;
  config.max_payload_bytes = 2000;
  return config;
}

std::vector<FakeMessage> messages(size_t count, size_t payload_bytes = 16,
                                  std::string subject = "odin.token.A") {
  const std::string payload = "\"" + std::string(payload_bytes, 'x') + "\"";
  return std::vector<FakeMessage>(count, FakeMessage{subject, payload});
}

// Polls `done` every millisecond for at most `limit`: the bound on every wait in these tests.
template <class Done>
bool eventually(Done done, std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Runs what the event loop has ready (the fan-out's drain turns) on this thread.
void drain(net::EventLoop& loop) {
  loop.io().restart();
  while (loop.io().poll_one() != 0) {
  }
}

size_t rejected(const ops::BrokerCounters& counters, ops::IntakeReject reason) {
  return counters.rejected[static_cast<size_t>(reason)].load();
}

struct Intake {
  explicit Intake(ops::Config config) : gateway(std::move(config)), source(gateway.hub()) {}
  ~Intake() { runner.stop(); }
  app::Gateway gateway;
  ops::BrokerCounters counters;
  FakeSource source;
  broker::IntakeRunner runner{gateway.config(), gateway.resources(), counters, "test",
                              &gateway.hub()};
};

TEST(IntakeRunner, HandsBatchesToTheHubInOrderAndSettlesEachOnlyAfter) {
  Intake intake(test_config(ops::BrokerKind::kJetStream));
  intake.source.offer(messages(600));
  intake.runner.start(intake.source);
  ASSERT_TRUE(eventually([&] { return intake.counters.delivered.load() == 600; }));
  intake.runner.stop();

  EXPECT_EQ(intake.counters.received.load(), 600u);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 600u);
  const auto settled = intake.source.read(&FakeSource::settled_);
  ASSERT_EQ(settled.size(), 3u);  // at most IntakeRunner::kBatch per hand-over
  EXPECT_EQ(settled[0].size, broker::IntakeRunner::kBatch);
  EXPECT_EQ(settled[1].size, broker::IntakeRunner::kBatch);
  EXPECT_EQ(settled[2].size, 600 - 2 * broker::IntakeRunner::kBatch);
  // Each batch was with the hub before it was settled (JetStream acks there).
  uint64_t handed = 0;
  for (const Settled& s : settled) {
    handed += s.size;
    EXPECT_EQ(s.hub_messages_in, handed);
  }
  // The stream positions went through in order: the thread's newest is the last one.
  drain(intake.gateway.worker(0).loop());
  EXPECT_EQ(intake.gateway.worker(0).clients().index().last_pos(), 600u);
}

TEST(IntakeRunner, SetupFailuresBackOffAndCountFromOneAgainOnceReady) {
  Intake intake(test_config(ops::BrokerKind::kNats));
  using R = broker::IntakeSource::Readiness;
  // Waiting (someone else reconnects) is neither a failure nor a success.
  intake.source.script({R::kFailed, R::kWaiting, R::kFailed, R::kFailed});
  intake.source.offer(messages(5));
  intake.runner.start(intake.source);
  ASSERT_TRUE(eventually([&] { return intake.counters.delivered.load() == 5; }));
  EXPECT_EQ(intake.source.read(&FakeSource::failures_seen_), (std::vector<int>{1, 2, 3}));
  const auto times = intake.source.read(&FakeSource::prepare_times_);
  ASSERT_GE(times.size(), 5u);
  // The waits between attempts: 30 ms x failures, and 100 ms while waiting.
  const int64_t expected_ms[] = {30, 100, 60, 90};
  for (size_t i = 0; i < 4; ++i) {
    const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(times[i + 1] - times[i]);
    EXPECT_GE(gap.count(), expected_ms[i]) << "after attempt " << i;
  }

  // The source loses its connection: the backoff starts over.
  intake.source.script({R::kFailed});
  intake.source.offer(messages(1));
  ASSERT_TRUE(eventually([&] { return intake.counters.delivered.load() == 6; }));
  EXPECT_EQ(intake.source.read(&FakeSource::failures_seen_), (std::vector<int>{1, 2, 3, 1}));
}

TEST(IntakeRunner, JetStreamHoldsWhileTheFanOutIsBehindAndResumesAfter) {
  ops::Config config = test_config(ops::BrokerKind::kJetStream);
  config.fanout_queue_bytes = 16 << 10;  // about 13 messages of 1000 bytes
  Intake intake(config);
  intake.source.set_max_per_collect(10);
  intake.source.offer(messages(40, 1000));
  intake.runner.start(intake.source);

  // Two batches get the queue past the mark; from then on no allowance, so nothing is pulled.
  ASSERT_TRUE(eventually([&] { return intake.source.read(&FakeSource::empty_allowances_) >= 3; }));
  EXPECT_EQ(intake.counters.delivered.load(), 20u);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 20u);
  EXPECT_TRUE(intake.counters.fanout_behind.load());
  EXPECT_EQ(intake.counters.fanout_behind_episodes.load(), 1u);
  EXPECT_EQ(rejected(intake.counters, ops::IntakeReject::kFanoutBehind), 0u);  // held, not dropped

  // The event loop catches up: intake resumes and everything goes through.
  net::EventLoop& loop = intake.gateway.worker(0).loop();
  ASSERT_TRUE(eventually([&] {
    drain(loop);
    return intake.counters.delivered.load() == 40;
  }));
  ASSERT_TRUE(eventually([&] {
    drain(loop);
    return intake.gateway.hub().backlog_bytes() == 0;
  }));
  intake.runner.stop();
  EXPECT_EQ(intake.gateway.hub().messages_in(), 40u);
  EXPECT_EQ(rejected(intake.counters, ops::IntakeReject::kFanoutBehind), 0u);
}

TEST(IntakeRunner, CoreIntakeDropsAndCountsWhileTheFanOutIsBehind) {
  ops::Config config = test_config(ops::BrokerKind::kNats);
  config.fanout_queue_bytes = 64 << 10;
  Intake intake(config);
  intake.source.offer(messages(100, 1000));  // ~116 KB: past the mark once handed over
  intake.runner.start(intake.source);
  ASSERT_TRUE(eventually([&] { return intake.counters.delivered.load() == 100; }));

  intake.source.offer(messages(100, 1000));
  ASSERT_TRUE(eventually(
      [&] { return rejected(intake.counters, ops::IntakeReject::kFanoutBehind) == 100; }));
  intake.runner.stop();
  EXPECT_EQ(intake.counters.received.load(), 200u);
  EXPECT_EQ(intake.counters.delivered.load(), 100u);  // the dropped ones are not delivered
  EXPECT_EQ(intake.gateway.hub().messages_in(), 100u);
  EXPECT_TRUE(intake.counters.fanout_behind.load());
  // Dropped, but taken from the source and settled all the same.
  EXPECT_EQ(intake.source.read(&FakeSource::settled_).size(), 2u);
}

TEST(IntakeRunner, NothingIsTakenWhilePausedForCpu) {
  ops::Config config = test_config(ops::BrokerKind::kRedis);
  config.cpu_pause_threshold = -1;  // any CPU reading is above it
  Intake intake(config);
  intake.source.offer(messages(5));
  intake.runner.start(intake.source);
  ASSERT_TRUE(eventually([&] { return intake.source.read(&FakeSource::idles_) >= 2; }));
  intake.runner.stop();
  EXPECT_TRUE(intake.counters.paused.load());
  EXPECT_EQ(intake.counters.pauses.load(), 1u);  // one episode, however many waits
  EXPECT_EQ(intake.source.read(&FakeSource::collects_), 0u);
  EXPECT_EQ(intake.counters.received.load(), 0u);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 0u);
}

TEST(IntakeRunner, RateCapsPaceIntakeAndRefundsGoBack) {
  ops::Config config = test_config(ops::BrokerKind::kNats);
  config.max_nats_rate = 100;  // a burst of 10
  {
    Intake intake(config);
    // The caller plays the intake thread here: the runner is not started.
    EXPECT_EQ(intake.runner.take_allowance(), 10u);
    intake.runner.refund(6);
    const size_t again = intake.runner.take_allowance();
    EXPECT_GE(again, 6u);
    EXPECT_LE(again, 10u);
  }
  {
    Intake unlimited(test_config(ops::BrokerKind::kNats));
    EXPECT_EQ(unlimited.runner.take_allowance(), broker::IntakeRunner::kBatch);
  }
  Intake intake(config);
  intake.source.set_max_per_collect(4);  // uses less than it is allowed: the rest goes back
  intake.source.offer(messages(50));
  const auto started = Clock::now();
  intake.runner.start(intake.source);
  ASSERT_TRUE(eventually([&] { return intake.counters.delivered.load() == 50; }));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  intake.runner.stop();
  // 10 at once, the other 40 at 100 a second.
  EXPECT_GE(took.count(), 400);
  EXPECT_LE(intake.source.read(&FakeSource::largest_allowance_), 10u);
}

TEST(IntakeRunner, RefusedMessagesAreCountedAndLoggedAtMostOnceEveryTenSeconds) {
  Intake intake(test_config(ops::BrokerKind::kNats));
  auto lines = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  const auto saved = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", lines));

  std::vector<FakeMessage> batch = messages(5, 16, "elsewhere.A");
  for (FakeMessage& m : messages(3, 3000))
    batch.push_back(std::move(m));  // over max_payload_bytes
  for (FakeMessage& m : messages(2))
    batch.push_back(std::move(m));
  intake.source.offer(std::move(batch));
  intake.runner.start(intake.source);
  ASSERT_TRUE(eventually([&] { return intake.counters.received.load() == 10; }));
  intake.source.offer(messages(4, 16, "elsewhere.B"));
  ASSERT_TRUE(eventually([&] { return intake.counters.received.load() == 14; }));
  intake.runner.stop();
  spdlog::set_default_logger(saved);

  EXPECT_EQ(rejected(intake.counters, ops::IntakeReject::kBadSubject), 9u);
  EXPECT_EQ(rejected(intake.counters, ops::IntakeReject::kOversized), 3u);
  EXPECT_EQ(intake.counters.delivered.load(), 2u);
  EXPECT_EQ(intake.gateway.hub().messages_in(), 2u);
  size_t bad_subject_lines = 0;
  size_t oversized_lines = 0;
  for (const std::string& line : lines->last_formatted()) {
    bad_subject_lines += line.find("bad_subject") != std::string::npos;
    oversized_lines += line.find("oversized") != std::string::npos;
  }
  EXPECT_EQ(bad_subject_lines, 1u);
  EXPECT_EQ(oversized_lines, 1u);
}

TEST(IntakeRunner, StopCutsWaitsShortAndClosesTheSourceOnceAfterTheThreadEnded) {
  {
    // In a long poll of the source's.
    Intake intake(test_config(ops::BrokerKind::kNats));
    intake.source.set_long_poll_ms(60'000);
    intake.runner.start(intake.source);
    ASSERT_TRUE(eventually([&] { return intake.source.read(&FakeSource::collects_) == 1; }));
    const auto asked = Clock::now();
    intake.runner.stop();
    EXPECT_LT(Clock::now() - asked, 2s);
    intake.runner.stop();  // again: nothing more
    EXPECT_EQ(intake.source.read(&FakeSource::closes_), 1u);
    EXPECT_EQ(intake.source.read(&FakeSource::close_thread_), std::this_thread::get_id());
    EXPECT_NE(intake.source.read(&FakeSource::intake_thread_), std::this_thread::get_id());
    EXPECT_FALSE(intake.runner.running());
  }
  {
    // In the backoff after a failed setup.
    Intake intake(test_config(ops::BrokerKind::kNats));
    intake.source.set_retry_unit_ms(60'000);
    intake.source.script({broker::IntakeSource::Readiness::kFailed});
    intake.runner.start(intake.source);
    ASSERT_TRUE(eventually([&] { return intake.source.read(&FakeSource::failures_seen_).size(); }));
    const auto asked = Clock::now();
    EXPECT_TRUE(intake.runner.request_stop());
    EXPECT_FALSE(intake.runner.request_stop());  // only the first one says it stopped it
    intake.runner.join();
    EXPECT_LT(Clock::now() - asked, 2s);
    EXPECT_EQ(intake.source.read(&FakeSource::collects_), 0u);
  }
  {
    // Never started: nothing to stop, nothing closed.
    Intake intake(test_config(ops::BrokerKind::kNats));
    EXPECT_FALSE(intake.runner.request_stop());
    intake.runner.join();
    EXPECT_EQ(intake.source.read(&FakeSource::closes_), 0u);
  }
}

}  // namespace
}  // namespace odin
