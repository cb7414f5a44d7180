// odin-ws: a WebSocket fan-out gateway. Reads the configuration (environment, then flags),
// starts the gateway and returns its exit status (2 for a bad setting).
#include <cstdio>
#include <cstdlib>
#include <span>

#include "app/gateway.hpp"
#include "app/settings.hpp"
#include "ops/config.hpp"
#include "ops/log.hpp"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  odin::ops::ConfigLoad load = odin::ops::load_config(
      odin::app::config_sections(),
      std::span<const char* const>(argv + 1, static_cast<size_t>(argc > 0 ? argc - 1 : 0)),
      [](const char* name) { return std::getenv(name); });
  if (load.show_help) {
    std::fputs(odin::ops::config_help(odin::app::config_sections()).c_str(), stdout);
    return 0;
  }
  if (!load.config) {
    std::fprintf(stderr, "odin-ws: %s\n", load.error.c_str());
    return 2;
  }
  odin::ops::init_logging(load.config->log_level, load.config->log_format);
  for (const std::string& notice : load.config->notices)
    spdlog::info("{}", notice);
  odin::app::Gateway gateway(std::move(*load.config));
  return gateway.run();
}
