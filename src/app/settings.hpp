// Every section of settings the gateway reads, assembled where the features are: ops/ loads and
// documents whatever sections it is handed, and knows none of the features above it.
#pragma once

#include <span>

#include "ops/settings.hpp"

namespace odin::app {

// In --help order (the order of the groups there; a section's check runs in this order too).
std::span<const ops::ConfigSection> config_sections();

}  // namespace odin::app
