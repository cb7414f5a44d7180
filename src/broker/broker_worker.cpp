// The brokers' worker thread (see broker_worker.hpp).
#include "broker/broker_worker.hpp"

namespace odin::broker {

void BrokerWorker::start() {
  std::lock_guard lock(mutex_);
  running_ = true;
  thread_ = std::thread([this] { loop(); });
}

void BrokerWorker::post(Job job) {
  {
    std::lock_guard lock(mutex_);
    if (running_) {
      queue_.push_back(std::move(job));
      ready_.notify_one();
      return;
    }
  }
  job(false);
}

void BrokerWorker::stop() {
  {
    std::lock_guard lock(mutex_);
    running_ = false;
  }
  ready_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BrokerWorker::loop() {
  while (true) {
    Job job;
    bool running = false;
    {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [this] { return !running_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      running = running_;
    }
    job(running);
  }
}

void BrokerWorker::publish(std::function<core::PublishOutcome()> send, core::PublishDone done,
                           ops::BrokerCounters& counters) {
  post([send = std::move(send), done = std::move(done), &counters](bool running) {
    core::PublishOutcome outcome =
        running ? send() : core::PublishOutcome{0, "the gateway is shutting down"};
    counters.published.fetch_add(outcome.published, std::memory_order_relaxed);
    if (!outcome.error.empty()) counters.publish_failures.fetch_add(1, std::memory_order_relaxed);
    done(std::move(outcome));
  });
}

}  // namespace odin::broker
