// Admission of WebSocket upgrades: the process-wide connection cap (WS_MAX_CONNECTIONS), memory
// and CPU admission, and the drain. An admitted connection holds a Ticket; the count goes down
// when the ticket goes, wherever the connection ends (closed, failed on its way to another
// thread, hung up while parked), so there is one place that releases it.
#pragma once

#include <atomic>
#include <cstdint>
#include <variant>

#include "core/counted_place.hpp"
#include "ops/config.hpp"
#include "ops/metrics.hpp"

namespace odin::guard {

class ResourceMonitor;

// Any thread may call every member; a Ticket may move between threads.
class Admission {
 public:
  // A place among the admitted connections (core/counted_place.hpp).
  using Ticket = core::CountedPlace;

  Admission(const ops::Config& config, const ResourceMonitor& resources)
      : config_(config), resources_(resources) {}
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  // A ticket, or why not: draining, memory or CPU over its threshold, or at WS_MAX_CONNECTIONS.
  std::variant<Ticket, ops::RejectReason> admit();
  uint32_t admitted() const { return admitted_.load(std::memory_order_relaxed); }
  // From now on every upgrade is refused (kDraining).
  void begin_drain() { draining_.store(true, std::memory_order_relaxed); }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

 private:
  const ops::Config& config_;
  const ResourceMonitor& resources_;
  std::atomic<uint32_t> admitted_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace odin::guard
