// The NATS broker's plumbing on nats.c: its one connection (options, server URLs, the callbacks
// that keep the connection counters, reconnecting forever with backoff) and the subscription
// both intakes read in batches. Private to src/broker/nats_*.cpp: the only headers that name
// nats.c's types are this one and the nats_*.hpp beside it, and only nats_*.cpp include them.
#pragma once

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ops/config.hpp"
#include "ops/metrics.hpp"

namespace odin::broker {

class IntakeRunner;

// A NATS publish is flushed, a JetStream one acknowledged by the stream, within this.
constexpr int64_t kNatsPublishTimeoutMs = 5000;

inline int64_t ns_of(ops::Millis ms) {
  return ms.count() * 1'000'000;
}

// A subscription or JetStream setup that failed is tried again after 250 ms more each time, up
// to 5 s (nats.c itself reconnects the connection, with reconnect_delay_ms).
inline int64_t nats_setup_retry_ms(int failures) {
  return std::min<int64_t>(5000, 250 * failures);
}

// nats.c's text for `s`, JetStream's error code and nats.c's last error when they add to it.
std::string status_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0));

class NatsConnection {
 public:
  NatsConnection(const ops::Config& config, ops::BrokerCounters& counters)
      : config_(config), counters_(counters) {}
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  // Runs on a nats.c thread after each reconnect. Set before open().
  std::function<void()> on_reconnected;

  // Connects, in the background when NATS is not up yet (nats.c retries forever), with a
  // JetStream context when `jetstream`. An error text for settings nats.c refuses. Owner's thread.
  std::string open(const std::string& client_name, bool jetstream);
  // The first step of a stop, any thread: from here on a disconnect is our own close, neither
  // counted nor logged. False when it never opened or is stopping already.
  bool begin_close() { return open_.exchange(false); }
  // Closes and frees it and waits for nats.c's threads, so nothing of nats.c outlives the
  // gateway. Owner's thread, once nothing else uses the connection.
  void close();

  // Any thread.
  bool connected() const;
  natsConnection* get() const { return connection_; }
  jsCtx* js() const { return js_; }  // null unless opened for JetStream

 private:
  // nats.c's threads.
  static void on_connected(natsConnection*, void* self);
  static void on_disconnected(natsConnection*, void* self);
  static void on_reconnected_cb(natsConnection* nc, void* self);
  static void on_error(natsConnection*, natsSubscription*, natsStatus status, void* self);
  static int64_t reconnect_delay(natsConnection*, int attempts, void*);

  const ops::Config& config_;
  ops::BrokerCounters& counters_;
  natsOptions* options_ = nullptr;
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<bool> open_{false};
};

// A synchronous subscription read in batches, and the messages of the batch in hand. Intake
// thread only.
struct NatsBatch {
  natsSubscription* subscription = nullptr;
  std::vector<natsMsg*> messages;

  // Subscribes to `subject` with room for a pause or a burst before nats.c starts dropping.
  natsStatus subscribe(natsConnection* connection, const std::string& subject);
  // Waits up to one long poll for a message, then takes whatever else is already waiting, up to
  // `limit` in all. False when nothing came.
  bool collect(IntakeRunner& runner, size_t limit);
  // Passes `msg` (subject, Type header, payload) to runner.add().
  static bool add(IntakeRunner& runner, natsMsg* msg, uint64_t stream_sequence);
  void destroy_messages();
  void unsubscribe();
};

}  // namespace odin::broker
