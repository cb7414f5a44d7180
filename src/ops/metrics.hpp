// Counters kept per event-loop thread (each written by its own thread only, read by /stats and
// /metrics from any thread), the broker's, and the reasons that label them. Single-writer
// counters use relaxed load+store: no locked instruction on the hot path.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <type_traits>

#include "ops/histogram.hpp"

namespace odin::ops {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Reasons an upgrade is refused with 503; also the `reason` label of the metric.
enum class RejectReason : uint8_t { kAtCapacity, kMemory, kCpu, kDraining, kCount };
inline const char* reject_reason_name(RejectReason r) {
  switch (r) {
    case RejectReason::kAtCapacity:
      return "at_capacity";
    case RejectReason::kMemory:
      return "memory";
    case RejectReason::kCpu:
      return "cpu";
    case RejectReason::kDraining:
      return "draining";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

// Why a client was refused before it became a WebSocket (hostile-client guards); the `reason`
// label of ws_connections_refused_total.
enum class RefuseReason : uint8_t {
  kUnauthorized,      // 401: WS_AUTH=jwt and the token is missing or invalid
  kOrigin,            // 403: Origin not in WS_ALLOWED_ORIGINS
  kAddressLimit,      // closed at accept: WS_MAX_CONNECTIONS_PER_IP
  kRequestTooLarge,   // 431 / 413: WS_MAX_HEADER_BYTES / WS_MAX_BODY_BYTES
  kHandshakeTimeout,  // 408: request (or TLS handshake) not complete within WS_HANDSHAKE_TIMEOUT
  kTlsFailed,         // TLS handshake or record error
  kSocketLimit,       // closed at accept: WS_MAX_SOCKETS (every socket of the process)
  kCount
};
inline const char* refuse_reason_name(RefuseReason r) {
  switch (r) {
    case RefuseReason::kUnauthorized:
      return "unauthorized";
    case RefuseReason::kOrigin:
      return "origin";
    case RefuseReason::kAddressLimit:
      return "address_limit";
    case RefuseReason::kRequestTooLarge:
      return "request_too_large";
    case RefuseReason::kHandshakeTimeout:
      return "handshake_timeout";
    case RefuseReason::kSocketLimit:
      return "socket_limit";
    case RefuseReason::kTlsFailed:
      return "tls_failed";
    case RefuseReason::kCount:
      break;
  }
  return "unknown";
}

// Why a message from the broker was not delivered (each is counted, and logged at most every
// few seconds, so a bad publisher cannot flood the log); the `reason` label of
// ws_broker_messages_rejected_total.
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
inline const char* intake_reject_name(IntakeReject reason) {
  switch (reason) {
    case IntakeReject::kBadSubject:
      return "bad_subject";
    case IntakeReject::kBadType:
      return "bad_type";
    case IntakeReject::kOversized:
      return "oversized";
    case IntakeReject::kInvalidUtf8:
      return "invalid_utf8";
    case IntakeReject::kDuplicate:
      return "duplicate";
    case IntakeReject::kFanoutBehind:
      return "fanout_behind";
    case IntakeReject::kCount:
      break;
  }
  return "unknown";
}

// The counters every broker keeps (broker/broker.hpp), written once for two uses as the
// per-thread ones are: BrokerCounters (atomics, written by the broker's threads, read by
// /metrics, /stats and /health on any thread) and BrokerCounts (plain copies in a snapshot).
template <typename T>
using Plain = T;
template <template <typename> class Cell>
struct BrokerCountersOf {
  Cell<bool> connected{false};
  Cell<bool> paused{false};
  Cell<bool> intake_ready{true};  // NATS: false until subscribed (core) or the consumer is bound
  Cell<uint64_t> received{0};     // messages taken from the broker
  Cell<uint64_t> delivered{0};    // handed to the fan-out
  Cell<uint64_t> disconnects{0};  // connection to the broker lost
  Cell<uint64_t> reconnects{0};   // and regained
  Cell<uint64_t> pauses{0};       // intake paused for CPU (WS_CPU_PAUSE_THRESHOLD)
  Cell<uint64_t> dropped{0};      // core NATS: dropped by the client library when full
  Cell<uint64_t> published{0};    // POST /publish messages the broker accepted
  Cell<uint64_t> publish_failures{0};
  // JetStream: stream messages lost in flight and read back from the stream to keep the order,
  // and gaps that could not be read back (histories restarted after them).
  Cell<uint64_t> gap_filled{0};
  Cell<uint64_t> history_restarts{0};
  // JetStream: the stream was deleted and created again while this instance read it.
  Cell<uint64_t> stream_resets{0};
  // JetStream resumes reading the stream back: waiting or under way (at most
  // WS_MAX_STREAM_READS), refused for that cap, abandoned by a client that hung up while waiting,
  // and stopped by WS_STREAM_READ_TIMEOUT.
  Cell<uint32_t> stream_reads_pending{0};
  Cell<uint64_t> stream_reads_refused{0};
  Cell<uint64_t> stream_reads_abandoned{0};
  Cell<uint64_t> stream_reads_timed_out{0};
  // An event-loop thread's fan-out queue is above WS_FANOUT_QUEUE_BYTES (until below half):
  // JetStream holds its pulls, the others drop. How often that began.
  Cell<bool> fanout_behind{false};
  Cell<uint64_t> fanout_behind_episodes{0};
  std::array<Cell<uint64_t>, static_cast<size_t>(IntakeReject::kCount)> rejected{};

  // BrokerCounters only.
  void reject(IntakeReject reason) {
    rejected[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }

  // Calls f with the same field of each of `objects`, field by field.
  template <typename F, typename... Objects>
  static constexpr void for_each_field(F&& f, Objects&... objects) {
    f(objects.connected...);
    f(objects.paused...);
    f(objects.intake_ready...);
    f(objects.received...);
    f(objects.delivered...);
    f(objects.disconnects...);
    f(objects.reconnects...);
    f(objects.pauses...);
    f(objects.dropped...);
    f(objects.published...);
    f(objects.publish_failures...);
    f(objects.gap_filled...);
    f(objects.history_restarts...);
    f(objects.stream_resets...);
    f(objects.stream_reads_pending...);
    f(objects.stream_reads_refused...);
    f(objects.stream_reads_abandoned...);
    f(objects.stream_reads_timed_out...);
    f(objects.fanout_behind...);
    f(objects.fanout_behind_episodes...);
    f(objects.rejected...);
  }
};

using BrokerCounters = BrokerCountersOf<std::atomic>;
using BrokerCounts = BrokerCountersOf<Plain>;

namespace detail {
// Bytes of the fields for_each_field visits, padding included as the compiler lays them out:
// equal to sizeof(BrokerCounts) only when no field is missing.
constexpr size_t broker_counts_visited() {
  BrokerCounts counts;
  size_t end = 0;
  BrokerCounts::for_each_field(
      [&](const auto& field) {
        const size_t align = alignof(std::remove_cvref_t<decltype(field)>);
        end = (end + align - 1) / align * align + sizeof(field);
      },
      counts);
  return (end + alignof(BrokerCounts) - 1) / alignof(BrokerCounts) * alignof(BrokerCounts);
}
}  // namespace detail
static_assert(detail::broker_counts_visited() == sizeof(BrokerCounts),
              "BrokerCountersOf::for_each_field must list every field, in declaration order");

// Copies what the broker's threads have counted so far.
inline void copy_counts(BrokerCounts& copy, const BrokerCounters& live) {
  BrokerCounts::for_each_field(
      [](auto& value, const auto& counter) {
        if constexpr (requires { value.size(); }) {
          for (size_t i = 0; i < value.size(); ++i)
            value[i] = counter[i].load(std::memory_order_relaxed);
        } else {
          value = counter.load(std::memory_order_relaxed);
        }
      },
      copy, live);
}

// The per-thread counters, written once for two uses: live Counters in ThreadStats, and plain
// sums over every thread in a snapshot (ops/snapshot.hpp: ThreadCounts). for_each_field is the
// only other list of the fields, so summing needs none of its own; the static_assert below it
// fails to compile when a field is missing there.
template <typename T>
struct ThreadCountersOf {
  T connections_accepted{};  // upgrades completed
  T connections_rejected[static_cast<int>(RejectReason::kCount)]{};
  T connections_closed{};
  T messages_out{};          // data frames queued to clients (fan-out, replay, snapshot)
  T bytes_out{};             // bytes written to client sockets
  T slow_consumer_closes{};  // closed with 4008
  T heartbeat_timeouts{};    // closed with 4000
  T protocol_errors{};       // closed with 1002/1003/1007/1009
  T replay_requests{};
  T resumes_ok{};
  T resumes_failed{};
  T resumes_restored{};   // resumed from a stream position (session of another instance)
  T detached_evicted{};   // detached sessions dropped by the detached-session budget
  T rate_limited{};       // requests refused with rate_limited
  T rate_limit_closes{};  // closed with 1008
  T requests{};           // client requests handled
  T http_requests{};
  T connections_refused[static_cast<int>(RefuseReason::kCount)]{};
  T flood_closes{};          // closed with 1008 for exceeding WS_CLIENT_MAX_BYTES_PER_SEC
  T forbidden{};             // subscriptions refused by the token's channels claim
  T token_expired_closes{};  // closed with 4001
  T tokens_refreshed{};      // `auth` requests accepted

  // Calls f with the same field of each of `objects`, field by field.
  template <typename F, typename... Objects>
  static constexpr void for_each_field(F&& f, Objects&... objects) {
    f(objects.connections_accepted...);
    f(objects.connections_rejected...);
    f(objects.connections_closed...);
    f(objects.messages_out...);
    f(objects.bytes_out...);
    f(objects.slow_consumer_closes...);
    f(objects.heartbeat_timeouts...);
    f(objects.protocol_errors...);
    f(objects.replay_requests...);
    f(objects.resumes_ok...);
    f(objects.resumes_failed...);
    f(objects.resumes_restored...);
    f(objects.detached_evicted...);
    f(objects.rate_limited...);
    f(objects.rate_limit_closes...);
    f(objects.requests...);
    f(objects.http_requests...);
    f(objects.connections_refused...);
    f(objects.flood_closes...);
    f(objects.forbidden...);
    f(objects.token_expired_closes...);
    f(objects.tokens_refreshed...);
  }
};

using ThreadCounts = ThreadCountersOf<uint64_t>;

namespace detail {
constexpr size_t thread_counts_visited() {
  ThreadCounts counts;
  size_t visited = 0;
  ThreadCounts::for_each_field([&](const auto& field) { visited += sizeof(field); }, counts);
  return visited;
}
}  // namespace detail
static_assert(detail::thread_counts_visited() == sizeof(ThreadCounts),
              "ThreadCountersOf::for_each_field must list every field");

// Adds one thread's counters to `sums`.
inline void add_counts(ThreadCounts& sums, const ThreadCountersOf<Counter>& live) {
  ThreadCounts::for_each_field(
      [](auto& sum, const auto& counter) {
        if constexpr (std::is_array_v<std::remove_reference_t<decltype(sum)>>) {
          for (size_t i = 0; i < std::size(sum); ++i)
            sum[i] += counter[i].get();
        } else {
          sum += counter.get();
        }
      },
      sums, live);
}

struct alignas(64) ThreadStats : ThreadCountersOf<Counter> {
  void refused(RefuseReason r) { connections_refused[static_cast<int>(r)].add(); }
  LatencyHistogram fanout_latency;     // ingest -> write to the last local recipient
  LatencyHistogram handshake_latency;  // request begun (the accept, for the first) -> 101 queued
};

}  // namespace odin::ops
