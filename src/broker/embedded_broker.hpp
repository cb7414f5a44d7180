// The embedded in-process broker, used when no NATS_URL or REDIS_URL is set: a publish (POST
// /publish, the demo feed) goes straight into the hub. It has no stream to hold messages in, so
// when an event-loop thread falls behind (WS_FANOUT_QUEUE_BYTES) it refuses a publish whole
// rather than queue without bound or drop what it accepted: POST /publish answers 503.
#pragma once

#include <mutex>
#include <span>
#include <string_view>

#include "broker/broker.hpp"
#include "broker/intake.hpp"

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

class EmbeddedBroker final : public Broker {
 public:
  EmbeddedBroker(const ops::Config& config, hub::Hub& hub, const guard::ResourceMonitor& resources);
  std::string_view name() const override { return "embedded"; }
  // Any thread (event-loop threads for POST /publish, the demo feed's).
  void publish(std::span<const core::IngestItem> items, core::PublishDone done) override;

 private:
  hub::Hub& hub_;
  std::mutex mutex_;  // publishers on several threads share the governor's back-pressure state
  IntakeGovernor governor_;
};

}  // namespace odin::broker
