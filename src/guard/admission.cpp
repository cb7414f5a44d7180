// Admission of WebSocket upgrades (see admission.hpp).
#include "guard/admission.hpp"

#include "guard/resource_monitor.hpp"

namespace odin {

std::variant<Admission::Ticket, RejectReason> Admission::admit() {
  if (draining()) return RejectReason::kDraining;
  if (resources_.memory_percent() >= config_.memory_reject_threshold) return RejectReason::kMemory;
  if (resources_.cpu_percent() >= config_.cpu_reject_threshold) return RejectReason::kCpu;
  const uint32_t now = admitted_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (now > config_.max_connections) {
    admitted_.fetch_sub(1, std::memory_order_relaxed);
    return RejectReason::kAtCapacity;
  }
  return Ticket(admitted_);
}

}  // namespace odin
