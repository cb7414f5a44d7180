// The fan-out: ingest a message once, hand it to every event-loop thread in one global order,
// and deliver it to each local subscriber. The whole path from the broker callback to writev
// is in fanout.cpp (and net/out_batch.cpp for the write itself).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/deflate_readers.hpp"
#include "core/ingest.hpp"
#include "core/message.hpp"
#include "pubsub/subscription_index.hpp"

namespace odin::net {
class EventLoop;
}  // namespace odin::net

namespace odin::ws {
class MessageDeflater;
}  // namespace odin::ws

namespace odin::session {
class SessionTable;
}  // namespace odin::session

namespace odin::hub {

// Unbounded multi-producer, single-consumer queue (Vyukov): producers never block the consumer;
// the consumer never takes a lock.
class MessageQueue {
 public:
  MessageQueue();
  ~MessageQueue();
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;
  void push(std::shared_ptr<const core::Message> message);  // any thread
  std::shared_ptr<const core::Message> pop();               // the consumer thread only

 private:
  struct Node {
    std::atomic<Node*> next{nullptr};
    std::shared_ptr<const core::Message> message;
  };
  alignas(64) std::atomic<Node*> head_;
  alignas(64) Node* tail_;
};

// What a queued message is counted as against WS_FANOUT_QUEUE_BYTES: its envelope (and its
// compressed copy) plus about what the message, its control block and a queue node take around
// it.
inline uint64_t queued_cost(const core::Message& message) {
  return message.tail.size() + message.deflated.size() + message.channel.size() + 160;
}

// One event-loop thread's half of the fan-out.
class ThreadFanout {
 public:
  // `index` and `sessions` are this thread's; the fan-out delivers to them and keeps each
  // channel's latest message and history in `index`.
  ThreadFanout(net::EventLoop& loop, pubsub::SubscriptionIndex& index,
               session::SessionTable& sessions);
  // Any thread (the hub, under its order lock): queue messages, whose queued_cost() sum is
  // `bytes`, and make sure the loop will drain.
  void enqueue(std::span<const std::shared_ptr<const core::Message>> messages, uint64_t bytes);
  // Loop thread: deliver what is queued, a bounded amount per turn (kTurnRecipients), flush,
  // and continue in a later turn so the loop's other handlers run in between.
  void drain();
  // Loop thread, from the periodic sweep: ages histories (WS_HISTORY_MAX_AGE) and frees the
  // entries of channels nobody subscribes to and nothing was published on for
  // WS_CHANNEL_IDLE_TTL. Does the work at most once a second.
  void sweep();
  // Any thread: bytes queued for this thread and not yet delivered (queued_cost()).
  uint64_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  // Any thread: the most queued_bytes() has been since start.
  uint64_t peak_queued_bytes() const { return peak_queued_bytes_.load(std::memory_order_relaxed); }

  // Recipients (plus one per message) one drain turn visits at most (take_turn); a message is
  // never split, so one with more recipients still goes out whole. Large on purpose (a few ms of
  // work plus the flush): a thread that fell behind catches up only by writing many messages per
  // socket in one writev; at 32,768 it made several times the writes under load, fell further
  // behind and stopped delivering everything (docs/bench/analysis.md, "The fan-out turn").
  static constexpr size_t kTurnRecipients = 262144;

 private:
  // Takes the next turn's messages off the queue into turn_, marking each channel's newest
  // (ChannelSubscribers::newest_in_turn); returns their queued_cost() sum.
  uint64_t take_turn();
  void remember(pubsub::ChannelSubscribers& channel, const core::MessageRef& message);
  void age_history(pubsub::ChannelSubscribers& channel, int64_t oldest_ns);

  net::EventLoop& loop_;
  MessageQueue queue_;
  std::atomic<bool> drain_posted_{false};
  // Added by the producer before it pushes, taken off by the drain once per turn: one atomic
  // per batch and thread, none per recipient.
  alignas(64) std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> peak_queued_bytes_{0};  // written by the producer only (under the hub lock)
  pubsub::SubscriptionIndex& index_;
  session::SessionTable& sessions_;
  // One drain turn's messages with their channel entries (nullptr: a marker, or a channel
  // beyond WS_MAX_CHANNELS); reused.
  struct TurnItem {
    std::shared_ptr<const core::Message> message;
    pubsub::ChannelSubscribers* channel;
  };
  std::vector<TurnItem> turn_;
  bool turn_full_ = false;  // the last take_turn stopped at the budget, not at an empty queue
  std::vector<int64_t> drained_ingest_ns_;  // for the latency histogram, reused
  int64_t next_channel_sweep_ns_ = 0;
  uint64_t channels_refused_ = 0;  // messages on channels beyond WS_MAX_CHANNELS (for the log)
  int64_t channels_refused_logged_ns_ = 0;
};

// What compressing each message once has cost (permessage-deflate; read by /metrics).
struct CompressionCounters {
  std::atomic<uint64_t> messages{0};      // compressed and worth sending compressed
  std::atomic<uint64_t> not_worth{0};     // compressed, but no smaller enough: sent as they are
  std::atomic<uint64_t> input_bytes{0};   // tails of the compressed messages
  std::atomic<uint64_t> output_bytes{0};  // what they compressed to
  std::atomic<uint64_t> nanoseconds{0};   // time spent compressing, both kinds
};

// The process-wide entry of the fan-out.
class Hub {
 public:
  // `deflate_readers`: set when WS_COMPRESSION is on; while it counts a reader, each message is
  // compressed once, here, for all of them.
  explicit Hub(std::vector<ThreadFanout*> threads,
               const core::DeflateReaders* deflate_readers = nullptr);
  ~Hub();
  // Encodes each item once and hands it to every thread. Any thread may call it.
  void ingest(std::span<const core::IngestItem> items);
  // JetStream: from here on (in ingest order) this instance hands over every stream message after
  // `pos`. The broker says so when it starts reading the stream, and again after a gap it could
  // not fill; histories before that point are not complete.
  void mark_complete_after(uint64_t pos) { enqueue_marker(pos, false); }
  // JetStream: the stream was made anew and positions start over; also marks completeness after
  // `pos` like mark_complete_after. Any thread.
  void mark_stream_reset(uint64_t pos) { enqueue_marker(pos, true); }
  uint64_t messages_in() const { return messages_in_.load(std::memory_order_relaxed); }
  const CompressionCounters& compression() const { return compression_; }
  // Any thread: the largest backlog of any thread's queue (ThreadFanout::queued_bytes), which
  // is about what the queues hold alive, since they share the messages.
  uint64_t backlog_bytes() const;
  // Any thread: the largest backlog any thread's queue ever had.
  uint64_t peak_backlog_bytes() const;

 private:
  void enqueue_marker(uint64_t pos, bool stream_reset);
  // Any thread: sets message.deflated when compressing it gains (counted in compression_).
  void compress(core::Message& message);

  std::vector<ThreadFanout*> threads_;
  const core::DeflateReaders* deflate_readers_;
  // One deflater (about 256 KiB of zlib state) for every publisher: compressing a message takes
  // microseconds, and publishers rarely run at once (one broker thread in production).
  std::mutex deflate_lock_;
  std::unique_ptr<ws::MessageDeflater> deflater_;
  CompressionCounters compression_;
  // Serialises concurrent publishers so every thread (hence every client) sees one order.
  std::mutex ingest_order_;
  std::atomic<uint64_t> messages_in_{0};
};

}  // namespace odin::hub
