// The last `capacity` data messages sent on one session, keyed by their contiguous seq, for
// replay and resume. Storage is allocated at the first push (idle sessions hold none) and never
// grows.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

namespace odin {

template <class T>
class ReplayRing {
 public:
  explicit ReplayRing(uint32_t capacity) : capacity_(capacity) {}

  // `seq` must follow last_seq(); a ring that sees a jump starts over from `seq`.
  void push(uint64_t seq, T value) {
    if (capacity_ == 0) return;
    if (!slots_) slots_ = std::make_unique<T[]>(capacity_);
    if (size_ > 0 && seq != last_seq_ + 1) clear_entries();
    const uint32_t index = static_cast<uint32_t>(seq % capacity_);
    slots_[index] = std::move(value);  // evicts the oldest when full
    last_seq_ = seq;
    if (size_ < capacity_) ++size_;
  }

  bool empty() const { return size_ == 0; }
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  uint64_t first_seq() const { return last_seq_ + 1 - size_; }
  uint64_t last_seq() const { return last_seq_; }

  // Visits the held entries with seq in [from, to], ascending: visit(seq, const T&).
  template <class F>
  uint32_t for_range(uint64_t from, uint64_t to, F&& visit) const {
    if (size_ == 0) return 0;
    const uint64_t lo = std::max(from, first_seq());
    const uint64_t hi = std::min(to, last_seq_);
    uint32_t visited = 0;
    for (uint64_t seq = lo; seq <= hi && seq >= lo; ++seq) {
      visit(seq, slots_[static_cast<uint32_t>(seq % capacity_)]);
      ++visited;
    }
    return visited;
  }

  void clear() {
    slots_.reset();
    size_ = 0;
  }

 private:
  void clear_entries() {
    for (uint32_t i = 0; i < capacity_; ++i)
      slots_[i] = T();
    size_ = 0;
  }

  std::unique_ptr<T[]> slots_;
  uint64_t last_seq_ = 0;
  uint32_t capacity_;
  uint32_t size_ = 0;
};

}  // namespace odin
