// The one intake thread every network broker runs (core NATS, JetStream, Redis): the loop with
// backoff between setup attempts, the CPU pause, rate pacing, checking, batching and the hand-over
// to the hub, around a small IntakeSource that only knows its own protocol.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "broker/intake.hpp"
#include "hub/fanout.hpp"

namespace odin::guard {
class ResourceMonitor;
}  // namespace odin::guard

namespace odin::hub {
class Hub;
}  // namespace odin::hub

namespace odin::ops {
struct Config;
}  // namespace odin::ops

namespace odin::broker {

class IntakeRunner;

// One broker's way of taking messages, driven by IntakeRunner. Called per round or per wait,
// never per message. Every member runs on the intake thread, except close() (see there).
//
// A round: prepare() until kReady; then, unless intake is paused, collect() (which asks the
// runner for its allowance), convert() when it took something, the hand-over to the hub, and
// settle(). So whatever settle() does (JetStream's ack) comes after the hub has the batch.
class IntakeSource {
 public:
  enum class Readiness {
    kReady,    // connected and subscribed: take messages
    kWaiting,  // someone else is making the connection (nats.c): look again shortly
    kFailed,   // this attempt failed: try again after retry_delay_ms()
  };
  virtual ~IntakeSource() = default;

  // Connects, subscribes or binds what is missing. Cheap when nothing is.
  virtual Readiness prepare(IntakeRunner& runner) = 0;
  // How long to wait after `failures` (1, 2, ...) failed prepare() calls in a row.
  virtual int64_t retry_delay_ms(int failures) const = 0;
  // Waits a bounded time (a long poll) for messages and keeps up to what the runner's allowance
  // permits in a batch of its own; gives back what it did not use. Returns the batch's size.
  virtual size_t collect(IntakeRunner& runner) = 0;
  // Turns the batch into items: IntakeRunner::add for each message, IntakeRunner::reject for one
  // refused before the common checks.
  virtual void convert(IntakeRunner& runner) = 0;
  // After every collect(), once what it took is with the hub: acks, frees the batch, checks.
  virtual void settle(IntakeRunner& runner) = 0;
  // Intake was paused for CPU and the source was not read for a while.
  virtual void idled() {}
  // Ends what prepare() made. Called once, by IntakeRunner::join() after the intake thread ended.
  virtual void close() {}
};

class IntakeRunner {
 public:
  // Most messages per Hub::ingest (and per allowance).
  static constexpr size_t kBatch = 256;

  // `broker_name` for log lines. `hub` (null in tests of the governor only) gets the messages
  // and its queues give the back-pressure.
  IntakeRunner(const ops::Config& config, const guard::ResourceMonitor& resources,
               ops::BrokerCounters& counters, std::string_view broker_name, hub::Hub* hub);
  ~IntakeRunner();
  IntakeRunner(const IntakeRunner&) = delete;
  IntakeRunner& operator=(const IntakeRunner&) = delete;

  // Starts the intake thread on `source`, which must outlive join(). Owner's thread.
  void start(IntakeSource& source);
  // Any thread: asks the intake thread to end after the round in hand and cuts its waits short.
  // True the first time after start(), so a broker's stop() can tell whether it ever started.
  bool request_stop();
  // Owner's thread: waits for the intake thread, then closes the source. Idempotent.
  void join();
  void stop() {
    request_stop();
    join();
  }
  // Any thread.
  bool running() const { return running_.load(); }

  // The rest: intake thread only (the source's calls).
  // Waits `ms`, or less when stop is requested.
  void sleep_ms(int64_t ms);
  // How many messages both rate caps allow now, at most kBatch (taken from them). When none, it
  // first waits until one may be taken, then returns 0.
  size_t take_allowance();
  // Gives back what an allowance paid for and the source did not use.
  void refund(size_t unused) { governor_.refund(unused); }
  // Checks one message (intake.hpp) and keeps it for the next hand-over, or counts and logs why
  // it is refused. `type` is null when the message has none. False when refused.
  bool add(std::string_view subject, const std::string_view* type, std::string_view payload,
           uint64_t pos);
  // Counts a refused message and logs it, at most every 10 s per reason.
  void reject(ops::IntakeReject reason, std::string_view source) {
    governor_.reject(reason, source);
  }
  // Hands the items kept so far to the hub, in order, now (the round does it after convert();
  // JetStream also before a gap it cannot fill). Core NATS and Redis drop them while the fan-out
  // is behind; what is handed over counts as delivered.
  void hand_over();
  ops::BrokerCounters& counters() { return counters_; }

 private:
  void loop(IntakeSource& source);

  ops::BrokerCounters& counters_;
  IntakeGovernor governor_;
  IntakeFilter filter_;
  std::vector<core::IngestItem> items_;  // views into the source's batch until the hand-over

  std::thread thread_;
  IntakeSource* source_ = nullptr;  // until join() closed it
  std::atomic<bool> running_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
};

}  // namespace odin::broker
