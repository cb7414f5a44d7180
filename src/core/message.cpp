// Per-thread LocalMessage pool (see message.hpp).
#include "core/message.hpp"

namespace odin::core {

namespace {
constexpr size_t kPoolBlock = 256;
}

MessageRef LocalMessagePool::adopt(std::shared_ptr<const Message> message) {
  if (!free_) {
    blocks_.push_back(std::make_unique<LocalMessage[]>(kPoolBlock));
    LocalMessage* block = blocks_.back().get();
    for (size_t i = 0; i < kPoolBlock; ++i) {
      block[i].pool = this;
      block[i].next_free = free_;
      free_ = &block[i];
    }
  }
  LocalMessage* local = free_;
  free_ = local->next_free;
  local->next_free = nullptr;
  local->shared = std::move(message);
  local->refs = 0;
  ++live_;
  return MessageRef(local);
}

void LocalMessagePool::recycle(LocalMessage* local) {
  local->shared.reset();
  local->next_free = free_;
  free_ = local;
  --live_;
}

}  // namespace odin::core
