// Redis broker (see redis_broker.hpp): the Redis side of the shared intake (an IntakeSource run
// by IntakeRunner) and publishing. Threads: the intake thread (the only caller of Hub::ingest in
// this mode, and the owner of the subscribed connection) and our worker thread (owner of the
// publishing connection). hiredis is used synchronously: the intake thread polls the socket
// itself, feeds what it reads to hiredis' reply parser and takes every reply already parsed
// before one Hub::ingest, so a burst costs one hand-off, not one per message.
#include "broker/redis_broker.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "broker/broker_worker.hpp"
#include "broker/intake.hpp"
#include "broker/intake_runner.hpp"
#include "broker/redis_support.hpp"
#include "core/clock.hpp"
#include "ops/config.hpp"
#include "spdlog/spdlog.h"

namespace odin::broker {

namespace {

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

struct RedisBroker::Impl final : IntakeSource {
  Impl(const ops::Config& config, std::string instance, hub::Hub& hub,
       const guard::ResourceMonitor& resources, ops::BrokerCounters& counters)
      : config(config),
        instance_id(std::move(instance)),
        pattern(redis_channel_pattern(config.subject_prefix)),
        counters(counters),
        runner(config, resources, counters, "Redis", &hub) {}

  const ops::Config& config;
  const std::string instance_id;
  const std::string pattern;
  RedisUrl url;
  std::string where;  // url.display(), for logs
  ops::BrokerCounters& counters;
  // Bumped on every intake (re)connect: a publishing connection made before the latest one may
  // lead to a Redis that restarted since, so it is replaced before use.
  std::atomic<uint64_t> generation{0};

  // Intake thread state.
  ContextPtr intake;
  bool ever_connected = false;
  RedisPayloadReader payloads;
  std::vector<char> read_buffer = std::vector<char>(kReadChunk);
  std::vector<ReplyPtr> batch;
  std::vector<std::string> types;  // the object form's types, while their batch is handed over
  std::string lost;                // why the intake connection is gone (set while reading)
  int64_t last_heard = 0;          // steady clock: the last sign of life on the connection
  bool ping_sent = false;

  // Publishes, on the worker thread.
  BrokerWorker worker;
  ContextPtr publisher;
  uint64_t publisher_generation = 0;

  // Last: it runs this as its source, so it must stop before the rest goes.
  IntakeRunner runner;

  std::string start();
  void stop();
  void publish(std::span<const core::IngestItem> items, core::PublishDone done);

  ContextPtr connect(std::string_view role, std::string& error);
  bool subscribe(std::string& error);
  bool connect_intake(std::string& error);

  // IntakeSource: the intake thread.
  Readiness prepare(IntakeRunner& runner) override;
  int64_t retry_delay_ms(int failures) const override { return reconnect_delay_ms(failures - 1); }
  size_t collect(IntakeRunner& runner) override;
  void convert(IntakeRunner& runner) override;
  void settle(IntakeRunner& runner) override;
  void idled() override { last_heard = core::steady_ns(); }
  void close() override { intake.reset(); }

  int wait_readable(int timeout_ms);
  void read_socket();
  void take_parsed(size_t limit);

  core::PublishOutcome publish_now(const std::vector<OwnedItem>& items);
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

// Whether `intake` could be made and subscribed; counted and logged when it was. On any thread
// that owns `intake`: start() before the intake thread runs, then the intake thread.
bool RedisBroker::Impl::connect_intake(std::string& error) {
  intake = connect("intake", error);
  if (intake && !subscribe(error)) intake.reset();
  if (!intake) return false;
  lost.clear();
  last_heard = core::steady_ns();
  ping_sent = false;
  generation.fetch_add(1);
  counters.connected = true;
  if (ever_connected) {
    counters.reconnects.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("Redis reconnected to {}, intake subscribed to {}", where, pattern);
  } else {
    spdlog::info("Redis connected to {}, intake subscribed to {}", where, pattern);
  }
  ever_connected = true;
  return true;
}

std::string RedisBroker::Impl::start() {
  auto parsed = parse_redis_url(config.redis_url);
  if (auto* problem = std::get_if<std::string>(&parsed)) return "REDIS_URL: " + *problem;
  url = std::get<RedisUrl>(std::move(parsed));
  where = url.display();
  // One attempt now, so a gateway whose Redis is up starts connected; otherwise the intake
  // thread keeps trying.
  std::string error;
  if (!connect_intake(error)) {
    spdlog::warn("Redis at {} not usable yet ({}): retrying in the background", where, error);
  }
  runner.start(*this);
  worker.start();
  return {};
}

void RedisBroker::Impl::stop() {
  if (!runner.request_stop()) return;
  worker.stop();  // what is queued fails at once
  runner.join();  // after the batch in hand; closes the intake connection
  publisher.reset();
  counters.connected = false;
}

// ---- intake ----------------------------------------------------------------------------------

IntakeSource::Readiness RedisBroker::Impl::prepare(IntakeRunner&) {
  if (intake && lost.empty()) return Readiness::kReady;
  if (intake) {
    intake.reset();
    counters.connected = false;
    counters.disconnects.fetch_add(1, std::memory_order_relaxed);
    // Redis pub/sub keeps nothing for us: what is published until we are back is lost.
    spdlog::warn("Redis disconnected from {} ({}): reconnecting with backoff", where, lost);
  }
  std::string error;
  if (connect_intake(error)) return Readiness::kReady;
  spdlog::debug("Redis at {} still unreachable: {}", where, error);
  return Readiness::kFailed;
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

// Not reading while paused (IntakeSource::idled) or out of allowance: Redis buffers for us up to
// its client-output-buffer-limit for pubsub, then closes the connection (we reconnect; what it
// dropped is lost). Neither counts as silence on the connection.
size_t RedisBroker::Impl::collect(IntakeRunner& runner) {
  const size_t allowed = runner.take_allowance();
  if (allowed == 0) {
    last_heard = core::steady_ns();
    return 0;
  }
  take_parsed(allowed);
  if (batch.empty() && lost.empty()) {
    const int ready = wait_readable(kLongPollMs);
    if (ready == 0) {
      runner.refund(allowed);
      const int64_t silent = core::steady_ns() - last_heard;
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
      return 0;
    }
    if (ready > 0) {
      read_socket();
      last_heard = core::steady_ns();
      ping_sent = false;
      take_parsed(allowed);
      // Whatever else already arrived goes into the same hand-off.
      while (batch.size() < allowed && lost.empty() && wait_readable(0) > 0) {
        read_socket();
        take_parsed(allowed);
      }
    }
  }
  runner.refund(allowed - std::min(allowed, batch.size()));
  return batch.size();
}

void RedisBroker::Impl::convert(IntakeRunner& runner) {
  types.clear();
  types.reserve(batch.size());  // items view these strings: they must not move
  for (const ReplyPtr& reply : batch) {
    const std::string_view channel = text_of(reply->element[2]);
    const std::string_view payload = text_of(reply->element[3]);
    // Before any parsing; the object form's "type" and keys may come on top of a `data` as
    // large as WS_MAX_PAYLOAD_BYTES, which the filter checks exactly.
    if (payload.size() > config.max_payload_bytes + kObjectFormSlack) {
      runner.reject(ops::IntakeReject::kOversized, channel);
      continue;
    }
    RedisPayload read = payloads.read(payload);
    std::string_view type;
    if (read.object_form) {
      types.push_back(std::move(read.type));
      type = types.back();
    }
    runner.add(channel, read.object_form ? &type : nullptr, read.data, 0);
  }
}

void RedisBroker::Impl::settle(IntakeRunner&) {
  if (batch.empty()) return;
  batch.clear();
  // Messages parsed earlier count as traffic too: under a rate cap the parser may hold many
  // seconds' worth, during which the socket is rightly left alone.
  last_heard = core::steady_ns();
}

// ---- publishing ------------------------------------------------------------------------------

void RedisBroker::Impl::publish(std::span<const core::IngestItem> to_publish,
                                core::PublishDone done) {
  std::vector<OwnedItem> owned;
  owned.reserve(to_publish.size());
  for (const core::IngestItem& item : to_publish) {
    owned.push_back(OwnedItem{config.subject_prefix + std::string(item.channel),
                              redis_publish_payload(item.type, item.data, item.data_is_json)});
  }
  worker.publish([this, owned = std::move(owned)] { return publish_now(owned); }, std::move(done),
                 counters);
}

core::PublishOutcome RedisBroker::Impl::publish_now(const std::vector<OwnedItem>& to_publish) {
  core::PublishOutcome outcome;
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

RedisBroker::RedisBroker(const ops::Config& config, std::string instance_id, hub::Hub& hub,
                         const guard::ResourceMonitor& resources)
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

void RedisBroker::publish(std::span<const core::IngestItem> items, core::PublishDone done) {
  impl_->publish(items, std::move(done));
}

}  // namespace odin::broker
