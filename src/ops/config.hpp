// Gateway configuration: every setting's field and default. Loading (ops/settings.hpp) reads them
// from the environment and command-line flags, each section validating its own; a bad value names
// its variable and main exits with status 2.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace odin::ops {

using Millis = std::chrono::milliseconds;

enum class LogFormat { kJson, kText };
enum class BrokerKind { kAuto, kEmbedded, kNats, kJetStream, kRedis };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kOff };

struct Config {
  // Listener (WS_ADDR, "host:port" or ":port"; empty host = all IPv4 interfaces).
  std::string listen_host;
  uint16_t listen_port = 3002;
  // Event-loop threads (WS_THREADS; 0 = the CPUs this process may run on).
  unsigned threads = 0;
  // permessage-deflate (RFC 7692) for clients that offer it (WS_COMPRESSION): each message is
  // compressed once for all of them (docs/protocol.md).
  bool compression = true;

  // Admission and per-connection limits.
  uint32_t max_connections = 10000;      // WS_MAX_CONNECTIONS
  uint32_t max_message_bytes = 4096;     // WS_MAX_MESSAGE_BYTES
  uint32_t max_channels_per_conn = 100;  // WS_MAX_CHANNELS_PER_CONN
  uint32_t max_channels = 100'000;       // WS_MAX_CHANNELS, channel entries per event-loop thread
  Millis channel_idle_ttl{600'000};      // WS_CHANNEL_IDLE_TTL
  double client_rate = 10.0;             // WS_CLIENT_RATE (requests per second)
  double client_burst = 100.0;           // WS_CLIENT_BURST
  uint32_t replay_size = 100;            // WS_REPLAY_SIZE
  Millis resume_ttl{30'000};             // WS_RESUME_TTL
  uint32_t max_detached_sessions = 10'000;  // WS_MAX_DETACHED_SESSIONS
  uint32_t max_detached_per_ip = 0;         // WS_MAX_DETACHED_PER_IP (0: WS_MAX_CONNECTIONS_PER_IP)
  Millis ping_interval{30'000};             // WS_PING_INTERVAL
  Millis heartbeat_timeout{90'000};         // WS_HEARTBEAT_TIMEOUT
  Millis handshake_timeout{10'000};         // WS_HANDSHAKE_TIMEOUT
  uint64_t client_queue_bytes = 262144;     // WS_CLIENT_QUEUE_BYTES
  uint64_t conflate_bytes = 65536;          // WS_CONFLATE_BYTES
  uint32_t socket_send_buffer = 0;          // WS_SOCKET_SEND_BUFFER (SO_SNDBUF; 0: autotuned)
  std::string publish_token;                // WS_PUBLISH_TOKEN
  // WS_PUBLISH_REQUIRE_TOKEN: the token is needed from loopback peers too (load_config: true
  // when WS_PUBLISH_TOKEN is set, unless set false).
  bool publish_require_token = false;
  Millis drain_timeout{30'000};  // WS_DRAIN_TIMEOUT

  // Hostile clients: TLS, authentication, origins, floods.
  std::string tls_cert;                      // WS_TLS_CERT (PEM chain; with WS_TLS_KEY: TLS only)
  std::string tls_key;                       // WS_TLS_KEY
  bool auth_jwt = false;                     // WS_AUTH=jwt (none = no authentication)
  std::string jwt_secret;                    // WS_JWT_SECRET (HS256)
  std::string jwt_public_key;                // WS_JWT_PUBLIC_KEY (PEM text or file; RS256/ES256)
  std::string jwt_audience;                  // WS_JWT_AUDIENCE (empty = not checked)
  std::string jwt_issuer;                    // WS_JWT_ISSUER (empty = not checked)
  uint32_t jwt_leeway_seconds = 0;           // WS_JWT_LEEWAY
  std::vector<std::string> allowed_origins;  // WS_ALLOWED_ORIGINS (empty = any)
  uint32_t max_connections_per_ip = 0;       // WS_MAX_CONNECTIONS_PER_IP (0 = no limit)
  // WS_MAX_SOCKETS: every accepted socket, before and after the upgrade (0 until load_config:
  // derived from WS_MAX_CONNECTIONS by default_max_sockets).
  uint32_t max_sockets = 0;
  uint32_t max_requests_per_connection = 1000;  // WS_MAX_REQUESTS_PER_CONNECTION (keep-alive)
  uint32_t max_header_bytes = 8192;             // WS_MAX_HEADER_BYTES
  uint64_t max_body_bytes = 2 << 20;            // WS_MAX_BODY_BYTES (one largest data message)
  uint64_t client_max_bytes_per_sec = 65536;    // WS_CLIENT_MAX_BYTES_PER_SEC (0 = no limit)

  // Resource guards.
  double cpu_limit = 0.0;                 // WS_CPU_LIMIT, cores (0 = the CPUs this process may use)
  uint64_t memory_limit = 0;              // WS_MEMORY_LIMIT, bytes (0 = physical memory)
  double cpu_reject_threshold = 75.0;     // WS_CPU_REJECT_THRESHOLD, percent of cpu_limit
  double cpu_pause_threshold = 80.0;      // WS_CPU_PAUSE_THRESHOLD, percent of cpu_limit
  double memory_reject_threshold = 90.0;  // WS_MEMORY_REJECT_THRESHOLD, percent of memory_limit
  uint64_t max_nats_rate = 0;             // WS_MAX_NATS_RATE, messages/s (0 = unlimited)
  uint64_t max_broadcast_rate = 0;        // WS_MAX_BROADCAST_RATE, messages/s (0 = unlimited)
  uint64_t fanout_queue_bytes = 64 << 20;  // WS_FANOUT_QUEUE_BYTES, per event-loop thread

  // Broker.
  BrokerKind broker = BrokerKind::kAuto;       // WS_BROKER (auto: resolved by load_config)
  std::string nats_url;                        // NATS_URL (empty = embedded broker)
  std::string redis_url;                       // REDIS_URL (used only with WS_BROKER=redis)
  std::string instance_id;                     // WS_INSTANCE_ID (empty = <hostname>-<port>)
  uint64_t max_payload_bytes = 1 << 20;        // WS_MAX_PAYLOAD_BYTES (NATS' default max_payload)
  std::string subject_prefix = "odin.token.";  // WS_SUBJECT_PREFIX
  std::string js_stream_name = "ODIN_TOKENS";  // JS_STREAM_NAME
  std::string js_consumer_name = "ws-server";  // JS_CONSUMER_NAME
  Millis js_stream_max_age{30'000};            // JS_STREAM_MAX_AGE
  int64_t js_stream_max_msgs = 100000;         // JS_STREAM_MAX_MSGS
  int64_t js_stream_max_bytes = 52428800;      // JS_STREAM_MAX_BYTES
  Millis js_consumer_ack_wait{30'000};         // JS_CONSUMER_ACK_WAIT
  int64_t js_stream_replicas = 1;              // JS_STREAM_REPLICAS (3 on a NATS cluster)
  // JetStream: what each instance keeps per channel so a client can resume on any instance.
  uint32_t history_size = 256;  // WS_HISTORY_SIZE, messages per channel (0 = none)
  Millis history_max_age{0};    // WS_HISTORY_MAX_AGE (0 until load_config: JS_STREAM_MAX_AGE)
  // JetStream: read-backs of the stream for resumes (each one holds a client's socket meanwhile).
  uint32_t max_stream_reads = 64;     // WS_MAX_STREAM_READS, waiting or under way, process-wide
  Millis stream_read_timeout{5'000};  // WS_STREAM_READ_TIMEOUT, queue included

  // Demo feed and page.
  bool demo_feed = false;       // WS_DEMO_FEED
  double demo_rate = 50.0;      // WS_DEMO_RATE, messages/s over all demo symbols
  uint32_t demo_symbols = 100;  // WS_DEMO_SYMBOLS
  std::string web_root;         // WS_WEB_ROOT (empty = the repository's web/)
  std::string sdk_root;         // WS_SDK_ROOT (empty = the repository's clients/js/src), at /sdk/

  // Operations.
  Millis metrics_interval{15'000};          // METRICS_INTERVAL (periodic stats log line)
  LogLevel log_level = LogLevel::kInfo;     // LOG_LEVEL
  LogFormat log_format = LogFormat::kJson;  // LOG_FORMAT
  std::string environment = "development";  // ENVIRONMENT

  // Seed settings without a meaning in this design, kept so the gateway accepts their
  // deployment files; main logs each one that was set once, as ignored or as mapped.
  std::vector<std::string> notices;
};

struct ConfigSection;

// The sections ops/ defines itself, in --help order; app/ puts the features' sections between.
// Listener, limits, security, resource guards; its check relates them and maps
// WS_WORKER_POOL_SIZE, which seed_config_section lists.
ConfigSection gateway_config_section();
// Settings of the seed deployment files without a meaning here (listed among the resource guards).
ConfigSection seed_config_section();
// Logging, the stats log line, the deployment's name.
ConfigSection operations_config_section();

// WS_MAX_SOCKETS when it is not set: room for every WebSocket connection plus a quarter more
// (at least 256) for requests and upgrades in progress.
uint32_t default_max_sockets(uint32_t max_connections);

}  // namespace odin::ops
