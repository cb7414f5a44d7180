// The gateway's HTTP routes: the WebSocket upgrade, the operations endpoints, POST /publish and
// the static page, filled into the HTTP phase (http/http_phase.hpp) by the Gateway.
#pragma once

#include <string>

#include "http/http_phase.hpp"

namespace odin::app {

class Gateway;

// Loop threads: one Routes serves every connection of every thread; beyond the Gateway it reads,
// it holds only the body of GET /demo/channels, made once at construction and never changed.
class Routes final : public http::HttpRoutes {
 public:
  explicit Routes(Gateway& gateway);
  bool handle(http::HttpPhase& phase, http::HttpRequest& request) override;

 private:
  Gateway& gateway_;
  // {"channels":[...]}: the demo feed's symbols in its order; empty when WS_DEMO_FEED is off.
  const std::string demo_channels_;
};

}  // namespace odin::app
