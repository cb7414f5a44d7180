// Unit tests of settings sections: a feature's section validates its own settings through the ops
// loader, and the loader works with whatever sections it is handed (it knows none of them).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "app/settings.hpp"
#include "broker/broker_settings.hpp"
#include "ops/config.hpp"
#include "ops/settings.hpp"

namespace odin {
namespace {

using Env = std::map<std::string, std::string>;

ops::ConfigLoad load(std::span<const ops::ConfigSection> sections, const Env& env,
                     std::vector<const char*> args = {}) {
  return ops::load_config(sections, args, [&env](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// The sections ops/ defines itself, without any feature's.
std::vector<ops::ConfigSection> ops_sections() {
  return {ops::gateway_config_section(), ops::seed_config_section(),
          ops::operations_config_section()};
}

// A section no part of the gateway knows, as a new feature would add one.
ops::ConfigSection widget_section() {
  ops::ConfigSection section;
  section.settings = {
      {"WIDGET_COLOR", "Widgets", "red", "the widget's color",
       [](ops::Config& c, std::string_view text) -> std::optional<std::string> {
         if (text != "red" && text != "green") return "expected red or green";
         c.notices.push_back("widget color " + std::string(text));
         return std::nullopt;
       }},
      {"WIDGET_KEY", "Widgets", "unset", "the widget's key",
       [](ops::Config&, std::string_view text) -> std::optional<std::string> {
         if (text.size() < 8) return "expected at least 8 characters";
         return std::nullopt;
       },
       true},
  };
  section.check = [](ops::Config& c,
                     const ops::GivenSettings& given) -> std::optional<std::string> {
    // Runs after every section parsed: it sees a setting of a section listed after it.
    if (given.contains("WIDGET_COLOR") && given.contains("LOG_FORMAT") &&
        c.log_format == ops::LogFormat::kText) {
      return "WIDGET_COLOR: needs LOG_FORMAT=json";
    }
    return std::nullopt;
  };
  return section;
}

TEST(ConfigSections, BrokerSectionValidatesItsOwnSettings) {
  // The broker's section alone, without ops' own sections: REDIS_URL is checked by the broker's
  // parser and the error names the variable, never the value (it may hold a password).
  const std::vector<ops::ConfigSection> broker_only = {broker::broker_config_section()};
  ops::ConfigLoad r =
      load(broker_only, {{"WS_BROKER", "redis"}, {"REDIS_URL", "http://:secret@host"}});
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(r.error.starts_with("REDIS_URL: ")) << r.error;
  EXPECT_EQ(r.error.find("secret"), std::string::npos) << r.error;
  r = load(broker_only, {}, {"--redis-url=redis://:secret@host:0"});
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(r.error.starts_with("--redis-url (REDIS_URL): ")) << r.error;
  EXPECT_EQ(r.error.find("secret"), std::string::npos) << r.error;

  // Its check is its own too: the broker is chosen, and what it cannot do is refused.
  r = load(broker_only, {{"WS_BROKER", "redis"}});
  EXPECT_TRUE(r.error.starts_with("WS_BROKER=redis needs REDIS_URL")) << r.error;
  r = load(broker_only, {{"NATS_URL", "nats://127.0.0.1:4222"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->broker, ops::BrokerKind::kNats);
  EXPECT_EQ(r.config->history_max_age, r.config->js_stream_max_age);
  r = load(
      broker_only,
      {{"WS_BROKER", "redis"}, {"REDIS_URL", "redis://127.0.0.1"}, {"JS_STREAM_REPLICAS", "3"}});
  ASSERT_TRUE(r.config) << r.error;
  ASSERT_EQ(r.config->notices.size(), 1u);
  EXPECT_TRUE(r.config->notices[0].starts_with("WS_BROKER=redis: JS_STREAM_REPLICAS ignored"));

  // The intake caps are the broker's as well.
  const std::vector<ops::ConfigSection> intake_only = {broker::broker_intake_config_section()};
  r = load(intake_only, {{"WS_FANOUT_QUEUE_BYTES", "1K"}});
  EXPECT_TRUE(r.error.starts_with("WS_FANOUT_QUEUE_BYTES: expected a byte size")) << r.error;
  r = load(intake_only, {{"WS_MAX_NATS_RATE", "500"}});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->max_nats_rate, 500u);
}

TEST(ConfigSections, OpsNeedsNoFeatureSection) {
  // ops' own sections load without the broker's: its variables are not even read, its flags
  // are unknown, --help does not list them, and nothing resolves WS_BROKER.
  const std::vector<ops::ConfigSection> sections = ops_sections();
  std::set<std::string> asked;
  const std::vector<const char*> no_args;
  ops::ConfigLoad r =
      ops::load_config(sections, no_args, [&asked](const char* name) -> const char* {
        asked.insert(name);
        return std::string_view(name) == "REDIS_URL" ? "not a url" : nullptr;
      });
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->broker, ops::BrokerKind::kAuto);
  EXPECT_TRUE(asked.contains("WS_MAX_CONNECTIONS"));
  EXPECT_FALSE(asked.contains("REDIS_URL"));
  EXPECT_FALSE(asked.contains("WS_BROKER"));
  EXPECT_FALSE(asked.contains("WS_MAX_NATS_RATE"));

  r = load(sections, {}, {"--redis-url=redis://127.0.0.1"});
  EXPECT_EQ(r.error, "unknown option '--redis-url' (see --help)");
  const std::string help = ops::config_help(sections);
  EXPECT_NE(help.find("WS_MAX_CONNECTIONS"), std::string::npos);
  EXPECT_EQ(help.find("REDIS_URL"), std::string::npos);
  EXPECT_EQ(help.find("Broker"), std::string::npos);

  // ops' own checks still hold.
  r = load(sections, {{"WS_PING_INTERVAL", "10s"}, {"WS_HEARTBEAT_TIMEOUT", "5s"}});
  EXPECT_TRUE(r.error.starts_with("WS_HEARTBEAT_TIMEOUT: must be longer")) << r.error;
}

TEST(ConfigSections, AnUnknownSectionGetsTheSameMechanics) {
  std::vector<ops::ConfigSection> sections = {widget_section()};
  for (ops::ConfigSection& s : ops_sections())
    sections.push_back(std::move(s));

  ops::ConfigLoad r = load(sections, {{"WIDGET_COLOR", "green"}});
  ASSERT_TRUE(r.config) << r.error;
  ASSERT_EQ(r.config->notices.size(), 1u);
  EXPECT_EQ(r.config->notices[0], "widget color green");
  // A flag wins over the environment, named as a flag in errors.
  r = load(sections, {{"WIDGET_COLOR", "green"}}, {"--widget-color", "red"});
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->notices[0], "widget color red");
  r = load(sections, {{"WIDGET_COLOR", "purple"}});
  EXPECT_EQ(r.error, "WIDGET_COLOR: expected red or green, got 'purple'");
  r = load(sections, {}, {"--widget-color=purple"});
  EXPECT_EQ(r.error, "--widget-color (WIDGET_COLOR): expected red or green, got 'purple'");
  // A secret is never echoed.
  r = load(sections, {{"WIDGET_KEY", "hunter2"}});
  EXPECT_EQ(r.error, "WIDGET_KEY: expected at least 8 characters");
  // Its check sees settings of every section, including those listed after it.
  r = load(sections, {{"WIDGET_COLOR", "red"}, {"LOG_FORMAT", "text"}});
  EXPECT_EQ(r.error, "WIDGET_COLOR: needs LOG_FORMAT=json");
  // A value error of any section comes before every check.
  r = load(sections, {{"WIDGET_COLOR", "red"}, {"LOG_FORMAT", "text"}, {"WS_THREADS", "x"}});
  EXPECT_TRUE(r.error.starts_with("WS_THREADS: ")) << r.error;

  const std::string help = ops::config_help(sections);
  EXPECT_NE(help.find("\nWidgets:\n  WIDGET_COLOR"), std::string::npos) << help;
  EXPECT_NE(help.find("--widget-color"), std::string::npos);
  EXPECT_LT(help.find("Widgets:"), help.find("Listener:"));
}

TEST(ConfigSections, TheGatewayListsEverySettingOnce) {
  std::set<std::string> seen;
  for (const ops::ConfigSection& section : app::config_sections()) {
    for (const ops::Setting& s : section.settings) {
      EXPECT_TRUE(seen.insert(s.variable).second) << s.variable << " is in two sections";
    }
  }
  for (const char* broker_variable :
       {"WS_BROKER", "NATS_URL", "REDIS_URL", "WS_INSTANCE_ID", "JS_STREAM_NAME",
        "WS_MAX_NATS_RATE", "WS_FANOUT_QUEUE_BYTES", "WS_HISTORY_SIZE"}) {
    EXPECT_TRUE(seen.contains(broker_variable)) << broker_variable;
  }
}

// The one parser of word settings (LOG_LEVEL, LOG_FORMAT, WS_AUTH, WS_BROKER): any case, aliases
// allowed, anything else refused with the words it takes, the field left as it was.
TEST(SettingChoice, TakesItsWordsInAnyCaseAndRefusesTheRest) {
  const ops::SettingParser parse = ops::setting::choice(&ops::Config::log_level,
                                                        {{"warn", ops::LogLevel::kWarn},
                                                         {"warning", ops::LogLevel::kWarn},
                                                         {"off", ops::LogLevel::kOff}},
                                                        "warn or off");
  ops::Config c;
  c.log_level = ops::LogLevel::kInfo;
  EXPECT_EQ(parse(c, "OFF"), std::nullopt);
  EXPECT_EQ(c.log_level, ops::LogLevel::kOff);
  EXPECT_EQ(parse(c, "Warning"), std::nullopt);
  EXPECT_EQ(c.log_level, ops::LogLevel::kWarn);
  EXPECT_EQ(parse(c, "warnx"), "expected warn or off");
  EXPECT_EQ(parse(c, ""), "expected warn or off");
  EXPECT_EQ(c.log_level, ops::LogLevel::kWarn);
}

}  // namespace
}  // namespace odin
