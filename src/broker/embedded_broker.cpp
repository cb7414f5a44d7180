// The embedded broker (see embedded_broker.hpp).
#include "broker/embedded_broker.hpp"

#include "hub/fanout.hpp"
#include "ops/config.hpp"

namespace odin::broker {

EmbeddedBroker::EmbeddedBroker(const ops::Config& config, hub::Hub& hub,
                               const guard::ResourceMonitor& resources)
    : hub_(hub), governor_(config, resources, counters_, "embedded", &hub) {
  counters_.connected = true;
}

void EmbeddedBroker::publish(std::span<const core::IngestItem> items, core::PublishDone done) {
  bool behind;
  {
    std::lock_guard lock(mutex_);
    behind = governor_.fanout_behind();  // logs and counts the episode (rate-limited)
  }
  if (behind) {
    counters_.rejected[static_cast<size_t>(ops::IntakeReject::kFanoutBehind)].fetch_add(
        items.size(), std::memory_order_relaxed);
    counters_.publish_failures.fetch_add(items.size(), std::memory_order_relaxed);
    done(core::PublishOutcome{0,
                              "the fan-out is behind (a thread's queue is above "
                              "WS_FANOUT_QUEUE_BYTES): nothing was published; retry shortly"});
    return;
  }
  hub_.ingest(items);
  counters_.received.fetch_add(items.size(), std::memory_order_relaxed);
  counters_.delivered.fetch_add(items.size(), std::memory_order_relaxed);
  counters_.published.fetch_add(items.size(), std::memory_order_relaxed);
  done(core::PublishOutcome{items.size(), {}});
}

}  // namespace odin::broker
