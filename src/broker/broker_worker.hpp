// A thread for a broker's slow jobs, run in order, so callers on event-loop threads never wait on
// the network. NATS has two: publishes, and reading the stream back for resumes, so a publish
// never waits behind a read-back.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "broker/broker.hpp"

namespace odin::broker {

class BrokerWorker {
 public:
  // `running` is false once the gateway is stopping: the job must end at once, failing what it
  // carries (its caller is still told).
  using Job = std::function<void(bool running)>;

  BrokerWorker() = default;
  BrokerWorker(const BrokerWorker&) = delete;
  BrokerWorker& operator=(const BrokerWorker&) = delete;
  ~BrokerWorker() { stop(); }

  void start();
  // Queues `job`; after stop() it runs at once, on the caller's thread, with running=false.
  void post(Job job);
  // Runs what is still queued with running=false, then joins.
  void stop();

  // A publish as a job: `send` runs on the worker (not at all when stopping), the outcome is
  // counted in `counters`, then `done` gets it.
  void publish(std::function<core::PublishOutcome()> send, core::PublishDone done,
               ops::BrokerCounters& counters);

 private:
  void loop();

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job> queue_;
  bool running_ = false;
};

}  // namespace odin::broker
