// The last `capacity` data messages sent on one session, keyed by their contiguous seq numbers,
// so a client can ask for a replay or resume after a disconnect. One ring per session (20,000+
// per process), so it is kept small: 32 bytes until the first push, then one array of exactly
// `capacity` handles that never grows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

namespace odin::core {

// T is a cheap handle (e.g. an 8-byte intrusive refcounted pointer): default-constructible (the
// empty handle) and move-assignable, where assigning over a handle releases what it held.
// Invariant: slots that hold no entry hold a default T, so the ring never keeps a message alive
// after it was evicted or cleared.
//
// Not thread-safe: owned by the session's event-loop thread.
template <class T>
class ReplayRing {
 public:
  explicit ReplayRing(uint32_t capacity) : capacity_(capacity) {}
  ReplayRing(const ReplayRing&) = delete;
  ReplayRing& operator=(const ReplayRing&) = delete;
  // A moved-from ring is empty (and holds no storage) but keeps its capacity.
  ReplayRing(ReplayRing&& other) noexcept
      : slots_(std::move(other.slots_)),
        last_seq_(other.last_seq_),
        capacity_(other.capacity_),
        size_(std::exchange(other.size_, 0)),
        next_(std::exchange(other.next_, 0)) {}
  ReplayRing& operator=(ReplayRing&& other) noexcept {
    if (this != &other) {
      slots_ = std::move(other.slots_);
      last_seq_ = other.last_seq_;
      capacity_ = other.capacity_;
      size_ = std::exchange(other.size_, 0);
      next_ = std::exchange(other.next_, 0);
    }
    return *this;
  }
  ~ReplayRing() = default;

  // Keeps `value` as message `seq`. `seq` should be last_seq() + 1 (any seq when empty); a
  // non-contiguous seq first drops everything held, so the ring only ever holds a gap-free run
  // (a replay is never partial in the middle). When full, the oldest entry is released.
  // O(1): no division, no allocation except the very first push after construction or clear().
  void push(uint64_t seq, T value) {
    if (capacity_ == 0) return;  // `value` is released on return
    if (!slots_) {
      slots_ = std::make_unique<T[]>(capacity_);
    } else if (size_ != 0 && seq != last_seq_ + 1) {
      release_entries();
    }
    slots_[next_] = std::move(value);  // over the oldest entry when full: releases it
    if (++next_ == capacity_) next_ = 0;
    if (size_ < capacity_) ++size_;
    last_seq_ = seq;
  }

  // The fan-out touches thousands of rings per message: it asks for the next slot's cache line
  // a few recipients ahead so the push does not wait on memory.
  void prefetch_push() const {
    if (slots_) __builtin_prefetch(&slots_[next_], 1);
  }

  // The oldest and newest entries, and dropping the oldest (for a ring that also ages entries
  // out, like the per-channel history). All three only when !empty().
  const T& oldest() const { return slots_[first_index()]; }
  const T& newest() const { return slots_[next_ == 0 ? capacity_ - 1 : next_ - 1]; }
  void pop_oldest() {
    slots_[first_index()] = T();
    --size_;
  }

  bool empty() const { return size_ == 0; }
  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  // Both valid only when !empty().
  uint64_t first_seq() const { return last_seq_ - size_ + 1; }
  uint64_t last_seq() const { return last_seq_; }

  // Calls visit(uint64_t seq, const T&) for each held entry with seq in [from, to], ascending.
  // Returns how many it visited (0 when from > to or nothing held is in range).
  template <class F>
  uint32_t for_range(uint64_t from, uint64_t to, F&& visit) const {
    if (size_ == 0) return 0;
    const uint64_t first = first_seq();
    const uint64_t lo = std::max(from, first);
    const uint64_t hi = std::min(to, last_seq_);
    if (lo > hi) return 0;
    const auto count = static_cast<uint32_t>(hi - lo + 1);  // <= size_
    uint32_t index = wrap(first_index() + static_cast<uint32_t>(lo - first));
    uint64_t seq = lo;
    for (uint32_t n = 0; n < count; ++n) {
      visit(seq++, static_cast<const T&>(slots_[index]));
      if (++index == capacity_) index = 0;
    }
    return count;
  }

  // Releases every entry and frees the storage (a detached or idle session holds none).
  void clear() {
    slots_.reset();
    size_ = 0;
    next_ = 0;
  }

 private:
  // Index of the oldest entry. size_ <= capacity_ and next_ < capacity_, so one conditional
  // add replaces a modulo.
  uint32_t first_index() const {
    return next_ >= size_ ? next_ - size_ : next_ + (capacity_ - size_);
  }
  // For i < 2 * capacity_.
  uint32_t wrap(uint32_t i) const { return i >= capacity_ ? i - capacity_ : i; }

  // Resets the held slots to the empty handle (keeps the storage for the push that follows).
  void release_entries() {
    uint32_t index = first_index();
    for (uint32_t n = 0; n < size_; ++n) {
      slots_[index] = T();
      if (++index == capacity_) index = 0;
    }
    size_ = 0;
    next_ = 0;
  }

  std::unique_ptr<T[]> slots_;  // null until the first push, and after clear()
  uint64_t last_seq_ = 0;
  uint32_t capacity_;
  uint32_t size_ = 0;
  uint32_t next_ = 0;  // where the next push writes
};

}  // namespace odin::core
