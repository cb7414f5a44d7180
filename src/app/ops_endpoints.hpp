// The operations endpoints: /health, /stats and /metrics (PROTOCOL.md "Operations endpoints").
#pragma once

#include <string>

namespace odin {

class Gateway;

struct HealthReport {
  unsigned status = 200;  // 503 when unhealthy
  std::string body;
};

HealthReport render_health(const Gateway& gateway);
std::string render_stats(const Gateway& gateway);
std::string render_metrics(const Gateway& gateway);

}  // namespace odin
