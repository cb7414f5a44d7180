// Configuration loading (see config.hpp): one table lists every setting with its variable,
// default, meaning and parser, so --help, the environment and the flags cannot disagree.
#include "ops/config.hpp"

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "broker/redis_support.hpp"

namespace odin {

namespace {

using Parser = std::function<std::optional<std::string>(Config&, std::string_view)>;

struct Setting {
  const char* variable;
  const char* group;
  const char* default_text;
  const char* meaning;
  Parser parse;         // returns an error description ("expected ..."), or nullopt
  bool secret = false;  // never echoed in an error message
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t v = 0;
  if (text.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view text) {
  double v = 0;
  if (text.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

template <class T>
Parser integer(T Config::*field, uint64_t min, uint64_t max) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_u64(text);
    if (!v || *v < min || *v > max)
      return fmt::format("expected an integer from {} to {}", min, max);
    c.*field = static_cast<T>(*v);
    return std::nullopt;
  };
}

Parser real(double Config::*field, double min, double max, bool min_exclusive) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_double(text);
    if (!v || *v > max || *v < min || (min_exclusive && *v == min)) {
      return fmt::format("expected a number {} {} and <= {}", min_exclusive ? ">" : ">=", min, max);
    }
    c.*field = *v;
    return std::nullopt;
  };
}

// Durations: "250ms", "30s", "5m", "1.5s"; a bare number is seconds.
std::optional<Millis> parse_duration(std::string_view text) {
  double scale = 1000.0;
  if (text.ends_with("ms")) {
    scale = 1.0;
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  } else if (text.ends_with("m")) {
    scale = 60'000.0;
    text.remove_suffix(1);
  } else if (text.ends_with("h")) {
    scale = 3'600'000.0;
    text.remove_suffix(1);
  }
  auto v = parse_double(text);
  if (!v || *v <= 0) return std::nullopt;
  const double ms = *v * scale;
  if (ms < 1.0 || ms > 86'400'000.0) return std::nullopt;
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

Parser duration(Millis Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_duration(text);
    if (!v)
      return "expected a duration from 1ms to 24h such as 250ms, 30s, 5m (bare number = seconds)";
    c.*field = *v;
    return std::nullopt;
  };
}

std::string duration_text(Millis d) {
  const int64_t ms = d.count();
  if (ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

// A duration held to [min, max]: outside it the setting would break the gateway (the reason is
// in the setting's --help text).
Parser duration_in(Millis Config::*field, Millis min, Millis max) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_duration(text);
    if (!v || *v < min || *v > max) {
      return fmt::format(
          "expected a duration from {} to {} such as 250ms, 30s, 5m (bare number = "
          "seconds)",
          duration_text(min), duration_text(max));
    }
    c.*field = *v;
    return std::nullopt;
  };
}

// Byte sizes: plain integer, or with K/M/G (KiB/MiB/GiB), powers of 1024.
std::optional<uint64_t> parse_bytes(std::string_view text) {
  uint64_t scale = 1;
  std::string l = lower(text);
  std::string_view t = l;
  for (auto [suffix, mult] : {std::pair<std::string_view, uint64_t>{"kib", 1ull << 10},
                              {"mib", 1ull << 20},
                              {"gib", 1ull << 30},
                              {"kb", 1ull << 10},
                              {"mb", 1ull << 20},
                              {"gb", 1ull << 30},
                              {"k", 1ull << 10},
                              {"m", 1ull << 20},
                              {"g", 1ull << 30}}) {
    if (t.ends_with(suffix)) {
      scale = mult;
      t.remove_suffix(suffix.size());
      break;
    }
  }
  auto v = parse_u64(t);
  if (!v || *v > UINT64_MAX / scale) return std::nullopt;
  return *v * scale;
}

template <class T>
Parser bytes(T Config::*field, uint64_t min, uint64_t max) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_bytes(text);
    if (!v || *v < min || *v > max) {
      return fmt::format("expected a byte size from {} to {} (suffixes K, M, G)", min, max);
    }
    c.*field = static_cast<T>(*v);
    return std::nullopt;
  };
}

Parser text_value(std::string Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    // Control characters would corrupt log lines and HTTP headers; no setting needs one.
    for (unsigned char ch : text) {
      if (ch < 0x20 || ch == 0x7f) return "expected text without control characters";
    }
    c.*field = std::string(text);
    return std::nullopt;
  };
}

// A word that must fit into a header or NATS subject/name unquoted.
bool has_space_or_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char ch) { return ch <= 0x20 || ch == 0x7f; });
}

Parser token_value(std::string Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    if (has_space_or_control(text)) return "expected a value without spaces or control characters";
    c.*field = std::string(text);
    return std::nullopt;
  };
}

// JetStream stream and consumer names: NATS forbids spaces, '.', '*', '>', path separators.
Parser nats_name(std::string Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    if (text.empty() || has_space_or_control(text) ||
        text.find_first_of(".*>/\\") != std::string_view::npos) {
      return "expected a non-empty NATS name without spaces, '.', '*', '>', '/' or '\\'";
    }
    c.*field = std::string(text);
    return std::nullopt;
  };
}

// A subject prefix is a literal subject start: no wildcards, spaces or empty tokens.
std::optional<std::string> parse_subject_prefix(Config& c, std::string_view text) {
  if (text.empty() || has_space_or_control(text) ||
      text.find_first_of("*>") != std::string_view::npos || text.starts_with('.') ||
      text.find("..") != std::string_view::npos) {
    return "expected a NATS subject prefix such as 'odin.token.' (no spaces, wildcards or empty "
           "tokens)";
  }
  c.subject_prefix = std::string(text);
  return std::nullopt;
}

// NATS_URL: a comma-separated list of nats://, tls://, ws:// or wss:// URLs or host:port.
std::optional<std::string> parse_nats_url(Config& c, std::string_view text) {
  constexpr std::string_view kExpected =
      "expected nats://host:port (or tls://, ws://, wss://; several separated by commas)";
  if (has_space_or_control(text)) return std::string(kExpected);
  std::string_view rest = text;
  while (true) {
    const size_t comma = rest.find(',');
    std::string_view url = rest.substr(0, comma);
    if (const size_t scheme = url.find("://"); scheme != std::string_view::npos) {
      const std::string s = lower(url.substr(0, scheme));
      if (s != "nats" && s != "tls" && s != "ws" && s != "wss") return std::string(kExpected);
      url.remove_prefix(scheme + 3);
    }
    if (const size_t at = url.rfind('@'); at != std::string_view::npos) url.remove_prefix(at + 1);
    if (url.empty() || url.front() == ':' || url.front() == '/') return std::string(kExpected);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  c.nats_url = std::string(text);
  return std::nullopt;
}

// REDIS_URL: redis://[[user]:password@]host[:port][/db]. The error never repeats the value (it
// may hold a password): the setting is marked secret.
std::optional<std::string> parse_redis_url_setting(Config& c, std::string_view text) {
  auto parsed = parse_redis_url(text);
  if (auto* problem = std::get_if<std::string>(&parsed)) return *problem;
  c.redis_url = std::string(text);
  return std::nullopt;
}

Parser boolean(bool Config::*field) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    const std::string l = lower(text);
    if (l == "1" || l == "true" || l == "yes" || l == "on") {
      c.*field = true;
    } else if (l == "0" || l == "false" || l == "no" || l == "off") {
      c.*field = false;
    } else {
      return "expected true/false (1/0, yes/no, on/off)";
    }
    return std::nullopt;
  };
}

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

std::optional<std::string> parse_level(Config& c, std::string_view text) {
  static const std::map<std::string, LogLevel> kLevels = {
      {"trace", LogLevel::kTrace}, {"debug", LogLevel::kDebug},  {"info", LogLevel::kInfo},
      {"warn", LogLevel::kWarn},   {"warning", LogLevel::kWarn}, {"error", LogLevel::kError},
      {"off", LogLevel::kOff}};
  auto it = kLevels.find(lower(text));
  if (it == kLevels.end()) return "expected trace, debug, info, warn, error or off";
  c.log_level = it->second;
  return std::nullopt;
}

std::optional<std::string> parse_broker(Config& c, std::string_view text) {
  const std::string l = lower(text);
  if (l == "auto") {
    c.broker = BrokerKind::kAuto;
  } else if (l == "embedded") {
    c.broker = BrokerKind::kEmbedded;
  } else if (l == "nats") {
    c.broker = BrokerKind::kNats;
  } else if (l == "jetstream") {
    c.broker = BrokerKind::kJetStream;
  } else if (l == "redis") {
    c.broker = BrokerKind::kRedis;
  } else {
    return "expected auto, embedded, nats, jetstream or redis";
  }
  return std::nullopt;
}

std::optional<std::string> parse_format(Config& c, std::string_view text) {
  const std::string l = lower(text);
  if (l == "json") {
    c.log_format = LogFormat::kJson;
  } else if (l == "text") {
    c.log_format = LogFormat::kText;
  } else {
    return "expected json or text";
  }
  return std::nullopt;
}

// Seed settings that have no meaning here: validated, then noted as ignored.
Parser ignored(const char* variable, const char* why) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    if (!parse_u64(text)) return "expected a non-negative integer";
    c.notices.push_back(
        fmt::format("{} is accepted for compatibility and ignored: {}", variable, why));
    return std::nullopt;
  };
}

std::optional<std::string> parse_auth(Config& c, std::string_view text) {
  const std::string l = lower(text);
  if (l == "none") {
    c.auth_jwt = false;
  } else if (l == "jwt") {
    c.auth_jwt = true;
  } else {
    return "expected none or jwt";
  }
  return std::nullopt;
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

const std::vector<Setting>& settings() {
  static const std::vector<Setting> kSettings = {
      {"WS_ADDR", "Listener", ":3002",
       "listen address, host:port or :port (port 0 = any free port)", parse_addr},
      {"WS_THREADS", "Listener", "0 (CPUs available)", "event-loop threads",
       integer(&Config::threads, 0, 255)},
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
       "none, or jwt: upgrades need a valid token (?token= or Authorization: Bearer)", parse_auth},
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
      {"WS_MAX_NATS_RATE", "Resource guards", "0 (unlimited)",
       "NATS and Redis modes: intake cap, messages per second",
       integer(&Config::max_nats_rate, 0, UINT64_MAX)},
      {"WS_MAX_BROADCAST_RATE", "Resource guards", "0 (unlimited)",
       "NATS and Redis modes: fan-out cap, messages per second",
       integer(&Config::max_broadcast_rate, 0, UINT64_MAX)},
      {"WS_FANOUT_QUEUE_BYTES", "Resource guards", "64MiB",
       "messages queued for one event-loop thread and not yet delivered; beyond: JetStream intake "
       "stops pulling (the stream keeps them), core NATS and Redis intake drop (counted, "
       "fanout_behind) until the queue is below half of it",
       bytes(&Config::fanout_queue_bytes, 64 << 10, 1ull << 40)},
      {"WS_WORKER_POOL_SIZE", "Resource guards", "unset",
       "seed setting: threads = min(this, CPUs available) when WS_THREADS is unset", nullptr},
      {"WS_WORKER_QUEUE_SIZE", "Resource guards", "unset", "seed setting, accepted and ignored",
       ignored("WS_WORKER_QUEUE_SIZE", "the fan-out queues are bounded by WS_FANOUT_QUEUE_BYTES")},
      {"WS_MAX_GOROUTINES", "Resource guards", "unset", "seed setting, accepted and ignored",
       ignored("WS_MAX_GOROUTINES", "odin-ws runs no goroutines")},
      {"WS_BROKER", "Broker (NATS, JetStream, Redis)", "auto",
       "embedded, nats (core NATS), jetstream or redis (Redis pub/sub); auto = nats when NATS_URL "
       "is set, else embedded (never redis: choose it)",
       parse_broker},
      {"NATS_URL", "Broker (NATS, JetStream, Redis)", "unset (embedded broker)",
       "NATS server URL(s), comma-separated", parse_nats_url},
      {"REDIS_URL", "Broker (NATS, JetStream, Redis)", "unset",
       "WS_BROKER=redis: redis://[[user]:password@]host[:port][/db] (port 6379 by default)",
       parse_redis_url_setting, true},
      {"WS_INSTANCE_ID", "Broker (NATS, JetStream, Redis)", "<hostname>-<port>",
       "this instance's name: NATS client name and JetStream consumer <JS_CONSUMER_NAME>-<id>",
       nats_name(&Config::instance_id)},
      {"WS_MAX_PAYLOAD_BYTES", "Broker (NATS, JetStream, Redis)", "1048576",
       "largest data message (its `data` as written) taken from the broker or POST /publish, in "
       "every mode (NATS' own default max_payload is 1 MiB)",
       bytes(&Config::max_payload_bytes, 1, 64u << 20)},
      {"WS_SUBJECT_PREFIX", "Broker (NATS, JetStream, Redis)", "odin.token.",
       "NATS subject / Redis channel prefix; channel = the rest of the subject (NATS and "
       "JetStream: ends with '.', since the intake subscribes to <prefix>> and '>' must be a "
       "whole token)",
       parse_subject_prefix},
      {"JS_STREAM_NAME", "Broker (NATS, JetStream, Redis)", "ODIN_TOKENS", "JetStream stream",
       nats_name(&Config::js_stream_name)},
      {"JS_CONSUMER_NAME", "Broker (NATS, JetStream, Redis)", "ws-server",
       "JetStream durable consumer", nats_name(&Config::js_consumer_name)},
      {"JS_STREAM_MAX_AGE", "Broker (NATS, JetStream, Redis)", "30s",
       "JetStream stream retention (at least 1s: shorter drops messages before they are read)",
       duration_in(&Config::js_stream_max_age, Millis(1000), Millis(86'400'000))},
      {"JS_STREAM_MAX_MSGS", "Broker (NATS, JetStream, Redis)", "100000",
       "JetStream stream message limit", integer(&Config::js_stream_max_msgs, 1, INT64_MAX)},
      {"JS_STREAM_MAX_BYTES", "Broker (NATS, JetStream, Redis)", "52428800",
       "JetStream stream byte limit", bytes(&Config::js_stream_max_bytes, 1, INT64_MAX)},
      {"JS_CONSUMER_ACK_WAIT", "Broker (NATS, JetStream, Redis)", "30s",
       "JetStream ack wait (at least 1s: shorter redelivers messages still being handled)",
       duration_in(&Config::js_consumer_ack_wait, Millis(1000), Millis(86'400'000))},
      {"JS_STREAM_REPLICAS", "Broker (NATS, JetStream, Redis)", "1",
       "copies of the stream on a NATS cluster (1-5; 3 survives the loss of one node)",
       integer(&Config::js_stream_replicas, 1, 5)},
      {"WS_HISTORY_SIZE", "Broker (NATS, JetStream, Redis)", "256",
       "JetStream: messages kept per channel so a client can resume on any instance (at most "
       "10000: one array of this many references per channel and thread)",
       integer(&Config::history_size, 0, 10'000)},
      {"WS_HISTORY_MAX_AGE", "Broker (NATS, JetStream, Redis)", "JS_STREAM_MAX_AGE",
       "JetStream: oldest message kept in that history", duration(&Config::history_max_age)},
      {"WS_MAX_STREAM_READS", "Broker (NATS, JetStream, Redis)", "64",
       "JetStream: resumes waiting for a read-back of the stream at once, process-wide (each "
       "holds its socket); beyond: resume_failed at once (0: never read back)",
       integer(&Config::max_stream_reads, 0, 100'000)},
      {"WS_STREAM_READ_TIMEOUT", "Broker (NATS, JetStream, Redis)", "5s",
       "JetStream: longest a resume waits for its read-back, queue included; then resume_failed",
       duration(&Config::stream_read_timeout)},
      {"WS_DEMO_FEED", "Demo", "false", "publish simulated prices through the active broker",
       boolean(&Config::demo_feed)},
      {"WS_DEMO_RATE", "Demo", "50", "demo messages per second over all symbols",
       real(&Config::demo_rate, 0, 1e6, true)},
      {"WS_DEMO_SYMBOLS", "Demo", "100", "demo symbols", integer(&Config::demo_symbols, 1, 10'000)},
      {"WS_WEB_ROOT", "Demo", "the repository's web/", "directory of the page's files",
       text_value(&Config::web_root)},
      {"METRICS_INTERVAL", "Operations", "15s", "period of the stats log line",
       duration(&Config::metrics_interval)},
      {"LOG_LEVEL", "Operations", "info", "trace, debug, info, warn, error, off", parse_level},
      {"LOG_FORMAT", "Operations", "json", "json or text", parse_format},
      {"ENVIRONMENT", "Operations", "development", "free-form deployment name, logged at start",
       text_value(&Config::environment)},
  };
  return kSettings;
}

std::string flag_of(std::string_view variable) {
  std::string name(variable.starts_with("WS_") ? variable.substr(3) : variable);
  name = lower(name);
  std::replace(name.begin(), name.end(), '_', '-');
  return "--" + name;
}

}  // namespace

ConfigLoad load_config(std::span<const char* const> args,
                       const std::function<const char*(const char*)>& getenv) {
  ConfigLoad result;
  Config config;
  std::map<std::string, std::pair<std::string, std::string>> values;  // variable -> (value, source)

  for (const Setting& s : settings()) {
    const char* v = getenv(s.variable);
    if (v && *v) values[s.variable] = {v, s.variable};
  }
  // --help wins wherever it appears, even after a flag that would be an error.
  for (const char* arg : args) {
    if (arg && (std::string_view(arg) == "--help" || std::string_view(arg) == "-h")) {
      result.show_help = true;
      return result;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i] ? args[i] : "";
    const size_t eq = arg.find('=');
    const std::string_view flag = arg.substr(0, eq);
    const Setting* match = nullptr;
    for (const Setting& s : settings()) {
      if (flag_of(s.variable) == flag) match = &s;
    }
    if (!match) {
      result.error = fmt::format("unknown option '{}' (see --help)", flag);
      return result;
    }
    std::string value;
    if (eq != std::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (i + 1 < args.size() && args[i + 1] &&
               !std::string_view(args[i + 1]).starts_with("--")) {
      // A following "--flag" means this flag's value was forgotten; swallowing it would hide
      // that. A value that starts with "--" can still be given as --flag=--value.
      value = args[++i];
    } else {
      result.error = fmt::format("{} ({}): missing value (use {}=value or {} value)", flag,
                                 match->variable, flag, flag);
      return result;
    }
    values[match->variable] = {value, fmt::format("{} ({})", flag, match->variable)};
  }

  for (const Setting& s : settings()) {
    auto it = values.find(s.variable);
    if (it == values.end() || !s.parse) continue;
    if (auto problem = s.parse(config, it->second.first)) {
      result.error =
          s.secret ? fmt::format("{}: {}", it->second.second, *problem)
                   : fmt::format("{}: {}, got '{}'", it->second.second, *problem, it->second.first);
      return result;
    }
  }
  if (auto pool = values.find("WS_WORKER_POOL_SIZE"); pool != values.end()) {
    auto v = parse_u64(pool->second.first);
    if (!v || *v > 1'000'000) {
      result.error = fmt::format("{}: expected an integer from 0 to 1000000, got '{}'",
                                 pool->second.second, pool->second.first);
      return result;
    }
    if (*v == 0) {
      config.notices.push_back(
          "WS_WORKER_POOL_SIZE=0 ignored: event-loop threads follow WS_THREADS (0 = the CPUs "
          "available)");
    } else if (!values.contains("WS_THREADS")) {
      config.threads = static_cast<unsigned>(std::min<uint64_t>({*v, usable_cpus(), 255}));
      config.notices.push_back(fmt::format(
          "WS_WORKER_POOL_SIZE={} mapped to {} event-loop thread(s) (capped at the CPUs available)",
          *v, config.threads));
    } else {
      config.notices.push_back("WS_WORKER_POOL_SIZE ignored: WS_THREADS is set");
    }
  }
  if (config.heartbeat_timeout <= config.ping_interval) {
    result.error =
        fmt::format("WS_HEARTBEAT_TIMEOUT: must be longer than WS_PING_INTERVAL ({} ms), got {} ms",
                    config.ping_interval.count(), config.heartbeat_timeout.count());
    return result;
  }
  if (config.cpu_pause_threshold < config.cpu_reject_threshold) {
    config.notices.push_back(
        "WS_CPU_PAUSE_THRESHOLD is below WS_CPU_REJECT_THRESHOLD: intake pauses before new "
        "connections are refused");
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    result.error = "WS_TLS_CERT and WS_TLS_KEY: set both (TLS) or neither (plain)";
    return result;
  }
  if (config.auth_jwt) {
    if (config.jwt_secret.empty() == config.jwt_public_key.empty()) {
      result.error =
          "WS_AUTH=jwt: set exactly one of WS_JWT_SECRET (HS256) and WS_JWT_PUBLIC_KEY "
          "(RS256/ES256)";
      return result;
    }
  } else if (!config.jwt_secret.empty() || !config.jwt_public_key.empty()) {
    config.notices.push_back("WS_JWT_SECRET / WS_JWT_PUBLIC_KEY are ignored: WS_AUTH is not jwt");
  }
  if (config.client_max_bytes_per_sec != 0 &&
      config.client_max_bytes_per_sec < uint64_t{config.max_message_bytes} + 14) {
    result.error = fmt::format(
        "WS_CLIENT_MAX_BYTES_PER_SEC: must hold at least one largest message (WS_MAX_MESSAGE_BYTES "
        "+ 14 bytes of framing = {}), got {}",
        uint64_t{config.max_message_bytes} + 14, config.client_max_bytes_per_sec);
    return result;
  }
  if (config.broker == BrokerKind::kAuto) {
    config.broker = config.nats_url.empty() ? BrokerKind::kEmbedded : BrokerKind::kNats;
  }
  if (config.broker == BrokerKind::kRedis) {
    if (config.redis_url.empty()) {
      result.error = "WS_BROKER=redis needs REDIS_URL (redis://[[user]:password@]host[:port][/db])";
      return result;
    }
    // Per-channel history (and with it positions and resume on any instance) needs the
    // JetStream stream: Redis pub/sub keeps nothing to fill it from.
    std::vector<std::string> refused;
    if (values.contains("WS_HISTORY_SIZE") && config.history_size != 0) {
      refused.push_back("WS_HISTORY_SIZE");
    }
    if (values.contains("WS_HISTORY_MAX_AGE")) refused.push_back("WS_HISTORY_MAX_AGE");
    if (!refused.empty()) {
      result.error = fmt::format(
          "{}: per-channel history and resume on any instance need WS_BROKER=jetstream; Redis "
          "pub/sub keeps no history (unset {} with WS_BROKER=redis)",
          fmt::join(refused, ", "), refused.size() == 1 ? "it" : "them");
      return result;
    }
    std::vector<std::string> ignored;
    for (const Setting& s : settings()) {
      if (std::string_view(s.variable).starts_with("JS_") && values.contains(s.variable)) {
        ignored.emplace_back(s.variable);
      }
    }
    if (!ignored.empty()) {
      config.notices.push_back(fmt::format(
          "WS_BROKER=redis: {} ignored (JetStream settings; Redis pub/sub has no stream)",
          fmt::join(ignored, ", ")));
    }
    if (!config.nats_url.empty()) config.notices.push_back("WS_BROKER=redis: NATS_URL is ignored");
  } else {
    if (config.broker != BrokerKind::kEmbedded && config.nats_url.empty()) {
      result.error = "WS_BROKER: nats and jetstream need NATS_URL";
      return result;
    }
    if (config.broker == BrokerKind::kEmbedded && !config.nats_url.empty()) {
      config.notices.push_back("WS_BROKER=embedded: NATS_URL is ignored");
    }
    if (!config.redis_url.empty()) {
      config.notices.push_back("REDIS_URL is ignored: it is used only with WS_BROKER=redis");
    }
  }
  if ((config.broker == BrokerKind::kNats || config.broker == BrokerKind::kJetStream) &&
      !config.subject_prefix.ends_with('.')) {
    result.error = fmt::format(
        "WS_SUBJECT_PREFIX: must end with '.' with NATS (the intake subscribes to <prefix>>, and "
        "'>' must be a whole subject token), got '{}'",
        config.subject_prefix);
    return result;
  }
  if (config.history_max_age.count() == 0) config.history_max_age = config.js_stream_max_age;
  if (config.max_sockets == 0) config.max_sockets = default_max_sockets(config.max_connections);
  if (!values.contains("WS_PUBLISH_REQUIRE_TOKEN")) {
    config.publish_require_token = !config.publish_token.empty();
  } else if (config.publish_require_token && config.publish_token.empty()) {
    result.error = "WS_PUBLISH_REQUIRE_TOKEN=true needs WS_PUBLISH_TOKEN (the token to require)";
    return result;
  }
  result.config = std::move(config);
  return result;
}

uint32_t default_max_sockets(uint32_t max_connections) {
  const uint64_t sockets = uint64_t{max_connections} + std::max<uint64_t>(max_connections / 4, 256);
  return static_cast<uint32_t>(std::min<uint64_t>(sockets, 100'000'000));
}

std::string config_help() {
  std::string out =
      "Usage: odin-ws [--flag=value ...]\n\n"
      "A WebSocket fan-out gateway. Every setting is an environment variable and a flag\n"
      "(--flag=value or --flag value); flags win over the environment, and an empty variable\n"
      "counts as unset. -h, --help prints this text.\n\n"
      "Durations: 250ms, 30s, 5m, 1h, fractions allowed (1.5s); a bare number is seconds;\n"
      "from 1ms to 24h. Byte sizes: 1024, 64K, 256KiB, 16M, 1GiB (K/M/G and KiB/MiB/GiB are\n"
      "powers of 1024). Booleans: 1/0, true/false, yes/no, on/off.\n"
      "A bad value exits with status 2 and a message naming the setting.\n";
  std::string group;
  for (const Setting& s : settings()) {
    if (group != s.group) {
      group = s.group;
      out += fmt::format("\n{}:\n", group);
    }
    out += fmt::format("  {:<28} {:<30} default {}\n  {:<28} {}\n", s.variable, flag_of(s.variable),
                       s.default_text, "", s.meaning);
  }
  return out;
}

}  // namespace odin
