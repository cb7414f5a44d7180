// JetStream read-back for resumes: a client resuming on this instance from a position this
// instance's histories no longer cover gets the channel's stored messages straight from the
// stream, on a worker thread of their own so a publish never waits behind them. Private to
// nats_*.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "broker/broker.hpp"
#include "broker/broker_worker.hpp"
#include "broker/intake.hpp"
#include "broker/nats_connection.hpp"

namespace simdjson::dom {
class parser;
}

namespace odin::broker {

class NatsStreamReader {
 public:
  NatsStreamReader(const ops::Config& config, NatsConnection& nats, ops::BrokerCounters& counters);
  ~NatsStreamReader();
  NatsStreamReader(const NatsStreamReader&) = delete;
  NatsStreamReader& operator=(const NatsStreamReader&) = delete;

  // Owner's thread.
  void start() { worker_.start(); }
  // Owner's thread: reads still queued finish at once, incomplete.
  void stop() { worker_.stop(); }
  // Any thread: queues the read of `fetch->ranges`; `done` runs once, on the reader thread (or
  // the caller's after stop()).
  void fetch(std::unique_ptr<core::StreamFetch> fetch, size_t limit, core::StreamFetchDone done);

 private:
  // Reader thread.
  void read_stream(core::StreamFetch& fetch, size_t limit, int64_t deadline_ns);

  const ops::Config& config_;
  NatsConnection& nats_;
  ops::BrokerCounters& counters_;
  // The reader's own, apart from the intake's: messages read back are checked like live ones.
  IntakeFilter filter_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  BrokerWorker worker_;  // as many queued as WS_MAX_STREAM_READS lets callers park
};

}  // namespace odin::broker
