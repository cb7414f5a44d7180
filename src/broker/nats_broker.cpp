// NATS / JetStream broker (see nats_broker.hpp). Threads: nats.c's own (socket I/O, connection
// callbacks), our intake thread (the only caller of Hub::ingest in these modes) and our two
// workers (broker_worker.hpp: publishes; stream reads). The intake thread takes messages in batches
// so one Hub::ingest covers many; from there the hand-off to the event loops is the lock-free queue
// in hub/fanout.cpp.
#include "broker/nats_broker.hpp"

#include <nats/nats.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "broker/broker_worker.hpp"
#include "broker/intake.hpp"
#include "core/clock.hpp"
#include "core/envelope.hpp"
#include "guard/resource_monitor.hpp"
#include "hub/fanout.hpp"
#include "ops/config.hpp"
#include "spdlog/spdlog.h"

namespace odin {

namespace {

constexpr size_t kBatch = 256;               // most messages per Hub::ingest
constexpr int64_t kLongPollMs = 500;         // how long one wait for the first message lasts
constexpr int64_t kPublishTimeoutMs = 5000;  // flush (NATS) or stream ack (JetStream)
constexpr int64_t kPullExpiresNs = int64_t{5} * 1'000'000'000;  // one JetStream pull request
constexpr int64_t kConsumerInactiveNs = int64_t{3600} * 1'000'000'000;  // an hour unused: gone
// A gap in the stream sequence is filled from the stream before later messages go out, up to
// this many messages; a longer one (the instance was away for long) restarts the history.
constexpr uint64_t kMaxGapFill = 10'000;
constexpr int kGapFillAttempts = 3;  // per message, when NATS does not answer
constexpr int64_t kStreamReadTimeoutMs = 2000;
constexpr int64_t kStreamRemakeDelayNs = 1'000'000'000;  // a stream deleted under us: made again

int64_t ns_of(Millis ms) {
  return ms.count() * 1'000'000;
}

std::string status_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  if (jerr != 0) text += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  const char* last = nats_GetLastError(nullptr);
  if (last && *last && text.find(last) == std::string::npos) text += std::string(": ") + last;
  return text;
}

// NATS_URL's comma-separated list; a bare host:port gets the nats:// scheme.
std::vector<std::string> server_urls(std::string_view list) {
  std::vector<std::string> urls;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string url(list.substr(0, comma));
    if (url.find("://") == std::string::npos) url = "nats://" + url;
    urls.push_back(std::move(url));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return urls;
}

// A message copied out of a POST /publish request, for the worker.
struct OwnedItem {
  std::string subject;
  std::string type;
  std::string data;
};

// Standard base64 (the JetStream API's `data` and `hdrs`); false on bad input.
bool base64_decode(std::string_view text, std::string& out) {
  out.assign(text.size() / 4 * 3 + 3, '\0');
  if (text.size() % 4 != 0) return false;
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t size = static_cast<size_t>(n);
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i)
    --size;  // EVP_DecodeBlock counts the padding as zero bytes
  out.resize(size);
  return true;
}

// The Type header out of a raw NATS header block ("NATS/1.0\r\nType: x\r\n\r\n").
std::optional<std::string_view> type_header(std::string_view block) {
  while (!block.empty()) {
    const size_t end = block.find("\r\n");
    std::string_view line = block.substr(0, end);
    if (line.size() > 5 && (line.substr(0, 5) == "Type:" || line.substr(0, 5) == "type:")) {
      line.remove_prefix(5);
      while (!line.empty() && line.front() == ' ')
        line.remove_prefix(1);
      return line;
    }
    if (end == std::string_view::npos) break;
    block.remove_prefix(end + 2);
  }
  return std::nullopt;
}

// RFC 3339 UTC ("2026-11-23T16:07:08.462745679Z", as JetStream stores a message's time) to
// milliseconds since the epoch; 0 when it cannot be read.
int64_t rfc3339_ms(std::string_view text) {
  std::tm tm{};
  int fraction_digits = 0;
  int64_t fraction = 0;
  if (text.size() < 20 ||
      std::sscanf(std::string(text.substr(0, 19)).c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year,
                  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return 0;
  }
  for (size_t i = 20; i < text.size() && text[19] == '.' && std::isdigit(text[i]); ++i) {
    if (fraction_digits < 3) {
      fraction = fraction * 10 + (text[i] - '0');
      ++fraction_digits;
    }
  }
  while (fraction_digits++ < 3)
    fraction *= 10;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return int64_t{timegm(&tm)} * 1000 + fraction;
}

}  // namespace

struct NatsBroker::Impl {
  Impl(const Config& config, std::string instance, Hub& hub, const ResourceMonitor& resources,
       BrokerCounters& counters)
      : config(config),
        instance_id(std::move(instance)),
        consumer(config.js_consumer_name + "-" + instance_id),
        subject_filter(config.subject_prefix + ">"),
        jetstream(config.broker == BrokerKind::kJetStream),
        hub(hub),
        resources(resources),
        counters(counters),
        filter(config.subject_prefix, config.max_payload_bytes),
        governor(config, resources, counters, "NATS", &hub) {
    counters.intake_ready = !jetstream;  // JetStream: once the consumer is bound
  }

  const Config& config;
  const std::string instance_id;
  const std::string consumer;
  const std::string subject_filter;
  const bool jetstream;
  Hub& hub;
  const ResourceMonitor& resources;
  BrokerCounters& counters;

  natsOptions* options = nullptr;
  natsConnection* connection = nullptr;
  jsCtx* js = nullptr;
  std::atomic<bool> running{false};

  // Intake thread state.
  std::thread intake_thread;
  natsSubscription* subscription = nullptr;
  IntakeFilter filter;
  StreamDedupe dedupe;
  IntakeGovernor governor;
  int quiet_polls = 0;          // long polls in a row that found nothing (JetStream)
  bool check_consumer = false;  // JetStream: make sure the consumer still exists
  // JetStream pull state: our inbox, the request outstanding and what it still owes.
  std::string pull_inbox;
  std::string pull_subject;
  std::string pull_reply;
  uint64_t pull_id = 0;
  size_t pull_owed = 0;
  int64_t pull_deadline_ns = 0;
  // Set on reconnect: the request outstanding went with the old connection (or node), so a new
  // one goes out at once rather than when the old one would have expired.
  std::atomic<bool> pull_lost{false};
  std::vector<natsMsg*> batch;
  std::vector<IngestItem> items;
  // JetStream stream order: where the consumer started when it was (re)bound, which stream it
  // reads (its creation time: a stream deleted and created again is another one, numbered from
  // 1 again), and the messages read back to fill a gap (alive until their batch is handed over).
  // What was handed over is in `dedupe`.
  uint64_t consumer_start = 0;
  bool bound_before = false;
  int64_t stream_created_ns = 0;
  int64_t stream_missing_since_ns = 0;  // steady clock; 0 while it exists
  uint64_t stream_first_seq = 0;
  uint64_t stream_last_seq = 0;
  std::vector<natsMsg*> gap_messages;
  // The reader's own filter, for messages read back from the stream.
  IntakeFilter fetch_filter{config.subject_prefix, config.max_payload_bytes};
  simdjson::dom::parser fetch_parser;

  // Wakes the intake thread on reconnect and on stop.
  std::mutex wake_mutex;
  std::condition_variable wake;

  // Publishes; and, apart, so a publish never waits behind them, stream reads for resumes (as
  // many queued as WS_MAX_STREAM_READS lets callers park).
  BrokerWorker worker;
  BrokerWorker reader;

  std::string start();
  void stop();
  void publish(std::span<const IngestItem> items, PublishDone done);

  // nats.c callbacks (its threads).
  static void on_connected(natsConnection*, void* self);
  static void on_disconnected(natsConnection*, void* self);
  static void on_reconnected(natsConnection*, void* self);
  static void on_error(natsConnection*, natsSubscription*, natsStatus status, void* self);
  static int64_t reconnect_delay(natsConnection*, int attempts, void* self);

  void intake_loop();
  void sleep_ms(int64_t ms);
  bool is_connected() const { return counters.connected.load(std::memory_order_relaxed); }
  bool subscribe();
  bool ensure_stream();
  bool ensure_consumer();
  void drop_subscription();
  bool consumer_exists();
  size_t take_allowance();
  void refund(size_t unused) { governor.refund(unused); }
  bool collect(size_t limit);
  void take_core();
  void take_jetstream();
  void send_pull_request(size_t count);
  // Checks, dedupes and hands `batch` to the hub.
  void hand_over();

  PublishOutcome publish_now(const std::vector<OwnedItem>& items);
  void fetch(std::unique_ptr<StreamFetch> fetch, size_t limit, StreamFetchDone done);
  void read_stream(StreamFetch& fetch, size_t limit, int64_t deadline_ns);
  void start_over_on_new_stream();
  void fill_gap(uint64_t from, uint64_t to);
  bool add_item(natsMsg* msg, uint64_t stream_sequence);
};

// ---- connection ----------------------------------------------------------------------------

std::string NatsBroker::Impl::start() {
  natsStatus s = natsOptions_Create(&options);
  const std::vector<std::string> urls = server_urls(config.nats_url);
  std::vector<const char*> url_pointers;
  for (const std::string& url : urls)
    url_pointers.push_back(url.c_str());
  const std::string client_name = "odin-ws " + instance_id;
  if (s == NATS_OK) {
    s = natsOptions_SetServers(options, url_pointers.data(), static_cast<int>(url_pointers.size()));
  }
  if (s == NATS_OK) s = natsOptions_SetName(options, client_name.c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(options, -1);
  if (s == NATS_OK) s = natsOptions_SetCustomReconnectDelay(options, reconnect_delay, this);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(options, true, on_connected, this);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(options, on_disconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(options, on_reconnected, this);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(options, on_error, this);
  // A dead server is noticed within ~10 s even when TCP says nothing.
  if (s == NATS_OK) s = natsOptions_SetPingInterval(options, 5000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(options, 2);
  if (s != NATS_OK) return "NATS options: " + status_text(s);

  running = true;
  s = natsConnection_Connect(&connection, options);
  if (s == NATS_OK) {
    counters.connected = true;
    spdlog::info("NATS connected to {}", config.nats_url);
  } else if (s == NATS_NOT_YET_CONNECTED) {
    spdlog::warn("NATS at {} not reachable yet: retrying in the background", config.nats_url);
  } else {
    running = false;
    return "cannot use NATS_URL " + config.nats_url + ": " + status_text(s);
  }
  if (jetstream) {
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = kPublishTimeoutMs;
    s = natsConnection_JetStream(&js, connection, &js_options);
    if (s != NATS_OK) {
      running = false;
      return "JetStream context: " + status_text(s);
    }
  }
  intake_thread = std::thread([this] { intake_loop(); });
  worker.start();
  reader.start();
  return {};
}

void NatsBroker::Impl::stop() {
  if (!running.exchange(false)) return;
  { std::lock_guard lock(wake_mutex); }
  wake.notify_all();
  worker.stop();  // what is queued fails at once
  reader.stop();
  if (intake_thread.joinable()) intake_thread.join();
  drop_subscription();
  if (js) jsCtx_Destroy(js);
  js = nullptr;
  if (connection) {
    natsConnection_Close(connection);
    natsConnection_Destroy(connection);
  }
  connection = nullptr;
  if (options) natsOptions_Destroy(options);
  options = nullptr;
  counters.connected = false;
  // Lets nats.c's own threads finish, so nothing of it outlives the gateway.
  nats_CloseAndWait(2000);
}

void NatsBroker::Impl::on_connected(natsConnection*, void* self) {
  auto* impl = static_cast<Impl*>(self);
  impl->counters.connected = true;
  spdlog::info("NATS connected to {}", impl->config.nats_url);
  impl->wake.notify_all();
}

void NatsBroker::Impl::on_disconnected(natsConnection*, void* self) {
  auto* impl = static_cast<Impl*>(self);
  if (!impl->running) return;  // our own close at shutdown
  if (!impl->counters.connected.exchange(false)) return;
  impl->counters.disconnects.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("NATS disconnected from {}: reconnecting with backoff", impl->config.nats_url);
}

void NatsBroker::Impl::on_reconnected(natsConnection* nc, void* self) {
  auto* impl = static_cast<Impl*>(self);
  impl->counters.connected = true;
  impl->counters.reconnects.fetch_add(1, std::memory_order_relaxed);
  impl->pull_lost = true;
  char url[256] = {};
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  spdlog::info("NATS reconnected to {}", url);
  impl->wake.notify_all();
}

void NatsBroker::Impl::on_error(natsConnection*, natsSubscription*, natsStatus status, void* self) {
  auto* impl = static_cast<Impl*>(self);
  if (status == NATS_SLOW_CONSUMER) {
    // Counted precisely from natsSubscription_GetDropped; this only says it happened.
    spdlog::warn("NATS intake fell behind: the client library is dropping messages");
    return;
  }
  if (impl->running) spdlog::warn("NATS asynchronous error: {}", natsStatus_GetText(status));
}

int64_t NatsBroker::Impl::reconnect_delay(natsConnection*, int attempts, void*) {
  return reconnect_delay_ms(attempts);
}

// ---- intake ----------------------------------------------------------------------------------

void NatsBroker::Impl::sleep_ms(int64_t ms) {
  std::unique_lock lock(wake_mutex);
  wake.wait_for(lock, std::chrono::milliseconds(ms), [this] { return !running.load(); });
}

void NatsBroker::Impl::intake_loop() {
  int setup_failures = 0;
  while (running) {
    if (!is_connected()) {
      sleep_ms(100);
      continue;
    }
    if (!subscription && !subscribe()) {
      ++setup_failures;
      sleep_ms(std::min(5000, 250 * setup_failures));
      continue;
    }
    setup_failures = 0;
    if (governor
            .paused_for_cpu()) {  // JetStream keeps the messages; core NATS buffers them in nats.c
      sleep_ms(100);
      continue;
    }
    if (jetstream) {
      take_jetstream();
    } else {
      take_core();
    }
  }
}

bool NatsBroker::Impl::subscribe() {
  if (!jetstream) {
    natsStatus s = natsConnection_SubscribeSync(&subscription, connection, subject_filter.c_str());
    if (s == NATS_OK) {
      // Room for a pause or a burst before the library starts dropping.
      natsSubscription_SetPendingLimits(subscription, 1'000'000, 256 << 20);
      spdlog::info("NATS intake subscribed to {}", subject_filter);
      return true;
    }
    spdlog::warn("NATS subscribe to {} failed: {}", subject_filter, status_text(s));
    subscription = nullptr;
    return false;
  }
  const int64_t created_before = stream_created_ns;
  if (!ensure_stream()) return false;
  // Created at another time, or numbered below what we handed over: not the stream we read.
  if (created_before != 0 &&
      (stream_created_ns != created_before || stream_last_seq < dedupe.last())) {
    start_over_on_new_stream();
  }
  if (!ensure_consumer()) return false;
  natsInbox* inbox = nullptr;
  natsStatus s = natsInbox_Create(&inbox);
  if (s == NATS_OK) {
    pull_inbox = inbox;
    natsInbox_Destroy(inbox);
    s = natsConnection_SubscribeSync(&subscription, connection, (pull_inbox + ".*").c_str());
  }
  if (s != NATS_OK) {
    spdlog::warn("JetStream pull inbox: {}", status_text(s));
    subscription = nullptr;
    return false;
  }
  natsSubscription_SetPendingLimits(subscription, 1'000'000, 256 << 20);
  pull_subject = "$JS.API.CONSUMER.MSG.NEXT." + config.js_stream_name + "." + consumer;
  pull_owed = 0;
  quiet_polls = 0;
  counters.intake_ready = true;
  bound_before = true;
  if (dedupe.last() == 0) {
    // From here on this instance hands over every stream message (gaps are filled), so its
    // per-channel histories are complete from this point. After a reconnect the gap filling
    // keeps them so.
    dedupe.reset(consumer_start);
    hub.mark_complete_after(consumer_start);
  }
  spdlog::info("JetStream intake: stream {} ({}), durable pull consumer {}", config.js_stream_name,
               subject_filter, consumer);
  return true;
}

bool NatsBroker::Impl::ensure_stream() {
  const char* subjects[] = {subject_filter.c_str()};
  jsStreamConfig stream;
  jsStreamConfig_Init(&stream);
  stream.Name = config.js_stream_name.c_str();
  stream.Subjects = subjects;
  stream.SubjectsLen = 1;
  stream.MaxAge = ns_of(config.js_stream_max_age);
  stream.MaxMsgs = config.js_stream_max_msgs;
  stream.MaxBytes = config.js_stream_max_bytes;
  stream.Storage = js_FileStorage;
  stream.Replicas = config.js_stream_replicas;
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js, stream.Name, nullptr, &jerr);
  const bool exists = s == NATS_OK;
  if (info) jsStreamInfo_Destroy(info);
  info = nullptr;
  if (!exists && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
    spdlog::warn("JetStream stream {} lookup failed: {}", stream.Name, status_text(s, jerr));
    return false;
  }
  if (exists || !bound_before) {
    stream_missing_since_ns = 0;
  } else if (stream_missing_since_ns == 0 ||
             steady_ns() - stream_missing_since_ns < kStreamRemakeDelayNs) {
    // Gone from under us: whoever deleted it may be making it again, and a stream made at once
    // after its delete can lose its store (nats-server 2.9). Made again after a pause.
    if (stream_missing_since_ns == 0) {
      stream_missing_since_ns = steady_ns();
      spdlog::warn("JetStream stream {} is gone: making it again in {} ms unless it reappears",
                   stream.Name, kStreamRemakeDelayNs / 1'000'000);
    }
    return false;
  }
  jerr = static_cast<jsErrCode>(0);
  s = exists ? js_UpdateStream(&info, js, &stream, nullptr, &jerr)
             : js_AddStream(&info, js, &stream, nullptr, &jerr);
  if (info) {
    stream_created_ns = info->Created;
    stream_first_seq = info->State.FirstSeq;
    stream_last_seq = info->State.LastSeq;
    jsStreamInfo_Destroy(info);
  }
  if (s != NATS_OK) {
    spdlog::warn("JetStream stream {} could not be {}: {}", stream.Name,
                 exists ? "updated" : "created", status_text(s, jerr));
    return false;
  }
  return true;
}

bool NatsBroker::Impl::ensure_consumer() {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = consumer.c_str();
  cc.Description = "odin-ws instance intake";
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = ns_of(config.js_consumer_ack_wait);
  // A new instance starts with what is published from now on; an existing consumer carries on
  // from its last ack, so a restart of this instance loses nothing. One made again while this
  // instance reads the stream (deleted by an operator, or with its stream) starts right after
  // what was handed over, so nothing published meanwhile is skipped, even on a quiet stream.
  cc.DeliverPolicy = js_DeliverNew;
  cc.FilterSubject = subject_filter.c_str();
  cc.MaxAckPending = 20'000;
  cc.InactiveThreshold = kConsumerInactiveNs;  // consumers of instances gone for good vanish
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&info, js, config.js_stream_name.c_str(), consumer.c_str(),
                                    nullptr, &jerr);
  const bool exists = s == NATS_OK;
  if (exists && info && info->Config) {  // where it starts cannot change
    cc.DeliverPolicy = info->Config->DeliverPolicy;
    cc.OptStartSeq = info->Config->OptStartSeq;
  } else if (!exists && bound_before) {
    cc.DeliverPolicy = js_DeliverByStartSequence;
    cc.OptStartSeq = dedupe.last() + 1;
  }
  if (info) jsConsumerInfo_Destroy(info);
  info = nullptr;
  if (!exists && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
    spdlog::warn("JetStream consumer {} lookup failed: {}", consumer, status_text(s, jerr));
    return false;
  }
  jerr = static_cast<jsErrCode>(0);
  s = exists ? js_UpdateConsumer(&info, js, config.js_stream_name.c_str(), &cc, nullptr, &jerr)
             : js_AddConsumer(&info, js, config.js_stream_name.c_str(), &cc, nullptr, &jerr);
  if (info) {
    // Where its deliveries start: a new consumer (nothing delivered) after the stream's last
    // message, an existing one after its ack floor (what lies beyond comes again).
    consumer_start = info->Delivered.Consumer == 0 ? info->Delivered.Stream : info->AckFloor.Stream;
    jsConsumerInfo_Destroy(info);
  }
  if (s != NATS_OK) {
    spdlog::warn("JetStream consumer {} could not be {}: {}", consumer,
                 exists ? "updated" : "created", status_text(s, jerr));
    return false;
  }
  return true;
}

bool NatsBroker::Impl::consumer_exists() {
  jsConsumerInfo* info = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&info, js, config.js_stream_name.c_str(), consumer.c_str(),
                                    nullptr, &jerr);
  if (info) jsConsumerInfo_Destroy(info);
  // Only a definite "not found" counts; a timeout while NATS is away is not a verdict.
  return !(s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr);
}

void NatsBroker::Impl::drop_subscription() {
  if (jetstream) counters.intake_ready = false;
  if (!subscription) return;
  natsSubscription_Destroy(subscription);
  subscription = nullptr;
}

// What both caps allow now (at most kBatch). When that is nothing, sleeps until the next message
// may be taken and returns 0.
size_t NatsBroker::Impl::take_allowance() {
  int64_t wait_ms = 0;
  const size_t allowed = governor.take(kBatch, wait_ms);
  if (allowed == 0) sleep_ms(wait_ms);
  return allowed;
}

// Waits up to one long poll for a message on `subscription`, then takes whatever else is
// already waiting, up to `limit` in all, into `batch`. False when nothing came.
bool NatsBroker::Impl::collect(size_t limit) {
  natsMsg* msg = nullptr;
  natsStatus s = natsSubscription_NextMsg(&msg, subscription, kLongPollMs);
  if (s != NATS_OK) {
    if (s != NATS_TIMEOUT) sleep_ms(100);  // disconnected: nats.c resubscribes on reconnect
    return false;
  }
  batch.push_back(msg);
  while (batch.size() < limit && natsSubscription_NextMsg(&msg, subscription, 0) == NATS_OK)
    batch.push_back(msg);
  return true;
}

void NatsBroker::Impl::take_core() {
  const size_t allowed = take_allowance();
  if (allowed == 0) return;
  if (!collect(allowed)) return refund(allowed);
  refund(allowed - batch.size());
  hand_over();
  for (natsMsg* msg : batch)
    natsMsg_Destroy(msg);
  batch.clear();
  int64_t dropped = 0;
  if (natsSubscription_GetDropped(subscription, &dropped) == NATS_OK) {
    counters.dropped.store(static_cast<uint64_t>(dropped), std::memory_order_relaxed);
  }
}

void NatsBroker::Impl::send_pull_request(size_t count) {
  // One request outstanding at a time, on our own inbox: every message it brings is taken,
  // whichever request it answers (nats.c's Fetch drops messages that answer an expired one).
  ++pull_id;
  pull_reply = pull_inbox + "." + std::to_string(pull_id);
  const std::string body = fmt::format(R"({{"batch":{},"expires":{}}})", count, kPullExpiresNs);
  natsStatus s = natsConnection_PublishRequestString(connection, pull_subject.c_str(),
                                                     pull_reply.c_str(), body.c_str());
  pull_owed = s == NATS_OK ? count : 0;
  pull_deadline_ns = steady_ns() + kPullExpiresNs + 1'000'000'000;
}

void NatsBroker::Impl::take_jetstream() {
  if (pull_owed == 0 || steady_ns() > pull_deadline_ns || pull_lost.exchange(false)) {
    // The previous request is over (or lost with a NATS restart): the caps pay for a new one,
    // and get back what the old one did not bring.
    refund(pull_owed);
    pull_owed = 0;
    const size_t allowed = take_allowance();
    if (allowed == 0) return;
    send_pull_request(allowed);
  }
  if (!collect(kBatch)) {
    // Every ~5 quiet seconds, make sure the consumer still exists (a NATS restart with memory
    // storage, or an operator, may have removed it): otherwise we would wait forever.
    if (++quiet_polls >= 10) check_consumer = true;
  } else {
    quiet_polls = 0;
  }
  // Status messages end a request (404/408: nothing more to give), report a changed consumer
  // (409) or are idle heartbeats (100); everything else is a stream message.
  std::erase_if(batch, [this](natsMsg* msg) {
    const char* status = nullptr;
    if (natsMsg_GetDataLength(msg) != 0 || natsMsgHeader_Get(msg, "Status", &status) != NATS_OK ||
        !status) {
      if (pull_owed > 0) --pull_owed;
      return false;
    }
    const std::string_view code = status;
    if (code != "100" && natsMsg_GetSubject(msg) == pull_reply) pull_owed = 0;
    // 409: the consumer changed or went; 503: no one answers for it (its stream is gone).
    if (code == "409" || code == "503") check_consumer = true;
    natsMsg_Destroy(msg);
    return true;
  });
  hand_over();
  // Handed to the fan-out (or refused for good): acknowledged, so never redelivered. A lost
  // ack means a redelivery, which the dedupe drops.
  for (natsMsg* msg : batch) {
    if (const char* reply = natsMsg_GetReply(msg))
      natsConnection_PublishString(connection, reply, "+ACK");
    natsMsg_Destroy(msg);
  }
  batch.clear();
  if (check_consumer) {
    check_consumer = false;
    quiet_polls = 0;
    if (!consumer_exists()) {
      spdlog::warn("JetStream consumer {} is gone: creating it again", consumer);
      drop_subscription();
    }
  }
}

void NatsBroker::Impl::hand_over() {
  items.clear();
  for (natsMsg* msg : batch) {
    counters.received.fetch_add(1, std::memory_order_relaxed);
    uint64_t stream_sequence = 0;
    if (jetstream) {
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        stream_sequence = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
        const uint64_t last = dedupe.last();
        if (!dedupe.first_delivery(stream_sequence)) {
          governor.reject(IntakeReject::kDuplicate, natsMsg_GetSubject(msg));
          continue;
        }
        // Stream order for every client: what a lost delivery left out goes first.
        if (stream_sequence > last + 1) fill_gap(last + 1, stream_sequence - 1);
      }
    }
    add_item(msg, stream_sequence);
  }
  governor.ingest(items);  // core NATS: dropped while the fan-out is behind
  counters.delivered.fetch_add(items.size(), std::memory_order_relaxed);
  items.clear();
  for (natsMsg* msg : gap_messages)
    natsMsg_Destroy(msg);
  gap_messages.clear();
}

bool NatsBroker::Impl::add_item(natsMsg* msg, uint64_t stream_sequence) {
  const std::string_view subject = natsMsg_GetSubject(msg);
  const char* type_header = nullptr;
  std::string_view type;
  const bool has_type = natsMsgHeader_Get(msg, "Type", &type_header) == NATS_OK && type_header;
  if (has_type) type = type_header;
  const char* data = natsMsg_GetData(msg);
  const std::string_view payload(data ? data : "", static_cast<size_t>(natsMsg_GetDataLength(msg)));
  IngestItem item;
  if (auto reject = filter.check(subject, has_type ? &type : nullptr, payload, item)) {
    governor.reject(*reject, subject);
    return false;
  }
  item.pos = stream_sequence;
  items.push_back(item);
  return true;
}

// Reads stream messages [from, to] (lost on their way to us: a NATS node went away with them in
// flight) straight from the stream, so they go out before the message after them. One that no
// longer exists (expired, deleted) was never delivered anywhere. When NATS cannot answer, or the
// gap is too long to read, the histories restart after it instead.
void NatsBroker::Impl::fill_gap(uint64_t from, uint64_t to) {
  auto restart_history = [&](std::string_view why) {
    if (!items.empty()) hub.ingest(items);  // what came before the gap keeps its place
    counters.delivered.fetch_add(items.size(), std::memory_order_relaxed);
    items.clear();
    hub.mark_complete_after(to);
    dedupe.not_handed_over(from, to);  // a redelivery of one of them still goes out, late
    counters.history_restarts.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn(
        "JetStream stream messages {}-{} not delivered to this instance and {}: resume "
        "from before them is no longer possible here",
        from, to, why);
  };
  if (to - from + 1 > kMaxGapFill) return restart_history("too many to read back");
  uint64_t filled = 0;
  for (uint64_t seq = from; seq <= to && running; ++seq) {
    natsMsg* msg = nullptr;
    natsStatus s = NATS_OK;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    for (int attempt = 0; attempt < kGapFillAttempts; ++attempt) {
      jerr = static_cast<jsErrCode>(0);
      s = js_GetMsg(&msg, js, config.js_stream_name.c_str(), seq, nullptr, &jerr);
      if (s == NATS_OK || s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) break;
    }
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) continue;
    if (s != NATS_OK) {
      from = seq;
      return restart_history("the stream cannot be read now: " + status_text(s, jerr));
    }
    gap_messages.push_back(msg);
    counters.received.fetch_add(1, std::memory_order_relaxed);
    filled += add_item(msg, seq);
  }
  counters.gap_filled.fetch_add(filled, std::memory_order_relaxed);
  spdlog::info("JetStream stream messages {}-{} were lost on the way: {} read back from the stream",
               from, to, filled);
}

// The stream was deleted and created again (by an operator, or NATS lost its storage): it is
// numbered from 1 again, so what was handed over of the old one says nothing about it, and every
// message of the new one would be taken for a repeat. Intake starts over at the new stream's
// first message (the consumer is made again to start there); what the old stream held
// that was not handed over yet is lost, and resuming from before now is no longer possible here:
// logged, counted, and the histories restart. Intake thread.
void NatsBroker::Impl::start_over_on_new_stream() {
  const uint64_t before = dedupe.last();
  dedupe.reset(stream_first_seq > 0 ? stream_first_seq - 1 : 0);
  hub.mark_stream_reset(before);
  counters.stream_resets.fetch_add(1, std::memory_order_relaxed);
  counters.history_restarts.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn(
      "JetStream stream {} was deleted and created again (this instance had handed over up to "
      "sequence {}; the new one holds {}-{}): intake starts over from its first message; old "
      "messages not delivered before it went are lost, and resume from before now is no longer "
      "possible here",
      config.js_stream_name, before, stream_first_seq, stream_last_seq);
}

// ---- publishing ------------------------------------------------------------------------------

void NatsBroker::Impl::publish(std::span<const IngestItem> to_publish, PublishDone done) {
  std::vector<OwnedItem> owned;
  owned.reserve(to_publish.size());
  for (const IngestItem& item : to_publish) {
    owned.push_back(OwnedItem{config.subject_prefix + std::string(item.channel),
                              std::string(item.type), std::string(item.data)});
  }
  worker.publish([this, owned = std::move(owned)] { return publish_now(owned); }, std::move(done),
                 counters);
}

PublishOutcome NatsBroker::Impl::publish_now(const std::vector<OwnedItem>& to_publish) {
  PublishOutcome outcome;
  // Refuse rather than let nats.c buffer it for a reconnect that may come after the caller gave
  // up (and then deliver a message reported as failed).
  if (natsConnection_Status(connection) != NATS_CONN_STATUS_CONNECTED) {
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
        s = js_PublishMsg(&ack, js, msg, nullptr, &jerr);
        if (ack) jsPubAck_Destroy(ack);
      } else {
        s = natsConnection_PublishMsg(connection, msg);
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
    natsStatus s = natsConnection_FlushTimeout(connection, kPublishTimeoutMs);
    if (s != NATS_OK) {
      outcome.error = "NATS flush failed: " + status_text(s);
      outcome.published = 0;  // unknown which arrived
    }
  }
  return outcome;
}

// ---- reading the stream back (resume on any instance) -----------------------------------------

void NatsBroker::Impl::fetch(std::unique_ptr<StreamFetch> request, size_t limit,
                             StreamFetchDone done) {
  if (!jetstream) return done(std::move(request));
  // The whole wait counts, the queue included: the client waits for its answer meanwhile.
  const int64_t deadline_ns = steady_ns() + ns_of(config.stream_read_timeout);
  // Shared, because a worker job must be copyable; only the job ever touches it.
  std::shared_ptr<StreamFetch> fetch(std::move(request));
  reader.post([this, fetch, limit, deadline_ns, done = std::move(done)](bool running_now) {
    // Not running: incomplete, the gateway is stopping. Abandoned: nobody waits for it.
    const bool abandoned = fetch->abandoned && fetch->abandoned->load(std::memory_order_relaxed);
    if (running_now && !abandoned) read_stream(*fetch, limit, deadline_ns);
    done(std::make_unique<StreamFetch>(std::move(*fetch)));
  });
}

// For each range, the channel's stored messages after `after_pos` up to `through_pos`, one
// $JS.API.STREAM.MSG.GET with `next_by_subj` each (the stream leader answers, so nothing the
// instance already handed over can be missing from it). Stops, incomplete, at `deadline_ns` or
// once the caller abandons it. Reader thread.
void NatsBroker::Impl::read_stream(StreamFetch& fetch, size_t limit, int64_t deadline_ns) {
  const std::string api = "$JS.API.STREAM.MSG.GET." + config.js_stream_name;
  std::string data;
  std::string headers;
  for (const StreamRange& range : fetch.ranges) {
    const std::string subject = config.subject_prefix + range.channel;
    uint64_t next = range.after_pos + 1;
    while (next <= range.through_pos) {
      if (fetch.abandoned && fetch.abandoned->load(std::memory_order_relaxed)) return;
      const int64_t left_ms = (deadline_ns - steady_ns()) / 1'000'000;
      if (left_ms <= 0) {
        counters.stream_reads_timed_out.fetch_add(1, std::memory_order_relaxed);
        return;  // incomplete: the client has waited long enough
      }
      const std::string body = fmt::format(R"({{"seq":{},"next_by_subj":"{}"}})", next, subject);
      natsMsg* reply = nullptr;
      if (natsConnection_Request(&reply, connection, api.c_str(), body.data(),
                                 static_cast<int>(body.size()),
                                 std::min(kStreamReadTimeoutMs, left_ms)) != NATS_OK) {
        return;  // incomplete
      }
      std::string_view text(natsMsg_GetData(reply), natsMsg_GetDataLength(reply));
      simdjson::padded_string padded(text);
      natsMsg_Destroy(reply);
      simdjson::dom::element root;
      if (fetch_parser.parse(padded).get(root)) return;
      int64_t code = 0;
      if (!root["error"]["code"].get(code)) {
        if (code == 404) break;  // nothing more on that subject
        return;
      }
      simdjson::dom::element message;
      uint64_t seq = 0;
      std::string_view data64;
      std::string_view time;
      if (root["message"].get(message) || message["seq"].get(seq) || message["data"].get(data64) ||
          seq < next) {
        return;
      }
      if (seq > range.through_pos) break;
      std::string_view hdrs64;
      if (message["hdrs"].get(hdrs64)) hdrs64 = {};
      if (message["time"].get(time)) time = {};
      if (!base64_decode(data64, data) || !base64_decode(hdrs64, headers)) return;
      if (fetch.messages.size() == limit) return;  // more than the caller may take: incomplete
      const std::optional<std::string_view> type = type_header(headers);
      IngestItem item;
      if (!fetch_filter.check(subject, type ? &*type : nullptr, data, item)) {
        item.pos = seq;
        const int64_t ts = rfc3339_ms(time);
        fetch.messages.push_back(encode_message(item, ts != 0 ? ts : wall_ms(), steady_ns()));
      }  // else: refused at intake too, so never delivered anywhere
      next = seq + 1;
    }
  }
  std::sort(fetch.messages.begin(), fetch.messages.end(),
            [](const auto& a, const auto& b) { return a->pos < b->pos; });
  fetch.complete = true;
}

// ---- NatsBroker ------------------------------------------------------------------------------

NatsBroker::NatsBroker(const Config& config, std::string instance_id, Hub& hub,
                       const ResourceMonitor& resources)
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

void NatsBroker::publish(std::span<const IngestItem> items, PublishDone done) {
  impl_->publish(items, std::move(done));
}

void NatsBroker::fetch(std::unique_ptr<StreamFetch> fetch, size_t limit, StreamFetchDone done) {
  impl_->fetch(std::move(fetch), limit, std::move(done));
}

const std::string& NatsBroker::consumer_name() const {
  return impl_->consumer;
}

}  // namespace odin
