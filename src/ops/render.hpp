// /health, /stats and /metrics (PROTOCOL.md "Operations endpoints") rendered from an OpsSnapshot,
// so that what they show can be tested without a running gateway.
#pragma once

#include <string>

#include "ops/snapshot.hpp"

namespace odin::ops {

struct HealthReport {
  unsigned status = 200;  // 503 when unhealthy
  std::string body;
};

HealthReport render_health(const OpsSnapshot& snapshot);
std::string render_stats(const OpsSnapshot& snapshot);
std::string render_metrics(const OpsSnapshot& snapshot);

}  // namespace odin::ops
