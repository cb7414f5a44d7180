// The hot path, first of its three files: a batch from the broker's intake (Hub::ingest) to
// each thread's queue, to every local subscriber (ThreadFanout::drain calls Session::deliver,
// session/session.hpp), to one writev per connection at the end of the turn (OutBatch::flush,
// net/out_batch.cpp). Per message: one envelope encode, one shared_ptr copy per thread. Per
// recipient: a seq increment, a ring slot, a ~20-byte prefix. No lock, no atomic, no allocation
// and no virtual call per recipient.
#include "hub/fanout.hpp"

#include <malloc.h>

#include <chrono>

#include "core/clock.hpp"
#include "core/envelope.hpp"
#include "net/event_loop.hpp"
#include "ops/config.hpp"
#include "ops/metrics.hpp"
#include "session/session.hpp"
#include "spdlog/spdlog.h"
#include "ws/deflate.hpp"

namespace odin::hub {

namespace {
// How many recipients ahead the fan-out prefetches (measured: enough to cover a memory miss
// behind the per-recipient work, small enough to stay in L1).
constexpr size_t kPrefetchAhead = 8;
constexpr int64_t kChannelSweepEveryNs = 1'000'000'000;
constexpr int64_t kRefusedLogEveryNs = 10'000'000'000;
// Channel entries freed in one sweep above which the heap is trimmed (malloc_trim walks it).
constexpr size_t kTrimAfterFreed = 1024;
}  // namespace

// 1. A batch from the broker: encoded once, handed to every thread in one order.

Hub::Hub(std::vector<ThreadFanout*> threads, const core::DeflateReaders* deflate_readers)
    : threads_(std::move(threads)), deflate_readers_(deflate_readers) {
  if (deflate_readers_) deflater_ = std::make_unique<ws::MessageDeflater>();
}

Hub::~Hub() = default;

void Hub::ingest(std::span<const core::IngestItem> items) {
  const int64_t ts_ms = core::wall_ms();
  const int64_t ingest_ns = core::steady_ns();

  // Encode (and compress) outside the order lock; that lock only fixes the order of hand-off.
  const bool compressing = deflate_readers_ && deflate_readers_->any();
  std::vector<std::shared_ptr<const core::Message>> encoded;
  encoded.reserve(items.size());
  for (const core::IngestItem& item : items) {
    std::shared_ptr<core::Message> message = core::encode_message(item, ts_ms, ingest_ns);
    if (compressing) compress(*message);
    encoded.push_back(std::move(message));
  }

  uint64_t bytes = 0;
  for (const auto& message : encoded)
    bytes += queued_cost(*message);

  std::lock_guard lock(ingest_order_);
  for (ThreadFanout* thread : threads_)
    thread->enqueue(encoded, bytes);
  messages_in_.fetch_add(encoded.size(), std::memory_order_relaxed);
}

// 2. On each thread: queued, then delivered to its subscribers in bounded turns.

ThreadFanout::ThreadFanout(net::EventLoop& loop, pubsub::SubscriptionIndex& index,
                           session::SessionTable& sessions)
    : loop_(loop), index_(index), sessions_(sessions) {
  drained_ingest_ns_.reserve(1024);
}

void ThreadFanout::enqueue(std::span<const std::shared_ptr<const core::Message>> messages,
                           uint64_t bytes) {
  // Counted before the push, so the drain never takes off more than was added.
  const uint64_t queued = queued_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (queued > peak_queued_bytes_.load(std::memory_order_relaxed)) {
    peak_queued_bytes_.store(queued, std::memory_order_relaxed);
  }
  for (const std::shared_ptr<const core::Message>& message : messages)
    queue_.push(message);
  // One post per batch, not per message: the loop drains everything queued when it runs.
  if (!drain_posted_.exchange(true, std::memory_order_seq_cst)) {
    boost::asio::post(loop_.io(), [this] { drain(); });
  }
}

void ThreadFanout::drain() {
  drain_posted_.exchange(false, std::memory_order_seq_cst);
  const uint64_t drained_bytes = take_turn();
  net::OutBatch& out = loop_.out();
  uint64_t delivered = 0;

  for (uint32_t turn_index = 0; turn_index < turn_.size(); ++turn_index) {
    TurnItem& item = turn_[turn_index];
    if (item.message->marker) {
      if (item.message->stream_reset) {
        // Old positions mean nothing in the new stream: a restored session skipping up to one
        // of them would silently drop the new stream's first messages.
        sessions_.for_each([](session::Session& session) { session.forget_restored_skip(); });
      }
      index_.mark_complete_after(item.message->pos, item.message->stream_reset);
      continue;
    }
    if (!item.channel) {
      // WS_MAX_CHANNELS: no entry, so no subscriber here, and no snapshot or history kept.
      index_.saw_pos(item.message->pos);
      index_.forget_message(item.message->pos);
      ++channels_refused_;
      continue;
    }
    pubsub::ChannelSubscribers& channel = *item.channel;
    core::MessageRef message = loop_.pool().adopt(std::move(item.message));
    channel.latest = message;  // what a `snapshot` subscribe sends
    const uint64_t pos = message->pos;
    if (pos != 0) remember(channel, message);
    drained_ingest_ns_.push_back(message->ingest_steady_ns);

    // Each recipient is three cold cache lines (session, ring slot, connection): ask for them a
    // few recipients ahead, in two stages since the last two are found through the session.
    const std::vector<pubsub::Subscriber*>& recipients = channel.subscribers;
    const size_t count = recipients.size();
    for (size_t i = 0; i < count; ++i) {
      if (i + 2 * kPrefetchAhead < count) __builtin_prefetch(recipients[i + 2 * kPrefetchAhead]);
      if (i + kPrefetchAhead < count) {
        session::session_of(recipients[i + kPrefetchAhead]).prefetch_for_delivery();
      }
      session::Session* session = &session::session_of(recipients[i]);
      // A session restored from another instance that was ahead of this one: it already has
      // this channel's messages up to where that instance was.
      if (session->already_sent(&channel, pos)) continue;
      delivered += session->deliver(message, out);
    }

    // `latest` subscribers (docs/protocol.md) are offered only the turn's newest message of the
    // channel: the older ones are skipped for all of them at once, so a thread that fell behind
    // catches up on `latest` channels in one turn.
    const std::vector<pubsub::LatestSlot*>& latest = channel.latest_subscribers;
    if (latest.empty()) continue;
    if (channel.newest_in_turn != turn_index) {
      channel.skipped_in_turn.push_back(pos);
      continue;
    }
    const std::span<const uint64_t> skipped = channel.skipped_in_turn;
    const int64_t now_ns = core::steady_ns();
    const size_t latest_count = latest.size();
    for (size_t i = 0; i < latest_count; ++i) {
      // As above, one stage further: the slot, then its session, then the session's lines.
      if (i + 2 * kPrefetchAhead < latest_count) __builtin_prefetch(latest[i + 2 * kPrefetchAhead]);
      if (i + kPrefetchAhead < latest_count) {
        const pubsub::LatestSlot* ahead = latest[i + kPrefetchAhead];
        __builtin_prefetch(ahead->subscriber);
        session::session_of(ahead->subscriber).prefetch_for_delivery();
      }
      pubsub::LatestSlot* slot = latest[i];
      session::Session& session = session::session_of(slot->subscriber);
      if (session.already_sent(&channel, pos)) continue;  // and so were the older ones
      switch (session.offer_latest(index_, *slot, message, session.count_unsent(&channel, skipped),
                                   now_ns, out)) {
        case session::LatestOffer::kSent:
          ++delivered;
          break;
        case session::LatestOffer::kHeldForRate:
          sessions_.wait_to_send(session);
          break;
        case session::LatestOffer::kHeldForConnection:
          break;
      }
    }
    channel.skipped_in_turn.clear();
  }
  turn_.clear();
  queued_bytes_.fetch_sub(drained_bytes, std::memory_order_relaxed);

  ops::ThreadStats& stats = loop_.stats();
  stats.messages_out.add(delivered);
  loop_.flush();

  // Ingest to the write of this thread's last recipient, one sample per message.
  const int64_t done = core::steady_ns();
  for (int64_t ingest_ns : drained_ingest_ns_) {
    stats.fanout_latency.record(static_cast<uint64_t>(std::max<int64_t>(0, done - ingest_ns)));
  }
  drained_ingest_ns_.clear();

  // The turn took all it could: the rest in a later turn, after the handlers already waiting
  // (reads, timers, accepts), unless a producer already posted one.
  if (turn_full_ && !drain_posted_.exchange(true, std::memory_order_seq_cst)) {
    boost::asio::post(loop_.io(), [this] { drain(); });
  }
}

uint64_t ThreadFanout::take_turn() {
  // Recipients the turn will visit: every `all` subscriber of each message, the `latest` ones
  // once per channel (for its newest message in the turn), plus one per message. A message is
  // never split, so one with more recipients than the budget still goes out whole.
  size_t visits = 0;
  uint64_t bytes = 0;
  turn_full_ = false;
  while (!turn_full_) {
    std::shared_ptr<const core::Message> message = queue_.pop();
    if (!message) break;
    bytes += queued_cost(*message);
    const auto turn_index = static_cast<uint32_t>(turn_.size());
    pubsub::ChannelSubscribers* channel =
        message->marker ? nullptr : index_.try_entry(message->channel);
    visits += 1;
    if (channel) {
      visits += channel->subscribers.size();
      const bool first_in_turn = channel->newest_in_turn >= turn_index ||
                                 turn_[channel->newest_in_turn].channel != channel;
      if (first_in_turn) visits += channel->latest_subscribers.size();
      channel->newest_in_turn = turn_index;
    }
    turn_.push_back(TurnItem{std::move(message), channel});
    turn_full_ = visits >= kTurnRecipients;
  }
  return bytes;
}

// What the hot path leans on: the channel histories, the sweep, the markers, the queue.

void ThreadFanout::remember(pubsub::ChannelSubscribers& channel, const core::MessageRef& message) {
  index_.saw_pos(message->pos);
  const ops::Config& config = loop_.config();
  if (config.history_size == 0) {
    // No history: it holds every message only after the newest one, so a restore from before
    // that reads the stream.
    channel.history_evicted_through = message->pos;
    return;
  }
  core::ReplayRing<core::MessageRef>& history = channel.history;
  if (history.capacity() != config.history_size) {
    history =
        core::ReplayRing<core::MessageRef>(config.history_size);  // once per channel and thread
  }
  // Only in stream order: a late first delivery the broker could not put in place means the
  // history missed it, so the history restarts after the newest message it had.
  if (!history.empty() && history.newest()->pos >= message->pos) {
    channel.history_evicted_through = history.newest()->pos;
    history.clear();
    return;
  }
  if (history.size() == history.capacity() && !history.empty()) {
    channel.history_evicted_through = history.oldest()->pos;  // the push below drops it
  }
  history.push(history.empty() ? 1 : history.last_seq() + 1, message);
  age_history(channel,
              message->ingest_steady_ns - std::chrono::nanoseconds(config.history_max_age).count());
}

// Drops history entries ingested before `oldest_ns` (monotonic, so a clock step changes nothing).
void ThreadFanout::age_history(pubsub::ChannelSubscribers& channel, int64_t oldest_ns) {
  core::ReplayRing<core::MessageRef>& history = channel.history;
  while (!history.empty() && history.oldest()->ingest_steady_ns < oldest_ns) {
    channel.history_evicted_through = history.oldest()->pos;
    history.pop_oldest();
  }
  if (history.empty()) history.clear();  // an idle channel keeps no storage
}

void ThreadFanout::sweep() {
  const int64_t now = core::steady_ns();
  if (now < next_channel_sweep_ns_) return;
  next_channel_sweep_ns_ = now + kChannelSweepEveryNs;
  const ops::Config& config = loop_.config();
  const int64_t history_oldest = now - std::chrono::nanoseconds(config.history_max_age).count();
  const int64_t idle_before = now - std::chrono::nanoseconds(config.channel_idle_ttl).count();
  const size_t freed = index_.erase_idle([&](pubsub::ChannelSubscribers& channel) {
    age_history(channel, history_oldest);
    return !channel.latest || channel.latest->ingest_steady_ns < idle_before;
  });
  // Many small blocks went back to malloc: give the pages back too, or RSS never falls.
  if (freed >= kTrimAfterFreed) malloc_trim(0);
  if (channels_refused_ != 0 && now - channels_refused_logged_ns_ >= kRefusedLogEveryNs) {
    spdlog::warn(
        "thread {}: {} message(s) on new channels kept no state (snapshot, history): "
        "{} channels held, WS_MAX_CHANNELS",
        loop_.index(), channels_refused_, index_.channel_count());
    channels_refused_ = 0;
    channels_refused_logged_ns_ = now;
  }
}

// Once per message, for every connection that reads compressed frames (session::append_data_frame
// puts each recipient's prefix in front of these bytes).
void Hub::compress(core::Message& message) {
  std::lock_guard lock(deflate_lock_);
  // CPU time: on a loaded machine the wall time would mostly be the wait for a core.
  const int64_t started = core::thread_cpu_ns();
  const bool worth = deflater_->compress(message.tail, message.deflated);
  if (!worth) message.deflated.clear();
  message.deflated.shrink_to_fit();  // the deflater sized it for the worst case
  compression_.nanoseconds.fetch_add(static_cast<uint64_t>(core::thread_cpu_ns() - started),
                                     std::memory_order_relaxed);
  if (!worth) {
    compression_.not_worth.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  compression_.messages.fetch_add(1, std::memory_order_relaxed);
  compression_.input_bytes.fetch_add(message.tail.size(), std::memory_order_relaxed);
  compression_.output_bytes.fetch_add(message.deflated.size(), std::memory_order_relaxed);
}

void Hub::enqueue_marker(uint64_t pos, bool stream_reset) {
  auto marker = std::make_shared<core::Message>();
  marker->pos = pos;
  marker->marker = true;
  marker->stream_reset = stream_reset;
  const std::shared_ptr<const core::Message> shared = std::move(marker);
  std::lock_guard lock(ingest_order_);
  for (ThreadFanout* thread : threads_)
    thread->enqueue({&shared, 1}, queued_cost(*shared));
}

uint64_t Hub::peak_backlog_bytes() const {
  uint64_t most = 0;
  for (const ThreadFanout* thread : threads_)
    most = std::max(most, thread->peak_queued_bytes());
  return most;
}

uint64_t Hub::backlog_bytes() const {
  uint64_t most = 0;
  for (const ThreadFanout* thread : threads_)
    most = std::max(most, thread->queued_bytes());
  return most;
}

MessageQueue::MessageQueue() {
  auto stub = std::make_unique<Node>();
  tail_ = stub.release();
  head_.store(tail_);
}

MessageQueue::~MessageQueue() {
  while (pop()) {
  }
  std::unique_ptr<Node> last(tail_);
}

void MessageQueue::push(std::shared_ptr<const core::Message> message) {
  auto node = std::make_unique<Node>();
  node->message = std::move(message);
  Node* raw = node.release();
  Node* prev = head_.exchange(raw, std::memory_order_seq_cst);
  prev->next.store(raw, std::memory_order_seq_cst);
}

std::shared_ptr<const core::Message> MessageQueue::pop() {
  Node* next = tail_->next.load(std::memory_order_acquire);
  if (!next) return nullptr;
  std::unique_ptr<Node> old_stub(tail_);
  tail_ = next;  // `next` becomes the stub; its message is handed out
  return std::move(next->message);
}

}  // namespace odin::hub
