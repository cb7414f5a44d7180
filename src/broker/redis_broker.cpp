// Redis broker (see redis_broker.hpp). Threads: our intake thread (the only caller of
// Hub::ingest in this mode, and the owner of the subscribed connection) and our worker thread
// (owner of the publishing connection). hiredis is used synchronously: the intake thread polls
// the socket itself, feeds what it reads to hiredis' reply parser and takes every reply already
// parsed before one Hub::ingest, so a burst costs one hand-off, not one per message.
#include "broker/redis_broker.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "broker/broker_worker.hpp"
#include "broker/intake.hpp"
#include "broker/redis_support.hpp"
#include "core/clock.hpp"
#include "guard/resource_monitor.hpp"
#include "hub/fanout.hpp"
#include "ops/config.hpp"
#include "spdlog/spdlog.h"

namespace odin {

namespace {

constexpr size_t kBatch = 256;    // most messages per Hub::ingest
constexpr int kLongPollMs = 500;  // one wait for the socket (bounds how long stop takes)
constexpr int64_t kPingAfterNs = 5'000'000'000;   // silence before we ask Redis for a PONG
constexpr int64_t kDeadAfterNs = 10'000'000'000;  // silence that means the connection is gone
constexpr timeval kConnectTimeout{2, 0};
constexpr timeval kCommandTimeout{5, 0};  // a blocking command (setup, PUBLISH replies)
constexpr size_t kReadChunk = 256 * 1024;
// The object form {"type":...,"data":...} around a `data`: its keys and a type of up to 128
// characters, each escaped in six bytes at worst.
constexpr size_t kObjectFormSlack = 1024;

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextFree>;

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

std::string_view text_of(const redisReply* r) {
  return r && r->str ? std::string_view(r->str, r->len) : std::string_view();
}

// One command with binary-safe arguments, answered synchronously (within kCommandTimeout).
ReplyPtr command(redisContext* c, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

// A message of a POST /publish request, ready for PUBLISH on the worker thread.
struct OwnedItem {
  std::string channel;  // the Redis channel: <prefix><channel>
  std::string payload;  // the object form
};

}  // namespace

struct RedisBroker::Impl {
  Impl(const Config& config, std::string instance, Hub& hub, const ResourceMonitor& resources,
       BrokerCounters& counters)
      : config(config),
        instance_id(std::move(instance)),
        pattern(redis_channel_pattern(config.subject_prefix)),
        hub(hub),
        resources(resources),
        counters(counters),
        filter(config.subject_prefix, config.max_payload_bytes),
        governor(config, resources, counters, "Redis", &hub) {}

  const Config& config;
  const std::string instance_id;
  const std::string pattern;
  RedisUrl url;
  std::string where;  // url.display(), for logs
  Hub& hub;
  const ResourceMonitor& resources;
  BrokerCounters& counters;
  std::atomic<bool> running{false};
  // Bumped on every intake (re)connect: a publishing connection made before the latest one may
  // lead to a Redis that restarted since, so it is replaced before use.
  std::atomic<uint64_t> generation{0};

  // Intake thread state.
  std::thread intake_thread;
  ContextPtr intake;
  bool ever_connected = false;
  IntakeFilter filter;
  RedisPayloadReader payloads;
  IntakeGovernor governor;
  std::vector<char> read_buffer = std::vector<char>(kReadChunk);
  std::vector<ReplyPtr> batch;
  std::vector<std::string> types;  // the object form's types, while their batch is handed over
  std::vector<IngestItem> items;
  std::string lost;  // why the intake connection is gone (set while reading)

  std::mutex wake_mutex;
  std::condition_variable wake;

  // Publishes, on the worker thread.
  BrokerWorker worker;
  ContextPtr publisher;
  uint64_t publisher_generation = 0;

  std::string start();
  void stop();
  void publish(std::span<const IngestItem> items, PublishDone done);

  ContextPtr connect(std::string_view role, std::string& error);
  bool subscribe(std::string& error);
  void intake_loop();
  void read_messages();
  void sleep_ms(int64_t ms);
  size_t take_allowance();
  void refund(size_t unused) { governor.refund(unused); }
  int wait_readable(int timeout_ms);
  void read_socket();
  void take_parsed(size_t limit);
  void hand_over();

  PublishOutcome publish_now(const std::vector<OwnedItem>& items);
};

// ---- connection ----------------------------------------------------------------------------

ContextPtr RedisBroker::Impl::connect(std::string_view role, std::string& error) {
  ContextPtr c(redisConnectWithTimeout(url.host.c_str(), url.port, kConnectTimeout));
  if (!c) {
    error = "cannot allocate a connection";
    return nullptr;
  }
  if (c->err) {
    error = c->errstr;
    return nullptr;
  }
  redisSetTimeout(c.get(), kCommandTimeout);
  redisEnableKeepAlive(c.get());
  if (!url.password.empty()) {
    ReplyPtr r = url.username.empty() ? command(c.get(), {"AUTH", url.password})
                                      : command(c.get(), {"AUTH", url.username, url.password});
    if (!r || r->type == REDIS_REPLY_ERROR) {
      error = "AUTH refused: " + std::string(r ? text_of(r.get()) : std::string_view(c->errstr));
      return nullptr;
    }
  }
  if (url.db != 0) {
    ReplyPtr r = command(c.get(), {"SELECT", std::to_string(url.db)});
    if (!r || r->type == REDIS_REPLY_ERROR) {
      error = "SELECT refused: " + std::string(r ? text_of(r.get()) : std::string_view(c->errstr));
      return nullptr;
    }
  }
  // Only a label for CLIENT LIST; a Redis that refuses it (old, or renamed) still works.
  const std::string name = "odin-ws-" + instance_id + "-" + std::string(role);
  ReplyPtr named = command(c.get(), {"CLIENT", "SETNAME", name});
  if (!named && c->err) {
    error = c->errstr;
    return nullptr;
  }
  return c;
}

bool RedisBroker::Impl::subscribe(std::string& error) {
  ReplyPtr r = command(intake.get(), {"PSUBSCRIBE", pattern});
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      text_of(r->element[0]) != "psubscribe") {
    error = "PSUBSCRIBE " + pattern +
            " failed: " + std::string(r ? text_of(r.get()) : std::string_view(intake->errstr));
    return false;
  }
  return true;
}

std::string RedisBroker::Impl::start() {
  auto parsed = parse_redis_url(config.redis_url);
  if (auto* problem = std::get_if<std::string>(&parsed)) return "REDIS_URL: " + *problem;
  url = std::get<RedisUrl>(std::move(parsed));
  where = url.display();
  running = true;
  // One attempt now, so a gateway whose Redis is up starts connected; otherwise the intake
  // thread keeps trying.
  std::string error;
  intake = connect("intake", error);
  if (intake && !subscribe(error)) intake.reset();
  if (intake) {
    ever_connected = true;
    generation.fetch_add(1);
    counters.connected = true;
    spdlog::info("Redis connected to {}, intake subscribed to {}", where, pattern);
  } else {
    spdlog::warn("Redis at {} not usable yet ({}): retrying in the background", where, error);
  }
  intake_thread = std::thread([this] { intake_loop(); });
  worker.start();
  return {};
}

void RedisBroker::Impl::stop() {
  if (!running.exchange(false)) return;
  { std::lock_guard lock(wake_mutex); }
  wake.notify_all();
  worker.stop();  // what is queued fails at once
  if (intake_thread.joinable()) intake_thread.join();
  intake.reset();
  publisher.reset();
  counters.connected = false;
}

void RedisBroker::Impl::sleep_ms(int64_t ms) {
  std::unique_lock lock(wake_mutex);
  wake.wait_for(lock, std::chrono::milliseconds(ms), [this] { return !running.load(); });
}

// ---- intake ----------------------------------------------------------------------------------

void RedisBroker::Impl::intake_loop() {
  int attempts = 0;
  while (running) {
    if (!intake) {
      std::string error;
      intake = connect("intake", error);
      if (intake && !subscribe(error)) intake.reset();
      if (!intake) {
        spdlog::debug("Redis at {} still unreachable: {}", where, error);
        sleep_ms(reconnect_delay_ms(attempts++));
        continue;
      }
      attempts = 0;
      generation.fetch_add(1);
      counters.connected = true;
      if (ever_connected) {
        counters.reconnects.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("Redis reconnected to {}, intake subscribed to {}", where, pattern);
      } else {
        spdlog::info("Redis connected to {}, intake subscribed to {}", where, pattern);
      }
      ever_connected = true;
    }
    read_messages();
    intake.reset();
    if (!running) break;
    counters.connected = false;
    counters.disconnects.fetch_add(1, std::memory_order_relaxed);
    // Redis pub/sub keeps nothing for us: what is published until we are back is lost.
    spdlog::warn("Redis disconnected from {} ({}): reconnecting with backoff", where, lost);
  }
}

// What both caps allow now (at most kBatch). When that is nothing, sleeps until the next message
// may be taken and returns 0.
size_t RedisBroker::Impl::take_allowance() {
  int64_t wait_ms = 0;
  const size_t allowed = governor.take(kBatch, wait_ms);
  if (allowed == 0) sleep_ms(wait_ms);
  return allowed;
}

// >0: readable (or closed: the read says which), 0: nothing within `timeout_ms`, <0: failed.
int RedisBroker::Impl::wait_readable(int timeout_ms) {
  pollfd p{intake->fd, POLLIN, 0};
  const int n = ::poll(&p, 1, timeout_ms);
  if (n < 0 && errno == EINTR) return 0;
  if (n < 0) lost = std::string("poll: ") + std::strerror(errno);
  return n;
}

// Reads what the socket has and gives it to hiredis' parser; sets `lost` when the connection
// ended.
void RedisBroker::Impl::read_socket() {
  const ssize_t n = ::read(intake->fd, read_buffer.data(), read_buffer.size());
  if (n > 0) {
    if (redisReaderFeed(intake->reader, read_buffer.data(), static_cast<size_t>(n)) != REDIS_OK)
      lost = "reply parser out of memory";
    return;
  }
  if (n == 0) {
    lost = "Redis closed the connection";
  } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
    lost = std::string("read: ") + std::strerror(errno);
  }
}

// Takes replies hiredis has already parsed, up to `limit` messages, into `batch`. Other replies
// (the PSUBSCRIBE confirmation, PONGs) are dropped.
void RedisBroker::Impl::take_parsed(size_t limit) {
  while (batch.size() < limit) {
    void* raw = nullptr;
    if (redisReaderGetReply(intake->reader, &raw) != REDIS_OK) {
      lost = std::string("protocol error: ") + intake->reader->errstr;
      return;
    }
    if (!raw) return;
    ReplyPtr reply(static_cast<redisReply*>(raw));
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
        text_of(reply->element[0]) == "pmessage" && reply->element[2]->type == REDIS_REPLY_STRING &&
        reply->element[3]->type == REDIS_REPLY_STRING) {
      batch.push_back(std::move(reply));
    } else if (reply->type == REDIS_REPLY_ERROR) {
      spdlog::warn("Redis error on the intake connection: {}", text_of(reply.get()));
    }
  }
}

void RedisBroker::Impl::read_messages() {
  lost.clear();
  int64_t last_heard = steady_ns();
  bool ping_sent = false;
  while (running && lost.empty()) {
    if (governor.paused_for_cpu()) {
      // Not reading: Redis buffers for us up to its client-output-buffer-limit for pubsub,
      // then closes the connection (we reconnect; what it dropped is lost).
      sleep_ms(100);
      last_heard = steady_ns();
      continue;
    }
    const size_t allowed = take_allowance();
    if (allowed == 0) {
      last_heard = steady_ns();
      continue;
    }
    take_parsed(allowed);
    if (batch.empty() && lost.empty()) {
      const int ready = wait_readable(kLongPollMs);
      if (ready == 0) {
        refund(allowed);
        const int64_t silent = steady_ns() - last_heard;
        if (silent > kDeadAfterNs) {
          lost = "no answer to PING for 10 s";
        } else if (silent > kPingAfterNs && !ping_sent) {
          // PING is allowed on a subscribed connection; its answer is ["pong", ""].
          int done = 0;
          redisAppendCommand(intake.get(), "PING");
          while (!done && redisBufferWrite(intake.get(), &done) == REDIS_OK) {
          }
          if (!done) lost = std::string("PING: ") + intake->errstr;
          ping_sent = true;
        }
        continue;
      }
      if (ready > 0) {
        read_socket();
        last_heard = steady_ns();
        ping_sent = false;
        take_parsed(allowed);
        // Whatever else already arrived goes into the same hand-off.
        while (batch.size() < allowed && lost.empty() && wait_readable(0) > 0) {
          read_socket();
          take_parsed(allowed);
        }
      }
    }
    refund(allowed - std::min(allowed, batch.size()));
    if (!batch.empty()) {
      hand_over();
      // Messages parsed earlier count as traffic too: under a rate cap the parser may hold
      // many seconds' worth, during which the socket is rightly left alone.
      last_heard = steady_ns();
    }
  }
}

void RedisBroker::Impl::hand_over() {
  items.clear();
  types.clear();
  types.reserve(batch.size());  // items view these strings: they must not move
  for (const ReplyPtr& reply : batch) {
    counters.received.fetch_add(1, std::memory_order_relaxed);
    const std::string_view channel = text_of(reply->element[2]);
    const std::string_view payload = text_of(reply->element[3]);
    // Before any parsing; the object form's "type" and keys may come on top of a `data` as
    // large as WS_MAX_PAYLOAD_BYTES, which the filter checks exactly.
    if (payload.size() > config.max_payload_bytes + kObjectFormSlack) {
      governor.reject(IntakeReject::kOversized, channel);
      continue;
    }
    RedisPayload read = payloads.read(payload);
    std::string_view type;
    if (read.object_form) {
      types.push_back(std::move(read.type));
      type = types.back();
    }
    IngestItem item;
    if (auto reject = filter.check(channel, read.object_form ? &type : nullptr, read.data, item)) {
      governor.reject(*reject, channel);
      continue;
    }
    items.push_back(item);
  }
  governor.ingest(items);  // dropped while the fan-out is behind
  counters.delivered.fetch_add(items.size(), std::memory_order_relaxed);
  batch.clear();
}

// ---- publishing ------------------------------------------------------------------------------

void RedisBroker::Impl::publish(std::span<const IngestItem> to_publish, PublishDone done) {
  std::vector<OwnedItem> owned;
  owned.reserve(to_publish.size());
  for (const IngestItem& item : to_publish) {
    owned.push_back(OwnedItem{config.subject_prefix + std::string(item.channel),
                              redis_publish_payload(item.type, item.data, item.data_is_json)});
  }
  worker.publish([this, owned = std::move(owned)] { return publish_now(owned); }, std::move(done),
                 counters);
}

PublishOutcome RedisBroker::Impl::publish_now(const std::vector<OwnedItem>& to_publish) {
  PublishOutcome outcome;
  // While intake is cut off, refuse: this instance would not even see its own message.
  if (!counters.connected.load()) {
    outcome.error = "Redis is not connected";
    return outcome;
  }
  const uint64_t current = generation.load();
  if (publisher && publisher_generation != current) publisher.reset();
  if (!publisher) {
    std::string error;
    publisher = connect("publish", error);
    if (!publisher) {
      outcome.error = "Redis publish connection: " + error;
      return outcome;
    }
    publisher_generation = current;
  }
  // Pipelined: every PUBLISH goes out, then the answers are read in order.
  for (const OwnedItem& item : to_publish) {
    const char* argv[] = {"PUBLISH", item.channel.data(), item.payload.data()};
    const size_t lengths[] = {7, item.channel.size(), item.payload.size()};
    redisAppendCommandArgv(publisher.get(), 3, argv, lengths);
  }
  bool counting = true;
  for (size_t i = 0; i < to_publish.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(publisher.get(), &raw) != REDIS_OK) {
      // Unknown whether the rest arrived; the connection is not reused.
      if (outcome.error.empty())
        outcome.error = "Redis publish failed: " + std::string(publisher->errstr);
      publisher.reset();
      break;
    }
    ReplyPtr reply(static_cast<redisReply*>(raw));
    if (reply->type == REDIS_REPLY_ERROR) {
      if (outcome.error.empty())
        outcome.error = "Redis refused PUBLISH: " + std::string(text_of(reply.get()));
      counting = false;  // keep reading the answers, so the connection stays in step
    } else if (counting) {
      ++outcome.published;
    }
  }
  return outcome;
}

// ---- RedisBroker -----------------------------------------------------------------------------

RedisBroker::RedisBroker(const Config& config, std::string instance_id, Hub& hub,
                         const ResourceMonitor& resources)
    : impl_(std::make_unique<Impl>(config, std::move(instance_id), hub, resources, counters_)) {}

RedisBroker::~RedisBroker() {
  impl_->stop();
}

std::string RedisBroker::start() {
  return impl_->start();
}

void RedisBroker::stop() {
  impl_->stop();
}

void RedisBroker::publish(std::span<const IngestItem> items, PublishDone done) {
  impl_->publish(items, std::move(done));
}

}  // namespace odin
