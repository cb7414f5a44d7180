// How many connections take compressed data frames (permessage-deflate, docs/protocol.md): the
// hub compresses each message once, and only while at least one connection would read it.
#pragma once

#include <atomic>
#include <cstdint>

namespace odin::core {

// Any thread: clients count themselves in when they negotiate compression and out when they
// close; the hub reads any() once per batch. Relaxed: a message ingested just before a client
// counts itself in goes to it uncompressed, which the protocol allows per message.
class DeflateReaders {
 public:
  void add() { count_.fetch_add(1, std::memory_order_relaxed); }
  void remove() { count_.fetch_sub(1, std::memory_order_relaxed); }
  bool any() const { return count_.load(std::memory_order_relaxed) != 0; }
  uint32_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint32_t> count_{0};
};

}  // namespace odin::core
