// The composition of the settings sections (see settings.hpp).
#include "app/settings.hpp"

#include <vector>

#include "broker/broker_settings.hpp"
#include "ops/config.hpp"

namespace odin::app {

namespace {

using ops::setting::boolean;
using ops::setting::integer;
using ops::setting::real;
using ops::setting::text_value;

// The demo feed and the page are app/'s own features.
ops::ConfigSection demo_config_section() {
  ops::ConfigSection section;
  section.settings = {
      {"WS_DEMO_FEED", "Demo", "false", "publish simulated prices through the active broker",
       boolean(&ops::Config::demo_feed)},
      {"WS_DEMO_RATE", "Demo", "50", "demo messages per second over all symbols",
       real(&ops::Config::demo_rate, 0, 1e6, true)},
      {"WS_DEMO_SYMBOLS", "Demo", "100", "demo symbols",
       integer(&ops::Config::demo_symbols, 1, 10'000)},
      {"WS_WEB_ROOT", "Demo", "the repository's web/", "directory of the page's files",
       text_value(&ops::Config::web_root)},
      {"WS_SDK_ROOT", "Demo", "the repository's clients/js/src",
       "directory of the JavaScript SDK's modules, served under /sdk/ (the page imports them)",
       text_value(&ops::Config::sdk_root)},
  };
  return section;
}

}  // namespace

std::span<const ops::ConfigSection> config_sections() {
  static const std::vector<ops::ConfigSection> kSections = {
      ops::gateway_config_section(),           // listener, limits, security, resource guards
      broker::broker_intake_config_section(),  // among the resource guards, where --help always had
                                               // them
      ops::seed_config_section(),              // the seed's settings, last of the resource guards
      broker::broker_config_section(),         // Broker (NATS, JetStream, Redis)
      demo_config_section(),                   // Demo
      ops::operations_config_section(),        // Operations
  };
  return kSections;
}

}  // namespace odin::app
