// Redis pub/sub as the gateway's broker, on hiredis: an intake thread (intake_runner.hpp) that
// PSUBSCRIBEs <WS_SUBJECT_PREFIX>*, reads messages in batches, checks them (intake.hpp, and the
// payload convention of redis_support.hpp) and hands them to the hub, reconnecting forever with
// backoff; and a worker thread (broker_worker.hpp) with a connection of its own for POST /publish.
// Redis pub/sub keeps nothing: what is published while this instance is disconnected never
// reaches it. hiredis' types stay inside redis_broker.cpp.
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

class RedisBroker final : public Broker {
 public:
  // `instance_id` names this instance's connections on Redis (CLIENT SETNAME).
  RedisBroker(const ops::Config& config, std::string instance_id, hub::Hub& hub,
              const guard::ResourceMonitor& resources);
  ~RedisBroker() override;
  RedisBroker(const RedisBroker&) = delete;
  RedisBroker& operator=(const RedisBroker&) = delete;

  std::string_view name() const override { return "redis"; }
  // Connects once (or keeps trying in the background when Redis is not up yet) and starts the
  // threads. Fails only for a REDIS_URL that does not parse (load_config checked it already).
  std::string start() override;
  // Stops intake after the batch in hand, fails queued publishes, closes the connections.
  void stop() override;
  void publish(std::span<const core::IngestItem> items, core::PublishDone done) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace odin::broker
