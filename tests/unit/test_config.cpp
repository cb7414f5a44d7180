// Unit tests of configuration loading: defaults, environment, flags, validation, --help.
#include <gtest/gtest.h>

#include <map>

#include "ops/config.hpp"

namespace odin {
namespace {

ConfigLoad load(std::map<std::string, std::string> env, std::vector<const char*> args = {}) {
  return load_config(args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Config, Defaults) {
  ConfigLoad r = load({});
  ASSERT_TRUE(r.config) << r.error;
  const Config& c = *r.config;
  EXPECT_EQ(c.listen_port, 3002);
  EXPECT_EQ(c.listen_host, "");
  EXPECT_EQ(c.max_connections, 10000u);
  EXPECT_EQ(c.max_message_bytes, 4096u);
  EXPECT_EQ(c.replay_size, 100u);
  EXPECT_EQ(c.resume_ttl, Millis(30000));
  EXPECT_EQ(c.ping_interval, Millis(30000));
  EXPECT_EQ(c.heartbeat_timeout, Millis(90000));
  EXPECT_EQ(c.client_queue_bytes, 262144u);
  EXPECT_EQ(c.subject_prefix, "odin.token.");
  EXPECT_EQ(c.js_stream_name, "ODIN_TOKENS");
  EXPECT_FALSE(c.demo_feed);
}

TEST(Config, EnvironmentValues) {
  ConfigLoad r = load({{"WS_ADDR", "127.0.0.1:0"},
                       {"WS_MAX_CONNECTIONS", "5"},
                       {"WS_RESUME_TTL", "1.5s"},
                       {"WS_PING_INTERVAL", "250ms"},
                       {"WS_HEARTBEAT_TIMEOUT", "2m"},
                       {"WS_CLIENT_QUEUE_BYTES", "64K"},
                       {"WS_MEMORY_LIMIT", "2GiB"},
                       {"WS_DEMO_FEED", "on"},
                       {"WS_CLIENT_RATE", "2.5"},
                       {"LOG_LEVEL", "WARNING"},
                       {"LOG_FORMAT", "text"},
                       {"JS_STREAM_MAX_AGE", "45"},
                       {"WS_MAX_GOROUTINES", "35000"}});
  ASSERT_TRUE(r.config) << r.error;
  const Config& c = *r.config;
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 0);
  EXPECT_EQ(c.max_connections, 5u);
  EXPECT_EQ(c.resume_ttl, Millis(1500));
  EXPECT_EQ(c.ping_interval, Millis(250));
  EXPECT_EQ(c.heartbeat_timeout, Millis(120000));
  EXPECT_EQ(c.client_queue_bytes, 65536u);
  EXPECT_EQ(c.memory_limit, 2ull << 30);
  EXPECT_TRUE(c.demo_feed);
  EXPECT_DOUBLE_EQ(c.client_rate, 2.5);
  EXPECT_EQ(c.log_level, LogLevel::kWarn);
  EXPECT_EQ(c.log_format, LogFormat::kText);
  EXPECT_EQ(c.js_stream_max_age, Millis(45000));
  ASSERT_EQ(c.notices.size(), 1u);
  EXPECT_NE(c.notices[0].find("WS_MAX_GOROUTINES"), std::string::npos);
}

TEST(Config, FlagsWinInBothForms) {
  ConfigLoad r = load({{"WS_MAX_CONNECTIONS", "5"}, {"WS_REPLAY_SIZE", "7"}},
                      {"--max-connections=9", "--replay-size", "11", "--js-stream-name=S"});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->max_connections, 9u);
  EXPECT_EQ(r.config->replay_size, 11u);
  EXPECT_EQ(r.config->js_stream_name, "S");
}

TEST(Config, BadValuesNameTheSetting) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"WS_MAX_CONNECTIONS", "abc"},  {"WS_MAX_CONNECTIONS", "0"},
      {"WS_MAX_CONNECTIONS", "-1"},   {"WS_MAX_CONNECTIONS", "12x"},
      {"WS_RESUME_TTL", "soon"},      {"WS_RESUME_TTL", "0s"},
      {"WS_RESUME_TTL", "-5"},        {"WS_CLIENT_RATE", "0"},
      {"WS_CLIENT_RATE", "nan"},      {"WS_ADDR", "3002"},
      {"WS_ADDR", "1.2.3:80"},        {"WS_ADDR", ":70000"},
      {"WS_DEMO_FEED", "maybe"},      {"LOG_LEVEL", "loud"},
      {"LOG_FORMAT", "xml"},          {"WS_CPU_REJECT_THRESHOLD", "101"},
      {"WS_CLIENT_QUEUE_BYTES", "1"}, {"WS_MEMORY_LIMIT", "lots"},
      {"WS_WORKER_POOL_SIZE", "x"},   {"WS_MAX_GOROUTINES", "y"},
      {"JS_STREAM_MAX_MSGS", "0"},    {"WS_THREADS", "1000"}};
  for (const auto& [name, value] : bad) {
    ConfigLoad r = load({{name, value}});
    EXPECT_FALSE(r.config) << name << "=" << value;
    EXPECT_NE(r.error.find(name), std::string::npos) << r.error;
    EXPECT_NE(r.error.find(value), std::string::npos) << r.error;
  }
  ConfigLoad flag = load({}, {"--max-connections=zero"});
  EXPECT_FALSE(flag.config);
  EXPECT_NE(flag.error.find("--max-connections"), std::string::npos);
  ConfigLoad unknown = load({}, {"--no-such-flag=1"});
  EXPECT_FALSE(unknown.config);
  EXPECT_NE(unknown.error.find("--no-such-flag"), std::string::npos);
  ConfigLoad order = load({{"WS_PING_INTERVAL", "10s"}, {"WS_HEARTBEAT_TIMEOUT", "5s"}});
  EXPECT_FALSE(order.config);
  EXPECT_NE(order.error.find("WS_HEARTBEAT_TIMEOUT"), std::string::npos);
}

TEST(Config, WorkerPoolMapsToThreadsHonestly) {
  ConfigLoad r = load({{"WS_WORKER_POOL_SIZE", "512"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_GE(r.config->threads, 1u);
  EXPECT_LE(r.config->threads, 255u);
  ConfigLoad explicit_threads = load({{"WS_WORKER_POOL_SIZE", "512"}, {"WS_THREADS", "3"}});
  ASSERT_TRUE(explicit_threads.config);
  EXPECT_EQ(explicit_threads.config->threads, 3u);
}

TEST(Config, HelpListsEverySetting) {
  EXPECT_TRUE(load({}, {"--help"}).show_help);
  const std::string help = config_help();
  for (const char* name : {"WS_ADDR",
                           "WS_THREADS",
                           "WS_MAX_CONNECTIONS",
                           "WS_MAX_MESSAGE_BYTES",
                           "WS_MAX_CHANNELS_PER_CONN",
                           "WS_CLIENT_RATE",
                           "WS_CLIENT_BURST",
                           "WS_REPLAY_SIZE",
                           "WS_RESUME_TTL",
                           "WS_PING_INTERVAL",
                           "WS_HEARTBEAT_TIMEOUT",
                           "WS_CLIENT_QUEUE_BYTES",
                           "WS_PUBLISH_TOKEN",
                           "WS_DRAIN_TIMEOUT",
                           "WS_CPU_LIMIT",
                           "WS_MEMORY_LIMIT",
                           "WS_CPU_REJECT_THRESHOLD",
                           "WS_CPU_PAUSE_THRESHOLD",
                           "WS_MAX_NATS_RATE",
                           "WS_MAX_BROADCAST_RATE",
                           "WS_WORKER_POOL_SIZE",
                           "WS_WORKER_QUEUE_SIZE",
                           "WS_MAX_GOROUTINES",
                           "NATS_URL",
                           "WS_SUBJECT_PREFIX",
                           "JS_STREAM_NAME",
                           "JS_CONSUMER_NAME",
                           "JS_STREAM_MAX_AGE",
                           "JS_STREAM_MAX_MSGS",
                           "JS_STREAM_MAX_BYTES",
                           "JS_CONSUMER_ACK_WAIT",
                           "METRICS_INTERVAL",
                           "LOG_LEVEL",
                           "LOG_FORMAT",
                           "ENVIRONMENT",
                           "WS_DEMO_FEED",
                           "--max-connections",
                           "--js-stream-name"}) {
    EXPECT_NE(help.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace odin
