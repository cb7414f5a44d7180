// The broker's sections of settings; app/ hands them to load_config with the others.
#pragma once

#include "ops/settings.hpp"

namespace odin::broker {

// The intake caps, listed among the resource guards (WS_MAX_NATS_RATE, WS_MAX_BROADCAST_RATE,
// WS_FANOUT_QUEUE_BYTES).
ops::ConfigSection broker_intake_config_section();

// WS_BROKER, NATS_URL, REDIS_URL, the JetStream stream, history and read-backs. Its check picks
// the broker for WS_BROKER=auto, refuses what the chosen broker cannot do, and derives
// WS_HISTORY_MAX_AGE from JS_STREAM_MAX_AGE.
ops::ConfigSection broker_config_section();

}  // namespace odin::broker
