// The shared intake thread (see intake_runner.hpp). It is the only caller of Hub::ingest in the
// network broker modes; from there the hand-off to the event loops is the lock-free queue in
// hub/fanout.cpp.
#include "broker/intake_runner.hpp"

#include <chrono>

#include "ops/config.hpp"

namespace odin::broker {

namespace {
// Both waits only decide how soon intake looks again; neither is a backoff.
constexpr int64_t kNotReadyWaitMs = 100;  // the connection is being made by someone else
constexpr int64_t kPausedWaitMs = 100;    // CPU above WS_CPU_PAUSE_THRESHOLD
}  // namespace

IntakeRunner::IntakeRunner(const ops::Config& config, const guard::ResourceMonitor& resources,
                           ops::BrokerCounters& counters, std::string_view broker_name,
                           hub::Hub* hub)
    : counters_(counters),
      governor_(config, resources, counters, broker_name, hub),
      filter_(config.subject_prefix, config.max_payload_bytes) {}

IntakeRunner::~IntakeRunner() {
  stop();
}

void IntakeRunner::start(IntakeSource& source) {
  source_ = &source;
  running_ = true;
  thread_ = std::thread([this, &source] { loop(source); });
}

bool IntakeRunner::request_stop() {
  if (!running_.exchange(false)) return false;
  // Taken and released, so a sleeper that just saw running_ true is already waiting and is woken.
  { std::lock_guard lock(wake_mutex_); }
  wake_.notify_all();
  return true;
}

void IntakeRunner::join() {
  if (thread_.joinable()) thread_.join();
  if (source_) source_->close();
  source_ = nullptr;
}

void IntakeRunner::sleep_ms(int64_t ms) {
  std::unique_lock lock(wake_mutex_);
  wake_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return !running_.load(); });
}

// Setup failures in a row are counted here, so each source only says how long each wait is.
// The order of a round is what keeps JetStream lossless: the hub has a batch before it is acked.
void IntakeRunner::loop(IntakeSource& source) {
  int failures = 0;
  while (running_) {
    switch (source.prepare(*this)) {
      case IntakeSource::Readiness::kWaiting:
        sleep_ms(kNotReadyWaitMs);
        continue;
      case IntakeSource::Readiness::kFailed:
        sleep_ms(source.retry_delay_ms(++failures));
        continue;
      case IntakeSource::Readiness::kReady:
        failures = 0;
        break;
    }
    // Not reading: JetStream keeps the messages, nats.c and Redis buffer them up to their limits.
    if (governor_.paused_for_cpu()) {
      sleep_ms(kPausedWaitMs);
      source.idled();
      continue;
    }
    const size_t taken = source.collect(*this);
    if (taken > 0) {
      counters_.received.fetch_add(taken, std::memory_order_relaxed);
      source.convert(*this);
      hand_over();
    }
    source.settle(*this);
  }
}

size_t IntakeRunner::take_allowance() {
  int64_t wait_ms = 0;
  const size_t allowed = governor_.take(kBatch, wait_ms);
  if (allowed == 0) sleep_ms(wait_ms);
  return allowed;
}

bool IntakeRunner::add(std::string_view subject, const std::string_view* type,
                       std::string_view payload, uint64_t pos) {
  core::IngestItem item;
  if (auto reject = filter_.check(subject, type, payload, item)) {
    governor_.reject(*reject, subject);
    return false;
  }
  item.pos = pos;
  items_.push_back(item);
  return true;
}

void IntakeRunner::hand_over() {
  governor_.ingest(items_);  // left empty when dropped for a fan-out that is behind
  counters_.delivered.fetch_add(items_.size(), std::memory_order_relaxed);
  items_.clear();
}

}  // namespace odin::broker
