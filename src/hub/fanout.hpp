// The fan-out: ingest a message once, hand it to every event-loop thread in one global order,
// and deliver it to each local subscriber. The whole path from the broker callback to writev
// is in fanout.cpp (and net/out_batch.cpp for the write itself).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "hub/message.hpp"
#include "hub/subscription_index.hpp"

namespace odin {

class EventLoop;

// What a broker hands to the hub: a channel (already validated), a type and a payload.
struct IngestItem {
  std::string_view channel;
  std::string_view type;
  std::string_view data;
  bool data_is_json = true;
};

// Unbounded multi-producer, single-consumer queue (Vyukov): producers never block the consumer;
// the consumer never takes a lock.
class MessageQueue {
 public:
  MessageQueue();
  ~MessageQueue();
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;
  void push(std::shared_ptr<const Message> message);  // any thread
  std::shared_ptr<const Message> pop();               // the consumer thread only

 private:
  struct Node {
    std::atomic<Node*> next{nullptr};
    std::shared_ptr<const Message> message;
  };
  alignas(64) std::atomic<Node*> head_;
  alignas(64) Node* tail_;
};

// One event-loop thread's half of the fan-out.
class ThreadFanout {
 public:
  explicit ThreadFanout(EventLoop& loop);
  // Any thread: queue a message and make sure the loop will drain.
  void enqueue(std::shared_ptr<const Message> message);
  // Loop thread: deliver everything queued, then flush once.
  void drain();

  SubscriptionIndex& index() { return index_; }
  LocalMessagePool& pool() { return pool_; }

 private:
  EventLoop& loop_;
  MessageQueue queue_;
  std::atomic<bool> drain_posted_{false};
  LocalMessagePool pool_;  // before index_: the index's references die first
  SubscriptionIndex index_;
  std::vector<int64_t> drained_ingest_ns_;  // for the latency histogram, reused
};

// The process-wide entry of the fan-out.
class Hub {
 public:
  explicit Hub(std::vector<ThreadFanout*> threads);
  // Encodes each item once and hands it to every thread. Any thread may call it.
  void ingest(std::span<const IngestItem> items);
  uint64_t messages_in() const { return messages_in_.load(std::memory_order_relaxed); }

 private:
  std::vector<ThreadFanout*> threads_;
  // Serialises concurrent publishers so every thread (hence every client) sees one order.
  std::mutex ingest_order_;
  std::atomic<uint64_t> messages_in_{0};
};

}  // namespace odin
