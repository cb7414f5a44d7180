// A published message, encoded once: the shared tail of its envelope, plus the per-thread handle
// that lets replay rings and pending writes reference it without an atomic per recipient.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace odin::core {

// Immutable once published. Shared by all event-loop threads through std::shared_ptr: one atomic
// increment per thread per message, never per recipient.
struct Message {
  std::string channel;
  // `"pos":P,"ts":...,"type":...,"channel":...,"data":...}`: the envelope minus `{"seq":N,`
  // ("pos" only in JetStream mode).
  std::string tail;
  // permessage-deflate: `tail` compressed once for every recipient that negotiated it (raw
  // DEFLATE, sync-flushed, 00 00 ff ff removed: RFC 7692 7.2.1); empty when compression is off,
  // nobody reads compressed, or the message was too small to gain (it then goes uncompressed).
  std::string deflated;
  int64_t ingest_steady_ns = 0;  // for the ingest-to-write latency histogram
  int64_t ts_ms = 0;             // the envelope's ts (ages the per-channel history)
  // JetStream: the message's stream sequence, the same on every instance (0 in other modes).
  uint64_t pos = 0;
  // Not a message but a position marker (empty channel): from here on, this instance has every
  // stream message after `pos` (hub/fanout.hpp, Hub::mark_complete_after).
  bool marker = false;
  // With `marker`: the stream was deleted and made again, so positions start over; what was
  // kept in old positions (a restored session's skip, the newest position seen) means nothing now.
  bool stream_reset = false;
};

class LocalMessagePool;

// One thread's reference-counted view of a Message. The count is plain (not atomic) because only
// the owning thread touches it; when it drops to zero the shared message is let go.
struct LocalMessage {
  std::shared_ptr<const Message> shared;
  uint32_t refs = 0;
  LocalMessagePool* pool = nullptr;
  LocalMessage* next_free = nullptr;
};

// Intrusive handle to a LocalMessage (8 bytes, so a replay ring of 100 costs 800 bytes).
class MessageRef {
 public:
  MessageRef() = default;
  explicit MessageRef(LocalMessage* local) : local_(local) {
    if (local_) ++local_->refs;
  }
  MessageRef(const MessageRef& other) : MessageRef(other.local_) {}
  MessageRef(MessageRef&& other) noexcept : local_(other.local_) { other.local_ = nullptr; }
  MessageRef& operator=(MessageRef other) noexcept {
    std::swap(local_, other.local_);
    return *this;
  }
  ~MessageRef() { reset(); }

  void reset();
  explicit operator bool() const { return local_ != nullptr; }
  bool operator==(const MessageRef& other) const { return local_ == other.local_; }
  const Message& operator*() const { return *local_->shared; }
  const Message* operator->() const { return local_->shared.get(); }

 private:
  LocalMessage* local_ = nullptr;
};

// Per-thread free list of LocalMessage objects: steady-state fan-out allocates nothing.
class LocalMessagePool {
 public:
  LocalMessagePool() = default;
  LocalMessagePool(const LocalMessagePool&) = delete;
  LocalMessagePool& operator=(const LocalMessagePool&) = delete;

  MessageRef adopt(std::shared_ptr<const Message> message);
  void recycle(LocalMessage* local);
  size_t live() const { return live_; }

 private:
  std::vector<std::unique_ptr<LocalMessage[]>> blocks_;
  LocalMessage* free_ = nullptr;
  size_t live_ = 0;
};

inline void MessageRef::reset() {
  if (local_ && --local_->refs == 0) local_->pool->recycle(local_);
  local_ = nullptr;
}

}  // namespace odin::core
