// The composition of the settings sections (see settings.hpp).
#include "app/settings.hpp"

#include <vector>

#include "broker/broker_settings.hpp"
#include "ops/config.hpp"

namespace odin {

namespace {

using setting::boolean;
using setting::integer;
using setting::real;
using setting::text_value;

// The demo feed and the page are app/'s own features.
ConfigSection demo_config_section() {
  ConfigSection section;
  section.settings = {
      {"WS_DEMO_FEED", "Demo", "false", "publish simulated prices through the active broker",
       boolean(&Config::demo_feed)},
      {"WS_DEMO_RATE", "Demo", "50", "demo messages per second over all symbols",
       real(&Config::demo_rate, 0, 1e6, true)},
      {"WS_DEMO_SYMBOLS", "Demo", "100", "demo symbols", integer(&Config::demo_symbols, 1, 10'000)},
      {"WS_WEB_ROOT", "Demo", "the repository's web/", "directory of the page's files",
       text_value(&Config::web_root)},
  };
  return section;
}

}  // namespace

std::span<const ConfigSection> config_sections() {
  static const std::vector<ConfigSection> kSections = {
      gateway_config_section(),        // listener, limits, security, resource guards
      broker_intake_config_section(),  // among the resource guards, where --help always had them
      seed_config_section(),           // the seed's settings, last of the resource guards
      broker_config_section(),         // Broker (NATS, JetStream, Redis)
      demo_config_section(),           // Demo
      operations_config_section(),     // Operations
  };
  return kSections;
}

}  // namespace odin
