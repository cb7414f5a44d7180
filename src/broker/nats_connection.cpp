// The NATS connection and the batched subscription read (see nats_connection.hpp).
#include "broker/nats_connection.hpp"

#include <string_view>

#include "broker/broker.hpp"
#include "broker/intake.hpp"
#include "broker/intake_runner.hpp"
#include "spdlog/spdlog.h"

namespace odin::broker {

namespace {

constexpr int64_t kLongPollMs = 500;  // how long one wait for the first message lasts

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

}  // namespace

std::string status_text(natsStatus s, jsErrCode jerr) {
  std::string text = natsStatus_GetText(s);
  if (jerr != 0) text += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  const char* last = nats_GetLastError(nullptr);
  if (last && *last && text.find(last) == std::string::npos) text += std::string(": ") + last;
  return text;
}

// ---- the connection ---------------------------------------------------------------------------

std::string NatsConnection::open(const std::string& client_name, bool jetstream) {
  natsStatus s = natsOptions_Create(&options_);
  const std::vector<std::string> urls = server_urls(config_.nats_url);
  std::vector<const char*> url_pointers;
  for (const std::string& url : urls)
    url_pointers.push_back(url.c_str());
  if (s == NATS_OK) {
    s = natsOptions_SetServers(options_, url_pointers.data(),
                               static_cast<int>(url_pointers.size()));
  }
  if (s == NATS_OK) s = natsOptions_SetName(options_, client_name.c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(options_, -1);
  if (s == NATS_OK) s = natsOptions_SetCustomReconnectDelay(options_, reconnect_delay, this);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(options_, true, on_connected, this);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(options_, on_disconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(options_, on_reconnected_cb, this);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(options_, on_error, this);
  // A dead server is noticed within ~10 s even when TCP says nothing.
  if (s == NATS_OK) s = natsOptions_SetPingInterval(options_, 5000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(options_, 2);
  if (s != NATS_OK) return "NATS options: " + status_text(s);

  open_ = true;  // before the callbacks can run
  s = natsConnection_Connect(&connection_, options_);
  if (s == NATS_OK) {
    counters_.connected = true;
    spdlog::info("NATS connected to {}", config_.nats_url);
  } else if (s == NATS_NOT_YET_CONNECTED) {
    spdlog::warn("NATS at {} not reachable yet: retrying in the background", config_.nats_url);
  } else {
    open_ = false;
    return "cannot use NATS_URL " + config_.nats_url + ": " + status_text(s);
  }
  if (jetstream) {
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = kNatsPublishTimeoutMs;
    s = natsConnection_JetStream(&js_, connection_, &js_options);
    if (s != NATS_OK) {
      open_ = false;
      return "JetStream context: " + status_text(s);
    }
  }
  return {};
}

void NatsConnection::close() {
  if (js_) jsCtx_Destroy(js_);
  js_ = nullptr;
  if (connection_) {
    natsConnection_Close(connection_);
    natsConnection_Destroy(connection_);
  }
  connection_ = nullptr;
  if (options_) natsOptions_Destroy(options_);
  options_ = nullptr;
  counters_.connected = false;
  nats_CloseAndWait(2000);
}

bool NatsConnection::connected() const {
  return counters_.connected.load(std::memory_order_relaxed);
}

void NatsConnection::on_connected(natsConnection*, void* self) {
  auto* nats = static_cast<NatsConnection*>(self);
  nats->counters_.connected = true;
  spdlog::info("NATS connected to {}", nats->config_.nats_url);
}

void NatsConnection::on_disconnected(natsConnection*, void* self) {
  auto* nats = static_cast<NatsConnection*>(self);
  if (!nats->open_) return;  // our own close at shutdown
  if (!nats->counters_.connected.exchange(false)) return;
  nats->counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("NATS disconnected from {}: reconnecting with backoff", nats->config_.nats_url);
}

void NatsConnection::on_reconnected_cb(natsConnection* nc, void* self) {
  auto* nats = static_cast<NatsConnection*>(self);
  nats->counters_.connected = true;
  nats->counters_.reconnects.fetch_add(1, std::memory_order_relaxed);
  if (nats->on_reconnected) nats->on_reconnected();
  char url[256] = {};
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  spdlog::info("NATS reconnected to {}", url);
}

void NatsConnection::on_error(natsConnection*, natsSubscription*, natsStatus status, void* self) {
  auto* nats = static_cast<NatsConnection*>(self);
  if (status == NATS_SLOW_CONSUMER) {
    // Counted precisely from natsSubscription_GetDropped; this only says it happened.
    spdlog::warn("NATS intake fell behind: the client library is dropping messages");
    return;
  }
  if (nats->open_) spdlog::warn("NATS asynchronous error: {}", natsStatus_GetText(status));
}

int64_t NatsConnection::reconnect_delay(natsConnection*, int attempts, void*) {
  return reconnect_delay_ms(attempts);
}

// ---- the subscription read in batches ----------------------------------------------------------

natsStatus NatsBatch::subscribe(natsConnection* connection, const std::string& subject) {
  natsStatus s = natsConnection_SubscribeSync(&subscription, connection, subject.c_str());
  if (s != NATS_OK) {
    subscription = nullptr;
    return s;
  }
  natsSubscription_SetPendingLimits(subscription, 1'000'000, 256 << 20);
  return s;
}

bool NatsBatch::collect(IntakeRunner& runner, size_t limit) {
  natsMsg* msg = nullptr;
  natsStatus s = natsSubscription_NextMsg(&msg, subscription, kLongPollMs);
  if (s != NATS_OK) {
    if (s != NATS_TIMEOUT) runner.sleep_ms(100);  // disconnected: nats.c resubscribes on reconnect
    return false;
  }
  messages.push_back(msg);
  while (messages.size() < limit && natsSubscription_NextMsg(&msg, subscription, 0) == NATS_OK)
    messages.push_back(msg);
  return true;
}

bool NatsBatch::add(IntakeRunner& runner, natsMsg* msg, uint64_t stream_sequence) {
  const std::string_view subject = natsMsg_GetSubject(msg);
  const char* type_header = nullptr;
  std::string_view type;
  const bool has_type = natsMsgHeader_Get(msg, "Type", &type_header) == NATS_OK && type_header;
  if (has_type) type = type_header;
  const char* data = natsMsg_GetData(msg);
  const std::string_view payload(data ? data : "", static_cast<size_t>(natsMsg_GetDataLength(msg)));
  return runner.add(subject, has_type ? &type : nullptr, payload, stream_sequence);
}

void NatsBatch::destroy_messages() {
  for (natsMsg* msg : messages)
    natsMsg_Destroy(msg);
  messages.clear();
}

void NatsBatch::unsubscribe() {
  if (!subscription) return;
  natsSubscription_Destroy(subscription);
  subscription = nullptr;
}

}  // namespace odin::broker
