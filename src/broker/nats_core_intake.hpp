// Core NATS intake: a plain subscription on <WS_SUBJECT_PREFIX>>, read in batches by the shared
// IntakeRunner. Nothing is kept for us while we are away or behind: nats.c drops past its pending
// limits (counted), the governor drops while the fan-out is behind. Private to nats_*.cpp.
#pragma once

#include <string>

#include "broker/intake_runner.hpp"
#include "broker/nats_connection.hpp"

namespace odin::broker {

class NatsCoreIntake final : public IntakeSource {
 public:
  NatsCoreIntake(NatsConnection& nats, ops::BrokerCounters& counters, std::string subject_filter)
      : nats_(nats), counters_(counters), subject_filter_(std::move(subject_filter)) {
    counters_.intake_ready = false;  // until the server has our SUB
  }

  Readiness prepare(IntakeRunner& runner) override;
  int64_t retry_delay_ms(int failures) const override;
  size_t collect(IntakeRunner& runner) override;
  void convert(IntakeRunner& runner) override;
  void settle(IntakeRunner& runner) override;
  void close() override { batch_.unsubscribe(); }

 private:
  NatsConnection& nats_;
  ops::BrokerCounters& counters_;
  const std::string subject_filter_;
  NatsBatch batch_;
  bool subscription_confirmed_ = false;  // the server answered a PING sent after our SUB
};

}  // namespace odin::broker
