// Where messages come from: the broker interface (the brokers: nats_broker, redis_broker,
// embedded_broker). The counters every broker keeps are BrokerCounters (ops/metrics.hpp).
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
#include "ops/metrics.hpp"

namespace odin::broker {

class Broker : public core::StreamReader {
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
  const ops::BrokerCounters& counters() const { return counters_; }
  // Publishes `items` through the broker (copying what it needs before returning). `done` runs
  // once, on any thread, after the broker accepted them (NATS: flushed to the server;
  // JetStream: stored, acknowledged by the stream) or gave up.
  virtual void publish(std::span<const core::IngestItem> items, core::PublishDone done) = 0;
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
  ops::BrokerCounters counters_;
};

}  // namespace odin::broker
