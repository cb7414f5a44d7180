// The gateway's own settings (listener, limits, security, resource guards, seed settings,
// operations) and the checks between them. Features above ops/ define theirs in their folders.
#include <sched.h>

#include <algorithm>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "ops/config.hpp"
#include "ops/settings.hpp"

namespace odin::ops {

namespace {

using setting::boolean;
using setting::bytes;
using setting::choice;
using setting::duration;
using setting::duration_in;
using setting::has_space_or_control;
using setting::integer;
using setting::lower;
using setting::parse_u64;
using setting::real;
using setting::text_value;
using setting::token_value;

std::optional<std::string> parse_addr(Config& c, std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return "expected host:port or :port";
  std::string_view host = text.substr(0, colon);
  auto port = parse_u64(text.substr(colon + 1));
  if (!port || *port > 65535) return "expected a port from 0 to 65535 after ':'";
  if (!host.empty()) {
    // Dotted IPv4: four numbers 0..255 (or "localhost").
    if (host == "localhost") host = "127.0.0.1";
    int parts = 0;
    std::string_view rest = host;
    while (true) {
      const size_t dot = rest.find('.');
      auto n = parse_u64(rest.substr(0, dot));
      if (!n || *n > 255) return "expected an IPv4 address (or nothing) before ':'";
      ++parts;
      if (dot == std::string_view::npos) break;
      rest.remove_prefix(dot + 1);
    }
    if (parts != 4) return "expected an IPv4 address (or nothing) before ':'";
  }
  c.listen_host = std::string(host);
  c.listen_port = static_cast<uint16_t>(*port);
  return std::nullopt;
}

// Seed settings that have no meaning here: validated, then noted as ignored.
SettingParser ignored(const char* variable, const char* why) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    if (!parse_u64(text)) return "expected a non-negative integer";
    c.notices.push_back(
        fmt::format("{} is accepted for compatibility and ignored: {}", variable, why));
    return std::nullopt;
  };
}

// PEM text itself (it spans lines) or the path of a PEM file.
std::optional<std::string> parse_public_key(Config& c, std::string_view text) {
  const bool pem = text.starts_with("-----BEGIN");
  for (unsigned char ch : text) {
    if ((ch < 0x20 && !(pem && (ch == '\n' || ch == '\r'))) || ch == 0x7f) {
      return "expected a PEM public key or the path of one";
    }
  }
  c.jwt_public_key = std::string(text);
  return std::nullopt;
}

// "https://app.example.com,https://*.example.com,http://localhost:3000" or "*".
std::optional<std::string> parse_origins(Config& c, std::string_view text) {
  constexpr std::string_view kExpected =
      "expected a comma-separated list of origins such as https://app.example.com, "
      "https://*.example.com or *";
  std::vector<std::string> origins;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    if (item != "*") {
      const size_t scheme = item.find("://");
      if (scheme == std::string_view::npos || scheme == 0 || has_space_or_control(item)) {
        return std::string(kExpected);
      }
      const std::string_view host = item.substr(scheme + 3);
      if (host.empty() || host.find('/') != std::string_view::npos ||
          host.find('*', host.starts_with("*.") ? 1 : 0) != std::string_view::npos) {
        return std::string(kExpected);
      }
    }
    origins.push_back(lower(item));
  }
  if (origins.empty()) return std::string(kExpected);
  c.allowed_origins = std::move(origins);
  return std::nullopt;
}

unsigned usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return 1;
}

// The checks between the gateway's own settings, in the order their errors are reported.
std::optional<std::string> check_gateway(Config& config, const GivenSettings& given) {
  if (auto pool = given.find("WS_WORKER_POOL_SIZE"); pool != given.end()) {
    auto v = parse_u64(pool->second.value);
    if (!v || *v > 1'000'000) {
      return fmt::format("{}: expected an integer from 0 to 1000000, got '{}'", pool->second.source,
                         pool->second.value);
    }
    if (*v == 0) {
      config.notices.push_back(
          "WS_WORKER_POOL_SIZE=0 ignored: event-loop threads follow WS_THREADS (0 = the CPUs "
          "available)");
    } else if (!given.contains("WS_THREADS")) {
      config.threads = static_cast<unsigned>(std::min<uint64_t>({*v, usable_cpus(), 255}));
      config.notices.push_back(fmt::format(
          "WS_WORKER_POOL_SIZE={} mapped to {} event-loop thread(s) (capped at the CPUs available)",
          *v, config.threads));
    } else {
      config.notices.push_back("WS_WORKER_POOL_SIZE ignored: WS_THREADS is set");
    }
  }
  if (!given.contains("WS_CONFLATE_BYTES")) {
    config.conflate_bytes =
        std::min<uint64_t>(config.conflate_bytes, config.client_queue_bytes / 4);
  } else if (config.conflate_bytes >= config.client_queue_bytes) {
    return fmt::format(
        "WS_CONFLATE_BYTES: must be below WS_CLIENT_QUEUE_BYTES ({} bytes), got {} bytes",
        config.client_queue_bytes, config.conflate_bytes);
  }
  if (config.heartbeat_timeout <= config.ping_interval) {
    return fmt::format(
        "WS_HEARTBEAT_TIMEOUT: must be longer than WS_PING_INTERVAL ({} ms), got {} ms",
        config.ping_interval.count(), config.heartbeat_timeout.count());
  }
  if (config.cpu_pause_threshold < config.cpu_reject_threshold) {
    config.notices.push_back(
        "WS_CPU_PAUSE_THRESHOLD is below WS_CPU_REJECT_THRESHOLD: intake pauses before new "
        "connections are refused");
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return "WS_TLS_CERT and WS_TLS_KEY: set both (TLS) or neither (plain)";
  }
  if (config.auth_jwt) {
    if (config.jwt_secret.empty() == config.jwt_public_key.empty()) {
      return "WS_AUTH=jwt: set exactly one of WS_JWT_SECRET (HS256) and WS_JWT_PUBLIC_KEY "
             "(RS256/ES256)";
    }
  } else if (!config.jwt_secret.empty() || !config.jwt_public_key.empty()) {
    config.notices.push_back("WS_JWT_SECRET / WS_JWT_PUBLIC_KEY are ignored: WS_AUTH is not jwt");
  }
  if (config.client_max_bytes_per_sec != 0 &&
      config.client_max_bytes_per_sec < uint64_t{config.max_message_bytes} + 14) {
    return fmt::format(
        "WS_CLIENT_MAX_BYTES_PER_SEC: must hold at least one largest message (WS_MAX_MESSAGE_BYTES "
        "+ 14 bytes of framing = {}), got {}",
        uint64_t{config.max_message_bytes} + 14, config.client_max_bytes_per_sec);
  }
  if (config.max_sockets == 0) config.max_sockets = default_max_sockets(config.max_connections);
  if (!given.contains("WS_PUBLISH_REQUIRE_TOKEN")) {
    config.publish_require_token = !config.publish_token.empty();
  } else if (config.publish_require_token && config.publish_token.empty()) {
    return "WS_PUBLISH_REQUIRE_TOKEN=true needs WS_PUBLISH_TOKEN (the token to require)";
  }
  return std::nullopt;
}

}  // namespace

ConfigSection gateway_config_section() {
  ConfigSection section;
  section.check = check_gateway;
  section.settings = {
      {"WS_ADDR", "Listener", ":3002",
       "listen address, host:port or :port (port 0 = any free port)", parse_addr},
      {"WS_THREADS", "Listener", "0 (CPUs available)", "event-loop threads",
       integer(&Config::threads, 0, 255)},
      {"WS_COMPRESSION", "Listener", "true",
       "permessage-deflate for clients that offer it; each message is compressed once for all "
       "of them, and a message too small to gain goes uncompressed",
       boolean(&Config::compression)},
      {"WS_MAX_CONNECTIONS", "Limits", "10000", "WebSocket connections; beyond: 503",
       integer(&Config::max_connections, 1, 10'000'000)},
      {"WS_MAX_MESSAGE_BYTES", "Limits", "4096",
       "largest client message; beyond: close 1009 (256 to 1 MiB: a smaller one cannot carry a "
       "subscribe or resume request; a partial message is buffered per connection)",
       integer(&Config::max_message_bytes, 256, 1u << 20)},
      {"WS_MAX_CHANNELS_PER_CONN", "Limits", "100",
       "channels per connection; beyond: too_many_channels",
       integer(&Config::max_channels_per_conn, 1, 100'000)},
      {"WS_MAX_CHANNELS", "Limits", "100000",
       "channels each event-loop thread keeps state for (subscribers, snapshot, history); a "
       "subscribe that would add one beyond: channel_limit; messages on further channels keep "
       "no snapshot or history",
       integer(&Config::max_channels, 1, 100'000'000)},
      {"WS_CHANNEL_IDLE_TTL", "Limits", "10m",
       "a channel without subscribers and without messages this long is forgotten (its "
       "snapshot and history)",
       duration(&Config::channel_idle_ttl)},
      {"WS_CLIENT_RATE", "Limits", "10", "client requests per second (token bucket refill)",
       real(&Config::client_rate, 0, 1e6, true)},
      {"WS_CLIENT_BURST", "Limits", "100", "client request burst (token bucket depth)",
       real(&Config::client_burst, 1, 1e6, false)},
      {"WS_REPLAY_SIZE", "Limits", "100",
       "data messages kept per session for replay and resume (at most 10000: each session's ring "
       "is one array of this many 8-byte references, made at its first message, and keeps that "
       "many messages alive)",
       integer(&Config::replay_size, 0, 10'000)},
      {"WS_RESUME_TTL", "Limits", "30s",
       "how long a detached session can be resumed (at most 1h: until then it keeps its ring and "
       "channels)",
       duration_in(&Config::resume_ttl, Millis(1), Millis(3'600'000))},
      {"WS_MAX_DETACHED_SESSIONS", "Limits", "10000",
       "detached sessions kept for a resume, process-wide (split evenly over the threads); "
       "beyond: the oldest is dropped",
       integer(&Config::max_detached_sessions, 0, 10'000'000)},
      {"WS_MAX_DETACHED_PER_IP", "Limits", "0 (WS_MAX_CONNECTIONS_PER_IP)",
       "detached sessions kept per client address; beyond: that address' oldest is dropped; "
       "0 follows WS_MAX_CONNECTIONS_PER_IP (0 there: no per-address budget, as behind a "
       "balancer)",
       integer(&Config::max_detached_per_ip, 0, 10'000'000)},
      {"WS_PING_INTERVAL", "Limits", "30s",
       "server ping after this much silence from a client (at least 100ms: each ping is a write "
       "to every quiet client)",
       duration_in(&Config::ping_interval, Millis(100), Millis(86'400'000))},
      {"WS_HEARTBEAT_TIMEOUT", "Limits", "90s", "silence after which a client is closed with 4000",
       duration(&Config::heartbeat_timeout)},
      {"WS_HANDSHAKE_TIMEOUT", "Limits", "10s",
       "HTTP connections (before the upgrade, or keep-alive) silent this long are closed (1s to "
       "5m: shorter refuses honest clients on slow links, longer lets idle sockets hold "
       "descriptors)",
       duration_in(&Config::handshake_timeout, Millis(1000), Millis(300'000))},
      {"WS_CLIENT_QUEUE_BYTES", "Limits", "262144", "outbound backlog per client before close 4008",
       bytes(&Config::client_queue_bytes, 1024, 1ull << 30)},
      {"WS_CONFLATE_BYTES", "Limits", "65536 (at most WS_CLIENT_QUEUE_BYTES / 4)",
       "unsent bytes (in the kernel, then the gateway) past which a client's `latest` "
       "subscriptions keep only their newest message until they drain (below "
       "WS_CLIENT_QUEUE_BYTES)",
       bytes(&Config::conflate_bytes, 0, 1ull << 30)},
      {"WS_SOCKET_SEND_BUFFER", "Limits", "0",
       "kernel send buffer of each client socket (SO_SNDBUF, which Linux doubles): what a client "
       "that stops reading pins in kernel memory besides WS_CLIENT_QUEUE_BYTES. 0: the kernel "
       "tunes it, up to net.ipv4.tcp_wmem's maximum (4 MiB by default); at most 16 MiB (the "
       "kernel raises small values to its minimum, about 4.5 KiB)",
       bytes(&Config::socket_send_buffer, 0, 16u << 20)},
      {"WS_PUBLISH_TOKEN", "Limits", "unset",
       "bearer token for POST /publish (unset: publishing from loopback addresses only)",
       token_value(&Config::publish_token), true},
      {"WS_PUBLISH_REQUIRE_TOKEN", "Limits", "true when WS_PUBLISH_TOKEN is set",
       "POST /publish needs the token from every peer, loopback included (a same-host proxy or "
       "sidecar is a loopback peer); false: loopback peers publish without it",
       boolean(&Config::publish_require_token)},
      {"WS_DRAIN_TIMEOUT", "Limits", "30s", "graceful shutdown limit",
       duration(&Config::drain_timeout)},
      {"WS_TLS_CERT", "Security", "unset (plain ws:// and http://)",
       "PEM certificate chain; with WS_TLS_KEY the listener speaks only TLS (wss://, https://); "
       "SIGHUP reloads both files",
       text_value(&Config::tls_cert)},
      {"WS_TLS_KEY", "Security", "unset", "PEM private key of WS_TLS_CERT",
       text_value(&Config::tls_key)},
      {"WS_AUTH", "Security", "none",
       "none, or jwt: upgrades need a valid token (?token= or Authorization: Bearer)",
       choice(&Config::auth_jwt, {{"none", false}, {"jwt", true}}, "none or jwt")},
      {"WS_JWT_SECRET", "Security", "unset", "HS256 secret (at least 32 bytes)",
       text_value(&Config::jwt_secret), true},
      {"WS_JWT_PUBLIC_KEY", "Security", "unset",
       "RS256 (RSA) or ES256 (P-256) public key: PEM text or the path of a PEM file; SIGHUP "
       "reloads a file",
       parse_public_key},
      {"WS_JWT_AUDIENCE", "Security", "unset (not checked)", "required `aud` of tokens",
       text_value(&Config::jwt_audience)},
      {"WS_JWT_ISSUER", "Security", "unset (not checked)", "required `iss` of tokens",
       text_value(&Config::jwt_issuer)},
      {"WS_JWT_LEEWAY", "Security", "0", "seconds of clock skew allowed on exp and nbf",
       integer(&Config::jwt_leeway_seconds, 0, 3600)},
      {"WS_ALLOWED_ORIGINS", "Security", "unset (any origin)",
       "origins allowed to upgrade (comma-separated, https://*.example.com for subdomains); other "
       "origins get 403, requests without Origin (non-browser clients) are allowed",
       parse_origins},
      {"WS_MAX_CONNECTIONS_PER_IP", "Security", "0 (no limit)",
       "open sockets per client address, any state; beyond: closed at accept",
       integer(&Config::max_connections_per_ip, 0, 10'000'000)},
      {"WS_MAX_SOCKETS", "Security", "WS_MAX_CONNECTIONS + 1/4 (at least + 256)",
       "open sockets of the whole process, before and after the upgrade; beyond: 503 and closed "
       "at accept (unlike WS_MAX_CONNECTIONS_PER_IP it also holds behind a balancer)",
       integer(&Config::max_sockets, 1, 100'000'000)},
      {"WS_MAX_REQUESTS_PER_CONNECTION", "Security", "1000",
       "HTTP requests on one keep-alive connection; the response to the last one carries "
       "Connection: close",
       integer(&Config::max_requests_per_connection, 1, 100'000'000)},
      {"WS_MAX_HEADER_BYTES", "Security", "8192",
       "largest HTTP request head; beyond: 431 (1 KiB to 64 KiB: every socket before the upgrade "
       "may buffer this much)",
       bytes(&Config::max_header_bytes, 1024, 64u << 10)},
      {"WS_MAX_BODY_BYTES", "Security", "2097152",
       "largest HTTP request body (POST /publish); beyond: 413",
       bytes(&Config::max_body_bytes, 1024, 256u << 20)},
      {"WS_CLIENT_MAX_BYTES_PER_SEC", "Security", "65536",
       "bytes a WebSocket client may send per second (one second's worth at once); beyond: "
       "close 1008; 0 = no limit",
       bytes(&Config::client_max_bytes_per_sec, 0, 1ull << 30)},
      {"WS_CPU_LIMIT", "Resource guards", "0 (CPUs available)",
       "cores this process may use; CPU percentages are of this",
       real(&Config::cpu_limit, 0, 4096, false)},
      {"WS_MEMORY_LIMIT", "Resource guards", "0 (physical memory / cgroup)",
       "memory this process may use; memory percentages are of this",
       bytes(&Config::memory_limit, 0, UINT64_MAX)},
      {"WS_CPU_REJECT_THRESHOLD", "Resource guards", "75",
       "refuse upgrades (503) above this CPU percent",
       real(&Config::cpu_reject_threshold, 0, 100, true)},
      {"WS_CPU_PAUSE_THRESHOLD", "Resource guards", "80",
       "NATS and Redis modes: pause intake above this CPU percent",
       real(&Config::cpu_pause_threshold, 0, 100, true)},
      {"WS_MEMORY_REJECT_THRESHOLD", "Resource guards", "90",
       "refuse upgrades (503) above this RSS percent of WS_MEMORY_LIMIT",
       real(&Config::memory_reject_threshold, 0, 100, true)},
  };
  return section;
}

ConfigSection seed_config_section() {
  ConfigSection section;
  section.settings = {
      {"WS_WORKER_POOL_SIZE", "Resource guards", "unset",
       "seed setting: threads = min(this, CPUs available) when WS_THREADS is unset", nullptr},
      {"WS_WORKER_QUEUE_SIZE", "Resource guards", "unset", "seed setting, accepted and ignored",
       ignored("WS_WORKER_QUEUE_SIZE", "the fan-out queues are bounded by WS_FANOUT_QUEUE_BYTES")},
      {"WS_MAX_GOROUTINES", "Resource guards", "unset", "seed setting, accepted and ignored",
       ignored("WS_MAX_GOROUTINES", "odin-ws runs no goroutines")},
  };
  return section;
}

ConfigSection operations_config_section() {
  ConfigSection section;
  section.settings = {
      {"METRICS_INTERVAL", "Operations", "15s", "period of the stats log line",
       duration(&Config::metrics_interval)},
      {"LOG_LEVEL", "Operations", "info", "trace, debug, info, warn, error, off",
       choice(&Config::log_level,
              {{"trace", LogLevel::kTrace},
               {"debug", LogLevel::kDebug},
               {"info", LogLevel::kInfo},
               {"warn", LogLevel::kWarn},
               {"warning", LogLevel::kWarn},
               {"error", LogLevel::kError},
               {"off", LogLevel::kOff}},
              "trace, debug, info, warn, error or off")},
      {"LOG_FORMAT", "Operations", "json", "json or text",
       choice(&Config::log_format, {{"json", LogFormat::kJson}, {"text", LogFormat::kText}},
              "json or text")},
      {"ENVIRONMENT", "Operations", "development", "free-form deployment name, logged at start",
       text_value(&Config::environment)},
  };
  return section;
}

uint32_t default_max_sockets(uint32_t max_connections) {
  const uint64_t sockets = uint64_t{max_connections} + std::max<uint64_t>(max_connections / 4, 256);
  return static_cast<uint32_t>(std::min<uint64_t>(sockets, 100'000'000));
}

}  // namespace odin::ops
