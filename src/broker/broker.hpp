// Where messages come from: the broker interface and the counters every broker keeps (the
// brokers: nats_broker, redis_broker, embedded_broker).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/ingest.hpp"
#include "core/stream.hpp"
#include "hub/fanout.hpp"

namespace odin {

// Why a message from the broker was not delivered (each is counted, and logged at most every
// few seconds, so a bad publisher cannot flood the log).
enum class IntakeReject : uint8_t {
  kBadSubject,   // the subject is not <prefix><valid channel name>
  kBadType,      // the Type header is empty, longer than 128 bytes or not UTF-8
  kOversized,    // the payload is larger than WS_MAX_PAYLOAD_BYTES
  kInvalidUtf8,  // the payload is not UTF-8: it could not become a WebSocket text frame
  kDuplicate,    // a JetStream redelivery of a message already handed to the fan-out
  // an event-loop thread is behind (WS_FANOUT_QUEUE_BYTES): dropped (core NATS, Redis) or
  // refused to the publisher (embedded)
  kFanoutBehind,
  kCount
};
const char* intake_reject_name(IntakeReject reason);

// Written by the broker's threads, read by /metrics, /stats and /health on any thread.
struct BrokerCounters {
  std::atomic<bool> connected{false};
  std::atomic<bool> paused{false};
  std::atomic<bool> intake_ready{true};  // JetStream: false until the consumer is bound
  std::atomic<uint64_t> received{0};     // messages taken from the broker
  std::atomic<uint64_t> delivered{0};    // handed to the fan-out
  std::atomic<uint64_t> disconnects{0};  // connection to the broker lost
  std::atomic<uint64_t> reconnects{0};   // and regained
  std::atomic<uint64_t> pauses{0};       // intake paused for CPU (WS_CPU_PAUSE_THRESHOLD)
  std::atomic<uint64_t> dropped{0};      // core NATS: dropped by the client library when full
  std::atomic<uint64_t> published{0};    // POST /publish messages the broker accepted
  std::atomic<uint64_t> publish_failures{0};
  // JetStream: stream messages lost in flight and read back from the stream to keep the order,
  // and gaps that could not be read back (histories restarted after them).
  std::atomic<uint64_t> gap_filled{0};
  std::atomic<uint64_t> history_restarts{0};
  // JetStream: the stream was deleted and created again while this instance read it.
  std::atomic<uint64_t> stream_resets{0};
  // JetStream resumes reading the stream back: waiting or under way (at most
  // WS_MAX_STREAM_READS), refused for that cap, abandoned by a client that hung up while waiting,
  // and stopped by WS_STREAM_READ_TIMEOUT.
  std::atomic<uint32_t> stream_reads_pending{0};
  std::atomic<uint64_t> stream_reads_refused{0};
  std::atomic<uint64_t> stream_reads_abandoned{0};
  std::atomic<uint64_t> stream_reads_timed_out{0};
  // An event-loop thread's fan-out queue is above WS_FANOUT_QUEUE_BYTES (until below half):
  // JetStream holds its pulls, the others drop. How often that began.
  std::atomic<bool> fanout_behind{false};
  std::atomic<uint64_t> fanout_behind_episodes{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(IntakeReject::kCount)> rejected{};

  void reject(IntakeReject reason) {
    rejected[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
};

class Broker : public StreamReader {
 public:
  virtual ~Broker() = default;
  virtual std::string_view name() const = 0;
  // Starts intake (connecting in the background); an error text when it cannot start at all.
  // stop() ends intake and fails pending publishes.
  virtual std::string start() { return {}; }
  virtual void stop() {}
  bool connected() const { return counters_.connected.load(std::memory_order_relaxed); }
  bool paused() const { return counters_.paused.load(std::memory_order_relaxed); }
  // Taking messages: connected and, for JetStream, reading the stream through this instance's
  // consumer. Before that, messages published now would never reach this instance's clients, so
  // /health keeps the balancer away.
  bool ready() const {
    return connected() && counters_.intake_ready.load(std::memory_order_relaxed);
  }
  const BrokerCounters& counters() const { return counters_; }
  // Publishes `items` through the broker (copying what it needs before returning). `done` runs
  // once, on any thread, after the broker accepted them (NATS: flushed to the server;
  // JetStream: stored, acknowledged by the stream) or gave up.
  virtual void publish(std::span<const IngestItem> items, PublishDone done) = 0;
  bool reserve_stream_read(uint32_t cap) override {
    uint32_t pending = counters_.stream_reads_pending.load(std::memory_order_relaxed);
    do {
      if (pending >= cap) {
        counters_.stream_reads_refused.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } while (!counters_.stream_reads_pending.compare_exchange_weak(pending, pending + 1,
                                                                   std::memory_order_relaxed));
    return true;
  }
  void release_stream_read() override {
    counters_.stream_reads_pending.fetch_sub(1, std::memory_order_relaxed);
  }
  void count_abandoned_stream_read() override {
    counters_.stream_reads_abandoned.fetch_add(1, std::memory_order_relaxed);
  }

 protected:
  BrokerCounters counters_;
};

}  // namespace odin
