// Connections per client address (WS_MAX_CONNECTIONS_PER_IP): one address cannot hold more than
// its share of sockets, whatever state they are in, so a crowd of slow or idle sockets from one
// host (slowloris) cannot use up the descriptors honest clients need. Counted at accept, across
// every event-loop thread; a slot is held by the connection and travels with it.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace odin {

class AddressLimits {
 public:
  // 0 = no limit (nothing is counted, no lock is taken).
  explicit AddressLimits(uint32_t per_address) : per_address_(per_address) {}
  // Every slot must be back by now: a connection outliving its limits would release into freed
  // memory (the Gateway declares its loops after the limits for this).
  ~AddressLimits();
  AddressLimits(const AddressLimits&) = delete;
  AddressLimits& operator=(const AddressLimits&) = delete;

  // One counted connection; gives its place back when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(AddressLimits* owner, uint32_t address) : owner_(owner), address_(address) {}
    Slot(Slot&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), address_(other.address_) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        reset();
        owner_ = std::exchange(other.owner_, nullptr);
        address_ = other.address_;
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { reset(); }
    void reset() {
      if (owner_) std::exchange(owner_, nullptr)->release(address_);
    }
    // The client address (kept even when no per-address limit counts it).
    uint32_t address() const { return address_; }

   private:
    AddressLimits* owner_ = nullptr;
    uint32_t address_ = 0;
  };

  // A slot for a new connection from `ipv4` (host order), or false when the address is at its
  // limit.
  bool acquire(uint32_t ipv4, Slot& slot) {
    if (per_address_ == 0) {
      slot = Slot(nullptr, ipv4);  // not counted; the address is still known to the connection
      return true;
    }
    std::lock_guard lock(mutex_);
    uint32_t& count = counts_[ipv4];
    if (count >= per_address_) {
      if (count == 0) counts_.erase(ipv4);
      return false;
    }
    ++count;
    slot = Slot(this, ipv4);
    return true;
  }
  uint32_t count(uint32_t ipv4) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ipv4);
    return it == counts_.end() ? 0 : it->second;
  }
  uint32_t per_address() const { return per_address_; }

 private:
  void release(uint32_t ipv4) {
    std::lock_guard lock(mutex_);
    auto it = counts_.find(ipv4);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

  const uint32_t per_address_;
  std::mutex mutex_;
  std::unordered_map<uint32_t, uint32_t> counts_;  // only addresses with connections
};

}  // namespace odin
