// Counters kept per event-loop thread (each written by its own thread only, read by /stats and
// /metrics from any thread) and the process-wide ones. Single-writer counters use relaxed
// load+store: no locked instruction on the hot path.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <type_traits>

#include "ops/histogram.hpp"

namespace odin {

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
  LatencyHistogram fanout_latency;  // ingest -> write to the last local recipient
};

}  // namespace odin
