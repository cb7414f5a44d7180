// The composition of the settings sections (see settings.hpp).
#include "app/settings.hpp"

#include <vector>

#include "broker/broker_settings.hpp"
#include "ops/config.hpp"

namespace odin {

std::span<const ConfigSection> config_sections() {
  // The broker's intake caps sit among the resource guards and before the seed settings, where
  // --help has always listed them.
  static const std::vector<ConfigSection> kSections = {
      gateway_config_section(), broker_intake_config_section(), seed_config_section(),
      broker_config_section(),  operations_config_section(),
  };
  return kSections;
}

}  // namespace odin
