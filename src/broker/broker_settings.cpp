// The broker's settings (WS_BROKER, NATS_URL, REDIS_URL, JetStream, history and stream reads, the
// intake caps) and the checks between them, kept beside the code that reads them: REDIS_URL is
// validated by the Redis broker's own parser.
#include "broker/broker_settings.hpp"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "broker/redis_support.hpp"
#include "ops/settings.hpp"

namespace odin::broker {

namespace {

using ops::setting::bytes;
using ops::setting::choice;
using ops::setting::duration;
using ops::setting::duration_in;
using ops::setting::has_space_or_control;
using ops::setting::integer;
using ops::setting::lower;

// JetStream stream and consumer names: NATS forbids spaces, '.', '*', '>', path separators.
ops::SettingParser nats_name(std::string ops::Config::*field) {
  return [=](ops::Config& c, std::string_view text) -> std::optional<std::string> {
    if (text.empty() || has_space_or_control(text) ||
        text.find_first_of(".*>/\\") != std::string_view::npos) {
      return "expected a non-empty NATS name without spaces, '.', '*', '>', '/' or '\\'";
    }
    c.*field = std::string(text);
    return std::nullopt;
  };
}

// A subject prefix is a literal subject start: no wildcards, spaces or empty tokens.
std::optional<std::string> parse_subject_prefix(ops::Config& c, std::string_view text) {
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
std::optional<std::string> parse_nats_url(ops::Config& c, std::string_view text) {
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
std::optional<std::string> parse_redis_url_setting(ops::Config& c, std::string_view text) {
  auto parsed = parse_redis_url(text);
  if (auto* problem = std::get_if<std::string>(&parsed)) return *problem;
  c.redis_url = std::string(text);
  return std::nullopt;
}

// Which broker runs, and what each kind refuses or ignores. `js_variables`: the JetStream
// settings, which Redis ignores.
std::optional<std::string> check_broker(ops::Config& config, const ops::GivenSettings& given,
                                        const std::vector<std::string>& js_variables) {
  if (config.broker == ops::BrokerKind::kAuto) {
    config.broker = config.nats_url.empty() ? ops::BrokerKind::kEmbedded : ops::BrokerKind::kNats;
  }
  if (config.broker == ops::BrokerKind::kRedis) {
    if (config.redis_url.empty()) {
      return "WS_BROKER=redis needs REDIS_URL (redis://[[user]:password@]host[:port][/db])";
    }
    // Per-channel history (and with it positions and resume on any instance) needs the
    // JetStream stream: Redis pub/sub keeps nothing to fill it from.
    std::vector<std::string> refused;
    if (given.contains("WS_HISTORY_SIZE") && config.history_size != 0) {
      refused.push_back("WS_HISTORY_SIZE");
    }
    if (given.contains("WS_HISTORY_MAX_AGE")) refused.push_back("WS_HISTORY_MAX_AGE");
    if (!refused.empty()) {
      return fmt::format(
          "{}: per-channel history and resume on any instance need WS_BROKER=jetstream; Redis "
          "pub/sub keeps no history (unset {} with WS_BROKER=redis)",
          fmt::join(refused, ", "), refused.size() == 1 ? "it" : "them");
    }
    std::vector<std::string> ignored;
    for (const std::string& variable : js_variables) {
      if (given.contains(variable)) ignored.push_back(variable);
    }
    if (!ignored.empty()) {
      config.notices.push_back(fmt::format(
          "WS_BROKER=redis: {} ignored (JetStream settings; Redis pub/sub has no stream)",
          fmt::join(ignored, ", ")));
    }
    if (!config.nats_url.empty()) config.notices.push_back("WS_BROKER=redis: NATS_URL is ignored");
  } else {
    if (config.broker != ops::BrokerKind::kEmbedded && config.nats_url.empty()) {
      return "WS_BROKER: nats and jetstream need NATS_URL";
    }
    if (config.broker == ops::BrokerKind::kEmbedded && !config.nats_url.empty()) {
      config.notices.push_back("WS_BROKER=embedded: NATS_URL is ignored");
    }
    if (!config.redis_url.empty()) {
      config.notices.push_back("REDIS_URL is ignored: it is used only with WS_BROKER=redis");
    }
  }
  if ((config.broker == ops::BrokerKind::kNats || config.broker == ops::BrokerKind::kJetStream) &&
      !config.subject_prefix.ends_with('.')) {
    return fmt::format(
        "WS_SUBJECT_PREFIX: must end with '.' with NATS (the intake subscribes to <prefix>>, and "
        "'>' must be a whole subject token), got '{}'",
        config.subject_prefix);
  }
  if (config.history_max_age.count() == 0) config.history_max_age = config.js_stream_max_age;
  return std::nullopt;
}

}  // namespace

ops::ConfigSection broker_intake_config_section() {
  ops::ConfigSection section;
  section.settings = {
      {"WS_MAX_NATS_RATE", "Resource guards", "0 (unlimited)",
       "NATS and Redis modes: intake cap, messages per second",
       integer(&ops::Config::max_nats_rate, 0, UINT64_MAX)},
      {"WS_MAX_BROADCAST_RATE", "Resource guards", "0 (unlimited)",
       "NATS and Redis modes: fan-out cap, messages per second",
       integer(&ops::Config::max_broadcast_rate, 0, UINT64_MAX)},
      {"WS_FANOUT_QUEUE_BYTES", "Resource guards", "64MiB",
       "messages queued for one event-loop thread and not yet delivered; beyond: JetStream intake "
       "stops pulling (the stream keeps them), core NATS and Redis intake drop (counted, "
       "fanout_behind) until the queue is below half of it",
       bytes(&ops::Config::fanout_queue_bytes, 64 << 10, 1ull << 40)},
  };
  return section;
}

ops::ConfigSection broker_config_section() {
  ops::ConfigSection section;
  section.settings = {
      {"WS_BROKER", "Broker (NATS, JetStream, Redis)", "auto",
       "embedded, nats (core NATS), jetstream or redis (Redis pub/sub); auto = nats when NATS_URL "
       "is set, else embedded (never redis: choose it)",
       choice(&ops::Config::broker,
              {{"auto", ops::BrokerKind::kAuto},
               {"embedded", ops::BrokerKind::kEmbedded},
               {"nats", ops::BrokerKind::kNats},
               {"jetstream", ops::BrokerKind::kJetStream},
               {"redis", ops::BrokerKind::kRedis}},
              "auto, embedded, nats, jetstream or redis")},
      {"NATS_URL", "Broker (NATS, JetStream, Redis)", "unset (embedded broker)",
       "NATS server URL(s), comma-separated", parse_nats_url},
      {"REDIS_URL", "Broker (NATS, JetStream, Redis)", "unset",
       "WS_BROKER=redis: redis://[[user]:password@]host[:port][/db] (port 6379 by default)",
       parse_redis_url_setting, true},
      {"WS_INSTANCE_ID", "Broker (NATS, JetStream, Redis)", "<hostname>-<port>",
       "this instance's name: NATS client name and JetStream consumer <JS_CONSUMER_NAME>-<id>",
       nats_name(&ops::Config::instance_id)},
      {"WS_MAX_PAYLOAD_BYTES", "Broker (NATS, JetStream, Redis)", "1048576",
       "largest data message (its `data` as written) taken from the broker or POST /publish, in "
       "every mode (NATS' own default max_payload is 1 MiB)",
       bytes(&ops::Config::max_payload_bytes, 1, 64u << 20)},
      {"WS_SUBJECT_PREFIX", "Broker (NATS, JetStream, Redis)", "odin.token.",
       "NATS subject / Redis channel prefix; channel = the rest of the subject (NATS and "
       "JetStream: ends with '.', since the intake subscribes to <prefix>> and '>' must be a "
       "whole token)",
       parse_subject_prefix},
      {"JS_STREAM_NAME", "Broker (NATS, JetStream, Redis)", "ODIN_TOKENS", "JetStream stream",
       nats_name(&ops::Config::js_stream_name)},
      {"JS_CONSUMER_NAME", "Broker (NATS, JetStream, Redis)", "ws-server",
       "JetStream durable consumer", nats_name(&ops::Config::js_consumer_name)},
      {"JS_STREAM_MAX_AGE", "Broker (NATS, JetStream, Redis)", "30s",
       "JetStream stream retention (at least 1s: shorter drops messages before they are read)",
       duration_in(&ops::Config::js_stream_max_age, ops::Millis(1000), ops::Millis(86'400'000))},
      {"JS_STREAM_MAX_MSGS", "Broker (NATS, JetStream, Redis)", "100000",
       "JetStream stream message limit", integer(&ops::Config::js_stream_max_msgs, 1, INT64_MAX)},
      {"JS_STREAM_MAX_BYTES", "Broker (NATS, JetStream, Redis)", "52428800",
       "JetStream stream byte limit", bytes(&ops::Config::js_stream_max_bytes, 1, INT64_MAX)},
      {"JS_CONSUMER_ACK_WAIT", "Broker (NATS, JetStream, Redis)", "30s",
       "JetStream ack wait (at least 1s: shorter redelivers messages still being handled)",
       duration_in(&ops::Config::js_consumer_ack_wait, ops::Millis(1000), ops::Millis(86'400'000))},
      {"JS_STREAM_REPLICAS", "Broker (NATS, JetStream, Redis)", "1",
       "copies of the stream on a NATS cluster (1-5; 3 survives the loss of one node)",
       integer(&ops::Config::js_stream_replicas, 1, 5)},
      {"WS_HISTORY_SIZE", "Broker (NATS, JetStream, Redis)", "256",
       "JetStream: messages kept per channel so a client can resume on any instance (at most "
       "10000: one array of this many references per channel and thread)",
       integer(&ops::Config::history_size, 0, 10'000)},
      {"WS_HISTORY_MAX_AGE", "Broker (NATS, JetStream, Redis)", "JS_STREAM_MAX_AGE",
       "JetStream: oldest message kept in that history", duration(&ops::Config::history_max_age)},
      {"WS_MAX_STREAM_READS", "Broker (NATS, JetStream, Redis)", "64",
       "JetStream: resumes waiting for a read-back of the stream at once, process-wide (each "
       "holds its socket); beyond: resume_failed at once (0: never read back)",
       integer(&ops::Config::max_stream_reads, 0, 100'000)},
      {"WS_STREAM_READ_TIMEOUT", "Broker (NATS, JetStream, Redis)", "5s",
       "JetStream: longest a resume waits for its read-back, queue included; then resume_failed",
       duration(&ops::Config::stream_read_timeout)},
  };
  std::vector<std::string> js_variables;
  for (const ops::Setting& s : section.settings) {
    if (std::string_view(s.variable).starts_with("JS_")) js_variables.emplace_back(s.variable);
  }
  section.check = [js_variables](ops::Config& config, const ops::GivenSettings& given) {
    return check_broker(config, given, js_variables);
  };
  return section;
}

}  // namespace odin::broker
