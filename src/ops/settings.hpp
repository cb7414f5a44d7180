// The mechanics of settings, apart from what they are: a feature describes its own settings (and
// the checks between them) as a ConfigSection in its own folder; app/ hands every section to
// load_config and config_help, so ops/ never includes the features it configures.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "ops/config.hpp"

namespace odin::ops {

// Parses one value into the config; returns what was expected ("expected ..."), or nullopt.
using SettingParser = std::function<std::optional<std::string>(Config&, std::string_view)>;

struct Setting {
  const char* variable;      // the environment variable; the flag follows from it (see --help)
  const char* group;         // --help heading; consecutive settings of one group share it
  const char* default_text;  // as --help shows it
  const char* meaning;
  SettingParser parse;  // nullptr: read and listed only; a check reads the raw value
  bool secret = false;  // never echoed in an error message
};

// A setting that was given, from the environment or as a flag (a flag wins).
struct GivenSetting {
  std::string value;
  std::string source;  // how an error names it: "WS_X", or "--x (WS_X)" for a flag
};
using GivenSettings = std::map<std::string, GivenSetting, std::less<>>;

// Runs once every setting of every section has parsed, in section order: derives defaults that
// depend on other settings, adds notices, or returns an error naming the setting(s).
using SectionCheck = std::function<std::optional<std::string>(Config&, const GivenSettings&)>;

struct ConfigSection {
  std::vector<Setting> settings;  // in --help order
  SectionCheck check;             // may be empty
};

// The outcome of loading: a config, a request for --help, or an error naming the setting.
struct ConfigLoad {
  std::optional<Config> config;
  bool show_help = false;
  std::string error;  // e.g. "WS_MAX_CONNECTIONS: expected a positive integer, got 'abc'"
};

// Reads every section's variables through `getenv` (so tests need not touch the real one), then
// applies command-line flags (`--max-connections=5000` or `--max-connections 5000`), which win;
// then parses them in section order and runs the sections' checks.
ConfigLoad load_config(std::span<const ConfigSection> sections, std::span<const char* const> args,
                       const std::function<const char*(const char*)>& getenv);

// The text printed by --help: every variable and flag of the sections, its default and meaning.
std::string config_help(std::span<const ConfigSection> sections);

// The flag of a variable: WS_MAX_CONNECTIONS -> --max-connections, NATS_URL -> --nats-url.
std::string flag_of(std::string_view variable);

// Building blocks for the parsers of every section, so each kind of value is written, bounded
// and described the same way wherever it is defined.
namespace setting {

std::string lower(std::string_view s);
std::optional<uint64_t> parse_u64(std::string_view text);
std::optional<double> parse_double(std::string_view text);
// "250ms", "30s", "5m", "1.5s", "1h"; a bare number is seconds; 1ms to 24h.
std::optional<Millis> parse_duration(std::string_view text);
// A plain integer, or with K/M/G (KiB/MiB/GiB), powers of 1024.
std::optional<uint64_t> parse_bytes(std::string_view text);
// What cannot go into a header or a NATS subject/name unquoted.
bool has_space_or_control(std::string_view text);

template <class T>
SettingParser integer(T Config::*field, uint64_t min, uint64_t max) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_u64(text);
    if (!v || *v < min || *v > max)
      return fmt::format("expected an integer from {} to {}", min, max);
    c.*field = static_cast<T>(*v);
    return std::nullopt;
  };
}

template <class T>
SettingParser bytes(T Config::*field, uint64_t min, uint64_t max) {
  return [=](Config& c, std::string_view text) -> std::optional<std::string> {
    auto v = parse_bytes(text);
    if (!v || *v < min || *v > max) {
      return fmt::format("expected a byte size from {} to {} (suffixes K, M, G)", min, max);
    }
    c.*field = static_cast<T>(*v);
    return std::nullopt;
  };
}

// One of a fixed set of words (any case), each naming a value of `field`; `expected` lists them
// for the error ("expected json or text").
template <class T>
SettingParser choice(T Config::*field, std::vector<std::pair<std::string_view, T>> words,
                     std::string_view expected) {
  return [=, expected = std::string(expected)](
             Config& c, std::string_view text) -> std::optional<std::string> {
    const std::string given = lower(text);
    for (const auto& [word, value] : words) {
      if (given == word) {
        c.*field = value;
        return std::nullopt;
      }
    }
    return "expected " + expected;
  };
}

SettingParser real(double Config::*field, double min, double max, bool min_exclusive);
SettingParser duration(Millis Config::*field);
// A duration held to [min, max]: outside it the setting would break the gateway (the reason
// belongs in the setting's --help text).
SettingParser duration_in(Millis Config::*field, Millis min, Millis max);
SettingParser boolean(bool Config::*field);
// Any text without control characters.
SettingParser text_value(std::string Config::*field);
// A word without spaces or control characters.
SettingParser token_value(std::string Config::*field);

}  // namespace setting

}  // namespace odin::ops
