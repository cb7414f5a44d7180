// The gateway's HTTP routes: the WebSocket upgrade, the operations endpoints, POST /publish and
// the static page, filled into the HTTP phase (http/http_phase.hpp) by the Gateway.
#pragma once

#include "http/http_phase.hpp"

namespace odin::app {

class Gateway;

// Loop threads: one Routes serves every connection of every thread; it holds no state of its
// own beyond the Gateway it reads.
class Routes final : public http::HttpRoutes {
 public:
  explicit Routes(Gateway& gateway) : gateway_(gateway) {}
  bool handle(http::HttpPhase& phase, http::HttpRequest& request) override;

 private:
  Gateway& gateway_;
};

}  // namespace odin::app
