// Sockets per client address (WS_MAX_CONNECTIONS_PER_IP) and in the whole process
// (WS_MAX_SOCKETS): one address cannot hold more than its share of sockets, whatever state they
// are in, so a crowd of slow or idle sockets from one host (slowloris) cannot use up the
// descriptors honest clients need; and all sockets together, before and after the upgrade, stay
// under one cap even when every client arrives through one balancer address. Counted at accept,
// across every event-loop thread; a slot is held by the connection and travels with it.
// Threading: every member may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace odin::guard {

class AddressLimits {
 public:
  // 0 = no limit (nothing is counted for it; no lock is taken without a per-address limit).
  explicit AddressLimits(uint32_t per_address, uint32_t total = 0)
      : per_address_(per_address), total_limit_(total) {}
  // Every slot must be back by now: a connection outliving its limits would release into freed
  // memory (the Gateway declares its loops after the limits for this).
  ~AddressLimits();
  AddressLimits(const AddressLimits&) = delete;
  AddressLimits& operator=(const AddressLimits&) = delete;

  // One counted connection; gives its place back when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)),
          address_(other.address_),
          counted_address_(other.counted_address_) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        reset();
        owner_ = std::exchange(other.owner_, nullptr);
        address_ = other.address_;
        counted_address_ = other.counted_address_;
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { reset(); }
    void reset() {
      if (owner_) std::exchange(owner_, nullptr)->release(address_, counted_address_);
    }
    // The client address (kept even when no limit counts it).
    uint32_t address() const { return address_; }

   private:
    friend class AddressLimits;
    Slot(AddressLimits* owner, uint32_t address, bool counted_address)
        : owner_(owner), address_(address), counted_address_(counted_address) {}
    AddressLimits* owner_ = nullptr;
    uint32_t address_ = 0;
    bool counted_address_ = false;
  };

  enum class Verdict : uint8_t { kAdmitted, kAddressFull, kProcessFull };

  // A slot for a new socket from `ipv4` (host order), or why there is none.
  Verdict admit(uint32_t ipv4, Slot& slot) {
    if (total_limit_ != 0 && total_.fetch_add(1, std::memory_order_relaxed) >= total_limit_) {
      total_.fetch_sub(1, std::memory_order_relaxed);
      return Verdict::kProcessFull;
    }
    if (per_address_ != 0) {
      std::lock_guard lock(mutex_);
      uint32_t& count = counts_[ipv4];
      if (count >= per_address_) {
        if (count == 0) counts_.erase(ipv4);
        if (total_limit_ != 0) total_.fetch_sub(1, std::memory_order_relaxed);
        return Verdict::kAddressFull;
      }
      ++count;
    }
    // Not counted: no owner to give back to, but the connection still knows its address.
    const bool counted = total_limit_ != 0 || per_address_ != 0;
    slot = Slot(counted ? this : nullptr, ipv4, per_address_ != 0);
    return Verdict::kAdmitted;
  }
  // admit() for callers that only need to know whether the address is at its limit.
  bool acquire(uint32_t ipv4, Slot& slot) { return admit(ipv4, slot) == Verdict::kAdmitted; }
  uint32_t count(uint32_t ipv4) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ipv4);
    return it == counts_.end() ? 0 : it->second;
  }
  uint32_t per_address() const { return per_address_; }
  // Sockets counted against WS_MAX_SOCKETS (0 when it is off).
  uint32_t total() const { return total_.load(std::memory_order_relaxed); }
  uint32_t total_limit() const { return total_limit_; }

 private:
  void release(uint32_t ipv4, bool counted_address) {
    if (total_limit_ != 0) total_.fetch_sub(1, std::memory_order_relaxed);
    if (!counted_address) return;
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ipv4);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

  const uint32_t per_address_;
  const uint32_t total_limit_;
  std::atomic<uint32_t> total_{0};
  std::mutex mutex_;
  std::unordered_map<uint32_t, uint32_t> counts_;  // only addresses with connections
};

}  // namespace odin::guard
