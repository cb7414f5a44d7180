// Core NATS intake (see nats_core_intake.hpp).
#include "broker/nats_core_intake.hpp"

#include "spdlog/spdlog.h"

namespace odin::broker {

IntakeSource::Readiness NatsCoreIntake::prepare(IntakeRunner&) {
  if (!nats_.connected()) return Readiness::kWaiting;
  if (subscription_confirmed_) return Readiness::kReady;
  // nats.c resubscribes by itself after a reconnect: this runs once, unless it fails.
  if (!batch_.subscription) {
    const natsStatus s = batch_.subscribe(nats_.get(), subject_filter_);
    if (s != NATS_OK) {
      spdlog::warn("NATS subscribe to {} failed: {}", subject_filter_, status_text(s));
      return Readiness::kFailed;
    }
  }
  // nats.c only queues the SUB. Ready (and /health with it) must mean that a message published
  // from now on reaches this instance, so wait for the server to answer a PING sent after it.
  const natsStatus s = natsConnection_FlushTimeout(nats_.get(), kNatsPublishTimeoutMs);
  if (s != NATS_OK) {
    spdlog::warn("NATS subscribe to {} not confirmed: {}", subject_filter_, status_text(s));
    return Readiness::kFailed;
  }
  subscription_confirmed_ = true;
  counters_.intake_ready = true;
  spdlog::info("NATS intake subscribed to {}", subject_filter_);
  return Readiness::kReady;
}

int64_t NatsCoreIntake::retry_delay_ms(int failures) const {
  return nats_setup_retry_ms(failures);
}

size_t NatsCoreIntake::collect(IntakeRunner& runner) {
  const size_t allowed = runner.take_allowance();
  if (allowed == 0) return 0;
  if (!batch_.collect(runner, allowed)) {
    runner.refund(allowed);
    return 0;
  }
  runner.refund(allowed - batch_.messages.size());
  return batch_.messages.size();
}

void NatsCoreIntake::convert(IntakeRunner& runner) {
  for (natsMsg* msg : batch_.messages)
    NatsBatch::add(runner, msg, 0);
}

void NatsCoreIntake::settle(IntakeRunner& runner) {
  if (batch_.messages.empty()) return;  // nothing came: nothing new to read off nats.c either
  batch_.destroy_messages();
  int64_t dropped = 0;
  if (natsSubscription_GetDropped(batch_.subscription, &dropped) == NATS_OK) {
    runner.counters().dropped.store(static_cast<uint64_t>(dropped), std::memory_order_relaxed);
  }
}

}  // namespace odin::broker
