// A place counted in a shared total (an admitted connection, say): move-only, and the count goes
// down exactly once, when the place is released or destroyed, on whatever thread that happens.
// guard/ hands them out (Admission); the layers above carry them without knowing the rule.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace odin::core {

class CountedPlace {
 public:
  CountedPlace() = default;
  // Takes a place already counted in `count`.
  explicit CountedPlace(std::atomic<uint32_t>& count) : count_(&count) {}
  CountedPlace(CountedPlace&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
  CountedPlace& operator=(CountedPlace&& other) noexcept {
    if (this != &other) {
      release();
      count_ = std::exchange(other.count_, nullptr);
    }
    return *this;
  }
  CountedPlace(const CountedPlace&) = delete;
  CountedPlace& operator=(const CountedPlace&) = delete;
  ~CountedPlace() { release(); }

  explicit operator bool() const { return count_ != nullptr; }
  void release() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_ = nullptr;
  }

 private:
  std::atomic<uint32_t>* count_ = nullptr;
};

}  // namespace odin::core
