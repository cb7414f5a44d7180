// Admission of WebSocket upgrades (see admission.hpp).
#include "guard/admission.hpp"

#include "guard/resource_monitor.hpp"

namespace odin::guard {

std::variant<Admission::Ticket, ops::RejectReason> Admission::admit() {
  if (draining()) return ops::RejectReason::kDraining;
  if (resources_.memory_percent() >= config_.memory_reject_threshold)
    return ops::RejectReason::kMemory;
  if (resources_.cpu_percent() >= config_.cpu_reject_threshold) return ops::RejectReason::kCpu;
  const uint32_t now = admitted_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (now > config_.max_connections) {
    admitted_.fetch_sub(1, std::memory_order_relaxed);
    return ops::RejectReason::kAtCapacity;
  }
  return Ticket(admitted_);
}

}  // namespace odin::guard
