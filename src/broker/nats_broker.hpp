// NATS and JetStream as the gateway's broker, on nats.c: one connection that reconnects forever
// with backoff; an intake thread (intake_runner.hpp) that takes messages (core NATS: a
// subscription on <prefix>>; JetStream: a durable pull consumer of its own per instance), checks
// them (intake.hpp), hands them to the hub and, in JetStream mode, acks them once handed over; and
// a worker thread for POST /publish and another for stream reads (resumes). nats.c's types stay
// inside the private nats_*.hpp, which only nats_*.cpp include.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "broker/broker.hpp"

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

class NatsBroker final : public Broker {
 public:
  // `instance_id` names this instance on NATS (client name, JetStream consumer suffix).
  NatsBroker(const ops::Config& config, std::string instance_id, hub::Hub& hub,
             const guard::ResourceMonitor& resources);
  ~NatsBroker() override;
  NatsBroker(const NatsBroker&) = delete;
  NatsBroker& operator=(const NatsBroker&) = delete;

  std::string_view name() const override;
  // Connects (in the background when NATS is not up yet) and starts the threads. Fails only for
  // settings nats.c refuses.
  std::string start() override;
  // Stops intake after the batch in hand (acked), fails queued publishes, closes the connection.
  void stop() override;
  void publish(std::span<const core::IngestItem> items, core::PublishDone done) override;
  // JetStream: reads stored messages back (reader thread), for a resume on this instance.
  void fetch(std::unique_ptr<core::StreamFetch> fetch, size_t limit,
             core::StreamFetchDone done) override;

  // JetStream: the durable consumer this instance reads, <JS_CONSUMER_NAME>-<instance id>.
  const std::string& consumer_name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace odin::broker
