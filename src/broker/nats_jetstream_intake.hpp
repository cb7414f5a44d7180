// JetStream intake: this instance's own durable pull consumer on the stream (both made when
// missing), pulled through the shared IntakeRunner and acked once each batch is with the hub;
// redeliveries dropped, gaps read back from the stream so every client sees stream order, and a
// stream made anew under us detected and started over. Private to nats_*.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker/intake.hpp"
#include "broker/intake_runner.hpp"
#include "broker/nats_connection.hpp"

namespace odin::broker {

class JetStreamIntake final : public IntakeSource {
 public:
  // `consumer`: the durable name, <JS_CONSUMER_NAME>-<instance id>.
  JetStreamIntake(const ops::Config& config, NatsConnection& nats, hub::Hub& hub,
                  ops::BrokerCounters& counters, std::string consumer);

  Readiness prepare(IntakeRunner& runner) override;
  int64_t retry_delay_ms(int failures) const override;
  size_t collect(IntakeRunner& runner) override;
  void convert(IntakeRunner& runner) override;
  void settle(IntakeRunner& runner) override;
  void close() override { drop_subscription(); }

  // Any thread (nats.c's, on reconnect): the pull request outstanding went with the old
  // connection (or node), so a new one goes out at once rather than when the old one would have
  // expired.
  void connection_moved() { pull_lost_ = true; }

 private:
  bool subscribe();
  bool ensure_stream();
  bool ensure_consumer();
  bool consumer_exists();
  void drop_subscription();
  void send_pull_request(size_t count);
  void fill_gap(IntakeRunner& runner, uint64_t from, uint64_t to);
  void start_over_on_new_stream();

  const ops::Config& config_;
  NatsConnection& nats_;
  hub::Hub& hub_;
  ops::BrokerCounters& counters_;
  const std::string consumer_;
  const std::string subject_filter_;

  NatsBatch batch_;
  StreamDedupe dedupe_;
  int quiet_polls_ = 0;          // long polls in a row that found nothing
  bool check_consumer_ = false;  // make sure the consumer still exists
  // Pull state: our inbox, the request outstanding and what it still owes.
  std::string pull_inbox_;
  std::string pull_subject_;
  std::string pull_reply_;
  uint64_t pull_id_ = 0;
  size_t pull_owed_ = 0;
  int64_t pull_deadline_ns_ = 0;
  std::atomic<bool> pull_lost_{false};
  // Stream order: where the consumer started when it was (re)bound, which stream it reads (its
  // creation time: a stream deleted and created again is another one, numbered from 1 again),
  // and the messages read back to fill a gap (alive until their batch is handed over). What was
  // handed over is in `dedupe_`.
  uint64_t consumer_start_ = 0;
  bool bound_before_ = false;
  int64_t stream_created_ns_ = 0;
  int64_t stream_missing_since_ns_ = 0;  // steady clock; 0 while it exists
  uint64_t stream_first_seq_ = 0;
  uint64_t stream_last_seq_ = 0;
  std::vector<natsMsg*> gap_messages_;
};

}  // namespace odin::broker
