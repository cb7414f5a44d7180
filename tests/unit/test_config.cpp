// Unit tests of configuration loading: defaults, every variable from the environment and as a
// flag, flags over environment, validation of each kind of value, seed-only settings, --help.
#include <gtest/gtest.h>

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "app/settings.hpp"
#include "ops/config.hpp"
#include "ops/settings.hpp"

namespace odin {
namespace {

using Env = std::map<std::string, std::string>;

ops::ConfigLoad load(const Env& env, std::vector<const char*> args = {}) {
  return ops::load_config(app::config_sections(), args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// Loads with one variable set and returns the error ("" when it loaded).
std::string error_of(const std::string& name, const std::string& value) {
  ops::ConfigLoad r = load({{name, value}});
  return r.config ? "" : r.error;
}

bool accepts(const std::string& name, const std::string& value) {
  return error_of(name, value).empty();
}

// Every variable the gateway reads, as documented in DESIGN.md and PROTOCOL.md.
const std::vector<std::string> kAllVariables = {
    "WS_ADDR",
    "WS_THREADS",
    "WS_COMPRESSION",
    "WS_MAX_CONNECTIONS",
    "WS_MAX_MESSAGE_BYTES",
    "WS_MAX_CHANNELS_PER_CONN",
    "WS_MAX_CHANNELS",
    "WS_CHANNEL_IDLE_TTL",
    "WS_CLIENT_RATE",
    "WS_CLIENT_BURST",
    "WS_REPLAY_SIZE",
    "WS_RESUME_TTL",
    "WS_MAX_DETACHED_SESSIONS",
    "WS_MAX_DETACHED_PER_IP",
    "WS_PING_INTERVAL",
    "WS_HEARTBEAT_TIMEOUT",
    "WS_HANDSHAKE_TIMEOUT",
    "WS_CLIENT_QUEUE_BYTES",
    "WS_CONFLATE_BYTES",
    "WS_SOCKET_SEND_BUFFER",
    "WS_PUBLISH_TOKEN",
    "WS_PUBLISH_REQUIRE_TOKEN",
    "WS_DRAIN_TIMEOUT",
    "WS_TLS_CERT",
    "WS_TLS_KEY",
    "WS_AUTH",
    "WS_JWT_SECRET",
    "WS_JWT_PUBLIC_KEY",
    "WS_JWT_AUDIENCE",
    "WS_JWT_ISSUER",
    "WS_JWT_LEEWAY",
    "WS_ALLOWED_ORIGINS",
    "WS_MAX_CONNECTIONS_PER_IP",
    "WS_MAX_SOCKETS",
    "WS_MAX_REQUESTS_PER_CONNECTION",
    "WS_MAX_HEADER_BYTES",
    "WS_MAX_BODY_BYTES",
    "WS_CLIENT_MAX_BYTES_PER_SEC",
    "WS_CPU_LIMIT",
    "WS_MEMORY_LIMIT",
    "WS_CPU_REJECT_THRESHOLD",
    "WS_CPU_PAUSE_THRESHOLD",
    "WS_MEMORY_REJECT_THRESHOLD",
    "WS_MAX_NATS_RATE",
    "WS_MAX_BROADCAST_RATE",
    "WS_FANOUT_QUEUE_BYTES",
    "WS_WORKER_POOL_SIZE",
    "WS_WORKER_QUEUE_SIZE",
    "WS_MAX_GOROUTINES",
    "WS_BROKER",
    "NATS_URL",
    "REDIS_URL",
    "WS_INSTANCE_ID",
    "WS_MAX_PAYLOAD_BYTES",
    "WS_SUBJECT_PREFIX",
    "JS_STREAM_NAME",
    "JS_CONSUMER_NAME",
    "JS_STREAM_MAX_AGE",
    "JS_STREAM_MAX_MSGS",
    "JS_STREAM_MAX_BYTES",
    "JS_CONSUMER_ACK_WAIT",
    "JS_STREAM_REPLICAS",
    "WS_HISTORY_SIZE",
    "WS_HISTORY_MAX_AGE",
    "WS_MAX_STREAM_READS",
    "WS_STREAM_READ_TIMEOUT",
    "WS_DEMO_FEED",
    "WS_DEMO_RATE",
    "WS_DEMO_SYMBOLS",
    "WS_WEB_ROOT",
    "WS_SDK_ROOT",
    "METRICS_INTERVAL",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "ENVIRONMENT",
};

std::string flag_for(std::string variable) {
  if (variable.starts_with("WS_")) variable.erase(0, 3);
  std::transform(variable.begin(), variable.end(), variable.begin(), [](unsigned char c) {
    return c == '_' ? '-' : static_cast<char>(std::tolower(c));
  });
  return "--" + variable;
}

// A non-default value for every variable except the worker pool (which WS_THREADS overrides).
const Env kEveryValue = {
    {"WS_ADDR", "127.0.0.1:8080"},      {"WS_THREADS", "3"},
    {"WS_MAX_CONNECTIONS", "5000"},     {"WS_MAX_MESSAGE_BYTES", "8192"},
    {"WS_MAX_CHANNELS_PER_CONN", "50"}, {"WS_CLIENT_RATE", "2.5"},
    {"WS_CLIENT_BURST", "20"},          {"WS_REPLAY_SIZE", "0"},
    {"WS_RESUME_TTL", "1.5s"},          {"WS_PING_INTERVAL", "250ms"},
    {"WS_HEARTBEAT_TIMEOUT", "2m"},     {"WS_HANDSHAKE_TIMEOUT", "5"},
    {"WS_CLIENT_QUEUE_BYTES", "64K"},   {"WS_PUBLISH_TOKEN", "s3cret"},
    {"WS_DRAIN_TIMEOUT", "1h"},         {"WS_CPU_LIMIT", "1.8"},
    {"WS_MEMORY_LIMIT", "1879048192"},  {"WS_CPU_REJECT_THRESHOLD", "70.5"},
    {"WS_CPU_PAUSE_THRESHOLD", "85"},   {"WS_MEMORY_REJECT_THRESHOLD", "100"},
    {"WS_MAX_NATS_RATE", "1000"},       {"WS_MAX_BROADCAST_RATE", "2000"},
    {"WS_WORKER_QUEUE_SIZE", "25600"},  {"WS_MAX_GOROUTINES", "25000"},
    {"WS_BROKER", "JetStream"},         {"NATS_URL", "nats://127.0.0.1:4222"},
    {"WS_INSTANCE_ID", "gw-a_1"},       {"WS_MAX_PAYLOAD_BYTES", "128K"},
    {"WS_SUBJECT_PREFIX", "prices."},   {"JS_STREAM_NAME", "PRICES"},
    {"JS_CONSUMER_NAME", "gw-1"},       {"JS_STREAM_MAX_AGE", "45"},
    {"JS_STREAM_MAX_MSGS", "5000"},     {"JS_STREAM_MAX_BYTES", "16MiB"},
    {"JS_CONSUMER_ACK_WAIT", "10s"},    {"WS_DEMO_FEED", "on"},
    {"JS_STREAM_REPLICAS", "3"},        {"WS_HISTORY_SIZE", "500"},
    {"WS_HISTORY_MAX_AGE", "2m"},       {"REDIS_URL", "redis://:pw@127.0.0.1:6380/2"},
    {"WS_DEMO_RATE", "1000"},           {"WS_DEMO_SYMBOLS", "7"},
    {"WS_WEB_ROOT", "/srv/web"},        {"METRICS_INTERVAL", "1m"},
    {"LOG_LEVEL", "WARNING"},           {"LOG_FORMAT", "text"},
    {"ENVIRONMENT", "production"},      {"WS_MAX_STREAM_READS", "8"},
    {"WS_STREAM_READ_TIMEOUT", "2s"},   {"WS_MAX_CHANNELS", "5000"},
    {"WS_CHANNEL_IDLE_TTL", "90s"},     {"WS_FANOUT_QUEUE_BYTES", "8MiB"},
    {"WS_COMPRESSION", "false"},        {"WS_SDK_ROOT", "/srv/sdk"},
};

void expect_every_value(const ops::Config& c) {
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 8080);
  EXPECT_EQ(c.threads, 3u);
  EXPECT_FALSE(c.compression);
  EXPECT_EQ(c.max_connections, 5000u);
  EXPECT_EQ(c.max_message_bytes, 8192u);
  EXPECT_EQ(c.max_channels_per_conn, 50u);
  EXPECT_EQ(c.max_channels, 5000u);
  EXPECT_EQ(c.channel_idle_ttl, ops::Millis(90'000));
  EXPECT_EQ(c.fanout_queue_bytes, 8u << 20);
  EXPECT_DOUBLE_EQ(c.client_rate, 2.5);
  EXPECT_DOUBLE_EQ(c.client_burst, 20);
  EXPECT_EQ(c.replay_size, 0u);
  EXPECT_EQ(c.resume_ttl, ops::Millis(1500));
  EXPECT_EQ(c.ping_interval, ops::Millis(250));
  EXPECT_EQ(c.heartbeat_timeout, ops::Millis(120'000));
  EXPECT_EQ(c.handshake_timeout, ops::Millis(5'000));
  EXPECT_EQ(c.client_queue_bytes, 65536u);
  EXPECT_EQ(c.publish_token, "s3cret");
  EXPECT_EQ(c.drain_timeout, ops::Millis(3'600'000));
  EXPECT_DOUBLE_EQ(c.cpu_limit, 1.8);
  EXPECT_EQ(c.memory_limit, 1879048192u);
  EXPECT_DOUBLE_EQ(c.cpu_reject_threshold, 70.5);
  EXPECT_DOUBLE_EQ(c.cpu_pause_threshold, 85);
  EXPECT_DOUBLE_EQ(c.memory_reject_threshold, 100);
  EXPECT_EQ(c.max_nats_rate, 1000u);
  EXPECT_EQ(c.max_broadcast_rate, 2000u);
  EXPECT_EQ(c.broker, ops::BrokerKind::kJetStream);
  EXPECT_EQ(c.nats_url, "nats://127.0.0.1:4222");
  EXPECT_EQ(c.redis_url, "redis://:pw@127.0.0.1:6380/2");
  EXPECT_EQ(c.instance_id, "gw-a_1");
  EXPECT_EQ(c.max_payload_bytes, 128u * 1024);
  EXPECT_EQ(c.subject_prefix, "prices.");
  EXPECT_EQ(c.js_stream_name, "PRICES");
  EXPECT_EQ(c.js_consumer_name, "gw-1");
  EXPECT_EQ(c.js_stream_max_age, ops::Millis(45'000));
  EXPECT_EQ(c.js_stream_max_msgs, 5000);
  EXPECT_EQ(c.js_stream_max_bytes, 16 << 20);
  EXPECT_EQ(c.js_consumer_ack_wait, ops::Millis(10'000));
  EXPECT_EQ(c.js_stream_replicas, 3);
  EXPECT_EQ(c.history_size, 500u);
  EXPECT_EQ(c.history_max_age, ops::Millis(120'000));
  EXPECT_EQ(c.max_stream_reads, 8u);
  EXPECT_EQ(c.stream_read_timeout, ops::Millis(2'000));
  EXPECT_TRUE(c.demo_feed);
  EXPECT_DOUBLE_EQ(c.demo_rate, 1000);
  EXPECT_EQ(c.demo_symbols, 7u);
  EXPECT_EQ(c.web_root, "/srv/web");
  EXPECT_EQ(c.sdk_root, "/srv/sdk");
  EXPECT_EQ(c.metrics_interval, ops::Millis(60'000));
  EXPECT_EQ(c.log_level, ops::LogLevel::kWarn);
  EXPECT_EQ(c.log_format, ops::LogFormat::kText);
  EXPECT_EQ(c.environment, "production");
}

bool has_notice(const ops::Config& c, std::string_view text) {
  return std::any_of(c.notices.begin(), c.notices.end(),
                     [&](const std::string& n) { return n.find(text) != std::string::npos; });
}

TEST(Config, Defaults) {
  ops::ConfigLoad r = load({});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_FALSE(r.show_help);
  EXPECT_TRUE(r.error.empty());
  const ops::Config& c = *r.config;
  EXPECT_EQ(c.listen_host, "");
  EXPECT_EQ(c.listen_port, 3002);
  EXPECT_EQ(c.threads, 0u);
  EXPECT_TRUE(c.compression);
  EXPECT_EQ(c.max_connections, 10000u);
  EXPECT_EQ(c.max_message_bytes, 4096u);
  EXPECT_EQ(c.max_channels_per_conn, 100u);
  EXPECT_EQ(c.max_channels, 100'000u);
  EXPECT_EQ(c.channel_idle_ttl, ops::Millis(600'000));
  EXPECT_EQ(c.fanout_queue_bytes, 64u << 20);
  EXPECT_DOUBLE_EQ(c.client_rate, 10);
  EXPECT_DOUBLE_EQ(c.client_burst, 100);
  EXPECT_EQ(c.replay_size, 100u);
  EXPECT_EQ(c.resume_ttl, ops::Millis(30'000));
  EXPECT_EQ(c.ping_interval, ops::Millis(30'000));
  EXPECT_EQ(c.heartbeat_timeout, ops::Millis(90'000));
  EXPECT_EQ(c.handshake_timeout, ops::Millis(10'000));
  EXPECT_EQ(c.client_queue_bytes, 262144u);
  EXPECT_EQ(c.publish_token, "");
  EXPECT_EQ(c.drain_timeout, ops::Millis(30'000));
  EXPECT_DOUBLE_EQ(c.cpu_limit, 0);
  EXPECT_EQ(c.memory_limit, 0u);
  EXPECT_DOUBLE_EQ(c.cpu_reject_threshold, 75);
  EXPECT_DOUBLE_EQ(c.cpu_pause_threshold, 80);
  EXPECT_DOUBLE_EQ(c.memory_reject_threshold, 90);
  EXPECT_EQ(c.max_nats_rate, 0u);
  EXPECT_EQ(c.max_broadcast_rate, 0u);
  EXPECT_EQ(c.broker, ops::BrokerKind::kEmbedded);
  EXPECT_EQ(c.nats_url, "");
  EXPECT_EQ(c.redis_url, "");
  EXPECT_EQ(c.instance_id, "");
  EXPECT_EQ(c.max_payload_bytes, 1048576u);                 // NATS' default max_payload
  EXPECT_GE(c.max_body_bytes, c.max_payload_bytes + 1024);  // room for one such message
  EXPECT_EQ(c.max_sockets, 10000u + 2500u);
  EXPECT_EQ(c.max_requests_per_connection, 1000u);
  EXPECT_FALSE(c.publish_require_token);
  EXPECT_EQ(c.subject_prefix, "odin.token.");
  EXPECT_EQ(c.js_stream_name, "ODIN_TOKENS");
  EXPECT_EQ(c.js_consumer_name, "ws-server");
  EXPECT_EQ(c.js_stream_max_age, ops::Millis(30'000));
  EXPECT_EQ(c.js_stream_max_msgs, 100000);
  EXPECT_EQ(c.js_stream_max_bytes, 52428800);
  EXPECT_EQ(c.js_consumer_ack_wait, ops::Millis(30'000));
  EXPECT_EQ(c.js_stream_replicas, 1);
  EXPECT_EQ(c.history_size, 256u);
  EXPECT_EQ(c.history_max_age, c.js_stream_max_age);  // unset: follows the stream
  EXPECT_FALSE(c.demo_feed);
  EXPECT_DOUBLE_EQ(c.demo_rate, 50);
  EXPECT_EQ(c.demo_symbols, 100u);
  EXPECT_EQ(c.web_root, "");
  EXPECT_EQ(c.metrics_interval, ops::Millis(15'000));
  EXPECT_EQ(c.log_level, ops::LogLevel::kInfo);
  EXPECT_EQ(c.log_format, ops::LogFormat::kJson);
  EXPECT_EQ(c.environment, "development");
  EXPECT_TRUE(c.notices.empty());
}

TEST(Config, EveryVariableFromTheEnvironment) {
  ops::ConfigLoad r = load(kEveryValue);
  ASSERT_TRUE(r.config) << r.error;
  expect_every_value(*r.config);
}

TEST(Config, EveryVariableAsAFlagInBothFormsOverTheEnvironment) {
  // The environment holds valid values that differ from kEveryValue; the flags must win.
  const Env env = {{"WS_MAX_CONNECTIONS", "9"},    {"WS_ADDR", ":1"},
                   {"LOG_FORMAT", "json"},         {"JS_STREAM_NAME", "OTHER"},
                   {"WS_RESUME_TTL", "9s"},        {"WS_DEMO_FEED", "false"},
                   {"WS_PUBLISH_TOKEN", "ignored"}};
  std::vector<std::string> storage;
  bool joined = true;
  for (const auto& [name, value] : kEveryValue) {
    if (joined) {
      storage.push_back(flag_for(name) + "=" + value);
    } else {
      storage.push_back(flag_for(name));
      storage.push_back(value);
    }
    joined = !joined;
  }
  std::vector<const char*> args;
  for (const std::string& s : storage)
    args.push_back(s.c_str());
  ops::ConfigLoad r = load(env, args);
  ASSERT_TRUE(r.config) << r.error;
  expect_every_value(*r.config);
}

TEST(Config, FlagNamesFollowTheRule) {
  EXPECT_EQ(flag_for("WS_MAX_CONNECTIONS"), "--max-connections");
  EXPECT_EQ(flag_for("JS_STREAM_NAME"), "--js-stream-name");
  ops::ConfigLoad r = load({}, {"--threads", "2", "--log-level=debug", "--nats-url", "nats://h:1",
                                "--addr=:0", "--environment", "ci", "--metrics-interval=2s"});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->threads, 2u);
  EXPECT_EQ(r.config->log_level, ops::LogLevel::kDebug);
  EXPECT_EQ(r.config->nats_url, "nats://h:1");
  EXPECT_EQ(r.config->listen_port, 0);
  EXPECT_EQ(r.config->environment, "ci");
  EXPECT_EQ(r.config->metrics_interval, ops::Millis(2000));
}

TEST(Config, LaterFlagWinsAndEmptyEnvironmentIsUnset) {
  ops::ConfigLoad r =
      load({{"WS_MAX_CONNECTIONS", ""}, {"WS_ADDR", ""}}, {"--replay-size=1", "--replay-size=2"});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->max_connections, 10000u);
  EXPECT_EQ(r.config->listen_port, 3002);
  EXPECT_EQ(r.config->replay_size, 2u);
}

TEST(Config, FlagProblems) {
  ops::ConfigLoad unknown = load({}, {"--no-such-flag=1"});
  EXPECT_FALSE(unknown.config);
  EXPECT_NE(unknown.error.find("--no-such-flag"), std::string::npos) << unknown.error;
  ops::ConfigLoad positional = load({}, {"stray"});
  EXPECT_FALSE(positional.config);
  EXPECT_NE(positional.error.find("stray"), std::string::npos) << positional.error;
  ops::ConfigLoad variable_as_flag = load({}, {"WS_THREADS=2"});
  EXPECT_FALSE(variable_as_flag.config);

  ops::ConfigLoad at_end = load({}, {"--max-connections"});
  EXPECT_FALSE(at_end.config);
  EXPECT_NE(at_end.error.find("--max-connections"), std::string::npos) << at_end.error;
  EXPECT_NE(at_end.error.find("missing value"), std::string::npos) << at_end.error;
  ops::ConfigLoad before_flag = load({}, {"--publish-token", "--threads", "2"});
  EXPECT_FALSE(before_flag.config);
  EXPECT_NE(before_flag.error.find("--publish-token"), std::string::npos) << before_flag.error;
  ops::ConfigLoad dashes = load({}, {"--publish-token=--odd"});
  ASSERT_TRUE(dashes.config) << dashes.error;
  EXPECT_EQ(dashes.config->publish_token, "--odd");

  ops::ConfigLoad bad = load({{"WS_MAX_CONNECTIONS", "5"}}, {"--max-connections", "zero"});
  EXPECT_FALSE(bad.config);
  EXPECT_NE(bad.error.find("--max-connections"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("WS_MAX_CONNECTIONS"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("'zero'"), std::string::npos) << bad.error;
  ops::ConfigLoad empty = load({}, {"--max-connections="});
  EXPECT_FALSE(empty.config);
}

TEST(Config, HelpWinsWherever) {
  for (const char* help : {"--help", "-h"}) {
    ops::ConfigLoad r = load({{"WS_MAX_CONNECTIONS", "bad"}}, {"--bogus", help});
    EXPECT_TRUE(r.show_help) << help;
    EXPECT_FALSE(r.config);
  }
}

TEST(Config, ErrorMessageShape) {
  EXPECT_EQ(error_of("WS_MAX_CONNECTIONS", "abc"),
            "WS_MAX_CONNECTIONS: expected an integer from 1 to 10000000, got 'abc'");
}

TEST(Config, EveryKindOfBadValueNamesTheVariableAndTheValue) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      // integers: not a number, trailing junk, sign, spaces, out of range
      {"WS_MAX_CONNECTIONS", "abc"},
      {"WS_MAX_CONNECTIONS", "12x"},
      {"WS_MAX_CONNECTIONS", "-1"},
      {"WS_MAX_CONNECTIONS", "+5"},
      {"WS_MAX_CONNECTIONS", " 5"},
      {"WS_MAX_CONNECTIONS", "1.5"},
      {"WS_MAX_CONNECTIONS", "0"},
      {"WS_MAX_CONNECTIONS", "10000001"},
      {"WS_MAX_CONNECTIONS", "99999999999999999999999"},
      {"WS_MAX_MESSAGE_BYTES", "15"},
      {"WS_MAX_MESSAGE_BYTES", "16777217"},
      {"WS_REPLAY_SIZE", "100001"},
      {"WS_MAX_CHANNELS_PER_CONN", "0"},
      {"WS_MAX_CHANNELS_PER_CONN", "100001"},
      {"WS_THREADS", "256"},
      {"WS_DEMO_SYMBOLS", "0"},
      {"WS_DEMO_SYMBOLS", "10001"},
      {"JS_STREAM_MAX_MSGS", "0"},
      {"WS_MAX_NATS_RATE", "fast"},
      {"WS_MAX_BROADCAST_RATE", "-3"},
      // doubles
      {"WS_CLIENT_RATE", "0"},
      {"WS_CLIENT_RATE", "-1"},
      {"WS_CLIENT_RATE", "nan"},
      {"WS_CLIENT_RATE", "inf"},
      {"WS_CLIENT_RATE", "1e999"},
      {"WS_CLIENT_RATE", "ten"},
      {"WS_CLIENT_BURST", "0.5"},
      {"WS_CPU_REJECT_THRESHOLD", "0"},
      {"WS_CPU_REJECT_THRESHOLD", "101"},
      {"WS_CPU_PAUSE_THRESHOLD", "100.5"},
      {"WS_MEMORY_REJECT_THRESHOLD", "-5"},
      {"WS_CPU_LIMIT", "-0.5"},
      {"WS_DEMO_RATE", "0"},
      {"WS_DEMO_RATE", "1000001"},
      // durations
      {"WS_RESUME_TTL", "soon"},
      {"WS_RESUME_TTL", "0s"},
      {"WS_RESUME_TTL", "0"},
      {"WS_RESUME_TTL", "-5"},
      {"WS_PING_INTERVAL", "0.4ms"},
      {"WS_HANDSHAKE_TIMEOUT", "25h"},
      {"WS_DRAIN_TIMEOUT", "86401"},
      {"JS_STREAM_MAX_AGE", "30 s"},
      {"JS_CONSUMER_ACK_WAIT", "ms"},
      {"METRICS_INTERVAL", "1.2.3s"},
      {"METRICS_INTERVAL", "5d"},
      // byte sizes
      {"WS_CLIENT_QUEUE_BYTES", "1"},
      {"WS_CLIENT_QUEUE_BYTES", "2G"},
      {"WS_CLIENT_QUEUE_BYTES", "1.5K"},
      {"WS_MEMORY_LIMIT", "lots"},
      {"WS_MEMORY_LIMIT", "99999999999999999999G"},
      {"WS_MEMORY_LIMIT", "-1"},
      {"WS_MEMORY_LIMIT", "K"},
      {"JS_STREAM_MAX_BYTES", "0"},
      {"JS_STREAM_MAX_BYTES", "10T"},
      // booleans
      {"WS_DEMO_FEED", "maybe"},
      {"WS_DEMO_FEED", "2"},
      {"WS_DEMO_FEED", "y"},
      // addresses
      {"WS_ADDR", "3002"},
      {"WS_ADDR", "1.2.3:80"},
      {"WS_ADDR", "1.2.3.4.5:80"},
      {"WS_ADDR", "256.0.0.1:80"},
      {"WS_ADDR", "example.com:80"},
      {"WS_ADDR", "[::1]:80"},
      {"WS_ADDR", ":70000"},
      {"WS_ADDR", ":65536"},
      {"WS_ADDR", "1.2.3.4:"},
      {"WS_ADDR", ":80x"},
      // enumerations
      {"LOG_LEVEL", "loud"},
      {"LOG_FORMAT", "xml"},
      // text that must fit a NATS name, subject, URL or header
      {"JS_STREAM_NAME", "a.b"},
      {"JS_STREAM_NAME", "a b"},
      {"JS_CONSUMER_NAME", "c*"},
      {"WS_SUBJECT_PREFIX", "odin.>"},
      {"WS_SUBJECT_PREFIX", "odin..x"},
      {"NATS_URL", "http://127.0.0.1:4222"},
      {"NATS_URL", "nats://"},
      {"NATS_URL", "nats://a:1,"},
      {"WS_BROKER", "kafka"},
      {"WS_INSTANCE_ID", "host.example"},
      {"WS_MAX_PAYLOAD_BYTES", "0"},
      {"ENVIRONMENT", "line\nbreak"},
      {"WS_AUTH", "basic"},
      {"WS_JWT_LEEWAY", "3601"},
      {"WS_JWT_PUBLIC_KEY", "key\x01"},
      {"WS_ALLOWED_ORIGINS", "example.com"},
      {"WS_ALLOWED_ORIGINS", "https://a.*.example.com"},
      {"WS_ALLOWED_ORIGINS", "https://example.com/path"},
      {"WS_ALLOWED_ORIGINS", " , "},
      {"WS_MAX_CONNECTIONS_PER_IP", "-1"},
      {"WS_MAX_HEADER_BYTES", "100"},
      {"WS_MAX_BODY_BYTES", "1G"},
      {"WS_CLIENT_MAX_BYTES_PER_SEC", "2G"},
      // seed-only settings
      {"WS_WORKER_POOL_SIZE", "x"},
      {"WS_WORKER_POOL_SIZE", "-2"},
      {"WS_WORKER_QUEUE_SIZE", "-1"},
      {"WS_MAX_GOROUTINES", "y"},
  };
  for (const auto& [name, value] : bad) {
    const std::string error = error_of(name, value);
    EXPECT_FALSE(error.empty()) << name << "=" << value << " was accepted";
    EXPECT_TRUE(error.starts_with(name + ":")) << error;
    EXPECT_NE(error.find("'" + value + "'"), std::string::npos) << error;
  }
}

TEST(Config, SecretsAreNeverEchoedInErrors) {
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"WS_PUBLISH_TOKEN", "two secret words"},
                                                        {"WS_JWT_SECRET", "secret\x01value"},
                                                        {"REDIS_URL", "redis://:secret@host:0"},
                                                        {"REDIS_URL", "redis://:secret@host/db"},
                                                        {"REDIS_URL", "redis://user:secret"}}) {
    const std::string error = error_of(name, value);
    EXPECT_TRUE(error.starts_with(name + ":")) << error;
    EXPECT_EQ(error.find("secret"), std::string::npos) << error;
  }
}

TEST(Config, SecuritySettingsAndTheirCrossChecks) {
  ops::ConfigLoad r =
      load({{"WS_ALLOWED_ORIGINS", "https://App.Example.com, https://*.example.org"},
            {"WS_MAX_CONNECTIONS_PER_IP", "50"},
            {"WS_MAX_HEADER_BYTES", "16K"},
            {"WS_CLIENT_MAX_BYTES_PER_SEC", "0"},
            {"WS_AUTH", "jwt"},
            {"WS_JWT_SECRET", "0123456789abcdef0123456789abcdef"},
            {"WS_JWT_LEEWAY", "30"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->allowed_origins,
            (std::vector<std::string>{"https://app.example.com", "https://*.example.org"}));
  EXPECT_EQ(r.config->max_connections_per_ip, 50u);
  EXPECT_EQ(r.config->max_header_bytes, 16384u);
  EXPECT_EQ(r.config->client_max_bytes_per_sec, 0u);
  EXPECT_TRUE(r.config->auth_jwt);
  EXPECT_EQ(r.config->jwt_leeway_seconds, 30u);

  r = load({{"WS_TLS_CERT", "/etc/odin/cert.pem"}});
  EXPECT_EQ(r.error, "WS_TLS_CERT and WS_TLS_KEY: set both (TLS) or neither (plain)");
  r = load({{"WS_AUTH", "jwt"}});
  EXPECT_TRUE(r.error.starts_with("WS_AUTH=jwt: set exactly one of")) << r.error;
  r = load({{"WS_AUTH", "jwt"}, {"WS_JWT_SECRET", "s"}, {"WS_JWT_PUBLIC_KEY", "/k.pem"}});
  EXPECT_TRUE(r.error.starts_with("WS_AUTH=jwt: set exactly one of")) << r.error;
  r = load({{"WS_JWT_SECRET", "0123456789abcdef0123456789abcdef"}});
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.config->auth_jwt);
  EXPECT_EQ(r.config->notices.size(), 1u);
  r = load({{"WS_CLIENT_MAX_BYTES_PER_SEC", "4000"}});
  EXPECT_TRUE(r.error.starts_with("WS_CLIENT_MAX_BYTES_PER_SEC: must hold at least one largest"))
      << r.error;
  r = load({{"WS_JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
            {"WS_AUTH", "jwt"}});
  ASSERT_TRUE(r.config) << r.error;
}

TEST(Config, Durations) {
  const std::vector<std::pair<std::string, int64_t>> good = {
      {"250ms", 250},      {"30s", 30'000},       {"5m", 300'000},   {"1h", 3'600'000},
      {"30", 30'000},      {"1.5s", 1'500},       {"0.25", 250},     {"1ms", 1},
      {"24h", 86'400'000}, {"1440m", 86'400'000}, {"2.5m", 150'000}, {"0.001", 1}};
  for (const auto& [text, ms] : good) {
    ops::ConfigLoad r = load({{"WS_DRAIN_TIMEOUT", text}});
    ASSERT_TRUE(r.config) << text << ": " << r.error;
    EXPECT_EQ(r.config->drain_timeout, ops::Millis(ms)) << text;
  }
}

// Values the parsers used to accept although the gateway cannot work with them: each is
// refused with the bound in the error and the reason in --help.
TEST(Config, ValuesThatWouldBreakTheGatewayAreRefused) {
  const std::vector<std::tuple<std::string, std::string, std::string>> bad = {
      // too small to carry {"type":"resume",...} or a subscribe
      {"WS_MAX_MESSAGE_BYTES", "255", "from 256 to 1048576"},
      {"WS_MAX_MESSAGE_BYTES", "16M", "from 256 to 1048576"},
      // one ring array of this many references per session / per channel and thread
      {"WS_REPLAY_SIZE", "100000", "from 0 to 10000"},
      {"WS_HISTORY_SIZE", "100000", "from 0 to 10000"},
      // a detached session lives this long
      {"WS_RESUME_TTL", "24h", "from 1ms to 1h"},
      // a ping to every quiet client every sweep
      {"WS_PING_INTERVAL", "1ms", "from 100ms to 24h"},
      // no honest client upgrades in 1 ms; an idle socket held for a day
      {"WS_HANDSHAKE_TIMEOUT", "1ms", "from 1s to 5m"},
      {"WS_HANDSHAKE_TIMEOUT", "24h", "from 1s to 5m"},
      // per-socket buffer before the upgrade
      {"WS_MAX_HEADER_BYTES", "1M", "from 1024 to 65536"},
      // redelivery before the handler is done; messages gone before they are read
      {"JS_CONSUMER_ACK_WAIT", "10ms", "from 1s to 24h"},
      {"JS_STREAM_MAX_AGE", "10ms", "from 1s to 24h"},
  };
  for (const auto& [name, value, bound] : bad) {
    const std::string error = error_of(name, value);
    EXPECT_TRUE(error.starts_with(name + ":")) << name << "=" << value << ": " << error;
    EXPECT_NE(error.find(bound), std::string::npos) << error;
    EXPECT_NE(error.find("'" + value + "'"), std::string::npos) << error;
  }
  // The bounds themselves are fine.
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"WS_MAX_MESSAGE_BYTES", "256"},
                                                        {"WS_REPLAY_SIZE", "10000"},
                                                        {"WS_HISTORY_SIZE", "10000"},
                                                        {"WS_RESUME_TTL", "1h"},
                                                        {"WS_PING_INTERVAL", "100ms"},
                                                        {"WS_HANDSHAKE_TIMEOUT", "1s"},
                                                        {"WS_HANDSHAKE_TIMEOUT", "5m"},
                                                        {"WS_MAX_HEADER_BYTES", "64K"},
                                                        {"JS_CONSUMER_ACK_WAIT", "1s"},
                                                        {"JS_STREAM_MAX_AGE", "1s"}}) {
    EXPECT_TRUE(accepts(name, value)) << name << "=" << value << ": " << error_of(name, value);
  }
  // (the largest message also needs a client byte rate that lets it through)
  EXPECT_TRUE(
      load({{"WS_MAX_MESSAGE_BYTES", "1048576"}, {"WS_CLIENT_MAX_BYTES_PER_SEC", "0"}}).config);
  const std::string help = ops::config_help(app::config_sections());
  for (const char* reason :
       {"cannot carry a subscribe or resume request", "keeps that many messages alive",
        "until then it keeps its ring", "each ping is a write", "shorter refuses honest clients",
        "every socket before the upgrade may buffer this much", "redelivers messages still",
        "drops messages before they are read", "'>' must be a whole token",
        "one array of this many references per channel"}) {
    EXPECT_NE(help.find(reason), std::string::npos) << reason;
  }
}

TEST(Config, NatsSubjectPrefixMustEndWithADot) {
  for (const char* kind : {"nats", "jetstream"}) {
    ops::ConfigLoad r = load({{"WS_BROKER", kind},
                              {"NATS_URL", "nats://127.0.0.1:4222"},
                              {"WS_SUBJECT_PREFIX", "odin.token"}});
    EXPECT_FALSE(r.config) << kind;
    EXPECT_TRUE(r.error.starts_with("WS_SUBJECT_PREFIX: must end with '.'")) << r.error;
    EXPECT_NE(r.error.find("'odin.token'"), std::string::npos) << r.error;
  }
  // auto with NATS_URL is core NATS
  EXPECT_FALSE(
      load({{"NATS_URL", "nats://127.0.0.1:4222"}, {"WS_SUBJECT_PREFIX", "prices"}}).config);
  EXPECT_TRUE(
      load({{"NATS_URL", "nats://127.0.0.1:4222"}, {"WS_SUBJECT_PREFIX", "prices."}}).config);
  // A Redis channel prefix needs no dot (PSUBSCRIBE <prefix>*); the embedded broker uses none.
  ops::ConfigLoad redis = load(
      {{"WS_BROKER", "redis"}, {"REDIS_URL", "redis://127.0.0.1"}, {"WS_SUBJECT_PREFIX", "odin:"}});
  EXPECT_TRUE(redis.config) << redis.error;
  EXPECT_TRUE(load({{"WS_SUBJECT_PREFIX", "odin"}}).config);
}

TEST(Config, ByteSizes) {
  const std::vector<std::pair<std::string, uint64_t>> good = {{"0", 0},
                                                              {"1024", 1024},
                                                              {"64K", 64ull << 10},
                                                              {"64k", 64ull << 10},
                                                              {"64KiB", 64ull << 10},
                                                              {"16M", 16ull << 20},
                                                              {"16MiB", 16ull << 20},
                                                              {"2G", 2ull << 30},
                                                              {"2GiB", 2ull << 30},
                                                              {"2gib", 2ull << 30},
                                                              {"1879048192", 1879048192ull}};
  for (const auto& [text, bytes] : good) {
    ops::ConfigLoad r = load({{"WS_MEMORY_LIMIT", text}});
    ASSERT_TRUE(r.config) << text << ": " << r.error;
    EXPECT_EQ(r.config->memory_limit, bytes) << text;
  }
  EXPECT_TRUE(accepts("WS_CLIENT_QUEUE_BYTES", "1024"));
  EXPECT_TRUE(accepts("WS_CLIENT_QUEUE_BYTES", "1G"));
  EXPECT_FALSE(accepts("WS_CLIENT_QUEUE_BYTES", "1023"));
  EXPECT_TRUE(accepts("WS_SOCKET_SEND_BUFFER", "0"));
  EXPECT_TRUE(accepts("WS_SOCKET_SEND_BUFFER", "16M"));
  EXPECT_FALSE(accepts("WS_SOCKET_SEND_BUFFER", "17M"));
  EXPECT_TRUE(accepts("JS_STREAM_MAX_BYTES", "50M"));
}

TEST(Config, Booleans) {
  for (const char* yes : {"1", "true", "TRUE", "yes", "Yes", "on", "ON"}) {
    ops::ConfigLoad r = load({{"WS_DEMO_FEED", yes}});
    ASSERT_TRUE(r.config) << yes;
    EXPECT_TRUE(r.config->demo_feed) << yes;
  }
  for (const char* no : {"0", "false", "False", "no", "NO", "off", "Off"}) {
    ops::ConfigLoad r = load({{"WS_DEMO_FEED", no}}, {"--demo-feed=on", "--demo-feed", no});
    ASSERT_TRUE(r.config) << no;
    EXPECT_FALSE(r.config->demo_feed) << no;
  }
}

TEST(Config, Addresses) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const Case& c : {Case{":3002", "", 3002}, Case{"127.0.0.1:3002", "127.0.0.1", 3002},
                        Case{"0.0.0.0:80", "0.0.0.0", 80}, Case{":0", "", 0},
                        Case{":65535", "", 65535}, Case{"localhost:9", "127.0.0.1", 9}}) {
    ops::ConfigLoad r = load({{"WS_ADDR", c.text}});
    ASSERT_TRUE(r.config) << c.text << ": " << r.error;
    EXPECT_EQ(r.config->listen_host, c.host) << c.text;
    EXPECT_EQ(r.config->listen_port, c.port) << c.text;
  }
}

TEST(Config, LogLevelsAndFormats) {
  const std::vector<std::pair<const char*, ops::LogLevel>> levels = {
      {"trace", ops::LogLevel::kTrace},  {"DEBUG", ops::LogLevel::kDebug},
      {"Info", ops::LogLevel::kInfo},    {"warn", ops::LogLevel::kWarn},
      {"warning", ops::LogLevel::kWarn}, {"error", ops::LogLevel::kError},
      {"off", ops::LogLevel::kOff}};
  for (const auto& [text, level] : levels) {
    ops::ConfigLoad r = load({{"LOG_LEVEL", text}});
    ASSERT_TRUE(r.config) << text;
    EXPECT_EQ(r.config->log_level, level) << text;
  }
  ops::ConfigLoad json = load({{"LOG_FORMAT", "JSON"}});
  ASSERT_TRUE(json.config);
  EXPECT_EQ(json.config->log_format, ops::LogFormat::kJson);
}

TEST(Config, TextSettings) {
  EXPECT_TRUE(accepts("NATS_URL", "nats://user:pw@10.0.0.1:4222,tls://b:4443"));
  EXPECT_TRUE(accepts("NATS_URL", "127.0.0.1:4222"));
  EXPECT_TRUE(accepts("JS_STREAM_NAME", "ODIN-TOKENS_2"));
  EXPECT_TRUE(accepts("WS_SUBJECT_PREFIX", "odin.token."));
  EXPECT_TRUE(accepts("WS_WEB_ROOT", "/path with spaces/web"));
  EXPECT_TRUE(accepts("ENVIRONMENT", "staging eu-west"));
}

TEST(Config, HeartbeatMustOutlastPing) {
  for (const char* heartbeat : {"5s", "10s"}) {
    const std::string error =
        load({{"WS_PING_INTERVAL", "10s"}, {"WS_HEARTBEAT_TIMEOUT", heartbeat}}).error;
    EXPECT_TRUE(error.starts_with("WS_HEARTBEAT_TIMEOUT")) << error;
  }
  ops::ConfigLoad by_default = load({{"WS_PING_INTERVAL", "100s"}});
  EXPECT_FALSE(by_default.config);
  EXPECT_TRUE(load({{"WS_PING_INTERVAL", "10s"}, {"WS_HEARTBEAT_TIMEOUT", "10001ms"}}).config);
}

TEST(Config, SeedOnlySettingsAreValidatedAndNoticed) {
  ops::ConfigLoad r = load({{"WS_MAX_GOROUTINES", "25000"}, {"WS_WORKER_QUEUE_SIZE", "0"}});
  ASSERT_TRUE(r.config) << r.error;
  ASSERT_EQ(r.config->notices.size(), 2u);
  EXPECT_TRUE(has_notice(*r.config,
                         "WS_MAX_GOROUTINES is accepted for compatibility and ignored: odin-ws "
                         "runs no goroutines"));
  EXPECT_TRUE(has_notice(*r.config, "WS_WORKER_QUEUE_SIZE is accepted for compatibility"));
}

TEST(Config, WorkerPoolMapsToThreadsHonestly) {
  ops::ConfigLoad one = load({{"WS_WORKER_POOL_SIZE", "1"}});
  ASSERT_TRUE(one.config) << one.error;
  EXPECT_EQ(one.config->threads, 1u);
  EXPECT_TRUE(has_notice(*one.config, "WS_WORKER_POOL_SIZE"));

  // 256 workers become at most the CPUs this process may use, never 256 threads on 2 cores.
  ops::ConfigLoad many = load({{"WS_WORKER_POOL_SIZE", "256"}});
  ASSERT_TRUE(many.config) << many.error;
  EXPECT_GE(many.config->threads, 1u);
  EXPECT_LE(many.config->threads, 255u);
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(many.config->threads, std::min<unsigned>(256, CPU_COUNT(&set)));

  ops::ConfigLoad explicit_threads = load({{"WS_WORKER_POOL_SIZE", "512"}, {"WS_THREADS", "3"}});
  ASSERT_TRUE(explicit_threads.config);
  EXPECT_EQ(explicit_threads.config->threads, 3u);
  ops::ConfigLoad flag_threads = load({{"WS_WORKER_POOL_SIZE", "512"}}, {"--threads=0"});
  ASSERT_TRUE(flag_threads.config);
  EXPECT_EQ(flag_threads.config->threads, 0u);

  ops::ConfigLoad zero = load({{"WS_WORKER_POOL_SIZE", "0"}});
  ASSERT_TRUE(zero.config) << zero.error;
  EXPECT_EQ(zero.config->threads, 0u);
}

TEST(Config, SeedDeploymentLoads) {
  // The environment block of the e2-small 10k seed deployment, verbatim.
  ops::ConfigLoad r = load({{"WS_CPU_LIMIT", "1.8"},
                            {"WS_MEMORY_LIMIT", "1879048192"},
                            {"WS_MAX_CONNECTIONS", "10000"},
                            {"WS_WORKER_POOL_SIZE", "256"},
                            {"WS_WORKER_QUEUE_SIZE", "25600"},
                            {"WS_MAX_GOROUTINES", "25000"},
                            {"WS_MAX_NATS_RATE", "0"},
                            {"WS_MAX_BROADCAST_RATE", "0"},
                            {"WS_CPU_REJECT_THRESHOLD", "75.0"},
                            {"WS_CPU_PAUSE_THRESHOLD", "80.0"},
                            {"JS_STREAM_NAME", "ODIN_TOKENS"},
                            {"JS_CONSUMER_NAME", "ws-server"},
                            {"JS_STREAM_MAX_AGE", "30s"},
                            {"JS_STREAM_MAX_MSGS", "100000"},
                            {"JS_STREAM_MAX_BYTES", "52428800"},
                            {"LOG_LEVEL", "info"},
                            {"LOG_FORMAT", "json"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_DOUBLE_EQ(r.config->cpu_limit, 1.8);
  EXPECT_EQ(r.config->memory_limit, 1879048192u);
  EXPECT_EQ(r.config->notices.size(), 3u);  // pool mapped, queue and goroutines ignored
}

TEST(Config, BrokerFollowsNatsUrlUnlessChosen) {
  ops::ConfigLoad r = load({{"NATS_URL", "nats://127.0.0.1:4222"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->broker, ops::BrokerKind::kNats);  // auto: NATS_URL set means core NATS
  r = load({{"NATS_URL", "nats://127.0.0.1:4222"}, {"WS_BROKER", "jetstream"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->broker, ops::BrokerKind::kJetStream);
  r = load({{"NATS_URL", "nats://127.0.0.1:4222"}, {"WS_BROKER", "embedded"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->broker, ops::BrokerKind::kEmbedded);
  EXPECT_TRUE(has_notice(*r.config, "NATS_URL is ignored"));
  for (const char* kind : {"nats", "jetstream"}) {
    r = load({{"WS_BROKER", kind}});
    EXPECT_FALSE(r.config) << kind;
    EXPECT_EQ(r.error, "WS_BROKER: nats and jetstream need NATS_URL");
  }
}

// WS_CONFLATE_BYTES: below WS_CLIENT_QUEUE_BYTES, or latest subscriptions would never conflate
// before the connection is cut; unset, it follows a small queue down.
TEST(Config, ConflateBytesStaysBelowTheQueueLimit) {
  auto c = load({});
  ASSERT_TRUE(c.config) << c.error;
  EXPECT_EQ(c.config->conflate_bytes, 65536u);
  c = load({{"WS_CLIENT_QUEUE_BYTES", "64K"}});
  ASSERT_TRUE(c.config) << c.error;
  EXPECT_EQ(c.config->conflate_bytes, 16384u);
  c = load({{"WS_CONFLATE_BYTES", "32K"}, {"WS_CLIENT_QUEUE_BYTES", "64K"}});
  ASSERT_TRUE(c.config) << c.error;
  EXPECT_EQ(c.config->conflate_bytes, 32768u);
  c = load({{"WS_CONFLATE_BYTES", "64K"}, {"WS_CLIENT_QUEUE_BYTES", "64K"}});
  EXPECT_FALSE(c.config);
  EXPECT_NE(c.error.find("WS_CONFLATE_BYTES: must be below WS_CLIENT_QUEUE_BYTES"),
            std::string::npos)
      << c.error;
}

TEST(Config, RedisBrokerIsChosenExplicitlyAndRefusesWhatNeedsHistory) {
  ops::ConfigLoad r = load({{"WS_BROKER", "Redis"}, {"REDIS_URL", "redis://127.0.0.1"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->broker, ops::BrokerKind::kRedis);
  EXPECT_EQ(r.config->redis_url, "redis://127.0.0.1");
  EXPECT_TRUE(r.config->notices.empty());

  // Without REDIS_URL: refused, naming both variables.
  r = load({{"WS_BROKER", "redis"}, {"NATS_URL", "nats://127.0.0.1:4222"}});
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(r.error.starts_with("WS_BROKER=redis needs REDIS_URL")) << r.error;

  // A bad REDIS_URL names the variable (never the value: it may hold a password).
  r = load({{"WS_BROKER", "redis"}, {"REDIS_URL", "redis://:pw@host:70000"}});
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(r.error.starts_with("REDIS_URL: expected redis://")) << r.error;
  EXPECT_EQ(r.error.find("pw"), std::string::npos) << r.error;

  // History (and resume on any instance, which rests on it) needs JetStream: refused.
  for (const Env& history : {Env{{"WS_HISTORY_SIZE", "100"}}, Env{{"WS_HISTORY_MAX_AGE", "1m"}}}) {
    Env env = history;
    env["WS_BROKER"] = "redis";
    env["REDIS_URL"] = "redis://h";
    r = load(env);
    EXPECT_FALSE(r.config) << history.begin()->first;
    EXPECT_TRUE(r.error.starts_with(history.begin()->first + ":")) << r.error;
    EXPECT_NE(r.error.find("WS_BROKER=jetstream"), std::string::npos) << r.error;
  }
  r = load({{"WS_BROKER", "redis"},
            {"REDIS_URL", "redis://h"},
            {"WS_HISTORY_SIZE", "5"},
            {"WS_HISTORY_MAX_AGE", "5s"}});
  EXPECT_TRUE(r.error.starts_with("WS_HISTORY_SIZE, WS_HISTORY_MAX_AGE:")) << r.error;
  // WS_HISTORY_SIZE=0 asks for no history: fine.
  r = load({{"WS_BROKER", "redis"}, {"REDIS_URL", "redis://h"}, {"WS_HISTORY_SIZE", "0"}});
  ASSERT_TRUE(r.config) << r.error;

  // JetStream settings and NATS_URL mean nothing to Redis: accepted, with a notice naming them.
  r = load({{"WS_BROKER", "redis"},
            {"REDIS_URL", "redis://h"},
            {"NATS_URL", "nats://127.0.0.1:4222"},
            {"JS_STREAM_NAME", "X"},
            {"JS_STREAM_MAX_AGE", "1m"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_TRUE(has_notice(*r.config, "WS_BROKER=redis: JS_STREAM_NAME, JS_STREAM_MAX_AGE ignored"));
  EXPECT_TRUE(has_notice(*r.config, "WS_BROKER=redis: NATS_URL is ignored"));
  EXPECT_EQ(r.config->notices.size(), 2u);

  // REDIS_URL without WS_BROKER=redis: never picked by auto, ignored with a notice.
  for (const Env& env : {Env{{"REDIS_URL", "redis://h"}},
                         Env{{"REDIS_URL", "redis://h"}, {"NATS_URL", "nats://n:4222"}},
                         Env{{"REDIS_URL", "redis://h"},
                             {"NATS_URL", "nats://n:4222"},
                             {"WS_BROKER", "jetstream"}}}) {
    r = load(env);
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_NE(r.config->broker, ops::BrokerKind::kRedis);
    EXPECT_TRUE(has_notice(*r.config, "REDIS_URL is ignored"));
  }
}

TEST(Config, HelpListsEveryVariableWithItsFlag) {
  const std::string help = ops::config_help(app::config_sections());
  EXPECT_TRUE(help.starts_with("Usage:")) << help;
  for (const std::string& name : kAllVariables) {
    EXPECT_NE(help.find(name), std::string::npos) << name;
    EXPECT_NE(help.find(flag_for(name)), std::string::npos) << flag_for(name);
  }
  for (const char* text : {"Listener", "Limits", "Resource guards", "Broker", "NATS", "JetStream",
                           "Redis", "Demo", "Operations", "250ms", "KiB", "status 2", "--help"}) {
    EXPECT_NE(help.find(text), std::string::npos) << text;
  }
}

TEST(Config, EveryHelpVariableIsReadFromTheEnvironment) {
  // Guards the list above against the loader: each variable must actually be looked up.
  std::vector<std::string> asked;
  const std::vector<const char*> no_args;
  ops::load_config(app::config_sections(), no_args, [&asked](const char* name) -> const char* {
    asked.emplace_back(name);
    return nullptr;
  });
  for (const std::string& name : kAllVariables) {
    EXPECT_NE(std::find(asked.begin(), asked.end(), name), asked.end()) << name;
  }
  EXPECT_EQ(asked.size(), kAllVariables.size());
}

TEST(Config, SocketCapRequestLimitAndPublishToken) {
  ops::ConfigLoad r = load({{"WS_MAX_CONNECTIONS", "100"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->max_sockets, 100u + 256u);  // a quarter more, at least 256
  r = load({{"WS_MAX_CONNECTIONS", "100"},
            {"WS_MAX_SOCKETS", "50"},
            {"WS_MAX_REQUESTS_PER_CONNECTION", "3"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->max_sockets, 50u);
  EXPECT_EQ(r.config->max_requests_per_connection, 3u);
  EXPECT_FALSE(accepts("WS_MAX_SOCKETS", "0"));
  EXPECT_FALSE(accepts("WS_MAX_REQUESTS_PER_CONNECTION", "0"));

  // A token is required from every peer once there is one, unless that is turned off.
  r = load({{"WS_PUBLISH_TOKEN", "s3cret"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_TRUE(r.config->publish_require_token);
  r = load({{"WS_PUBLISH_TOKEN", "s3cret"}, {"WS_PUBLISH_REQUIRE_TOKEN", "false"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_FALSE(r.config->publish_require_token);
  r = load({{"WS_PUBLISH_REQUIRE_TOKEN", "true"}});
  EXPECT_TRUE(r.error.starts_with("WS_PUBLISH_REQUIRE_TOKEN=true needs WS_PUBLISH_TOKEN"))
      << r.error;
}

}  // namespace
}  // namespace odin
