// NATS / JetStream broker (see nats_broker.hpp): puts the parts together and publishes. The parts,
// each in a nats_* file of its own: the connection (nats_connection), core intake
// (nats_core_intake) or JetStream intake (nats_jetstream_intake), run by the shared IntakeRunner,
// and the stream reader for resumes (nats_stream_reader). Threads: nats.c's own (socket I/O,
// connection callbacks), the intake thread (the only caller of Hub::ingest in these modes) and
// two workers (broker_worker.hpp): publishes; stream reads.
#include "broker/nats_broker.hpp"

#include <memory>
#include <string>
#include <vector>

#include "broker/broker_worker.hpp"
#include "broker/intake_runner.hpp"
#include "broker/nats_connection.hpp"
#include "broker/nats_core_intake.hpp"
#include "broker/nats_jetstream_intake.hpp"
#include "broker/nats_stream_reader.hpp"
#include "ops/config.hpp"

namespace odin::broker {

namespace {

// A message copied out of a POST /publish request, for the worker.
struct OwnedItem {
  std::string subject;
  std::string type;
  std::string data;
};

std::unique_ptr<IntakeSource> make_intake(const ops::Config& config, NatsConnection& nats,
                                          hub::Hub& hub, ops::BrokerCounters& counters,
                                          const std::string& consumer) {
  if (config.broker != ops::BrokerKind::kJetStream) {
    return std::make_unique<NatsCoreIntake>(nats, counters, config.subject_prefix + ">");
  }
  auto intake = std::make_unique<JetStreamIntake>(config, nats, hub, counters, consumer);
  nats.on_reconnected = [jetstream = intake.get()] { jetstream->connection_moved(); };
  return intake;
}

}  // namespace

struct NatsBroker::Impl {
  Impl(const ops::Config& config, std::string instance, hub::Hub& hub,
       const guard::ResourceMonitor& resources, ops::BrokerCounters& counters)
      : config(config),
        instance_id(std::move(instance)),
        consumer(config.js_consumer_name + "-" + instance_id),
        jetstream(config.broker == ops::BrokerKind::kJetStream),
        counters(counters),
        nats(config, counters),
        intake(make_intake(config, nats, hub, counters, consumer)),
        runner(config, resources, counters, "NATS", &hub),
        reader(config, nats, counters) {}

  const ops::Config& config;
  const std::string instance_id;
  const std::string consumer;
  const bool jetstream;
  ops::BrokerCounters& counters;

  // Declared in the order they depend on each other: the runner ends before the intake it runs.
  NatsConnection nats;
  std::unique_ptr<IntakeSource> intake;
  IntakeRunner runner;
  NatsStreamReader reader;
  BrokerWorker worker;  // publishes

  std::string start();
  void stop();
  void publish(std::span<const core::IngestItem> items, core::PublishDone done);
  core::PublishOutcome publish_now(const std::vector<OwnedItem>& items);
};

std::string NatsBroker::Impl::start() {
  std::string error = nats.open("odin-ws " + instance_id, jetstream);
  if (!error.empty()) return error;
  runner.start(*intake);
  worker.start();
  reader.start();
  return {};
}

void NatsBroker::Impl::stop() {
  if (!nats.begin_close()) return;
  runner.request_stop();
  worker.stop();  // what is queued fails at once
  reader.stop();
  runner.join();  // after the batch in hand (acked); closes the intake's subscription
  nats.close();
}

// ---- publishing ------------------------------------------------------------------------------

void NatsBroker::Impl::publish(std::span<const core::IngestItem> to_publish,
                               core::PublishDone done) {
  std::vector<OwnedItem> owned;
  owned.reserve(to_publish.size());
  for (const core::IngestItem& item : to_publish) {
    owned.push_back(OwnedItem{config.subject_prefix + std::string(item.channel),
                              std::string(item.type), std::string(item.data)});
  }
  worker.publish([this, owned = std::move(owned)] { return publish_now(owned); }, std::move(done),
                 counters);
}

core::PublishOutcome NatsBroker::Impl::publish_now(const std::vector<OwnedItem>& to_publish) {
  core::PublishOutcome outcome;
  // Refuse rather than let nats.c buffer it for a reconnect that may come after the caller gave
  // up (and then deliver a message reported as failed).
  if (natsConnection_Status(nats.get()) != NATS_CONN_STATUS_CONNECTED) {
    outcome.error = "NATS is not connected";
    return outcome;
  }
  for (const OwnedItem& item : to_publish) {
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, item.subject.c_str(), nullptr, item.data.data(),
                                  static_cast<int>(item.data.size()));
    // No header for the default type (its absence means "message"): headers count toward NATS'
    // max_payload, so a message as large as it allows stays publishable.
    if (s == NATS_OK && item.type != "message") {
      s = natsMsgHeader_Set(msg, "Type", item.type.c_str());
    }
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (s == NATS_OK) {
      if (jetstream) {
        jsPubAck* ack = nullptr;
        s = js_PublishMsg(&ack, nats.js(), msg, nullptr, &jerr);
        if (ack) jsPubAck_Destroy(ack);
      } else {
        s = natsConnection_PublishMsg(nats.get(), msg);
      }
    }
    if (msg) natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      outcome.error = (jetstream ? "JetStream publish failed: " : "NATS publish failed: ") +
                      status_text(s, jerr);
      break;
    }
    ++outcome.published;
  }
  if (!jetstream && outcome.published > 0) {
    // One round trip: once the server answered our PING it has every message before it.
    natsStatus s = natsConnection_FlushTimeout(nats.get(), kNatsPublishTimeoutMs);
    if (s != NATS_OK) {
      outcome.error = "NATS flush failed: " + status_text(s);
      outcome.published = 0;  // unknown which arrived
    }
  }
  return outcome;
}

// ---- NatsBroker ------------------------------------------------------------------------------

NatsBroker::NatsBroker(const ops::Config& config, std::string instance_id, hub::Hub& hub,
                       const guard::ResourceMonitor& resources)
    : impl_(std::make_unique<Impl>(config, std::move(instance_id), hub, resources, counters_)) {}

NatsBroker::~NatsBroker() {
  impl_->stop();
}

std::string_view NatsBroker::name() const {
  return impl_->jetstream ? "jetstream" : "nats";
}

std::string NatsBroker::start() {
  return impl_->start();
}

void NatsBroker::stop() {
  impl_->stop();
}

void NatsBroker::publish(std::span<const core::IngestItem> items, core::PublishDone done) {
  impl_->publish(items, std::move(done));
}

void NatsBroker::fetch(std::unique_ptr<core::StreamFetch> fetch, size_t limit,
                       core::StreamFetchDone done) {
  if (!impl_->jetstream) return done(std::move(fetch));
  impl_->reader.fetch(std::move(fetch), limit, std::move(done));
}

const std::string& NatsBroker::consumer_name() const {
  return impl_->consumer;
}

}  // namespace odin::broker
