// Connections per client address (see address_limits.hpp).
#include "guard/address_limits.hpp"

#include "spdlog/spdlog.h"

namespace odin::guard {

AddressLimits::~AddressLimits() {
  // Only the destroying thread is left: every loop thread has been joined.
  if (!counts_.empty()) {
    spdlog::error("address limits destroyed while {} address(es) still hold connection slots",
                  counts_.size());
  }
}

}  // namespace odin::guard
